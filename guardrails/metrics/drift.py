"""Drift statistics: reference sample vs current sample, 1-D and embeddings.

**1-D** (``reference``, ``current``: finite float arrays). With bin proportions ``r_b`` and
``c_b`` of the reference and current samples over the same ``B`` bins:

- ``psi = sum_b (c_b - r_b) ln(c_b / r_b)``, proportions floored at ``eps`` (population
  stability index, Siddiqi 2006, *Credit Risk Scorecards*, ch. 8). ``binning="quantile"``:
  inner edges are the reference's ``1/B .. (B-1)/B`` quantiles, outer bins open-ended;
  ``binning="uniform"``: ``B`` equal-width bins over the pooled range, as ``np.histogram``.
  With ``binning="uniform"``, ``eps=1e-4`` and ``B`` = Evidently's bin count, :func:`psi`
  equals Evidently's ``psi`` stattest whenever Evidently fills empty bins with 1e-4 (every
  non-empty proportion above 1e-4, e.g. fewer than 10 000 values per side).
- ``kl = KL(current || reference) = sum_b c_b ln(c_b / r_b)`` on floored, renormalised
  proportions (= ``scipy.stats.entropy(c, r)``; Evidently's ``kl_div`` is the other direction).
- ``js = (KL(c || m) + KL(r || m)) / 2``, ``m = (c + r) / 2``, natural log, on raw proportions
  (= ``scipy.spatial.distance.jensenshannon(c, r) ** 2``; Lin, 1991).
- :func:`ks` and :func:`wasserstein` are ``scipy.stats.ks_2samp`` / ``wasserstein_distance``.
  :func:`ks_binned` gets the KS statistic from fine histograms in one pass over huge arrays:
  ``0 <= D_exact - D_binned <= max_b max(r_b, c_b)`` (the CDFs are compared at the edges).
- Under H0 ``n m / (n + m) psi -> chi2(B - 1)``, so :func:`psi_critical_value` is
  ``chi2_{1-alpha}(B - 1) (1/n + 1/m)`` and :func:`psi_alarm` fires only above both that and
  the policy's effect-size floor: an alarm means drift, not a large or a tiny sample.

**Embeddings** (rows are vectors): the reference is summarised once
(:func:`summarize_embeddings`: sums, histograms, edges; mergeable with :func:`merge_summaries`)
and each current batch is reduced in one chunked pass on the reference's edges
(:func:`summarize_embeddings_like`). :func:`compare_embeddings` reports norm PSI/KL, the mean
pairwise cosine to history by the centroid identity
``mean_ij cos(x_i, h_j) = (mean_i x_i/|x_i|) . (mean_j h_j/|h_j|)`` (no pairwise matrix),
centroid shift and per-dimension binned KS. :func:`mmd_permutation_test` is the unbiased
kernel two-sample test (Gretton et al., 2012, JMLR 13) with all permutations from one kernel
matrix; :func:`kmeans_centroid_shift` compares cluster shares on reference k-means centroids.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from guardrails.errors import MetricError

__all__ = [
    "EmbeddingDrift",
    "EmbeddingSummary",
    "Histogram",
    "compare_embeddings",
    "cosine_to_history_per_sample",
    "js",
    "kl",
    "kmeans_centroid_shift",
    "ks",
    "ks_binned",
    "ks_binned_error_bound",
    "merge_summaries",
    "mmd_permutation_test",
    "nearest_neighbour_cosine",
    "psi",
    "psi_alarm",
    "psi_critical_value",
    "psi_p_value",
    "summarize_embeddings",
    "summarize_embeddings_like",
    "summarize_histogram",
    "summarize_histogram_like",
    "top1_cosine",
    "wasserstein",
]

Binning = Literal["quantile", "uniform"]
_BLOCK_BYTES = 3 << 19  # 1.5 MB in-cache block (1024 rows of 384 float32), inside L2
_KS_BLOCK_ROWS = 8192  # rows per block of per-dimension binning (bounds the index temp)
_EDGE_SAMPLE_ROWS = 65536  # reference rows drawn to place per-dimension KS edges
_MEDIAN_SAMPLE = 1000  # pooled points for the median-distance bandwidth
NORM_QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


# ----------------------------------------------------------------------------- validation
def _sample(name: str, x: Any) -> np.ndarray:
    """``x`` as a finite, non-empty 1-D float64 array, or :class:`MetricError`."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise MetricError(f"{name} must be 1-D, got shape={a.shape}; pass one value per sample")
    if a.size == 0:
        raise MetricError(f"{name} is empty (size=0); drift needs at least one value per side")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise MetricError(f"{name}[{bad[0]}]={a[bad[0]]} is not finite; drop or impute it")
    return a


def _matrix(name: str, x: Any, dim: int | None = None) -> np.ndarray:
    """``x`` as a non-empty 2-D array (no copy); finiteness is checked per block later."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise MetricError(f"{name} must be a non-empty (n, d) array, got shape={a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise MetricError(f"{name} has dim={a.shape[1]} but the reference has dim={dim}")
    if not np.issubdtype(a.dtype, np.number):
        raise MetricError(f"{name} has dtype={a.dtype}; pass float vectors")
    return a


def _check_finite_rows(name: str, sq: np.ndarray, offset: int, block: np.ndarray) -> None:
    """Raise on the first row whose squared norm is not finite (NaN, inf or overflow)."""
    if np.isfinite(sq).all():
        return
    row = int(np.flatnonzero(~np.isfinite(sq))[0])
    values = block[row]
    col = int(np.flatnonzero(~np.isfinite(values))[0]) if not np.isfinite(values).all() else 0
    raise MetricError(
        f"{name}[{offset + row}, {col}]={values[col]} is not finite (or the row's squared "
        "norm overflows float32); drop or impute the vector"
    )


def _check_bins(bins: int, binning: str, eps: float = 1e-4) -> None:
    if not isinstance(bins, int | np.integer) or bins < 2:
        raise MetricError(f"bins={bins!r} must be an integer >= 2")
    if binning not in ("quantile", "uniform"):
        raise MetricError(f"binning={binning!r} is unknown; use 'quantile' or 'uniform'")
    if not 0.0 < eps < 1.0:
        raise MetricError(f"eps={eps!r} must be in (0, 1); 1e-4 is the usual floor")


# ----------------------------------------------------------------------------- 1-D binning
def _inner_edges(reference: np.ndarray, current: np.ndarray, bins: int, binning: str):
    """Inner bin edges (``bins - 1``); bin ``b`` is ``[e_{b-1}, e_b)``, outer bins open."""
    if binning == "quantile":
        return np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    pooled = np.concatenate([reference, current])
    return np.histogram_bin_edges(pooled, bins=bins)[1:-1]


def _counts(x: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts per bin, ``np.histogram`` convention ``[e_b, e_{b+1})``; outer bins open."""
    index = np.searchsorted(inner_edges, x, side="right")
    return np.bincount(index, minlength=inner_edges.size + 1)


def _binned_counts(reference, current, bins, binning, eps) -> tuple[np.ndarray, np.ndarray]:
    _check_bins(bins, binning, eps)
    r, c = _sample("reference", reference), _sample("current", current)
    edges = _inner_edges(r, c, bins, binning)
    return _counts(r, edges), _counts(c, edges)


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float) -> float:
    r = np.maximum(ref_counts / ref_counts.sum(), eps)
    c = np.maximum(cur_counts / cur_counts.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def _kl_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float) -> float:
    r = np.maximum(ref_counts / ref_counts.sum(), eps)
    c = np.maximum(cur_counts / cur_counts.sum(), eps)
    r, c = r / r.sum(), c / c.sum()
    return max(0.0, float(np.sum(c * np.log(c / r))))  # >= 0 (Gibbs); clip rounding


def psi(
    reference: Any,
    current: Any,
    bins: int = 10,
    binning: Binning = "quantile",
    eps: float = 1e-4,
) -> float:
    """Population stability index ``sum_b (c_b - r_b) ln(c_b / r_b)`` (Siddiqi, 2006).

    Proportions below ``eps`` are raised to ``eps`` (not renormalised, the scorecard
    convention). PSI >= 0, = 0 iff the binned proportions agree; symmetric in r and c.
    """
    return _psi_from_counts(*_binned_counts(reference, current, bins, binning, eps), eps)


def kl(
    reference: Any,
    current: Any,
    bins: int = 10,
    binning: Binning = "quantile",
    eps: float = 1e-4,
) -> float:
    """``KL(current || reference) = sum_b c_b ln(c_b / r_b)`` (Kullback & Leibler, 1951).

    Direction: how surprising the current sample is under the reference. Proportions are
    floored at ``eps`` then renormalised, so the value equals ``scipy.stats.entropy(c, r)``.
    """
    return _kl_from_counts(*_binned_counts(reference, current, bins, binning, eps), eps)


def js(reference: Any, current: Any, bins: int = 10, binning: Binning = "quantile") -> float:
    """Jensen–Shannon divergence ``(KL(c||m) + KL(r||m)) / 2``, ``m = (c+r)/2`` (Lin, 1991).

    Natural log, raw proportions (finite with empty bins, ``0 ln 0 = 0``), bounded by ln 2;
    equals ``scipy.spatial.distance.jensenshannon(c, r) ** 2``.
    """
    rc, cc = _binned_counts(reference, current, bins, binning, 1e-4)
    r, c = rc / rc.sum(), cc / cc.sum()
    m = 0.5 * (r + c)
    return max(0.0, 0.5 * (_xlogy_ratio(c, m) + _xlogy_ratio(r, m)))


def _xlogy_ratio(p: np.ndarray, m: np.ndarray) -> float:
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / m[nz])))


def ks(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov ``(D, p)``, ``D = sup_t |F_r(t) - F_c(t)|``.

    Exactly ``scipy.stats.ks_2samp(reference, current)`` (exact p-value for small samples).
    """
    from scipy.stats import ks_2samp

    res = ks_2samp(_sample("reference", reference), _sample("current", current))
    return float(res.statistic), float(res.pvalue)


def wasserstein(reference: Any, current: Any) -> float:
    """First Wasserstein distance ``int |F_r(t) - F_c(t)| dt`` (= scipy's, the oracle)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(_sample("reference", reference), _sample("current", current)))


# ----------------------------------------------------------------------------- binned KS
@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of a sample on fixed inner edges: bins ``(-inf, e_0), [e_0, e_1), .., [e_last, inf)``.

    Histograms on the same edges add (``merge``), so a huge or distributed sample is reduced
    once and compared in O(bins).
    """

    edges: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: Histogram) -> Histogram:
        """Histogram of the union of both samples (same edges required)."""
        _same_edges("edges", self.edges, other.edges)
        return Histogram(self.edges, self.counts + other.counts)


def summarize_histogram(x: Any, bins: int = 256) -> Histogram:
    """Fine histogram of ``x`` on its own ``bins``-quantile edges (the reference side)."""
    _check_bins(bins, "quantile")
    a = _sample("reference", x)
    edges = np.quantile(a, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return Histogram(_frozen(edges), _frozen(_counts(a, edges)))


def summarize_histogram_like(x: Any, reference: Histogram) -> Histogram:
    """Histogram of ``x`` on the reference's edges (comparable and mergeable)."""
    return Histogram(reference.edges, _frozen(_counts(_sample("current", x), reference.edges)))


def _as_histogram(current: Any, reference: Histogram) -> Histogram:
    if isinstance(current, Histogram):
        _same_edges("current.edges", reference.edges, current.edges)
        return current
    return summarize_histogram_like(current, reference)


def ks_binned(reference: Histogram, current: Any) -> float:
    """KS statistic from histograms: ``max_b |R(e_b) - C(e_b)|``, ``R, C`` = fraction ``< e_b``.

    ``current`` is an array (binned on the reference edges in one pass) or a
    :class:`Histogram`. Never above the exact statistic and at most
    :func:`ks_binned_error_bound` below it.
    """
    cur = _as_histogram(current, reference)
    return float(np.max(np.abs(_cdf_at_edges(reference.counts) - _cdf_at_edges(cur.counts))))


def ks_binned_error_bound(reference: Histogram, current: Any) -> float:
    """``max_b max(r_b, c_b)``: the largest possible gap ``D_exact - D_binned``."""
    cur = _as_histogram(current, reference)
    r, c = reference.counts / reference.n, cur.counts / cur.n
    return float(np.max(np.maximum(r, c)))


def _cdf_at_edges(counts: np.ndarray) -> np.ndarray:
    """Fraction of the sample below each inner edge (last axis = bins)."""
    cum = np.cumsum(counts, axis=-1, dtype=np.float64)
    return cum[..., :-1] / cum[..., -1:]


# ----------------------------------------------------------------------------- PSI threshold
def psi_critical_value(n_ref: int, n_cur: int, bins: int, alpha: float = 0.05) -> float:
    """Critical PSI under H0 (same distribution): ``chi2_{1-alpha}(B - 1) (1/n + 1/m)``.

    PSI is the symmetrised KL (Jeffreys divergence); to second order it is the chi-square
    statistic ``sum_b (c_b - r_b)^2 / p_b`` with ``Var(c_b - r_b) = p_b (1 - p_b)(1/n + 1/m)``,
    so ``n m / (n + m) PSI -> chi2(B - 1)`` (e.g. Yurdakul, 2018, *Statistical properties of
    the population stability index*). Asymptotic: with fewer than ~20 expected values per
    bin the false-alarm rate exceeds ``alpha`` (n = m = 200: 0.058 at B = 10, 0.085 at B = 20).
    """
    from scipy.stats import chi2

    if n_ref < 1 or n_cur < 1:
        raise MetricError(f"n_ref={n_ref}, n_cur={n_cur}: both sample sizes must be >= 1")
    _check_bins(bins, "quantile")
    if not 0.0 < alpha < 1.0:
        raise MetricError(f"alpha={alpha!r} must be in (0, 1)")
    return float(chi2.ppf(1.0 - alpha, bins - 1) * (1.0 / n_ref + 1.0 / n_cur))


def psi_p_value(psi: float, n_ref: int, n_cur: int, bins: int) -> float:
    """``P(chi2(B - 1) > n m / (n + m) psi)``: how often two samples of one distribution give a
    PSI this large (the asymptotic null of :func:`psi_critical_value`)."""
    from scipy.stats import chi2

    if n_ref < 1 or n_cur < 1:
        raise MetricError(f"n_ref={n_ref}, n_cur={n_cur}: both sample sizes must be >= 1")
    return float(chi2.sf(psi * n_ref * n_cur / (n_ref + n_cur), bins - 1))


def psi_alarm(
    psi: float,
    n_ref: int,
    n_cur: int,
    bins: int,
    threshold: float = 0.1,
    alpha: float = 0.05,
) -> bool:
    """True iff ``psi > max(threshold, psi_critical_value(n_ref, n_cur, bins, alpha))``.

    The policy ``threshold`` is the effect-size floor (large n: tiny shifts are significant
    but do not matter); the critical value guards small n (noise alone gives large PSI).
    """
    if not math.isfinite(psi) or psi < 0:
        raise MetricError(f"psi={psi!r} must be a finite non-negative number")
    return psi > max(threshold, psi_critical_value(n_ref, n_cur, bins, alpha))


# ----------------------------------------------------------------------------- embeddings
@dataclass(frozen=True, eq=False)
class EmbeddingSummary:
    """Mergeable one-pass summary of vectors (rows); the reference is summarised once.

    Sums are float64 and histograms int64 counts on fixed edges, so two summaries on the same
    edges merge exactly (:func:`merge_summaries`). ``norm_hist``: L2 norms on the reference's
    ``norm_bins``-quantile edges (PSI, KL); ``norm_fine``: on its ``ks_bins``-quantile edges
    (binned KS, quantiles); ``ks_edges`` / ``ks_counts``: per-dimension ``ks_bins`` histograms
    of shape ``(dim, ks_bins - 1)`` / ``(dim, ks_bins)``, ``None`` when skipped. Zero vectors
    add nothing to ``unit_sum`` (their cosine to anything counts as 0).
    """

    n: int
    dim: int
    vector_sum: np.ndarray
    unit_sum: np.ndarray
    norm_mean: float
    norm_m2: float
    norm_min: float
    norm_max: float
    norm_hist: Histogram
    norm_fine: Histogram
    ks_edges: np.ndarray | None
    ks_counts: np.ndarray | None

    @property
    def centroid(self) -> np.ndarray:
        """Mean vector ``mean_i x_i``."""
        return self.vector_sum / self.n

    @property
    def unit_centroid(self) -> np.ndarray:
        """Mean of the L2-normalised vectors ``mean_i x_i / |x_i|`` (norm <= 1)."""
        return self.unit_sum / self.n

    @property
    def norm_std(self) -> float:
        """Population standard deviation of the norms."""
        return math.sqrt(self.norm_m2 / self.n)

    @property
    def norm_quantiles(self) -> dict[float, float]:
        """Norm quantiles interpolated in ``norm_fine`` (error <= one fine bin's width)."""
        edges = np.clip(self.norm_fine.edges, self.norm_min, self.norm_max)
        xs = np.concatenate([[self.norm_min], edges, [self.norm_max]])
        fs = np.concatenate([[0.0], _cdf_at_edges(self.norm_fine.counts), [1.0]])
        return {q: float(np.interp(q, fs, xs)) for q in NORM_QUANTILE_LEVELS}


@dataclass(frozen=True, eq=False)
class EmbeddingDrift:
    """Current vs reference embeddings. ``norm_shift = norm_mean_cur - norm_mean_ref``;
    ``cosine_to_history`` = mean cosine over all (current, reference) pairs;
    ``centroid_shift = |mean x - mean h|``; ``centroid_cosine_distance = 1 - cos(mean x, mean h)``
    (Evidently's ``distance(dist="cosine")``; NaN if a centroid is 0); ``ks_per_dim``: binned
    KS per dimension (``None`` when skipped, then ``ks_max`` is NaN)."""

    norm_psi: float
    norm_kl: float
    norm_ks: float
    norm_mean_ref: float
    norm_mean_cur: float
    norm_shift: float
    cosine_to_history: float
    centroid_shift: float
    centroid_cosine_distance: float
    ks_per_dim: np.ndarray | None
    ks_max: float
    n_ref: int
    n_cur: int
    norm_bins: int

    def norm_psi_alarm(self, threshold: float = 0.1, alpha: float = 0.05) -> bool:
        """:func:`psi_alarm` for ``norm_psi`` at these sample sizes."""
        return psi_alarm(self.norm_psi, self.n_ref, self.n_cur, self.norm_bins, threshold, alpha)


def summarize_embeddings(
    x: Any,
    *,
    norm_bins: int = 10,
    ks_bins: int = 256,
    chunk_rows: int = 65536,
    progress: bool = False,
    per_dim_ks: bool = True,
    seed: int = 0,
) -> EmbeddingSummary:
    """Summarise reference vectors in one chunked pass (arrays or memmaps of any size).

    Per-dimension KS edges are the ``ks_bins`` quantiles of at most 65 536 rows drawn with
    ``seed``; counts are over all rows, so :func:`ks_binned_error_bound` still holds.
    """
    x = _matrix("reference", x)
    _check_bins(norm_bins, "quantile")
    _check_bins(ks_bins, "quantile")
    ks_edges = _dim_edges(x, ks_bins, seed) if per_dim_ks else None
    vsum, usum, norms, ks_counts = _reduce_rows("reference", x, chunk_rows, ks_edges, progress)
    norm_hist = summarize_histogram(norms, norm_bins)
    norm_fine = summarize_histogram(norms, ks_bins)
    return _summary(vsum, usum, norms, norm_hist, norm_fine, ks_edges, ks_counts)


def summarize_embeddings_like(
    x: Any,
    reference: EmbeddingSummary,
    *,
    chunk_rows: int = 65536,
    progress: bool = False,
    per_dim_ks: bool = True,
) -> EmbeddingSummary:
    """Summarise ``x`` on the reference's edges: comparable to it and mergeable with it.

    ``per_dim_ks=False`` skips the per-dimension histograms (the costly part: one binary
    search per value), leaving a single memory pass over ``x``.
    """
    x = _matrix("current", x, reference.dim)
    ks_edges = reference.ks_edges if per_dim_ks else None
    vsum, usum, norms, ks_counts = _reduce_rows("current", x, chunk_rows, ks_edges, progress)
    norm_hist = summarize_histogram_like(norms, reference.norm_hist)
    norm_fine = summarize_histogram_like(norms, reference.norm_fine)
    return _summary(vsum, usum, norms, norm_hist, norm_fine, ks_edges, ks_counts)


def merge_summaries(a: EmbeddingSummary, b: EmbeddingSummary) -> EmbeddingSummary:
    """Summary of the concatenated rows: sums and histograms add; norm mean and
    sum of squared deviations combine by Chan, Golub & LeVeque (1979)."""
    if a.dim != b.dim:
        raise MetricError(f"cannot merge summaries of dim={a.dim} and dim={b.dim}")
    n = a.n + b.n
    delta = b.norm_mean - a.norm_mean
    return EmbeddingSummary(
        n,
        a.dim,
        _frozen(a.vector_sum + b.vector_sum),
        _frozen(a.unit_sum + b.unit_sum),
        a.norm_mean + delta * b.n / n,
        a.norm_m2 + b.norm_m2 + delta * delta * a.n * b.n / n,
        min(a.norm_min, b.norm_min),
        max(a.norm_max, b.norm_max),
        a.norm_hist.merge(b.norm_hist),
        a.norm_fine.merge(b.norm_fine),
        *_merge_dim_counts(a, b),
    )


def compare_embeddings(
    reference: EmbeddingSummary,
    current: Any,
    *,
    eps: float = 1e-4,
    chunk_rows: int = 65536,
    per_dim_ks: bool = True,
) -> EmbeddingDrift:
    """Drift of ``current`` (array, summarised on the reference's edges, or a summary built
    with :func:`summarize_embeddings_like`) against a reference summary. Cost: one pass
    over ``current`` (plus one binary search per value when ``per_dim_ks``)."""
    cur = _as_summary(current, reference, chunk_rows, per_dim_ks)
    ref_hist, cur_hist = reference.norm_hist.counts, cur.norm_hist.counts
    ks_dim = _ks_per_dim(reference, cur)
    return EmbeddingDrift(
        norm_psi=_psi_from_counts(ref_hist, cur_hist, eps),
        norm_kl=_kl_from_counts(ref_hist, cur_hist, eps),
        norm_ks=ks_binned(reference.norm_fine, cur.norm_fine),
        norm_mean_ref=reference.norm_mean,
        norm_mean_cur=cur.norm_mean,
        norm_shift=cur.norm_mean - reference.norm_mean,
        cosine_to_history=float(cur.unit_centroid @ reference.unit_centroid),
        centroid_shift=float(np.linalg.norm(cur.centroid - reference.centroid)),
        centroid_cosine_distance=_cosine_distance(reference.centroid, cur.centroid),
        ks_per_dim=ks_dim,
        ks_max=float(ks_dim.max()) if ks_dim is not None else math.nan,
        n_ref=reference.n,
        n_cur=cur.n,
        norm_bins=int(ref_hist.size),
    )


def cosine_to_history_per_sample(
    current: Any, reference: EmbeddingSummary, *, chunk_rows: int = 65536
) -> np.ndarray:
    """``x_i/|x_i| . mean_j h_j/|h_j|`` per current row: its mean cosine to every reference
    vector; the mean over rows is ``EmbeddingDrift.cosine_to_history``."""
    x = _matrix("current", current, reference.dim)
    u = reference.unit_centroid.astype(np.float32)
    out = np.zeros(x.shape[0])
    for start, chunk in _chunks(x, chunk_rows):
        sq = np.einsum("ij,ij->i", chunk, chunk)
        _check_finite_rows("current", sq, start, chunk)
        norms = np.sqrt(sq.astype(np.float64))
        np.divide(chunk @ u, norms, out=out[start : start + len(chunk)], where=norms > 0)
    return out


# Geometry of one embedder's space, per sample. Both are invariant to any rotation of the space
# (they only use cosines within it), so the same texts under two embedders compare even when
# the spaces differ by a rotation, which an MMD of the raw vectors would call drift.


def _unit(name: str, x: Any) -> np.ndarray:
    m = _matrix(name, x).astype(np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise MetricError(f"{name} has a zero or non-finite row: cosines are undefined")
    return m / norms


def top1_cosine(queries: Any, documents: Any) -> np.ndarray:
    """Per query, ``max_d cos(q, d)``: the score of its top-1 document under exact search (what
    a flat inner-product index over unit vectors returns as the top score)."""
    q, d = _unit("queries", queries), _unit("documents", documents)
    if q.shape[1] != d.shape[1]:
        raise MetricError(f"queries have dim={q.shape[1]} but documents dim={d.shape[1]}")
    return np.concatenate([np.max(block @ d.T, axis=1) for _, block in _chunks(q, 1024)])


def nearest_neighbour_cosine(vectors: Any) -> np.ndarray:
    """Per row, ``max_{j != i} cos(x_i, x_j)``: how close its nearest other row is (exact
    duplicate rows give 1). A collapsed or inflated space moves this distribution."""
    x = _unit("vectors", vectors)
    if len(x) < 2:
        raise MetricError(f"nearest_neighbour_cosine needs at least 2 rows, got {len(x)}")
    out = np.empty(len(x))
    for start, block in _chunks(x, 1024):
        sims = block @ x.T
        sims[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        out[start : start + len(block)] = sims.max(axis=1)
    return out


def _as_summary(current, reference, chunk_rows, per_dim_ks) -> EmbeddingSummary:
    if not isinstance(current, EmbeddingSummary):
        return summarize_embeddings_like(
            current, reference, chunk_rows=chunk_rows, per_dim_ks=per_dim_ks
        )
    if current.dim != reference.dim:
        raise MetricError(f"current has dim={current.dim}, the reference dim={reference.dim}")
    _same_edges("current.norm_hist.edges", reference.norm_hist.edges, current.norm_hist.edges)
    return current


def _ks_per_dim(reference: EmbeddingSummary, cur: EmbeddingSummary) -> np.ndarray | None:
    if reference.ks_counts is None or cur.ks_counts is None:
        return None
    _same_edges("current.ks_edges", reference.ks_edges, cur.ks_edges)
    gap = np.abs(_cdf_at_edges(reference.ks_counts) - _cdf_at_edges(cur.ks_counts))
    return _frozen(gap.max(axis=1))


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float(a @ b) / denom if denom > 0 else math.nan


def _merge_dim_counts(a: EmbeddingSummary, b: EmbeddingSummary):
    if a.ks_counts is None or b.ks_counts is None:
        return None, None
    _same_edges("ks_edges", a.ks_edges, b.ks_edges)
    return a.ks_edges, _frozen(a.ks_counts + b.ks_counts)


def _summary(vsum, usum, norms, norm_hist, norm_fine, ks_edges, ks_counts) -> EmbeddingSummary:
    mean = float(norms.mean())
    return EmbeddingSummary(
        int(norms.size),
        int(vsum.size),
        _frozen(vsum),
        _frozen(usum),
        mean,
        float(np.sum((norms - mean) ** 2)),
        float(norms.min()),
        float(norms.max()),
        norm_hist,
        norm_fine,
        ks_edges,
        None if ks_counts is None else _frozen(ks_counts),
    )


def _chunk_starts(n: int, chunk_rows: int) -> range:
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise MetricError(f"chunk_rows={chunk_rows!r} must be a positive integer")
    return range(0, n, chunk_rows)


def _chunks(x: np.ndarray, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, float32 rows)`` chunks; no copy when ``x`` is float32 already."""
    for start in _chunk_starts(x.shape[0], chunk_rows):
        yield start, np.asarray(x[start : start + chunk_rows], dtype=np.float32)


def _reduce_rows(name, x, chunk_rows, ks_edges, progress):
    """One pass: ``sum x_i``, ``sum x_i/|x_i|``, the norms and per-dimension counts.

    Chunks go to a thread pool (numpy releases the GIL); partial results are added in
    chunk order, so the result does not depend on the thread schedule.
    """
    norms = np.empty(x.shape[0])
    starts = _chunk_starts(x.shape[0], chunk_rows)
    work = functools.partial(_reduce_chunk, name, x, chunk_rows, norms, ks_edges)
    with _single_threaded_blas(), ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        parts: Iterator[Any] = pool.map(work, starts)
        if progress:
            from tqdm.auto import tqdm

            parts = tqdm(parts, total=len(starts), desc="embedding drift", unit="chunk")
        sums, counts = zip(*parts, strict=True)
    ks_counts = None if ks_edges is None else np.sum(counts, axis=0)
    total = np.sum(sums, axis=0)
    return total[0], total[1], norms, ks_counts


def _reduce_chunk(name, x, chunk_rows, norms, ks_edges, start):
    """Per in-cache block: squared norms with one einsum, then ONE small GEMM ``W @ block``
    with ``W = [1; 1/|x_i|]`` gives both sums while the block is still in cache."""
    chunk = np.asarray(x[start : start + chunk_rows], dtype=np.float32)
    block_rows = max(16, _BLOCK_BYTES // (4 * chunk.shape[1]))
    sums, weights = np.zeros((2, chunk.shape[1])), np.ones((2, block_rows), np.float32)
    for off in range(0, chunk.shape[0], block_rows):
        block = chunk[off : off + block_rows]
        w = weights[:, : block.shape[0]]
        sq = np.einsum("ij,ij->i", block, block)
        _check_finite_rows(name, sq, start + off, block)
        np.sqrt(sq, out=w[1])
        norms[start + off : start + off + block.shape[0]] = w[1]
        np.divide(1.0, w[1], out=w[1], where=w[1] > 0)  # zero vectors keep weight 0
        sums += w @ block
    return sums, None if ks_edges is None else _dim_counts(chunk, ks_edges)


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """Cap BLAS at one thread (if threadpoolctl is installed): on GEMMs this small the
    OpenBLAS thread hand-off costs more than the work (10x slower on a loaded 2-core box)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _dim_edges(x: np.ndarray, ks_bins: int, seed: int) -> np.ndarray:
    """``(dim, ks_bins - 1)`` float32 quantile edges of a seeded row sample."""
    n = x.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, _EDGE_SAMPLE_ROWS), replace=False))
    sample = np.asarray(x[rows], dtype=np.float32)
    levels = np.linspace(0.0, 1.0, ks_bins + 1)[1:-1]
    return _frozen(np.quantile(sample, levels, axis=0).T.astype(np.float32))


def _dim_counts(chunk: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per-dimension bin counts of a chunk: one binary search per value."""
    d, bins = edges.shape[0], edges.shape[1] + 1
    offsets = (np.arange(d) * bins)[:, None]
    counts = np.zeros(d * bins, np.int64)
    for off in range(0, chunk.shape[0], _KS_BLOCK_ROWS):
        cols = np.ascontiguousarray(chunk[off : off + _KS_BLOCK_ROWS].T)
        index = np.empty(cols.shape, np.int64)
        for j in range(d):
            index[j] = np.searchsorted(edges[j], cols[j], side="right")
        counts += np.bincount((index + offsets).ravel(), minlength=d * bins)
    return counts.reshape(d, bins)


def _same_edges(name: str, expected: Any, got: Any) -> None:
    if expected is None or got is None or not np.array_equal(expected, got):
        raise MetricError(
            f"{name} differ from the reference's; summarise the current side with "
            "summarize_embeddings_like(x, reference) so both use the same bins"
        )


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# ----------------------------------------------------------------------------- MMD
def median_heuristic(x: Any, y: Any, seed: int = 0) -> float:
    """Median pairwise Euclidean distance of the pooled sample (Gretton et al., 2012),
    over at most 1000 pooled points drawn with ``seed`` (all of them when fewer)."""
    z = _pooled("x", x, "y", y)[0]
    return _median_distance(z, np.random.default_rng(seed))


def mmd_permutation_test(
    x: Any,
    y: Any,
    n_permutations: int = 100,
    kernel: Literal["rbf", "linear"] = "rbf",
    bandwidth: float | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased ``MMD^2_u`` and its permutation p-value (Gretton et al., 2012, eq. 3).

    ``MMD^2_u = S_xx / (n(n-1)) + S_yy / (m(m-1)) - 2 S_xy / (nm)``, ``S`` = kernel sums
    without the diagonal; ``rbf``: ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``, ``sigma =
    bandwidth`` or :func:`median_heuristic`. The pooled kernel ``K`` (float32, O((n+m)^2)
    memory) is built once; with group indicators ``a`` (observed first, then one column per
    permutation) every statistic follows from ``K @ [A, 1]``: ``S_xx = a'Ka``,
    ``S_xy = a'K1 - a'Ka``, ``S_yy = 1'K1 - 2 a'K1 + a'Ka``.
    p-value ``= (1 + #{perm >= observed}) / (1 + n_permutations)``.
    """
    z, n = _pooled("x", x, "y", y)
    if n < 2 or z.shape[0] - n < 2:
        raise MetricError(f"n_x={n}, n_y={z.shape[0] - n}: the unbiased MMD needs >= 2 per side")
    if not isinstance(n_permutations, int | np.integer) or n_permutations < 1:
        raise MetricError(f"n_permutations={n_permutations!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    k = _pooled_kernel(z, kernel, bandwidth, rng)
    stats = _mmd2_columns(k, _group_indicators(n, z.shape[0], n_permutations, rng), n)
    p_value = (1 + np.count_nonzero(stats[1:] >= stats[0])) / (1 + n_permutations)
    return float(stats[0]), float(p_value)


def _pooled(xname: str, x: Any, yname: str, y: Any) -> tuple[np.ndarray, int]:
    """Centred float32 pooled sample (MMD is translation invariant) and ``n_x``."""
    xa = _matrix(xname, x)
    ya = _matrix(yname, y, xa.shape[1])
    z = np.concatenate([xa, ya]).astype(np.float32)
    _check_finite_rows(f"concat({xname}, {yname})", np.einsum("ij,ij->i", z, z), 0, z)
    z -= z.mean(axis=0, dtype=np.float64).astype(np.float32)
    return z, xa.shape[0]


def _median_distance(z: np.ndarray, rng: np.random.Generator) -> float:
    rows = rng.choice(z.shape[0], min(z.shape[0], _MEDIAN_SAMPLE), replace=False)
    s = z[np.sort(rows)].astype(np.float64)
    sq = np.einsum("ij,ij->i", s, s)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (s @ s.T)
    sigma = math.sqrt(max(float(np.median(d2[np.triu_indices(s.shape[0], 1)])), 0.0))
    if sigma <= 0.0:
        raise MetricError("median pairwise distance is 0 (points coincide); pass bandwidth=")
    return sigma


def _pooled_kernel(z, kernel, bandwidth, rng) -> np.ndarray:
    """Pooled float32 kernel matrix with a zero diagonal (the unbiased sums skip it)."""
    if kernel not in ("rbf", "linear"):
        raise MetricError(f"kernel={kernel!r} is unknown; use 'rbf' or 'linear'")
    k = z @ z.T
    if kernel == "rbf":
        sigma = _median_distance(z, rng) if bandwidth is None else float(bandwidth)
        if not (math.isfinite(sigma) and sigma > 0):
            raise MetricError(f"bandwidth={bandwidth!r} must be a positive finite number")
        _gram_to_rbf(k, np.einsum("ij,ij->i", z, z), 1.0 / (2.0 * sigma * sigma))
    np.fill_diagonal(k, 0.0)
    return k


def _gram_to_rbf(k: np.ndarray, sq: np.ndarray, gamma: float) -> None:
    """In place, by row blocks that stay in cache: ``exp(-gamma (sq_i + sq_j - 2 G_ij))``."""
    g = np.float32(gamma)
    sq_g = (sq * g).astype(np.float32)
    for lo in range(0, k.shape[0], 256):
        blk = k[lo : lo + 256]
        blk *= 2 * g
        blk -= sq_g[lo : lo + 256, None]
        blk -= sq_g[None, :]
        np.minimum(blk, 0.0, out=blk)  # rounding can make a squared distance negative
        np.exp(blk, out=blk)


def _group_indicators(n: int, total: int, n_permutations: int, rng) -> np.ndarray:
    """``(total, 1 + n_permutations)`` 0/1 float32: observed split, then permuted ones."""
    a = np.zeros((total, 1 + n_permutations), np.float32)
    a[:n, 0] = 1.0
    for p in range(1, n_permutations + 1):
        a[rng.permutation(total)[:n], p] = 1.0
    return a


def _mmd2_columns(k: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    """``MMD^2_u`` for every indicator column of ``a``, from one GEMM ``K @ [A, 1]``."""
    m = k.shape[0] - n
    ka = (k @ np.hstack([a, np.ones((k.shape[0], 1), np.float32)])).astype(np.float64)
    row_sums, total = ka[:, -1], ka[:, -1].sum()
    s_xx = np.einsum("ij,ij->j", a, ka[:, :-1])
    s_xt = a.T.astype(np.float64) @ row_sums
    s_yy = total - 2.0 * s_xt + s_xx
    return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * (s_xt - s_xx) / (n * m)


# ----------------------------------------------------------------------------- k-means
def kmeans_centroid_shift(
    reference: Any,
    current: Any,
    k: int = 8,
    seed: int = 0,
    *,
    max_iter: int = 50,
    eps: float = 1e-4,
) -> dict[str, Any]:
    """Cluster-share drift on k-means centroids of the reference (Lloyd, 1982; k-means++
    seeding, Arthur & Vassilvitskii, 2007; fitted on at most 65 536 seeded rows).

    Returns ``k``, ``centroids``, ``reference_share`` / ``current_share`` (fraction per
    cluster), ``share_psi`` (PSI over clusters, floor ``eps``), ``mean_distance_reference`` /
    ``mean_distance_current`` (mean Euclidean distance to the nearest centroid) and
    ``distance_ratio`` (current / reference; > 1 means current points fall off the clusters).
    """
    ref = _matrix("reference", reference)
    cur = _matrix("current", current, ref.shape[1])
    if not isinstance(k, int | np.integer) or not 1 <= k <= ref.shape[0]:
        raise MetricError(f"k={k!r} must be an integer in [1, n_reference={ref.shape[0]}]")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(ref.shape[0], min(ref.shape[0], _EDGE_SAMPLE_ROWS), replace=False))
    centroids = _lloyd(np.asarray(ref[rows], dtype=np.float32), k, rng, max_iter)
    ref_label, ref_dist = _assign("reference", ref, centroids)
    cur_label, cur_dist = _assign("current", cur, centroids)
    ref_counts = np.bincount(ref_label, minlength=k)
    cur_counts = np.bincount(cur_label, minlength=k)
    return {
        "k": int(k),
        "centroids": centroids,
        "reference_share": ref_counts / ref.shape[0],
        "current_share": cur_counts / cur.shape[0],
        "share_psi": _psi_from_counts(ref_counts, cur_counts, eps),
        "mean_distance_reference": float(ref_dist.mean()),
        "mean_distance_current": float(cur_dist.mean()),
        "distance_ratio": _ratio(float(cur_dist.mean()), float(ref_dist.mean())),
    }


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else (1.0 if num == 0 else math.inf)


def _lloyd(fit: np.ndarray, k: int, rng: np.random.Generator, max_iter: int) -> np.ndarray:
    """Lloyd iterations from k-means++ seeds; an emptied cluster keeps its centroid."""
    centroids = _kmeans_pp(_finite("reference", fit), k, rng)
    labels = np.full(fit.shape[0], -1)
    for _ in range(max_iter):
        new_labels, _dist = _nearest(fit, centroids)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        onehot = np.zeros((fit.shape[0], k), np.float32)
        onehot[np.arange(fit.shape[0]), labels] = 1.0
        sums = (onehot.T @ fit).astype(np.float64)  # per-cluster sums in one GEMM
        moved = counts > 0
        centroids[moved] = sums[moved] / counts[moved, None]
    return centroids


def _kmeans_pp(fit: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = np.empty((k, fit.shape[1]))
    centroids[0] = fit[rng.integers(fit.shape[0])]
    d2 = np.sum((fit - centroids[0]) ** 2, axis=1, dtype=np.float64)
    for c in range(1, k):
        total = d2.sum()
        pick = rng.choice(fit.shape[0], p=d2 / total) if total > 0 else rng.integers(fit.shape[0])
        centroids[c] = fit[pick]
        d2 = np.minimum(d2, np.sum((fit - centroids[c]) ** 2, axis=1, dtype=np.float64))
    return centroids


def _nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centroid, per row."""
    c32 = centroids.astype(np.float32)
    d2 = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ c32.T) + np.sum(c32 * c32, axis=1)
    labels = np.argmin(d2, axis=1)
    return labels, np.sqrt(np.maximum(d2[np.arange(x.shape[0]), labels], 0.0)).astype(np.float64)


def _assign(name: str, x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, dist = np.empty(x.shape[0], np.int64), np.empty(x.shape[0])
    for start, chunk in _chunks(x, 65536):
        labels[start : start + len(chunk)], dist[start : start + len(chunk)] = _nearest(
            _finite(name, chunk, start), centroids
        )
    return labels, dist


def _finite(name: str, x: np.ndarray, offset: int = 0) -> np.ndarray:
    _check_finite_rows(name, np.einsum("ij,ij->i", x, x), offset, x)
    return x
