"""Tests of guardrails.stats: oracles (scipy, statsmodels if present), properties, simulations.

The simulation tests build per-query nDCG@10 / MRR@10 / Recall@10 from seeded random graded
qrels and noisy "systems" and check the gate's FAIL rule end to end: false-alarm rate under A/A
and power against an injected regression. The metrics are a local vectorised version (trec_eval
conventions, linear gain), cross-checked against ``guardrails.metrics.ranking`` when present.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from guardrails.errors import PolicyError, StatisticsError
from guardrails.stats import (
    McNemar,
    PairedComparison,
    check_binary_tolerance,
    compare_one_sample,
    compare_paired,
    holm,
    mcnemar_exact,
    mde_binary,
    minimum_detectable_effect,
    paired_bootstrap_ci,
    paired_randomization_test,
    worst_indices,
)

ALPHA = 0.05
finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
small_d = arrays(np.float64, st.integers(1, 40), elements=finite)


# --------------------------------------------------------------------------- bootstrap CI


def test_bootstrap_ci_coverage_normal_n100():
    trials, covered = 200, 0
    for i in range(trials):
        d = np.random.default_rng(1000 + i).normal(0.3, 1.0, 100)
        low, high = paired_bootstrap_ci(d, ALPHA, n_resamples=2000, seed=i)
        covered += low <= 0.3 <= high
    assert 0.90 * trials <= covered <= 0.99 * trials


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    d = np.random.default_rng(7).exponential(1.0, 80) - 1.0
    low, high = paired_bootstrap_ci(d, 0.1, n_resamples=20000, seed=1)
    ref = scipy.stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=0.9,
        n_resamples=20000,
        method="percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert abs(low - ref.low) < 0.05 * se
    assert abs(high - ref.high) < 0.05 * se


def test_bootstrap_ci_deterministic_for_seed():
    d = np.random.default_rng(3).normal(size=57)
    assert paired_bootstrap_ci(d, seed=5) == paired_bootstrap_ci(d, seed=5)
    assert paired_bootstrap_ci(d, seed=5) != paired_bootstrap_ci(d, seed=6)


def test_bootstrap_ci_chunking_does_not_change_distribution():
    # n large enough that the resamples are split in several chunks
    d = np.random.default_rng(4).normal(size=3000)
    low, high = paired_bootstrap_ci(d, n_resamples=2000, seed=0)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert low == pytest.approx(d.mean() - 1.96 * se, abs=0.15 * se)
    assert high == pytest.approx(d.mean() + 1.96 * se, abs=0.15 * se)


@pytest.mark.parametrize("c", [0.0, -0.25, 1.0 / 3.0])
def test_bootstrap_ci_degenerate(c):
    assert paired_bootstrap_ci(np.full(50, c)) == (c, c)
    assert paired_bootstrap_ci([c]) == (c, c)


@settings(max_examples=60, deadline=None)
@given(small_d)
def test_bootstrap_ci_within_data_range(d):
    low, high = paired_bootstrap_ci(d, n_resamples=200, seed=0)
    assert d.min() - 1e-9 <= low <= high <= d.max() + 1e-9


# --------------------------------------------------------------------------- randomisation


def _brute_force_p(d, threshold, alternative):
    e = np.asarray(d, dtype=float) - threshold
    obs = e.mean()
    flips = itertools.product([1, -1], repeat=e.size)
    stats = np.array([np.mean(np.array(s) * e) for s in flips])
    tol = 1e-9
    if alternative == "less":
        return np.mean(stats <= obs + tol)
    if alternative == "greater":
        return np.mean(stats >= obs - tol)
    return np.mean(np.abs(stats) >= abs(obs) - tol)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_randomization_exact_equals_brute_force(n, alternative):
    rng = np.random.default_rng(n)
    d = rng.normal(-0.1, 0.3, n).round(2)  # rounding creates ties among flip sums
    for t in (0.0, -0.05):
        got = paired_randomization_test(d, t, alternative)
        assert got == pytest.approx(_brute_force_p(d, t, alternative), abs=1e-12)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_randomization_exact_equals_scipy_exact(alternative):
    rng = np.random.default_rng(11)
    x, y = rng.normal(0.5, 0.2, 12), rng.normal(0.55, 0.2, 12)
    ref = scipy.stats.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        vectorized=True,
        permutation_type="samples",
        alternative=alternative,
        n_resamples=10**6,
    )
    got = paired_randomization_test(x - y, 0.0, alternative)
    assert got == pytest.approx(ref.pvalue, abs=1e-12)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_randomization_monte_carlo_agrees_with_scipy(alternative):
    rng = np.random.default_rng(12)
    x, y = rng.normal(0.5, 0.2, 60), rng.normal(0.53, 0.2, 60)
    t = -0.01
    ref = scipy.stats.permutation_test(
        (x - t, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        vectorized=True,
        permutation_type="samples",
        alternative=alternative,
        n_resamples=20000,
        random_state=np.random.default_rng(0),
    ).pvalue
    got = paired_randomization_test(x - y, t, alternative, n_resamples=20000, seed=1)
    mc_sd = math.sqrt(2 * ref * (1 - ref) / 20000)
    assert 0.001 < ref < 0.999
    assert abs(got - ref) < 4 * mc_sd + 1e-4


def test_randomization_p_uniform_under_h0():
    ps = np.array(
        [
            paired_randomization_test(
                np.random.default_rng(2000 + i).laplace(0.0, 1.0, 30), n_resamples=2000, seed=i
            )
            for i in range(300)
        ]
    )
    assert scipy.stats.kstest(ps, "uniform").pvalue > 0.001
    assert 0.02 <= np.mean(ps < 0.05) <= 0.09


def test_randomization_p_small_under_clear_shift():
    d = np.random.default_rng(5).normal(-0.5, 1.0, 80)
    assert paired_randomization_test(d, 0.0, "less", 5000) < 0.01
    assert paired_randomization_test(d, 0.0, "greater", 5000) > 0.99
    # the same shift is no violation of a generous limit
    assert paired_randomization_test(d, -1.5, "less", 5000) > 0.99


@pytest.mark.parametrize("shift", [-0.4, -0.15, 0.0, 0.15, 0.4])
def test_randomization_agrees_with_ttest(shift):
    d = np.random.default_rng(int(100 * shift) + 50).normal(shift, 1.0, 60)
    p_rand = paired_randomization_test(d, 0.0, "less", 10000)
    p_t = scipy.stats.ttest_1samp(d, 0.0, alternative="less").pvalue
    assert abs(p_rand - p_t) < 0.05
    assert (p_rand < 0.5) == (d.mean() < 0)


def test_randomization_all_zero_and_at_threshold_is_no_evidence():
    assert paired_randomization_test(np.zeros(40)) == 1.0
    assert paired_randomization_test(np.zeros(5), alternative="two-sided") == 1.0
    assert paired_randomization_test(np.full(30, -0.02), threshold=-0.02) == 1.0


def test_randomization_constant_violation_is_minimal_p():
    assert paired_randomization_test(np.full(5, -0.1)) == 1 / 32
    assert paired_randomization_test(np.full(30, -0.1), n_resamples=999) == 1 / 1000


def test_randomization_deterministic_for_seed():
    d = np.random.default_rng(8).normal(-0.1, 1, 100)
    assert paired_randomization_test(d, seed=3) == paired_randomization_test(d, seed=3)


@settings(max_examples=80, deadline=None)
@given(small_d, st.floats(-1, 1))
def test_randomization_properties(d, t):
    p_less = paired_randomization_test(d, t, "less", 300, seed=1)
    p_greater = paired_randomization_test(d, t, "greater", 300, seed=1)
    p_two = paired_randomization_test(d, t, "two-sided", 300, seed=1)
    assert 0 < p_less <= 1 and 0 < p_greater <= 1 and 0 < p_two <= 1
    assert p_less + p_greater >= 1 - 1e-12  # ties counted on both sides
    # mirror symmetry: less on d vs t == greater on -d vs -t (same flips)
    assert paired_randomization_test(-d, -t, "greater", 300, seed=1) == p_less


def test_randomization_rejects_bad_alternative():
    with pytest.raises(StatisticsError, match="alternative='smaller'"):
        paired_randomization_test([1.0, 2.0], alternative="smaller")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- McNemar


def _mcnemar_by_hand(b, c):
    """Two-sided exact McNemar p: 2 * P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _pairs(b, c, both=7, neither=3):
    cand = [0] * b + [1] * c + [1] * both + [0] * neither
    base = [1] * b + [0] * c + [1] * both + [0] * neither
    return np.array(cand), np.array(base)


@pytest.mark.parametrize(("b", "c"), [(5, 0), (0, 5), (6, 2), (10, 10), (1, 0), (13, 4)])
def test_mcnemar_vs_binomtest_and_hand(b, c):
    cand, base = _pairs(b, c)
    for alt in ("less", "greater", "two-sided"):
        res = mcnemar_exact(cand, base, alt)
        assert (res.b, res.c, res.n_discordant) == (b, c, b + c)
        ref = scipy.stats.binomtest(c, b + c, 0.5, alternative=alt).pvalue
        assert res.p_value == pytest.approx(ref, rel=1e-12)
    assert mcnemar_exact(cand, base, "two-sided").p_value == pytest.approx(_mcnemar_by_hand(b, c))
    assert mcnemar_exact(cand, base, "less").p_value == pytest.approx(
        sum(math.comb(b + c, k) for k in range(c + 1)) / 2 ** (b + c)
    )


def test_mcnemar_hand_values():
    cand, base = _pairs(5, 0)
    assert mcnemar_exact(cand, base, "less").p_value == pytest.approx(1 / 32)
    assert mcnemar_exact(cand, base, "two-sided").p_value == pytest.approx(1 / 16)
    assert mcnemar_exact(cand, base, "greater").p_value == 1.0


def test_mcnemar_vs_statsmodels():
    tables = pytest.importorskip("statsmodels.stats.contingency_tables")
    for b, c in [(5, 0), (6, 2), (10, 10), (13, 4), (30, 18)]:
        cand, base = _pairs(b, c)
        table = [[7, b], [c, 3]]  # rows: baseline ok / not; cols: candidate ok / not
        ref = tables.mcnemar(table, exact=True).pvalue
        assert mcnemar_exact(cand, base, "two-sided").p_value == pytest.approx(ref)


def test_mcnemar_no_discordant_pairs():
    cand, base = _pairs(0, 0)
    assert mcnemar_exact(cand, base) == McNemar(b=0, c=0, n_discordant=0, p_value=1.0)


def test_mcnemar_rejects_non_binary_and_unpaired():
    with pytest.raises(StatisticsError, match=r"candidate_ok\[1\]=0.5"):
        mcnemar_exact([1, 0.5], [1, 1])
    with pytest.raises(StatisticsError, match=r"n=2.*n=3"):
        mcnemar_exact([1, 0], [1, 1, 0])


# --------------------------------------------------------------------------- Holm


def _holm_textbook(p):
    """Step-down Holm (1979), written as the textbook loop."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def test_holm_hand_examples():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, 0.5]) == pytest.approx([0.04, 0.5])
    assert holm([0.4, 0.3, 0.9]) == pytest.approx([0.9, 0.9, 0.9])
    assert holm([0.7, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.03]) == pytest.approx([0.03])
    assert holm([]).shape == (0,)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_properties(p):
    adj = holm(p)
    raw = np.array(p)
    assert adj == pytest.approx(_holm_textbook(p))
    assert np.all(adj >= raw - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-values


def test_holm_vs_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(14)
    cases = [list(rng.uniform(0, 1, m) ** 3) for m in (1, 2, 3, 5, 8, 13) for _ in range(2)]
    cases += [[0.01, 0.04, 0.03, 0.005], [0.5, 0.5, 0.5], [0.0, 1.0, 0.2, 0.2]]
    for p in cases:
        assert holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])


def test_holm_rejects_non_probabilities():
    with pytest.raises(StatisticsError, match=r"p_values\[1\]=1.5"):
        holm([0.1, 1.5])
    with pytest.raises(StatisticsError, match="nan"):
        holm([float("nan")])


# --------------------------------------------------------------------------- MDE, tolerance


def test_minimum_detectable_effect_formula():
    z = scipy.stats.norm.ppf
    assert minimum_detectable_effect(1.0, 100) == pytest.approx((z(0.975) + z(0.8)) / 10)
    assert minimum_detectable_effect(1.0, 100) == pytest.approx(0.2801585, abs=1e-6)
    assert minimum_detectable_effect(0.2, 50, alpha=0.01, power=0.9) == pytest.approx(
        (z(0.995) + z(0.9)) * 0.2 / math.sqrt(50)
    )
    assert minimum_detectable_effect(float("nan"), 10) == math.inf


def test_mde_has_stated_power():
    # a z-test on n = 100 paired deltas with true mean = MDE rejects ~80 % of the time
    mde = minimum_detectable_effect(1.0, 100)
    rng = np.random.default_rng(9)
    means = rng.normal(mde, 1.0, (4000, 100)).mean(axis=1)
    power = np.mean(np.abs(means) * 10 > scipy.stats.norm.ppf(0.975))
    assert 0.77 <= power <= 0.83


def test_mde_binary():
    assert mde_binary(0.5, 100) == pytest.approx(0.5 * minimum_detectable_effect(1.0, 100))
    assert mde_binary(0.9, 40, discordance=0.1) == pytest.approx(
        minimum_detectable_effect(math.sqrt(0.1), 40)
    )
    with pytest.raises(StatisticsError):
        mde_binary(1.2, 10)


def test_check_binary_tolerance_message():
    msg = (
        "max-drop=0.005 for binary metric 'pass_rate' is finer than one case out of n=40 "
        "(1/n=0.025): use 0 (no new failure allowed) or >= 0.025"
    )
    with pytest.raises(PolicyError) as info:
        check_binary_tolerance(0.005, 40, "pass_rate")
    assert str(info.value) == msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("tol", "n"), [(0.0, 40), (0.025, 40), (0.1, 40), (1 / 3, 3), (0.5, 2)])
def test_check_binary_tolerance_accepts(tol, n):
    check_binary_tolerance(tol, n, "exact_match")


# --------------------------------------------------------------------------- comparisons


def test_compare_paired_fields():
    rng = np.random.default_rng(10)
    base = rng.uniform(0, 1, 200)
    cand = np.clip(base + rng.normal(-0.02, 0.05, 200), 0, 1)
    res = compare_paired(cand, base, -0.05, n_resamples=3000, seed=4)
    d = cand - base
    assert isinstance(res, PairedComparison)
    assert res.n == 200 and res.seed == 4 and res.n_resamples == 3000 and res.alpha == ALPHA
    assert res.delta == pytest.approx(d.mean())
    assert res.candidate_mean - res.baseline_mean == pytest.approx(res.delta)
    assert res.sd == pytest.approx(d.std(ddof=1))
    assert res.mde == pytest.approx(minimum_detectable_effect(res.sd, 200))
    assert (res.ci_low, res.ci_high) == paired_bootstrap_ci(d, ALPHA, 3000, 4)
    assert res.p_value == paired_randomization_test(d, -0.05, "less", 3000, 4)
    assert res.method == "bootstrap-percentile+sign-flip"
    assert res.ci_low > -0.05 and res.p_value > 0.5  # clearly within the limit


def test_compare_paired_identical_runs_degenerate():
    base = np.random.default_rng(0).uniform(size=50)
    res = compare_paired(base, base.copy(), 0.0)
    assert (res.delta, res.ci_low, res.ci_high, res.p_value, res.sd) == (0, 0, 0, 1.0, 0)


def test_compare_paired_binary_uses_mcnemar():
    cand, base = _pairs(6, 1)
    res = compare_paired(cand, base, 0.0, binary=True)
    assert res.method == "bootstrap-percentile+mcnemar-exact"
    assert res.p_value == pytest.approx(mcnemar_exact(cand, base, "less").p_value)
    assert res.p_value == pytest.approx(8 / 128)
    res = compare_paired(cand, base, -0.1, binary=True)
    assert res.method.endswith("sign-flip")
    with pytest.raises(StatisticsError, match=r"candidate\[0\]=0.5 is not 0/1"):
        compare_paired([0.5, 1.0], [1.0, 1.0], 0.0, binary=True)


def test_compare_paired_small_n_exact_method():
    assert compare_paired([0.1, 0.2], [0.3, 0.1], 0.0).method.endswith("sign-flip-exact")


def test_compare_paired_validation_messages():
    with pytest.raises(StatisticsError, match=r"candidate has n=3 .* baseline has n=2"):
        compare_paired([1, 2, 3], [1, 2], 0.0)
    with pytest.raises(StatisticsError, match=r"baseline\[2\]=nan is not finite"):
        compare_paired([1, 2, 3, 4], [1, 2, float("nan"), float("nan")], 0.0)
    with pytest.raises(StatisticsError, match=r"candidate\[0\]=inf"):
        compare_paired([float("inf")], [1.0], 0.0)
    with pytest.raises(StatisticsError, match="n=0"):
        compare_paired([], [], 0.0)
    with pytest.raises(StatisticsError, match=r"alpha=1\.5"):
        compare_paired([1.0], [1.0], 0.0, alpha=1.5)
    with pytest.raises(ValueError):  # StatisticsError is a ValueError
        compare_paired([[1.0]], [[1.0]], 0.0)


def test_compare_one_sample():
    vals = np.random.default_rng(13).normal(0.62, 0.1, 100)
    res = compare_one_sample(vals, 0.6, n_resamples=2000)
    assert math.isnan(res.baseline_mean)
    assert res.delta == pytest.approx(vals.mean()) == res.candidate_mean
    assert res.p_value == paired_randomization_test(vals, 0.6, "less", 2000, 0)
    assert compare_one_sample(vals, 0.7, n_resamples=2000).p_value < 0.01


def test_compare_one_sample_binary_uses_binomial():
    ok = np.array([1] * 30 + [0] * 10)
    res = compare_one_sample(ok, 0.9, binary=True)
    assert res.method == "bootstrap-percentile+binomial-exact"
    assert res.p_value == pytest.approx(scipy.stats.binom.cdf(30, 40, 0.9))


def test_worst_indices():
    d = np.array([0.1, -0.3, 0.0, -0.3, -0.5, -0.1, 0.2])
    assert worst_indices(d, k=3).tolist() == [4, 1, 3]
    assert worst_indices(d, k=10).tolist() == [4, 1, 3, 5]
    assert worst_indices(np.zeros(4)).tolist() == []


def test_import_pulls_no_heavy_module():
    code = (
        "import sys, guardrails.stats; "
        "print(sorted(m for m in ('torch', 'scipy', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- simulations

N_QUERIES, N_DOCS, K = 150, 50, 10
DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


def _qrels_pool(seed, n_pool=600):
    """Graded qrels (0..3) for ``n_pool`` queries x ``N_DOCS`` candidates, >= 1 relevant."""
    rng = np.random.default_rng(seed)
    rel = rng.choice(4, size=(n_pool, N_DOCS), p=[0.8, 0.1, 0.06, 0.04])
    rel[np.arange(n_pool), rng.integers(0, N_DOCS, n_pool)] += 1
    return np.minimum(rel, 3)


def _system_scores(rel, rng):
    """A noisy retriever: score = relevance grade + N(0, 1)."""
    return rel + rng.normal(0.0, 1.0, rel.shape)


def _per_query(rel, scores):
    """(nDCG@10 with linear gain, MRR@10, Recall@10) per query, as trec_eval computes them."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    gains = np.take_along_axis(rel, top, axis=1)
    ideal = -np.sort(-rel, axis=1)[:, :K]
    ndcg = (gains @ DISCOUNT) / (ideal @ DISCOUNT)
    hit = gains > 0
    mrr = np.where(hit.any(axis=1), 1.0 / (hit.argmax(axis=1) + 1), 0.0)
    recall = hit.sum(axis=1) / (rel > 0).sum(axis=1)
    return ndcg, mrr, recall


def _shuffle_top(scores, rows, rng):
    """Candidate = baseline with the top-10 order shuffled on ``rows`` (same retrieved set)."""
    out = scores.copy()
    for i in rows:
        top = np.argsort(-out[i], kind="stable")[:K]
        out[i, top] = out[i, rng.permutation(top)]
    return out


def _fails(cand, base, seed, threshold=-0.01):
    return compare_paired(cand, base, threshold, n_resamples=2000, seed=seed).p_value


def test_local_ndcg_matches_textbook_example():
    rel = np.array([[3, 2, 3, 0, 1, 2] + [0] * (N_DOCS - 6)])
    scores = -np.arange(N_DOCS, dtype=float)[None, :]  # ranked in doc order
    ndcg, mrr, recall = _per_query(rel, scores)
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate([3, 2, 3, 0, 1, 2]))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate([3, 3, 2, 2, 1]))
    assert ndcg[0] == pytest.approx(dcg / idcg) and mrr[0] == 1.0 and recall[0] == 1.0


def test_local_metrics_match_library_ranking_metrics():
    ranking = pytest.importorskip("guardrails.metrics.ranking")
    rng = np.random.default_rng(15)
    rel = _qrels_pool(seed=2, n_pool=40)
    scores = _system_scores(rel, rng)
    qids = [f"q{i}" for i in range(rel.shape[0])]
    qrels = {
        q: {f"d{j:02d}": int(g) for j, g in enumerate(row)}
        for q, row in zip(qids, rel, strict=True)
    }
    run = {
        q: {f"d{j:02d}": float(x) for j, x in enumerate(row)}
        for q, row in zip(qids, scores, strict=True)
    }
    ref = ranking.evaluate_ranking(qrels, run, ["ndcg@10", "mrr@10", "recall@10"], qids=qids)
    for name, ours in zip(["ndcg@10", "mrr@10", "recall@10"], _per_query(rel, scores), strict=True):
        assert ours == pytest.approx(ref[name], abs=1e-12), name


TRIALS = 200
SLACK = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / TRIALS)


def test_simulation_aa_false_fail_rate_single_and_holm():
    """A/A: two same-quality systems on bootstrap-resampled query sets; FAIL must be rare."""
    pool = _qrels_pool(seed=0)
    single = holm_any = at_zero = 0
    for trial in range(TRIALS):
        rng = np.random.default_rng(10_000 + trial)
        rel = pool[rng.integers(0, pool.shape[0], N_QUERIES)]
        base = _per_query(rel, _system_scores(rel, rng))
        cand = _per_query(rel, _system_scores(rel, rng))
        p = [_fails(c, b, trial) for c, b in zip(cand, base, strict=True)]
        single += p[0] < ALPHA
        holm_any += bool(np.any(holm(p) < ALPHA))
        # at threshold 0 H0 holds with equality: the size must be ~alpha, not above
        at_zero += paired_randomization_test(cand[0] - base[0], 0.0, "less", 2000, trial) < ALPHA
    assert single / TRIALS <= SLACK
    assert holm_any / TRIALS <= SLACK
    assert at_zero / TRIALS <= SLACK


def test_simulation_injected_regression_is_caught():
    """Shuffle the top-10 of 20 % of queries: the nDCG@10 gate must FAIL in >= 95 % of trials."""
    pool = _qrels_pool(seed=1)
    fails, deltas = 0, []
    for trial in range(TRIALS):
        rng = np.random.default_rng(20_000 + trial)
        rel = pool[rng.integers(0, pool.shape[0], N_QUERIES)]
        scores = _system_scores(rel, rng)
        hit = rng.choice(N_QUERIES, N_QUERIES // 5, replace=False)
        base = _per_query(rel, scores)[0]
        cand = _per_query(rel, _shuffle_top(scores, hit, rng))[0]
        deltas.append(np.mean(cand - base))
        fails += _fails(cand, base, trial) < ALPHA
    assert np.mean(deltas) < -0.02  # the injected regression is real and beyond the limit
    assert fails / TRIALS >= 0.95
