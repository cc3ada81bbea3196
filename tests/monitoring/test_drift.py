"""Drift over windows: no alarm on random splits, an alarm on each injected event, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from guardrails.cli import main
from guardrails.demo.simulator import (
    EmbeddingShift,
    LSAEmbedder,
    NewDomainLaunch,
    SimulationConfig,
    simulate,
)
from guardrails.errors import MetricError
from guardrails.monitoring.drift import (
    DriftThresholds,
    compare_windows,
    load_window,
    profile_reference,
)
from guardrails.monitoring.logs import LogBatch, write_logs

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
AT = timedelta(hours=12)


@pytest.fixture(scope="session")
def lsa() -> LSAEmbedder:
    return LSAEmbedder(GOLDEN, ("payments", "devices"))


def simulated(embedder, events=(), seed=2, hours=24.0):
    """``(before, after)`` record batches of a simulated day split at ``AT``."""
    cfg = SimulationConfig(seed=seed, hours=hours, sessions_per_hour=30.0, events=events)
    records = simulate(cfg, GOLDEN, embedder)
    split = cfg.start + AT.total_seconds()
    before = tuple(r for r in records if r.timestamp < split)
    after = tuple(r for r in records if r.timestamp >= split)
    return LogBatch(before, (), len(before)), LogBatch(after, (), len(after))


@pytest.fixture(scope="module")
def quiet_day(lsa):
    before, after = simulated(lsa)
    return LogBatch(before.records + after.records, (), 0)


def test_no_alarm_on_random_splits_of_one_window(quiet_day) -> None:
    """Random halves of one window (by session): at most one false alarm over the seeds."""
    sessions = sorted({r.session_id for r in quiet_day.records})
    alarms = []
    for seed in range(6):
        half = set(np.random.default_rng(seed).permutation(sessions)[: len(sessions) // 2])
        a = tuple(r for r in quiet_day.records if r.session_id in half)
        b = tuple(r for r in quiet_day.records if r.session_id not in half)
        report = compare_windows(LogBatch(a, (), 0), LogBatch(b, (), 0), projections=False)
        alarms.append(report.alarms)
    assert sum(bool(a) for a in alarms) <= 1, alarms


def test_new_domain_raises_novelty_alarm(lsa) -> None:
    before, after = simulated(lsa, (NewDomainLaunch("devices", AT, ramp_hours=2.0),))
    report = compare_windows(before, after, projections=False)
    assert "novel_share" in report.alarms
    assert report.novelty is not None
    assert max(report.novelty.domains, key=report.novelty.domains.get) == "devices"


def test_embedding_shift_raises_norm_and_mmd_alarms(lsa) -> None:
    before, after = simulated(lsa, (EmbeddingShift(AT, angle=0.5, norm_scale=1.15),))
    report = compare_windows(before, after, projections=False)
    assert {"norm_psi", "norm_kl", "mmd"} <= set(report.alarms)
    assert report.statistic("norm_psi").value > 1.0


def test_npy_windows_profile_reuse_and_projections(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((600, 8)).astype(np.float32)
    same = rng.standard_normal((500, 8)).astype(np.float32)
    np.save(tmp_path / "ref.npy", ref)
    profile = profile_reference(tmp_path / "ref.npy")
    quiet = compare_windows(profile, same)
    shifted = compare_windows(profile, same * 1.3)
    assert not quiet.alarm, quiet.summary_lines()
    assert {"norm_psi", "mmd"} <= set(shifted.alarms)
    assert len(quiet.projections["pca"]["reference"]) == 300
    assert json.dumps(shifted.to_dict())  # JSON-able (NaN -> null)
    with pytest.raises(MetricError, match="thresholds differ"):
        compare_windows(profile, same, thresholds=DriftThresholds(alpha=0.01))


def test_psi_alarm_needs_significance_not_just_size() -> None:
    """Tiny n: noise alone gives PSI far above the 0.1 floor, yet alarms stay rare because
    the chi-square p-value scales with 1/n + 1/m and is Holm-adjusted over the family."""
    stats = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
        stats.append(compare_windows(x, y, projections=False).statistic("norm_psi"))
    assert sum(s.value > 0.1 for s in stats) >= 5
    assert sum(s.alarm for s in stats) <= 3
    assert all(s.detail == "bins=2" and s.critical == 0.1 for s in stats)
    assert all(s.p_adjusted >= s.p_value for s in stats)
    assert all(s.alarm == (s.p_adjusted < 0.05 and s.value > 0.1) for s in stats)


def test_cli_drift_exit_codes_json_and_malformed_lines(tmp_path: Path, lsa, capsys) -> None:
    before, after = simulated(lsa, (EmbeddingShift(AT),), hours=16.0)
    ref = write_logs(before.records, tmp_path / "ref.jsonl")
    cur = write_logs(after.records, tmp_path / "cur.jsonl")
    with open(cur, "a", encoding="utf-8") as f:
        f.write('{"timestamp": 1, "query": "no session"}\n')
    assert main(["drift", "--reference", str(ref), "--current", str(cur)]) == 1
    out = capsys.readouterr().out
    assert f"malformed: {cur}:{len(after.records) + 1}:" in out
    assert "norm_psi" in out and "ALARM" in out and "retriever" in out
    assert main(["drift", "--reference", str(ref), "--current", str(ref), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alarm"] is False and data["triggers"]["fire"] is False


def test_load_window_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_window(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(MetricError, match=r"\(n >= 2, d\) array"):
        load_window(tmp_path / "flat.npy")


# ------------------------------------------------------------------ calibration (issue 12)


def _mixture(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """One fixed 4-cluster Gaussian mixture (means seeded apart from ``rng``)."""
    means = np.random.default_rng(99).standard_normal((4, d))
    labels = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    return (means[labels] + 0.5 * rng.standard_normal((n, d))).astype(np.float32)


FAST = DriftThresholds(n_permutations=199)


def test_family_wise_alarm_rate_under_no_drift_is_bounded() -> None:
    """24 pairs of one distribution: Holm over all statistics keeps the family-wise rate at
    alpha = 0.05 (expected ~1 pair; 5 or more is p < 0.01 for a calibrated family)."""
    holm_any = alarms = 0
    for seed in range(24):
        rng = np.random.default_rng(seed)
        report = compare_windows(
            _mixture(200, 8, rng), _mixture(200, 8, rng), thresholds=FAST, projections=False
        )
        holm_any += any(s.p_adjusted < 0.05 for s in report.statistics)
        alarms += report.alarm
    assert holm_any <= 4 and alarms <= holm_any


def test_cosine_to_history_p_value_is_roughly_uniform_under_no_drift() -> None:
    """In-sample self-cosine made this p < 0.05 in ~90 % of random pairs; held out, the
    p-values spread over (0, 1): a coarse check on 40 pairs."""
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = rng.standard_normal((200, 16)), rng.standard_normal((200, 16))
        ps.append(compare_windows(a, b, thresholds=FAST, projections=False))
    p = np.array([r.statistic("cosine_to_history").p_value for r in ps])
    assert np.mean(p < 0.1) <= 0.3
    assert 0.3 <= p.mean() <= 0.7
    assert 0.15 <= np.mean(p > 0.5) <= 0.85


def test_new_cluster_in_current_window_alarms() -> None:
    """30 % of the current rows from a cluster the reference never saw."""
    rng = np.random.default_rng(5)
    ref, cur = _mixture(400, 16, rng), _mixture(400, 16, rng)
    cur[:120] = 3.0 * rng.standard_normal(16) + 0.5 * rng.standard_normal((120, 16))
    report = compare_windows(ref, cur, thresholds=FAST, projections=False)
    assert report.alarm and report.complete
    assert {"novel_share", "cluster_share_psi"} & set(report.alarms), report.summary_lines()
    novel = report.statistic("novel_share")
    assert novel is not None and novel.p_value == pytest.approx(1 / 200)


def _without_embeddings(batch: LogBatch) -> LogBatch:
    from dataclasses import replace

    records = tuple(replace(r, query_embedding=None) for r in batch.records)
    return LogBatch(records, (), len(records))


def test_window_without_query_embedding_is_skipped_not_a_pass(tmp_path: Path, lsa, capsys) -> None:
    before, after = simulated(lsa, hours=16.0)
    report = compare_windows(before, _without_embeddings(after), projections=False)
    assert not report.complete
    assert {s.name for s in report.skipped} == {
        "norm_psi",
        "norm_kl",
        "cosine_to_history",
        "cluster_share_psi",
        "ks_max",
        "mmd",
        "novel_share",
    }
    assert all("query_embedding" in s.reason for s in report.skipped)
    assert [s.name for s in report.statistics] == ["rerank_score_psi"]
    ref = write_logs(before.records, tmp_path / "ref.jsonl")
    cur = write_logs(_without_embeddings(after).records, tmp_path / "cur.jsonl")
    status = main(["drift", "--reference", str(ref), "--current", str(cur), "--permutations", "99"])
    out = capsys.readouterr().out
    assert "SKIPPED" in out
    assert status == (1 if "ALARM" in out.splitlines()[-1] else 3), out


def test_cli_drift_help_seed_permutations_and_projections(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    help_text = capsys.readouterr().out
    assert "exit status:" in help_text and "3  no alarm but incomplete" in help_text
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((300, 8)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.standard_normal((300, 8)).astype(np.float32))
    args = ["drift", "--reference", str(tmp_path / "a.npy"), "--current", str(tmp_path / "b.npy")]
    args += ["--json", "--seed", "7", "--permutations", "49"]
    assert main(args) in (0, 1)
    data = json.loads(capsys.readouterr().out)
    assert "projections" not in data and data["complete"] is True
    assert data["thresholds"]["seed"] == 7 and data["thresholds"]["n_permutations"] == 49
    mmd = next(s for s in data["statistics"] if s["name"] == "mmd")
    assert mmd["p_value"] >= 1 / 50 and mmd["p_adjusted"] >= mmd["p_value"]
    assert main([*args, "--projections"]) in (0, 1)
    assert len(json.loads(capsys.readouterr().out)["projections"]["pca"]["current"]) == 300
    with pytest.raises(SystemExit) as exc:
        main([*args, "--permutations", "1"])
    assert exc.value.code == 2
