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


# ---- decisions per component ----------------------------------------------------------------


def _components_policy(required: list[str] | None = None, **extra: object) -> object:
    body: dict = {
        "n-resamples": 2000,
        "required": required or [],
        "metrics": {"ndcg@10": {"max-drop": 0.02, "min": 0.1}},
        **extra,
    }
    table = {
        "components": {
            "embedder": ["retrieval-*", "shadow-*"],
            "generator": ["generation-*", "canaries-*:candidate", "test_merged*candidate*"],
        },
        "policies": {"p": body},
    }
    return parse_policies(table)["p"]


def test_failed_generator_gate_rolls_back_only_the_generator() -> None:
    policy = _components_policy()
    gates = [
        _gate("retrieval-devices:ndcg@10", 0.0, seed=1),
        _gate("shadow-devices:ndcg@10", 0.0, seed=2),
        _gate("generation-devices:rouge_l", -0.2, seed=3),
        _gate("drift-query-norms", 0.0, seed=4),  # shared: counts for both
    ]
    v = decide(gates, policy)
    assert v.decision is Decision.ROLLBACK  # the overall decision is unchanged
    assert v.components["embedder"]["decision"] == "promote"
    assert v.components["embedder"]["gates"] == [
        "retrieval-devices:ndcg@10",
        "shadow-devices:ndcg@10",
        "drift-query-norms",
    ]
    assert (
        "3 gates of component 'embedder' passed (2 its own, 1 shared)"
        in (v.components["embedder"]["reason"])
    )
    gen = v.components["generator"]
    assert gen["decision"] == "rollback"
    assert gen["reason"].startswith("gate generation-devices:rouge_l failed")
    assert gen["gates"] == ["generation-devices:rouge_l", "drift-query-norms"]
    assert v.promotable() == ["embedder"]


def test_shared_gates_count_for_every_component() -> None:
    policy = _components_policy()
    own = [_gate("retrieval-a", 0.0, seed=1), _gate("generation-a", 0.0, seed=2)]
    failed = decide([*own, _gate("drift-x", -0.2, seed=3)], policy)
    assert {c["decision"] for c in failed.components.values()} == {"rollback"}
    unsure = decide([*own, _gate("drift-x", -0.02, seed=3)], policy)
    assert unsure.gates[-1].status is Status.INCONCLUSIVE
    assert {c["decision"] for c in unsure.components.values()} == {"hold"}
    assert decide(own, policy).components["generator"]["decision"] == "promote"


def test_inconclusive_generator_does_not_hold_back_the_embedder() -> None:
    policy = _components_policy()
    v = decide([_gate("retrieval-a", 0.0, seed=1), _gate("generation-a", -0.02, seed=2)], policy)
    assert v.decision is Decision.HOLD
    assert v.components["embedder"]["decision"] == "promote"
    assert v.components["generator"]["decision"] == "hold"


def test_required_patterns_belong_to_their_component_or_are_shared() -> None:
    gates = [_gate("retrieval-a", 0.0, seed=1), _gate("generation-payments", 0.0, seed=2)]
    owned = decide(gates, _components_policy(["generation-devices*"]))
    assert owned.decision is Decision.HOLD
    assert owned.components["embedder"]["decision"] == "promote"
    assert owned.components["generator"]["decision"] == "hold"
    assert (
        "required gate 'generation-devices*' did not run" in owned.components["generator"]["reason"]
    )
    shared = decide(gates, _components_policy(["canaries-*"]))  # matches no component pattern
    assert {c["decision"] for c in shared.components.values()} == {"hold"}
    # "retrieval-*" as a pattern is matched by the embedder's own "retrieval-*"
    both = decide([_gate("generation-a", 0.0, seed=2)], _components_policy(["retrieval-*"]))
    assert both.components["generator"]["decision"] == "promote"
    assert both.components["embedder"]["decision"] == "hold"


def test_tests_outside_gates_are_shared_unless_their_name_matches() -> None:
    policy = _components_policy()
    gates = [_gate("retrieval-a", 0.0, seed=1), _gate("generation-a", 0.0, seed=2)]
    crashed = decide(gates, policy, [TestOutcome("suites/t.py::test_x", "error", "error", "boom")])
    assert {c["decision"] for c in crashed.components.values()} == {"hold"}
    merged = TestOutcome(
        "suites/test_generation.py::test_merged_lora[candidate_generator]",
        "failed",
        "assertion",
        "merged vs unmerged max |Δlogit|=0.3",
    )
    v = decide(gates, policy, [merged])
    assert v.decision is Decision.ROLLBACK
    assert v.components["generator"]["decision"] == "rollback"
    assert v.components["embedder"]["decision"] == "promote"
    gate_failure = TestOutcome("t::test_gen", "failed", "gate", "GateFailed")  # the gate decides
    assert decide(gates, policy, [gate_failure]).components["embedder"]["decision"] == "promote"


def test_component_without_gates_of_its_own_holds() -> None:
    v = decide([_gate("retrieval-a", 0.0), _gate("drift-x", 0.0, seed=5)], _components_policy())
    assert v.decision is Decision.PROMOTE
    assert v.components["embedder"]["decision"] == "promote"
    assert v.components["generator"]["decision"] == "hold"
    assert "no gate of component 'generator' ran" in v.components["generator"]["reason"]


def test_components_use_the_run_wide_holm_adjustment() -> None:
    marginal = next(
        r
        for r in (_gate("generation-m", -0.035, n=80, seed=s) for s in range(40))
        if r.status is Status.FAILED and 0.01 < r.p_value < 0.05
    )
    others = [_gate(f"retrieval-{i}", 0.0, seed=100 + i) for i in range(5)]
    v = decide([marginal, *others], _components_policy())
    assert v.components["generator"]["decision"] == "hold"  # not rollback: Holm across the run
    alone = decide([marginal], _components_policy())
    assert alone.components["generator"]["decision"] == "rollback"


def test_no_components_means_an_empty_mapping() -> None:
    v = decide([_gate("g1", 0.0)], POLICY)
    assert v.components == {} and v.to_dict()["components"] == {}


def test_components_roundtrip_and_old_verdicts_without_them(tmp_path: Path) -> None:
    policy = _components_policy()
    v = decide([_gate("retrieval-a", 0.0, seed=1), _gate("generation-a", -0.2, seed=2)], policy)
    path = write_verdict(v, tmp_path / "verdict.json")
    back = load_verdict(path)
    assert back.components == v.components and back.to_dict() == json.loads(path.read_text())
    old = v.to_dict()
    del old["components"]
    assert Verdict.from_dict(old).components == {}
    assert Verdict.from_dict(old).decision is Decision.ROLLBACK


@pytest.mark.parametrize(
    ("components", "needle"),
    [
        ([], "key 'components' must be an object"),
        ({"embedder": "promote"}, "key 'components.embedder' must be an object"),
        ({"embedder": {"decision": "ship"}}, "components.embedder.decision='ship'"),
        (
            {"embedder": {"decision": "hold", "reason": "x", "reasons": [], "gates": "g"}},
            "key 'components.embedder.gates' missing or not a list",
        ),
    ],
)
def test_bad_components_in_a_verdict(components: object, needle: str) -> None:
    data = decide([_gate("g1", 0.0)], POLICY).to_dict()
    data["components"] = components
    with pytest.raises(VerdictError, match=needle.replace("(", r"\(")):
        Verdict.from_dict(data)


def test_redecide_computes_components_under_the_new_policy() -> None:
    gates = [_gate("retrieval-a", 0.05, seed=1), _gate("generation-a", -0.015, seed=2)]
    v = decide(gates, POLICY)
    assert v.components == {}
    loose = _components_policy()
    again = redecide(Verdict.from_dict(v.to_dict()), loose)
    assert set(again.components) == {"embedder", "generator"}
    strict = _components_policy(metrics={"ndcg@10": {"max-drop": 0.001}})
    stricter = redecide(Verdict.from_dict(again.to_dict()), strict)
    assert stricter.components["generator"]["decision"] == "rollback"
    assert stricter.components["embedder"]["decision"] == "promote"
    assert stricter.decision is Decision.ROLLBACK


def test_a_required_pattern_with_a_typo_holds_and_names_the_close_gate() -> None:
    from dataclasses import replace

    policy = replace(POLICY, required=("retrieval-paymnts:*", "shadow-*"))
    verdict = decide([_gate("retrieval-payments:ndcg@10", 0.0)], policy)
    assert verdict.decision is Decision.HOLD
    typo, absent = [r for r in verdict.reasons if r.startswith("required gate")]
    assert "did you mean 'retrieval-payments:ndcg@10'?" in typo
    assert "did you mean" not in absent  # nothing close: no guess


def test_redecide_reproduces_the_verdict_with_per_call_overrides() -> None:
    """A limit given to the gate call (not in the policy) is stored with the gate, so the same
    policy re-decides to the same verdict; before, redecide dropped it (HOLD -> ROLLBACK, or
    "no max-drop")."""
    bare = parse_policies({"policies": {"b": {"n-resamples": 2000}}})["b"]
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 80)
    cand = base - 0.01 + rng.normal(0, 0.05, 80)
    loose = evaluate_gate(
        "noninferior",
        "latency",
        candidate=cand * 100,
        baseline=base * 100,
        policy=bare,
        name="lat",
        overrides={"max_drop": 5.0},
    )
    tight = evaluate_gate(
        "noninferior",
        "ndcg@10",
        candidate=cand,
        baseline=base,
        policy=bare,
        name="q",
        overrides={"max_drop": 0.2},
    )
    v = decide([loose, tight], bare)
    again = redecide(Verdict.from_dict(json.loads(json.dumps(v.to_dict()))), bare)
    assert again.decision is v.decision
    assert [g.to_dict() for g in again.gates] == [g.to_dict() for g in v.gates]
    assert again.gates[0].overrides == {"max_drop": 5.0}


def test_a_gate_without_per_sample_scores_cannot_be_redecided() -> None:
    v = decide([_gate("g1", 0.0)], POLICY).to_dict()
    v["gates"][0]["per_sample"] = {}
    with pytest.raises(VerdictError, match="no per-sample scores"):
        redecide(Verdict.from_dict(v), POLICY)


def test_a_gate_name_recorded_twice_holds_and_the_worse_result_counts() -> None:
    good, bad = _gate("g1", 0.0), _gate("g1", -0.3)
    assert good.status is Status.PASSED and bad.status is Status.FAILED
    both_pass = decide([good, _gate("g1", 0.0, seed=1)], POLICY)
    assert both_pass.decision is Decision.HOLD
    assert "gate name 'g1' was recorded 2 times" in both_pass.reason
    assert decide([bad, good], POLICY).decision is Decision.ROLLBACK


def test_degenerate_rate_is_a_lower_is_better_zero_one_gate() -> None:
    policy = parse_policies({"policies": {"p": {"n-resamples": 2000}}})["p"]
    base = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0] * 3, dtype=float)
    fewer, more = base.copy(), base.copy()
    fewer[[1, 4]] = 0.0  # two answers stop degenerating
    more[[0, 2, 3, 5, 6, 7, 8, 9]] = 1.0  # eight more degenerate answers
    run = {
        label: evaluate_gate(
            "noninferior", "degenerate_rate", candidate=c, baseline=base, policy=policy, name="d"
        )
        for label, c in (("fewer", fewer), ("more", more))
    }
    assert run["fewer"].status is Status.PASSED and not run["fewer"].higher_is_better
    assert run["more"].status is Status.FAILED  # McNemar on 0/1, built-in max-drop 0
    assert run["more"].delta == pytest.approx(more.mean() - base.mean())
    assert run["more"].ci[0] > 0  # CI of candidate - baseline, in the metric's own units
    assert run["fewer"].changed() == ["1", "4"]
    assert _gate("g", 0.0).changed() == []  # not a 0/1 metric
