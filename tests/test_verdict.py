from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.errors import VerdictError
from guardrails.gates import GateResult, Status, evaluate_gate
from guardrails.policy import parse_policies
from guardrails.verdict import (
    Decision,
    TestOutcome,
    Verdict,
    decide,
    load_verdict,
    redecide,
    write_verdict,
)

POLICY = parse_policies(
    {
        "policies": {
            "p": {
                "required": ["g*"],
                "n-resamples": 2000,
                "metrics": {
                    "ndcg@10": {"max-drop": 0.02, "min": 0.1},
                    "pass_rate": {"max-drop": 0.0},
                },
            }
        }
    }
)["p"]
RANK = {Decision.ROLLBACK: 0, Decision.HOLD: 1, Decision.PROMOTE: 2}


def _gate(name: str, shift: float, n: int = 150, seed: int = 0) -> GateResult:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, n)
    cand = np.clip(base + shift + rng.normal(0, 0.05, n), 0, 1)
    return evaluate_gate(
        "noninferior", "ndcg@10", candidate=cand, baseline=base, policy=POLICY, name=name
    )


def test_decision_rules() -> None:
    ok, bad, unsure = _gate("g1", 0.0), _gate("g2", -0.2), _gate("g3", -0.02)
    assert ok.status is Status.PASSED and bad.status is Status.FAILED
    assert unsure.status is Status.INCONCLUSIVE
    assert decide([ok], POLICY).decision is Decision.PROMOTE
    assert decide([ok, bad], POLICY).decision is Decision.ROLLBACK
    assert decide([ok, unsure], POLICY).decision is Decision.HOLD
    assert decide([], POLICY).decision is Decision.HOLD
    other = _gate("other", 0.0)
    held = decide([other], POLICY)
    assert held.decision is Decision.HOLD and "required gate 'g*' did not run" in held.reason
    crashed = decide([ok], POLICY, [TestOutcome("t::x", "error", "error", "boom")])
    assert crashed.decision is Decision.HOLD
    asserted = decide([ok], POLICY, [TestOutcome("t::y", "failed", "assertion", "assert 1 == 2")])
    assert asserted.decision is Decision.ROLLBACK


def test_holm_turns_a_marginal_failure_inconclusive() -> None:
    marginal = [
        r
        for r in (_gate("g-m", -0.035, n=80, seed=s) for s in range(40))
        if r.status is Status.FAILED and 0.01 < r.p_value < 0.05
    ]
    assert marginal, "need a marginally failing gate for this test"
    others = [_gate(f"g{i}", 0.0, seed=100 + i) for i in range(5)]
    v = decide([marginal[0], *others], POLICY)
    adjusted = {g.name: g for g in v.gates}[marginal[0].name]
    assert adjusted.p_adjusted > marginal[0].p_value
    assert adjusted.status is Status.INCONCLUSIVE and v.decision is Decision.HOLD


def test_binary_tolerance_finer_than_one_case_refused() -> None:
    from guardrails.errors import PolicyError

    policy = parse_policies({"policies": {"p": {"metrics": {"pass_rate": {"max-drop": 0.01}}}}})[
        "p"
    ]
    ok = np.ones(40)
    with pytest.raises(PolicyError, match="finer than one case"):
        evaluate_gate(
            "noninferior", "pass_rate", candidate=ok, baseline=ok, policy=policy, name="c"
        )


@settings(max_examples=25, deadline=None)
@given(
    shifts=st.lists(st.floats(-0.3, 0.2), min_size=1, max_size=4),
    bump=st.floats(0.0, 0.3),
    which=st.integers(0, 3),
)
def test_decide_is_monotone_in_candidate_quality(
    shifts: list[float], bump: float, which: int
) -> None:
    which %= len(shifts)
    names = [f"g{i}" for i in range(len(shifts))]
    before = decide(
        [_gate(n, s, n=60, seed=i) for i, (n, s) in enumerate(zip(names, shifts, strict=True))],
        POLICY,
    )
    better = list(shifts)
    better[which] += bump
    after = decide(
        [_gate(n, s, n=60, seed=i) for i, (n, s) in enumerate(zip(names, better, strict=True))],
        POLICY,
    )
    assert RANK[after.decision] >= RANK[before.decision]


@settings(max_examples=10, deadline=None)
@given(shift=st.floats(-0.3, 0.3))
def test_verdict_json_roundtrips(tmp_path_factory, shift: float) -> None:
    v = decide(
        [_gate("g1", shift, n=40)],
        POLICY,
        [TestOutcome("t::a", "passed", "", "", 0.5, ("g1",))],
        {"seed": 1},
    )
    path = write_verdict(v, tmp_path_factory.mktemp("v") / "verdict.json")
    back = load_verdict(path)
    assert back.to_dict() == json.loads(path.read_text())
    assert back.decision == v.decision and back.gates[0].per_sample == v.gates[0].per_sample


def test_redecide_under_a_stricter_policy_without_models() -> None:
    v = decide([_gate("g1", 0.0)], POLICY)
    assert v.decision is Decision.PROMOTE
    strict = parse_policies(
        {
            "policies": {
                "s": {
                    "required": ["g*"],
                    "n-resamples": 2000,
                    "metrics": {"ndcg@10": {"max-drop": 0.001}},
                }
            }
        }
    )["s"]
    again = redecide(Verdict.from_dict(v.to_dict()), strict)
    assert again.decision is not Decision.PROMOTE
    assert again.gates[0].per_sample == v.gates[0].per_sample


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not valid JSON"),
        ('{"schema_version": 99}', "schema_version=99"),
        ('{"schema_version": 1, "decision": "ship", "reason": "", "gates": []}', "decision='ship'"),
        ('{"schema_version": 1, "reason": "", "gates": []}', "key 'decision' missing"),
    ],
)
def test_bad_verdict_files(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "v.json").write_text(text)
    with pytest.raises(VerdictError, match=needle.replace("(", r"\(")):
        load_verdict(tmp_path / "v.json")


def test_canary_gate_with_zero_tolerance_passes_when_nothing_newly_fails() -> None:
    policy = parse_policies(
        {"policies": {"p": {"n-resamples": 2000, "metrics": {"pass_rate": {"max-drop": 0.0}}}}}
    )["p"]
    base = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1] * 3, dtype=float)
    better = base.copy()
    better[[1, 3, 6]] = 1.0  # three canaries newly pass, none newly fails
    assert (
        evaluate_gate(
            "noninferior", "pass_rate", candidate=better, baseline=base, policy=policy, name="c"
        ).status
        is Status.PASSED
    )
    worse = base.copy()
    worse[[0, 2]] = 0.0  # two newly fail: not shown safe
    assert (
        evaluate_gate(
            "noninferior", "pass_rate", candidate=worse, baseline=base, policy=policy, name="c"
        ).status
        is not Status.PASSED
    )


def test_superiority_needs_a_gain_not_a_tie() -> None:
    policy = parse_policies({"policies": {"p": {"n-resamples": 2000}}})["p"]
    same = np.linspace(0, 1, 50)
    result = evaluate_gate(
        "superior", "ndcg@10", candidate=same, baseline=same, policy=policy, name="s"
    )
    assert result.status is not Status.PASSED
