"""Drift statistics: scipy / brute-force oracles, hypothesis properties, H0 simulations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist, cosine, jensenshannon, pdist
from scipy.stats import chi2, entropy, ks_2samp, wasserstein_distance

from guardrails.errors import MetricError
from guardrails.metrics import drift
from guardrails.metrics.drift import (
    compare_embeddings,
    cosine_to_history_per_sample,
    js,
    kl,
    kmeans_centroid_shift,
    ks,
    ks_binned,
    ks_binned_error_bound,
    median_heuristic,
    merge_summaries,
    mmd_permutation_test,
    psi,
    psi_alarm,
    psi_critical_value,
    summarize_embeddings,
    summarize_embeddings_like,
    summarize_histogram,
    summarize_histogram_like,
    wasserstein,
)

# scipy's ks_2samp falls back from the exact to the asymptotic p-value on ties; so do we
pytestmark = pytest.mark.filterwarnings("ignore:ks_2samp")
SETTINGS = settings(max_examples=40, deadline=None)
samples = hnp.arrays(
    np.float64,
    st.integers(1, 60),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
)
tenths = st.integers(-30, 30).map(lambda v: v / 10)  # no float32 underflow of |x|^2


def matrices(max_rows: int = 12, dim: int | None = None):
    """Small (n, d) float32 matrices of multiples of 0.1 (zero rows included)."""
    dims = st.just(dim) if dim is not None else st.integers(1, 6)
    shape = st.tuples(st.integers(1, max_rows), dims)
    return hnp.arrays(np.float32, shape, elements=tenths)


def _bin_counts(r, c, bins, binning):
    """Independent binning with np.histogram (outer quantile bins open-ended)."""
    if binning == "uniform":
        edges = np.histogram_bin_edges(np.concatenate([r, c]), bins=bins)
    else:
        inner = np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
    return np.histogram(r, edges)[0], np.histogram(c, edges)[0]


def _floored(counts, eps=1e-4):
    return np.maximum(counts / counts.sum(), eps)


# ----------------------------------------------------------------------------- 1-D oracles
@pytest.mark.parametrize("binning", ["quantile", "uniform"])
@pytest.mark.parametrize("bins", [2, 10, 30])
def test_psi_kl_js_match_formulas_on_independent_bins(binning, bins):
    rng = np.random.default_rng(bins)
    r, c = rng.normal(size=700), rng.normal(0.4, 1.3, size=500)
    rc, cc = _bin_counts(r, c, bins, binning)
    fr, fc = _floored(rc), _floored(cc)
    assert psi(r, c, bins, binning) == pytest.approx(np.sum((fc - fr) * np.log(fc / fr)), 1e-12)
    assert kl(r, c, bins, binning) == pytest.approx(entropy(fc, fr), rel=1e-12)
    assert js(r, c, bins, binning) == pytest.approx(jensenshannon(cc, rc) ** 2, rel=1e-10)


def test_psi_known_value_and_eps_floor():
    # two bins split at the reference median: r = (1/2, 1/2), c = (1/4, 3/4)
    r, c = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 5.0, 6.0, 7.0])
    assert psi(r, c, bins=2) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    # an empty current bin is floored at eps, not at 0 (which would be infinite)
    only_high = np.array([9.0, 9.0])
    assert psi(r, only_high, bins=2, eps=1e-3) == pytest.approx(
        (1e-3 - 0.5) * np.log(1e-3 / 0.5) + 0.5 * np.log(2.0)
    )


@SETTINGS
@given(samples, samples)
def test_ks_and_wasserstein_equal_scipy(r, c):
    stat, p = ks(r, c)
    ref = ks_2samp(r, c)
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12, abs=1e-15)
    assert wasserstein(r, c) == pytest.approx(wasserstein_distance(r, c), rel=1e-12, abs=1e-12)


@SETTINGS
@given(samples, st.sampled_from(["quantile", "uniform"]), st.integers(2, 12))
def test_identical_samples_have_zero_divergence(x, binning, bins):
    assert psi(x, x, bins, binning) == 0.0
    assert kl(x, x, bins, binning) == 0.0
    assert js(x, x, bins, binning) == pytest.approx(0.0, abs=1e-15)


@SETTINGS
@given(samples, samples, st.sampled_from(["quantile", "uniform"]), st.integers(2, 12))
def test_divergences_are_nonnegative_and_js_bounded(r, c, binning, bins):
    assert psi(r, c, bins, binning) >= 0.0
    assert kl(r, c, bins, binning) >= 0.0
    assert 0.0 <= js(r, c, bins, binning) <= np.log(2) + 1e-12


@SETTINGS
@given(samples, samples, st.integers(2, 12))
def test_js_and_psi_are_symmetric_on_pooled_bins(r, c, bins):
    assert js(r, c, bins, "uniform") == pytest.approx(js(c, r, bins, "uniform"), abs=1e-15)
    assert psi(r, c, bins, "uniform") == pytest.approx(psi(c, r, bins, "uniform"), abs=1e-12)


def test_kl_direction_is_current_given_reference():
    rng = np.random.default_rng(3)
    r, c = rng.normal(size=2000), rng.normal(1.0, 0.5, size=2000)
    rc, cc = _bin_counts(r, c, 10, "uniform")
    assert kl(r, c, 10, "uniform") == pytest.approx(entropy(_floored(cc), _floored(rc)))
    assert kl(r, c, 10, "uniform") != pytest.approx(entropy(_floored(rc), _floored(cc)))


# ----------------------------------------------------------------------------- binned KS
@SETTINGS
@given(samples, samples, st.integers(2, 64))
def test_ks_binned_is_below_exact_by_at_most_the_bin_mass(r, c, bins):
    hist = summarize_histogram(r, bins)
    exact = ks_2samp(r, c).statistic
    binned = ks_binned(hist, c)
    assert binned <= exact + 1e-12
    assert exact <= binned + ks_binned_error_bound(hist, c) + 1e-12


def test_ks_binned_on_256_quantile_bins_is_close_on_large_samples():
    rng = np.random.default_rng(4)
    r, c = rng.normal(size=200_000), rng.normal(0.02, 1.0, size=150_000)
    hist = summarize_histogram(r, 256)
    exact = ks_2samp(r, c).statistic
    assert exact - ks_binned(hist, c) <= ks_binned_error_bound(hist, c) <= 0.006
    # histograms merge: two halves of the current side give the same statistic
    halves = [summarize_histogram_like(part, hist) for part in np.array_split(c, 2)]
    assert ks_binned(hist, halves[0].merge(halves[1])) == ks_binned(hist, c)


# ----------------------------------------------------------------------------- PSI threshold
def test_psi_critical_value_formula():
    assert psi_critical_value(200, 400, 10, 0.05) == pytest.approx(
        chi2.ppf(0.95, 9) * (1 / 200 + 1 / 400)
    )


@pytest.mark.parametrize(("n", "trials"), [(200, 2000), (100_000, 200)])
def test_psi_false_alarm_rate_under_h0_is_alpha(n, trials):
    rng = np.random.default_rng(n)
    crit = psi_critical_value(n, n, 10, alpha=0.05)
    scaled = np.array(
        [psi(rng.random(n), rng.random(n), 10) * n / 2 for _ in range(trials)]
    )  # n m / (n + m) PSI, asymptotically chi2(9): mean 9
    rate = np.mean(scaled * 2 / n > crit)
    assert abs(rate - 0.05) <= 4 * np.sqrt(0.05 * 0.95 / trials) + 0.01
    assert abs(scaled.mean() - 9.0) <= 4 * np.sqrt(18 / trials) + 0.3


def test_psi_alarm_needs_both_effect_size_and_significance():
    # huge n: a significant but tiny shift stays under the policy floor
    assert not psi_alarm(0.02, 10**6, 10**6, 10, threshold=0.1)
    assert psi_alarm(0.15, 10**6, 10**6, 10, threshold=0.1)
    # tiny n: noise-sized PSI over the floor is not an alarm
    crit = psi_critical_value(30, 30, 10)
    assert crit > 0.5
    assert not psi_alarm(crit * 0.99, 30, 30, 10, threshold=0.1)
    assert psi_alarm(crit * 1.01, 30, 30, 10, threshold=0.1)


# ----------------------------------------------------------------------------- embeddings
def _unit(x):
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@SETTINGS
@given(matrices(dim=4), matrices(dim=4))
def test_cosine_to_history_equals_brute_force_pairwise_mean(h, x):
    ref = summarize_embeddings(h, ks_bins=8, norm_bins=4)
    brute = (_unit(x) @ _unit(h).T).mean()
    drift_ = compare_embeddings(ref, x)
    assert drift_.cosine_to_history == pytest.approx(brute, abs=1e-6)
    per_sample = cosine_to_history_per_sample(x, ref)
    assert per_sample == pytest.approx((_unit(x) @ _unit(h).T).mean(axis=1), abs=1e-6)
    assert per_sample.mean() == pytest.approx(brute, abs=1e-6)


@SETTINGS
@given(matrices(max_rows=30, dim=3), matrices(max_rows=30, dim=3))
def test_merged_summaries_equal_summary_of_concatenation(x1, x2):
    a = summarize_embeddings(x1, norm_bins=4, ks_bins=8)
    merged = merge_summaries(a, summarize_embeddings_like(x2, a))
    whole = summarize_embeddings_like(np.concatenate([x1, x2]), a, chunk_rows=7)
    assert merged.n == whole.n == len(x1) + len(x2)
    np.testing.assert_array_equal(merged.norm_hist.counts, whole.norm_hist.counts)
    np.testing.assert_array_equal(merged.norm_fine.counts, whole.norm_fine.counts)
    np.testing.assert_array_equal(merged.ks_counts, whole.ks_counts)
    np.testing.assert_allclose(merged.vector_sum, whole.vector_sum, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(merged.unit_sum, whole.unit_sum, rtol=1e-6, atol=1e-5)
    assert merged.norm_mean == pytest.approx(whole.norm_mean, rel=1e-9, abs=1e-9)
    assert merged.norm_std == pytest.approx(whole.norm_std, rel=1e-6, abs=1e-7)
    assert (merged.norm_min, merged.norm_max) == (whole.norm_min, whole.norm_max)


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(6000, 16)).astype(np.float32)
    cur = (rng.normal(size=(5000, 16)) * 1.2 + 0.3).astype(np.float32)
    return ref, cur


def test_compare_embeddings_matches_numpy_and_scipy(shifted):
    ref, cur = shifted
    summary = summarize_embeddings(ref, norm_bins=10, ks_bins=128, chunk_rows=1000)
    d = compare_embeddings(summary, cur)
    nr, nc = np.linalg.norm(ref.astype(np.float64), axis=1), np.linalg.norm(cur, axis=1)
    assert (d.n_ref, d.n_cur, d.norm_bins) == (6000, 5000, 10)
    assert d.norm_psi == pytest.approx(psi(nr, nc, 10), rel=1e-6)
    assert d.norm_kl == pytest.approx(kl(nr, nc, 10), rel=1e-6)
    assert d.norm_mean_ref == pytest.approx(nr.mean(), rel=1e-6)
    assert d.norm_shift == pytest.approx(nc.mean() - nr.mean(), rel=1e-5)
    assert summary.norm_std == pytest.approx(nr.std(), rel=1e-5)
    mr, mc = ref.mean(axis=0, dtype=np.float64), cur.mean(axis=0, dtype=np.float64)
    assert d.centroid_shift == pytest.approx(np.linalg.norm(mc - mr), rel=1e-5)
    assert d.centroid_cosine_distance == pytest.approx(cosine(mr, mc), rel=1e-5)
    exact = np.array([ks_2samp(ref[:, j], cur[:, j]).statistic for j in range(16)])
    assert d.ks_per_dim is not None
    assert np.all(d.ks_per_dim <= exact + 1e-12)
    assert np.all(exact - d.ks_per_dim <= 3.0 / 128)  # edges from the reference: ~1/128 mass
    assert d.ks_max == d.ks_per_dim.max() > 0.1
    assert d.norm_psi_alarm(threshold=0.1)


def test_same_distribution_gives_no_alarm_and_summary_roundtrip(shifted):
    ref, _ = shifted
    summary = summarize_embeddings(ref, ks_bins=64)
    again = summarize_embeddings_like(ref, summary)
    np.testing.assert_array_equal(again.norm_hist.counts, summary.norm_hist.counts)
    np.testing.assert_array_equal(again.ks_counts, summary.ks_counts)
    rng = np.random.default_rng(8)
    d = compare_embeddings(summary, rng.normal(size=(5000, 16)).astype(np.float32))
    assert not d.norm_psi_alarm(threshold=0.1)
    assert d.ks_max < 0.05
    assert d.centroid_shift < 0.15


def test_norm_quantiles_are_within_a_fine_bin(shifted):
    ref, _ = shifted
    summary = summarize_embeddings(ref, ks_bins=256, per_dim_ks=False)
    norms = np.linalg.norm(ref.astype(np.float64), axis=1)
    width = np.max(np.diff(summary.norm_fine.edges))
    for q, value in summary.norm_quantiles.items():
        assert value == pytest.approx(np.quantile(norms, q), abs=width)
    assert summary.ks_counts is None


def test_zero_vectors_count_as_cosine_zero():
    h = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    x = np.array([[2.0, 0.0]], np.float32)
    d = compare_embeddings(summarize_embeddings(h, ks_bins=4), x)
    assert d.cosine_to_history == pytest.approx(0.5)


def test_summaries_on_different_edges_do_not_mix(shifted):
    ref, cur = shifted
    a, b = summarize_embeddings(ref), summarize_embeddings(cur)
    with pytest.raises(MetricError, match="summarize_embeddings_like"):
        merge_summaries(a, b)
    with pytest.raises(MetricError, match="summarize_embeddings_like"):
        compare_embeddings(a, b)


# ----------------------------------------------------------------------------- MMD
def _brute_mmd2(x, y, sigma=None):
    def k(a, b):
        d2 = cdist(a, b, "sqeuclidean")
        return a @ b.T if sigma is None else np.exp(-d2 / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    sxx, syy = kxx.sum() - np.trace(kxx), kyy.sum() - np.trace(kyy)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * k(x, y).mean()


@pytest.mark.parametrize(("kernel", "sigma"), [("rbf", 1.3), ("rbf", 4.0), ("linear", None)])
def test_mmd2_equals_brute_force_unbiased_estimator(kernel, sigma):
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(23, 5)), rng.normal(0.5, 1.0, size=(17, 5))
    mmd2, _ = mmd_permutation_test(x, y, 10, kernel=kernel, bandwidth=sigma)
    assert mmd2 == pytest.approx(_brute_mmd2(x, y, sigma), abs=2e-5)


def test_every_permutation_column_equals_brute_force():
    rng = np.random.default_rng(10)
    z = rng.normal(size=(30, 4)).astype(np.float32)
    k = drift._pooled_kernel(z, "rbf", 2.0, rng)
    a = drift._group_indicators(12, 30, 5, rng)
    stats = drift._mmd2_columns(k, a, 12)
    for col in range(6):
        mask = a[:, col] == 1
        assert stats[col] == pytest.approx(_brute_mmd2(z[mask], z[~mask], 2.0), abs=1e-5)


def test_median_heuristic_is_the_median_pairwise_distance():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    z = np.concatenate([x, y]).astype(np.float32)
    assert median_heuristic(x, y) == pytest.approx(np.median(pdist(z)), rel=1e-5)


def test_mmd_p_values_are_uniform_under_h0_and_small_under_shift():
    rng = np.random.default_rng(12)
    p_values = [
        mmd_permutation_test(rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), seed=t)[1]
        for t in range(40)
    ]
    assert np.mean(np.array(p_values) < 0.05) <= 0.15
    assert 0.3 <= np.mean(p_values) <= 0.7
    x, y = rng.normal(size=(50, 5)), rng.normal(1.0, 1.0, size=(50, 5))
    mmd2, p = mmd_permutation_test(x, y, n_permutations=200)
    assert p < 0.01 and mmd2 > 0
    assert mmd_permutation_test(x, y, 50, seed=3) == mmd_permutation_test(x, y, 50, seed=3)


# ----------------------------------------------------------------------------- k-means
def _blobs(rng, counts, spread=0.3):
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return np.concatenate(
        [c + spread * rng.normal(size=(n, 2)) for c, n in zip(centers, counts, strict=True)]
    ).astype(np.float32)


def test_kmeans_share_psi_sees_a_vanished_cluster():
    rng = np.random.default_rng(13)
    ref = _blobs(rng, [300, 300, 300])
    same = kmeans_centroid_shift(ref, _blobs(rng, [300, 300, 300]), k=3, seed=1)
    gone = kmeans_centroid_shift(ref, _blobs(rng, [450, 450, 0]), k=3, seed=1)
    assert same["share_psi"] < 0.02 and gone["share_psi"] > 1.0
    assert sorted(np.round(gone["reference_share"], 2)) == [0.33, 0.33, 0.33]
    assert 0.0 in gone["current_share"]
    centers = sorted(map(tuple, np.round(same["centroids"]).astype(int)))
    assert centers == [(0, 0), (0, 10), (10, 0)]
    wide = kmeans_centroid_shift(ref, _blobs(rng, [300, 300, 300], spread=1.2), k=3, seed=1)
    assert wide["distance_ratio"] > 3.0 and same["distance_ratio"] == pytest.approx(1, abs=0.1)


def test_kmeans_is_deterministic_for_a_seed():
    rng = np.random.default_rng(14)
    ref, cur = rng.normal(size=(500, 8)), rng.normal(size=(300, 8))
    a, b = kmeans_centroid_shift(ref, cur, seed=5), kmeans_centroid_shift(ref, cur, seed=5)
    np.testing.assert_array_equal(a["centroids"], b["centroids"])
    assert a["share_psi"] == b["share_psi"]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: psi([], [1.0]), "reference is empty"),
        (lambda: psi([1.0, np.nan], [1.0]), r"reference\[1\]=nan"),
        (lambda: kl([1.0], [np.inf]), r"current\[0\]=inf"),
        (lambda: js([1.0], [[1.0]]), "must be 1-D"),
        (lambda: ks([], [1.0]), "empty"),
        (lambda: psi([1.0], [1.0], bins=1), "bins=1"),
        (lambda: psi([1.0], [1.0], binning="equal"), "binning='equal'"),  # type: ignore[arg-type]
        (lambda: psi_critical_value(0, 10, 10), "n_ref=0"),
        (lambda: summarize_embeddings(np.zeros((0, 4))), r"shape=\(0, 4\)"),
        (lambda: kmeans_centroid_shift(np.ones((5, 3)), np.ones((5, 4))), "dim=4"),
        (lambda: mmd_permutation_test(np.ones((1, 3)), np.ones((5, 3))), "n_x=1"),
        (lambda: mmd_permutation_test(np.eye(3), np.eye(3), kernel="poly"), "kernel='poly'"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_raises_metric_error_naming_the_value(call, match):
    with pytest.raises(MetricError, match=match):
        call()


def test_non_finite_vectors_are_reported_by_position():
    x = np.ones((10, 4), np.float32)
    x[7, 2] = np.nan
    with pytest.raises(MetricError, match=r"reference\[7, 2\]=nan"):
        summarize_embeddings(x)
    ref = summarize_embeddings(np.ones((10, 4), np.float32))
    x[7, 2] = np.inf
    with pytest.raises(MetricError, match=r"current\[7, 2\]=inf"):
        compare_embeddings(ref, x, chunk_rows=3)
    with pytest.raises(MetricError, match="dim=3"):
        compare_embeddings(ref, np.ones((5, 3)))
    with pytest.raises(MetricError, match=r"current\[7, 2\]=inf"):
        kmeans_centroid_shift(np.ones((10, 4)), x, k=2)


def test_importing_drift_pulls_no_heavy_library():
    code = (
        "import sys, guardrails.metrics.drift; "
        "heavy = {'torch', 'sklearn', 'evidently', 'pandas', 'scipy.stats'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- Evidently
def _evidently_stattests():
    """Evidently 0.7.x imports a helper pandas 3 removed; shim it (unused by these tests)."""
    pandas_common = pytest.importorskip("pandas.core.dtypes.common")
    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: np.dtype(dtype).type
    stattests = pytest.importorskip("evidently.legacy.calculations.stattests")
    methods = pytest.importorskip("evidently.legacy.metrics.data_drift.embedding_drift_methods")
    core = pytest.importorskip("evidently.legacy.core")
    return stattests, methods, core.ColumnType


@pytest.mark.parametrize("shift", [0.3, 3.0])  # 3.0 leaves reference bins empty
def test_psi_and_kl_equal_evidently_on_its_binning(shift):
    stattests, _, column_type = _evidently_stattests()
    import pandas as pd

    rng = np.random.default_rng(15)
    r, c = rng.normal(size=4000), rng.normal(shift, 1.0, size=3000)
    bins = len(np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")) - 1
    ev_psi = stattests.psi_stat_test(pd.Series(r), pd.Series(c), column_type.Numerical, None)
    ev_kl = stattests.kl_div_stat_test(pd.Series(r), pd.Series(c), column_type.Numerical, None)
    assert psi(r, c, bins, "uniform", eps=1e-4) == pytest.approx(ev_psi.drift_score, rel=1e-12)
    # Evidently's kl_div is KL(reference || current): ours with the roles swapped
    assert kl(c, r, bins, "uniform", eps=1e-4) == pytest.approx(ev_kl.drift_score, rel=1e-12)


def test_centroid_cosine_distance_equals_evidently_distance_method(shifted):
    _, methods, _ = _evidently_stattests()
    import pandas as pd

    ref, cur = shifted
    ours = compare_embeddings(summarize_embeddings(ref, per_dim_ks=False), cur, per_dim_ks=False)
    score, _, _ = methods.distance(dist="cosine")(pd.DataFrame(cur), pd.DataFrame(ref))
    assert ours.centroid_cosine_distance == pytest.approx(score, rel=1e-4)


@pytest.mark.parametrize(("n", "m", "bins"), [(200, 200, 10), (1000, 300, 20), (50, 5000, 5)])
def test_psi_p_value_is_alpha_exactly_at_the_critical_value(n: int, m: int, bins: int) -> None:
    from guardrails.metrics.drift import psi_critical_value, psi_p_value

    for alpha in (0.01, 0.05, 0.2):
        critical = psi_critical_value(n, m, bins, alpha)
        assert psi_p_value(critical, n, m, bins) == pytest.approx(alpha, rel=1e-9)
    assert psi_p_value(0.0, n, m, bins) == 1.0
