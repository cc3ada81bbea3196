"""Retrain triggers: each simulated event fires its trigger and names its components."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from guardrails.demo.simulator import (
    ComplaintSurge,
    LatencyRegression,
    LSAEmbedder,
    NewDomainLaunch,
)
from guardrails.errors import PolicyError
from guardrails.monitoring.drift import compare_windows
from guardrails.monitoring.triggers import (
    DRIFT_TARGETS,
    TriggerPolicy,
    decide_triggers,
    load_trigger_policy,
    parse_trigger_policy,
    window_pair,
)
from tests.monitoring.test_drift import AT, GOLDEN, simulated

NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def lsa() -> LSAEmbedder:
    return LSAEmbedder(GOLDEN, ("payments", "devices"))


def decide(before, after, **kwargs):
    report = compare_windows(before, after, projections=False)
    signals = window_pair(before.records, after.records)
    return decide_triggers(*signals, report, now=NOW, **kwargs)


def signals_named(decision, signal):
    return [f for f in decision.findings if f.signal.startswith(signal)]


def test_quiet_days_fire_nothing(lsa) -> None:
    fired = [decide(*simulated(lsa, seed=seed)).findings for seed in (2, 5)]
    assert fired == [(), ()]


def test_new_domain_is_an_event_for_retriever_reranker_generator(lsa) -> None:
    decision = decide(*simulated(lsa, (NewDomainLaunch("devices", AT, ramp_hours=2.0),)))
    (finding,) = signals_named(decision, "new_domain")
    assert finding.kind == "event"
    assert finding.components == ("retriever", "reranker", "generator")
    assert decision.fire and {"retriever", "generator"} <= set(decision.components)


def test_latency_regression_is_an_ops_threshold(lsa) -> None:
    decision = decide(*simulated(lsa, (LatencyRegression("generate", 1.6, AT),)))
    found = signals_named(decision, "latency_p95_generate")
    # untested (the signals keep percentiles only): a note that names no component, no alarm
    assert found and found[0].kind == "note" and found[0].components == ()
    assert not signals_named(decision, "latency_p95_search")
    assert not decision.fire  # latency alone retrains nothing, but it is reported


def test_complaint_surge_sends_the_generator_to_retraining(lsa) -> None:
    decision = decide(*simulated(lsa, (ComplaintSurge("made-up", 0.08, AT),)))
    rate = signals_named(decision, "complaint_rate")
    assert rate and rate[0].kind == "threshold"
    assert signals_named(decision, "complaint_topic")
    assert {"generator", "alignment"} <= set(decision.components)
    assert "retriever" not in decision.components


def test_schedule_fires_on_age_only(lsa) -> None:
    before, after = simulated(lsa, seed=5, hours=14.0)
    signals = window_pair(before.records, after.records)
    policy = TriggerPolicy(max_age_days=7)
    old = decide_triggers(
        *signals, None, policy=policy, last_retrain=NOW - timedelta(days=8), now=NOW
    )
    fresh = decide_triggers(
        *signals, None, policy=policy, last_retrain=NOW - timedelta(days=6), now=NOW
    )
    assert [f.kind for f in old.findings] == ["schedule"] and old.fire
    assert old.components == ("retriever", "reranker", "generator")
    assert not fresh.findings and not fresh.fire
    assert old.reasons[0][0] == "schedule" and "8.0 days" in old.reasons[0][1]


def test_trigger_policy_from_pyproject(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.guardrails.triggers]\nmax-age-days = 7\nctr-drop = 0.05\n")
    assert load_trigger_policy(path) == TriggerPolicy(max_age_days=7, ctr_drop=0.05)
    assert load_trigger_policy(tmp_path / "absent.toml") == TriggerPolicy()
    with pytest.raises(PolicyError, match="unknown key 'ctr'"):
        parse_trigger_policy({"ctr": 0.1})
    with pytest.raises(PolicyError, match=r"latency-p95-ratio=0\.9"):
        parse_trigger_policy({"latency-p95-ratio": 0.9})
    with pytest.raises(PolicyError, match=r"alpha=0\.7"):
        parse_trigger_policy({"alpha": 0.7})
    with pytest.raises(PolicyError, match=r"min-queries=2\.5"):
        parse_trigger_policy({"min-queries": 2.5})


@pytest.fixture(scope="module")
def quiet_windows(lsa):
    """Two quiet windows: their drift report (no alarm) and their signals."""
    before, after = simulated(lsa, seed=2)
    quiet = compare_windows(before, after, projections=False)
    return after, quiet, window_pair(before.records, after.records)


@pytest.mark.parametrize(("statistic", "targets"), sorted(DRIFT_TARGETS.items()))
def test_every_drift_statistic_alone_produces_a_trigger(quiet_windows, statistic, targets) -> None:
    """An MMD-only (or KS-only, cosine-only, ...) alarm sends its components to retraining;
    before, only norm PSI and the novel share were read. Isolated: on quiet windows only this
    statistic is made significant, and the decision has this one finding and nothing else."""
    from dataclasses import replace

    after, quiet, signals = quiet_windows
    assert not quiet.alarm and quiet.statistic(statistic) is not None
    stats = []
    for s in quiet.statistics:
        if s.name == statistic:  # a strong, significant shift of this statistic only
            s = replace(s, value=s.critical * 3 + 1.0, p_value=1e-6, floor_met=True, alarm=True)
        stats.append(s)
    report = replace(quiet, statistics=tuple(stats))
    decision = decide_triggers(*signals, report, now=NOW)
    assert decision.drift.alarms == (statistic,)  # the joint Holm family keeps it alone
    assert [f.signal for f in decision.findings] == [statistic], decision.findings
    assert decision.findings[0].kind == "threshold"
    assert decision.fire and decision.components == tuple(
        c for c in ("retriever", "reranker", "generator", "alignment") if c in targets
    )
    recorded = decision.to_dict()
    assert [d["name"] for d in recorded["drift"] if d["alarm"]] == [statistic]
    assert recorded["signals"]["current"]["n_queries"] == len(after.records)
