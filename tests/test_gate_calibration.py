"""Calibration of the gates' pass side (issue 12): a pass is a one-sided alpha/2 claim.

The scenarios live in ``benchmarks/sim_gate_calibration.py`` (one home); the fast tests run a
few cells at a small size, the ``slow`` one the whole H0 grid and the power rows.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from guardrails.gates import Status, evaluate_gate
from guardrails.policy import parse_policies
from guardrails.stats import compare_one_sample, compare_paired, paired_randomization_test

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "sim_gate_calibration.py"
_spec = importlib.util.spec_from_file_location("sim_gate_calibration", _PATH)
assert _spec is not None and _spec.loader is not None
sim = importlib.util.module_from_spec(_spec)
sys.modules["sim_gate_calibration"] = sim  # dataclasses resolve their module by name
_spec.loader.exec_module(sim)


def _rates(cell, trials: int, resamples: int = 500, seed: int = 0) -> dict[str, float]:
    return sim.run_cell(cell, trials, resamples, seed)


# ------------------------------------------------------------------ unit level


def test_sign_flip_is_exact_over_the_changed_queries_at_any_n() -> None:
    d = np.zeros(500)
    d[[3, 70, 200, 411]] = [0.1, 0.2, 0.3, 0.4]  # 4 changed: 16 sign patterns, 1 as large
    assert paired_randomization_test(d, 0.0, "greater", n_resamples=999) == 1 / 16
    assert paired_randomization_test(d, 0.0, "less", n_resamples=999) == 1.0
    assert compare_paired(d, np.zeros(500), 0.0).method.endswith("sign-flip-exact")


def test_p_pass_mirrors_the_failure_test() -> None:
    base = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1] * 3, dtype=float)
    cand = base.copy()
    cand[[1, 3, 6, 7, 9]] = [1, 1, 1, 1, 0]  # 4 newly pass, 1 newly fails
    res = compare_paired(cand, base, 0.0, binary=True)
    assert res.p_pass == pytest.approx(6 / 32)  # P(Bin(5, 1/2) >= 4): exact McNemar "greater"
    assert res.p_value == pytest.approx(31 / 32)
    rng = np.random.default_rng(3)
    d = rng.normal(0.05, 0.1, 80)
    res = compare_paired(d, np.zeros(80), -0.02, n_resamples=2000, seed=1)
    assert res.p_pass == paired_randomization_test(d, -0.02, "greater", 2000, 1)
    ok = (rng.random(100) < 0.95).astype(float)
    one = compare_one_sample(ok, 0.8, binary=True)
    assert one.p_pass < 1e-4 < one.p_value


def _policy(metric: str, limits: dict) -> object:
    body = {"n-resamples": 2000, "metrics": {metric: limits}}
    return parse_policies({"policies": {"p": body}})["p"]


@pytest.mark.parametrize(("n", "expected"), [(5, Status.INCONCLUSIVE), (6, Status.PASSED)])
def test_a_constant_gain_needs_enough_queries_to_pass(n: int, expected: Status) -> None:
    """Every query +0.1: the exact sign-flip p is 2^-n, below alpha/2 = 0.025 from n = 6.
    The old rule passed any n >= 3 (the bootstrap CI of a constant is the constant)."""
    base = np.linspace(0.2, 0.6, n)
    res = evaluate_gate(
        "superior", "ndcg@10", candidate=base + 0.1, baseline=base,
        policy=_policy("ndcg@10", {"min-gain": 0.0}), name="s",
    )  # fmt: skip
    assert res.status is expected
    assert res.extra["p_pass"] == pytest.approx(2.0**-n)


def test_binary_zero_tolerance_is_the_no_new_failure_contract() -> None:
    policy = _policy("pass_rate", {"max-drop": 0.0})
    base = np.ones(20)
    same = evaluate_gate(
        "noninferior", "pass_rate", candidate=base, baseline=base, policy=policy, name="c"
    )
    assert same.status is Status.PASSED  # all canaries still pass: nothing newly fails
    one = base.copy()
    one[4] = 0.0
    res = evaluate_gate(
        "noninferior", "pass_rate", candidate=one, baseline=base, policy=policy, name="c"
    )
    assert res.status is Status.INCONCLUSIVE  # one new failure: not shown safe, not significant
    many = base.copy()
    many[:8] = 0.0
    res = evaluate_gate(
        "noninferior", "pass_rate", candidate=many, baseline=base, policy=policy, name="c"
    )
    assert res.status is Status.FAILED  # 8 of 8 discordant newly fail: p = 1/256


# ------------------------------------------------------------------ small simulations

TRIALS = 300
BOUND = 0.025 + 3 * math.sqrt(0.025 * 0.975 / TRIALS)


def test_aa_with_a_few_changed_queries_passes_at_most_alpha_half() -> None:
    """A/A, 3 / 5 / 7 of 200 queries changed by symmetric noise, zero-margin non-inferiority:
    the old percentile-CI rule passed ~1/8 of the k=3 runs (all three changes positive)."""
    for k in (3, 5, 7):
        cell = sim.Cell("aa", f"k={k}", "noninferior", "ndcg@10", {"max-drop": 0.0}, 200,
                        sim.aa_changed(200, k), True)  # fmt: skip
        rates = _rates(cell, TRIALS)
        assert rates["new_pass"] <= BOUND, (k, rates)
        assert rates["new_fail"] <= BOUND, (k, rates)  # one-sided alpha/2 by symmetry


def test_at_the_margin_and_at_the_floor_passes_at_most_alpha_half() -> None:
    n = 50
    cells = [
        sim.Cell("margin", "normal", "noninferior", "ndcg@10", {"max-drop": sim.MARGIN}, n,
                 sim.normal_d(n, -sim.MARGIN), True),
        sim.Cell("margin", "levels", "superior", "ndcg@10", {"min-gain": 0.0}, n,
                 sim.aa_levels(n, 0.1), True),
        sim.Cell("floor", "binary", "at_least", "pass_rate", {"min": 0.8}, n,
                 sim.one_sample_binary(n, 0.8), True),
    ]  # fmt: skip
    for cell in cells:
        rates = _rates(cell, TRIALS)
        assert rates["new_pass"] <= BOUND, (cell.label, rates)


def test_power_on_a_clear_improvement_does_not_collapse() -> None:
    n = 200
    cell = sim.Cell("power", "gain", "superior", "ndcg@10", {"min-gain": 0.0}, n,
                    sim.normal_d(n, 0.03), False)  # fmt: skip
    rates = _rates(cell, 100)
    assert rates["new_pass"] >= 0.9 and rates["new_pass"] >= rates["old_pass"] - 0.05


# ------------------------------------------------------------------ the full grid


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GUARDRAILS_SIMULATIONS"),
    reason="a 5-minute simulation over the whole grid: set GUARDRAILS_SIMULATIONS=1",
)
def test_full_grid_false_pass_within_alpha_half_and_power_kept() -> None:
    """Every H0 cell of the benchmark at 400 trials (n-resamples 300): the new false-pass rate
    is at most alpha/2 + 3 SE, except the rare-ruin rows (a few queries lost by far more than
    the margin, i.i.d.): there the rule is no worse than before but still above alpha/2 at
    n <= 50 (a known limitation, see the benchmark's docstring).
    Power rows: the fail rate is unchanged and the pass rate loses at most 0.06."""
    trials = 400
    bound = sim.bound(trials)
    for cell in sim.cells():
        if cell.contract:
            continue
        rates = _rates(cell, trials, resamples=300, seed=7)
        if cell.h0 and cell.known_limitation:  # see the benchmark: no worse than before
            assert rates["new_pass"] <= rates["old_pass"], (cell, rates)
        elif cell.h0:
            assert rates["new_pass"] <= bound, (cell, rates)
            assert rates["new_fail"] <= sim.ALPHA + bound - 0.025, (cell, rates)
        else:
            assert rates["new_fail"] == rates["old_fail"], (cell, rates)
            assert rates["new_pass"] >= rates["old_pass"] - 0.06, (cell, rates)
