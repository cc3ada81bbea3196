"""Ray scale-out equals the in-process statistics (Ray local mode, one CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guardrails.metrics.drift import (
    compare_embeddings,
    summarize_embeddings,
    summarize_embeddings_like,
)

pytest.importorskip("ray")


class CharEmbedder:
    """Picklable factory product: (length, count of 'a', count of ' ') per text."""

    def encode(self, texts):
        return np.array([[len(t), t.count("a"), t.count(" ")] for t in texts], dtype=np.float32)


def make_embedder() -> CharEmbedder:
    return CharEmbedder()


def test_ray_summary_and_drift_equal_in_process(local_ray, tmp_path) -> None:
    from guardrails.monitoring.scaleout import ray_compare_embeddings, ray_summarize_like

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3000, 12)).astype(np.float32)
    cur = (rng.standard_normal((2500, 12)) * 1.1 + 0.05).astype(np.float32)
    reference = summarize_embeddings(ref, ks_bins=32)
    merged = ray_summarize_like(cur, reference, block_rows=700)  # 4 blocks
    local = summarize_embeddings_like(cur, reference)
    assert merged.n == local.n == 2500
    np.testing.assert_array_equal(merged.norm_hist.counts, local.norm_hist.counts)
    np.testing.assert_array_equal(merged.norm_fine.counts, local.norm_fine.counts)
    np.testing.assert_array_equal(merged.ks_counts, local.ks_counts)
    np.testing.assert_allclose(merged.vector_sum, local.vector_sum, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(merged.unit_sum, local.unit_sum, rtol=1e-5, atol=1e-3)
    assert merged.norm_mean == pytest.approx(local.norm_mean, rel=1e-12)
    assert merged.norm_m2 == pytest.approx(local.norm_m2, rel=1e-9)
    ours, theirs = (
        ray_compare_embeddings(reference, cur, block_rows=700),
        compare_embeddings(reference, cur),
    )
    assert ours.norm_psi == theirs.norm_psi and ours.norm_kl == theirs.norm_kl
    assert ours.cosine_to_history == pytest.approx(theirs.cosine_to_history, abs=1e-8)
    assert ours.centroid_shift == pytest.approx(theirs.centroid_shift, rel=1e-6, abs=1e-8)
    np.testing.assert_array_equal(ours.ks_per_dim, theirs.ks_per_dim)
    np.save(tmp_path / "cur.npy", cur)  # .npy files read by Ray Data give the same counts
    from_file = ray_summarize_like(str(tmp_path / "cur.npy"), reference)
    np.testing.assert_array_equal(from_file.norm_hist.counts, local.norm_hist.counts)


def test_ray_reembed_keeps_input_order(local_ray) -> None:
    from guardrails.monitoring.scaleout import ray_reembed

    texts = [f"{'a' * (i % 5)} text {i}" for i in range(50)]
    out = ray_reembed(texts, make_embedder, batch_size=7)
    np.testing.assert_array_equal(out, CharEmbedder().encode(texts))


def test_ray_is_never_imported_by_default() -> None:
    code = (
        "import sys, guardrails.monitoring.drift, guardrails.monitoring.triggers, "
        "guardrails.training.curation, guardrails.cli, guardrails.stack, "
        "guardrails.monitoring.scaleout; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------- reached from the CLI


def _drift(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, dict]:
    from guardrails.cli import main

    status = main(["drift", *argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def _assert_same_report(ours: dict, theirs: dict) -> None:
    """Same statistics, p-values and decisions; values equal up to summation order (block sums
    of float32 rows add in another order: ~1e-8 relative)."""
    assert [s["name"] for s in ours["statistics"]] == [s["name"] for s in theirs["statistics"]]
    for a, b in zip(ours["statistics"], theirs["statistics"], strict=True):
        assert (a["alarm"], a["floor_met"]) == (b["alarm"], b["floor_met"]), a["name"]
        for key in ("value", "critical", "p_value", "p_adjusted"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["name"], key)
    assert (ours["alarm"], ours["alarms"], ours["status"]) == (
        theirs["alarm"],
        theirs["alarms"],
        theirs["status"],
    )
    assert ours["novelty"] == theirs["novelty"]


@pytest.mark.parametrize(("shift", "status"), [(0.0, 0), (0.4, 1)])
def test_cli_drift_on_ray_equals_in_process(
    local_ray, tmp_path: Path, capsys: pytest.CaptureFixture, shift: float, status: int
) -> None:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "ref.npy", rng.standard_normal((1500, 8)).astype(np.float32))
    np.save(tmp_path / "cur.npy", (rng.standard_normal((1200, 8)) + shift).astype(np.float32))
    argv = ["--reference", str(tmp_path / "ref.npy"), "--current", str(tmp_path / "cur.npy")]
    argv += ["--permutations", "99", "--config", str(tmp_path / "absent.toml")]
    here_status, here = _drift(capsys, [*argv, "--backend", "in-process"])
    ray_status, on_ray = _drift(capsys, [*argv, "--ray"])
    assert here_status == ray_status == status  # the shifted window alarms, the other does not
    assert (here["backend"], on_ray["backend"]) == ("in-process", "ray")
    _assert_same_report(on_ray, here)

    config = tmp_path / "pyproject.toml"  # the configuration reaches the same path
    config.write_text('[tool.guardrails.stack.scaleout]\nbackend = "ray"\nblock-rows = 500\n')
    argv[-1] = str(config)
    config_status, configured = _drift(capsys, argv)
    assert config_status == status and configured["backend"] == "ray"
    _assert_same_report(configured, here)
    overridden_status, overridden = _drift(capsys, [*argv, "--backend", "in-process"])
    assert overridden["backend"] == "in-process" and overridden_status == status
    from guardrails.cli import main

    assert main(["drift", *argv]) == status  # text output says where it ran
    assert "backend: ray (local)" in capsys.readouterr().out


def test_cli_refuses_contradicting_backends(tmp_path: Path, capsys) -> None:
    from guardrails.cli import main

    np.save(tmp_path / "a.npy", np.ones((4, 2), np.float32))
    argv = ["drift", "--reference", str(tmp_path / "a.npy"), "--current", str(tmp_path / "a.npy")]
    assert main([*argv, "--ray", "--backend", "in-process"]) == 2
    assert "--ray local contradicts --backend in-process" in capsys.readouterr().err
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.guardrails.stack.scaleout]\nbackend = "dask"\n')
    assert main([*argv, "--config", str(config)]) == 2
    assert "[tool.guardrails.stack.scaleout] backend='dask'" in capsys.readouterr().err
