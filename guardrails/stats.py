"""Paired statistics for release gates: bootstrap CI, randomisation test, McNemar, Holm, MDE.

A gate compares per-query scores of a *candidate* and a *baseline* on the same golden queries,
oriented so that higher is better. With ``d_i = candidate_i - baseline_i`` (one value per query)
and a threshold ``t`` (``-max_drop``, ``+min_gain``, or an absolute floor on the candidate alone):

* the two-sided ``(1 - alpha)`` percentile-bootstrap CI of ``mean(d)`` shows whether the candidate
  is within the limit (``ci_low > t``), see :func:`paired_bootstrap_ci`;
* the one-sided p-value of ``H0: mean(d) >= t`` is the evidence that it violates the limit
  (small p = violation), from the sign-flip randomisation test (:func:`paired_randomization_test`)
  or, for 0/1 scores against ``t = 0``, the exact McNemar test (:func:`mcnemar_exact`);
* ``p_pass``, the mirror one-sided p-value of ``H0: mean(d) <= t`` (same tests, other
  direction), is the evidence that it is within the limit; the gate passes only when it is
  below ``alpha / 2`` as well (see :mod:`guardrails.gates.evaluate`);
* :func:`holm` adjusts the p-values of all gates of a run.

All resampling is seeded, vectorised and done in memory-bounded chunks, each chunk drawn from
its own ``PCG64`` stream spawned from ``numpy.random.SeedSequence(seed)``, so equal inputs and
seed give equal outputs (to floating-point summation order) on any machine and with any number
of threads. The kernels live in :mod:`guardrails.resampling`: the bootstrap's count matrix
depends only on ``(n, n_resamples, seed)`` and is shared by every comparison of that size and
seed; the sign flips are summed by byte-table look-up.
Only numpy at import time; scipy is imported inside :func:`mcnemar_exact` / the binomial test.

References: Efron & Tibshirani (1993) *An Introduction to the Bootstrap*; Smucker, Allan &
Carterette (2007) "A comparison of statistical significance tests for information retrieval
evaluation", CIKM; Sakai (2014) "Statistical reform in information retrieval?", SIGIR Forum;
Holm (1979) "A simple sequentially rejective multiple test procedure", Scand. J. Statist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from guardrails import resampling
from guardrails.errors import PolicyError, StatisticsError

__all__ = [
    "McNemar",
    "PairedComparison",
    "check_binary_tolerance",
    "compare_one_sample",
    "compare_paired",
    "holm",
    "mcnemar_exact",
    "mde_binary",
    "minimum_detectable_effect",
    "paired_bootstrap_ci",
    "paired_randomization_test",
    "worst_indices",
]

Alternative = Literal["less", "greater", "two-sided"]
_ALTERNATIVES = ("less", "greater", "two-sided")
_EXACT_MAX_N = 16  # enumerate all 2^n sign flips up to this n
_REL_TIE = 1e-10  # resampled statistics this close (relative) to the observed one are ties


@dataclass(frozen=True)
class PairedComparison:
    """Result of comparing candidate and baseline per-query scores (``d = cand - base``).

    ``ci_low``/``ci_high`` bound ``mean(d)`` (two-sided, level ``1 - alpha``, resampled with
    ``bootstrap_seed``; the sign flips use ``seed``); ``p_value`` is
    one-sided for ``H0: mean(d) >= threshold`` (small = evidence of a violation); ``p_pass``
    is the mirror test, one-sided for ``H0: mean(d) <= threshold`` (small = evidence the
    candidate is within the limit); ``mde`` is the smallest true delta detectable with
    power 0.8 at this ``n`` and ``sd``.
    ``baseline_mean`` is nan for a one-sample (absolute floor) comparison.
    """

    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    threshold: float
    alpha: float
    method: str
    seed: int
    n_resamples: int
    mde: float
    sd: float
    p_pass: float = math.nan
    bootstrap_seed: int | None = None


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on paired 0/1 outcomes.

    ``b`` = newly failing (baseline ok, candidate not), ``c`` = newly passing.
    """

    b: int
    c: int
    n_discordant: int
    p_value: float


# --------------------------------------------------------------------------- validation


def _as_scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """1-D finite float array, or :class:`StatisticsError` naming the first bad index."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise StatisticsError(f"{name} must be 1-D (one score per query), got shape={arr.shape}")
    if arr.size == 0:
        raise StatisticsError(f"{name} is empty (n=0): score at least one query")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise StatisticsError(
            f"{name}[{i}]={arr[i]} is not finite ({bad.size} of n={arr.size}): "
            "fix or drop that query in both runs"
        )
    return arr


def _check_args(alpha: float, n_resamples: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"alpha={alpha} must be in (0, 1)")
    _check_resamples(n_resamples)


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise StatisticsError(f"n_resamples={n_resamples} must be >= 1")


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise StatisticsError(f"alternative={alternative!r} must be one of {_ALTERNATIVES}")


# --------------------------------------------------------------------------- bootstrap


def paired_bootstrap_ci(
    d: ArrayLike, alpha: float = 0.05, n_resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap ``(1 - alpha)`` two-sided CI of ``mean(d)``.

    Query indices are resampled with replacement ``n_resamples`` times; the CI is the
    ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled means (Efron & Tibshirani 1993,
    ch. 13). Constant ``d`` gives the degenerate ``(c, c)``. The resamples are the count
    matrix of :func:`guardrails.resampling.bootstrap_sums`, a function of ``(n, n_resamples,
    seed)`` only, so CIs of several statistics on the same samples and seed use the same
    resampled queries.

    BCa is deliberately not used: for a *mean* the bootstrap distribution is close to
    symmetric at the golden-set sizes we gate on (n >= 30), so the bias/acceleration
    corrections change the bounds by less than the Monte-Carlo error, while the jackknife
    they need costs O(n^2) and is unstable with the many tied deltas of ranking metrics.
    Sakai (2014, "Statistical reform in information retrieval?") recommends reporting such
    CIs of mean paired differences in IR evaluation.
    """
    arr = _as_scores(d, "d")
    _check_args(alpha, n_resamples)
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    means = resampling.bootstrap_sums(arr[:, None], n_resamples, seed)[:, 0] / arr.size
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


# --------------------------------------------------------------------------- randomisation


def paired_randomization_test(
    d: ArrayLike,
    threshold: float = 0.0,
    alternative: Alternative = "less",
    n_resamples: int = 10000,
    seed: int = 0,
) -> float:
    """Sign-flip randomisation test of ``mean(d)`` against ``threshold``.

    With ``e = d - threshold`` and statistic ``T = sum(e)`` (equivalent to ``mean(e)``), the
    null distribution flips the sign of each ``e_i`` independently (Fisher's randomisation
    test; the paired permutation test of Smucker, Allan & Carterette 2007):

    * ``"less"``: ``H0: mean(d) >= threshold`` vs ``H1: <``, ``p = P(T* <= T)``;
    * ``"greater"``: ``p = P(T* >= T)``; ``"two-sided"``: ``p = P(|T*| >= |T|)``.

    Zeros of ``e`` are dropped first (their sign does not change ``T``), so the effective
    sample is the ``m`` non-zero values: with ``m <= 16`` all ``2^m`` flips are enumerated
    (exact ``p = count / 2^m``, which also keeps a tie-heavy comparison with a handful of
    changed queries exact at any ``n``); otherwise ``p = (1 + count) / (1 + n_resamples)``
    over seeded random flips, which is never 0 and keeps the test valid. All-zero ``e``
    returns 1.0 (no evidence either way).
    """
    _check_alternative(alternative)
    e = _as_scores(d, "d") - float(threshold)
    _check_resamples(n_resamples)
    return _flip_p_values(e, (alternative,), n_resamples, seed)[0]


def _flip_p_values(
    e: NDArray[np.float64], alternatives: Sequence[str], n_resamples: int, seed: int
) -> tuple[float, ...]:
    """Sign-flip p-values of ``e`` for each alternative, all from the same flips."""
    e = e[e != 0.0]  # a zero is the same under either sign: only the changed values count
    if not e.size:
        return (1.0,) * len(alternatives)
    total = float(e.sum())
    if e.size <= _EXACT_MAX_N:
        sums, trials = _all_flip_sums(e), 2**e.size
        return tuple(_count_extreme(sums, total, e, alt) / trials for alt in alternatives)
    sums = resampling.flip_sums(e, n_resamples, seed)
    return tuple(
        (1 + _count_extreme(sums, total, e, alt)) / (1 + n_resamples) for alt in alternatives
    )


def _all_flip_sums(e: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum(s * e)`` for every sign vector ``s``, as ``total - 2 * flipped @ e``."""
    codes = np.arange(2**e.size, dtype=np.int64)[:, None]
    flipped = ((codes >> np.arange(e.size)) & 1).astype(np.float64)
    return float(e.sum()) - 2.0 * (flipped @ e)


def _count_extreme(
    sums: NDArray[np.float64], total: float, e: NDArray[np.float64], alternative: str
) -> int:
    """How many resampled sums are at least as extreme as ``total`` (ties count)."""
    tol = _REL_TIE * float(np.abs(e).sum())
    if alternative == "less":
        return int(np.count_nonzero(sums <= total + tol))
    if alternative == "greater":
        return int(np.count_nonzero(sums >= total - tol))
    return int(np.count_nonzero(np.abs(sums) >= abs(total) - tol))


# --------------------------------------------------------------------------- binary outcomes


def mcnemar_exact(
    candidate_ok: ArrayLike, baseline_ok: ArrayLike, alternative: Alternative = "less"
) -> McNemar:
    """Exact McNemar test: binomial test of ``c`` successes in ``b + c`` discordant pairs.

    ``b`` counts queries the baseline passes and the candidate fails, ``c`` the reverse.
    Under ``H0`` both directions are equally likely, ``c ~ Binomial(b + c, 1/2)``
    (McNemar 1947; exact form as in ``statsmodels ... mcnemar(exact=True)``).
    ``"less"`` = evidence the candidate is worse (few newly passing vs newly failing).
    No discordant pairs gives ``p = 1.0``.
    """
    _check_alternative(alternative)
    cand = _as_bools(candidate_ok, "candidate_ok")
    base = _as_bools(baseline_ok, "baseline_ok")
    _check_same_length(cand, base, "candidate_ok", "baseline_ok")
    b = int(np.count_nonzero(base & ~cand))
    c = int(np.count_nonzero(cand & ~base))
    if b + c == 0:
        return McNemar(b=b, c=c, n_discordant=0, p_value=1.0)
    from scipy.stats import binomtest

    p = float(binomtest(c, b + c, 0.5, alternative=alternative).pvalue)
    return McNemar(b=b, c=c, n_discordant=b + c, p_value=min(p, 1.0))


def _as_bools(x: ArrayLike, name: str) -> NDArray[np.bool_]:
    """0/1 (or bool) scores as a bool array; anything else is a :class:`StatisticsError`."""
    arr = _as_scores(x, name)
    bad = np.flatnonzero((arr != 0.0) & (arr != 1.0))
    if bad.size:
        i = int(bad[0])
        raise StatisticsError(f"{name}[{i}]={arr[i]} is not 0/1: a binary metric needs 0/1 scores")
    return arr == 1.0


def _check_same_length(a: NDArray, b: NDArray, name_a: str, name_b: str) -> None:
    if a.size != b.size:
        raise StatisticsError(
            f"{name_a} has n={a.size} scores but {name_b} has n={b.size}: "
            "scores must be paired query by query"
        )


def check_binary_tolerance(
    tolerance: float, n: int, metric: str, *, option: str = "max-drop"
) -> None:
    """Refuse a tolerance on a 0/1 metric finer than one case out of ``n``.

    With ``n`` queries a binary rate moves in steps of ``1/n``; a tolerance in ``(0, 1/n)``
    behaves exactly like 0 and would mislead the reader of the policy.
    """
    if n < 1:
        raise PolicyError(f"{option}={tolerance:g} for metric {metric!r}: n={n} must be >= 1")
    step = 1.0 / n
    if 0.0 < tolerance < step * (1.0 - 1e-9):
        raise PolicyError(
            f"{option}={tolerance:g} for binary metric {metric!r} is finer than one case out "
            f"of n={n} (1/n={step:g}): use 0 (no new failure allowed) or >= {step:g}"
        )


# --------------------------------------------------------------------------- power, multiplicity


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect ``(z_{1-alpha/2} + z_{power}) * sd / sqrt(n)``.

    The smallest true mean difference a two-sided level-``alpha`` test on ``n`` paired
    queries detects with probability ``power`` (normal approximation; Cohen 1988).
    ``n < 1`` or a non-finite ``sd`` gives ``inf`` (nothing is detectable).
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise StatisticsError(f"alpha={alpha} and power={power} must both be in (0, 1)")
    if n < 1 or not math.isfinite(sd):
        return math.inf
    z = NormalDist()
    return (z.inv_cdf(1.0 - alpha / 2.0) + z.inv_cdf(power)) * abs(sd) / math.sqrt(n)


def mde_binary(
    p: float,
    n: int,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> float:
    """MDE of a 0/1 rate: :func:`minimum_detectable_effect` with ``sd = sqrt(p (1 - p))``.

    When the paired discordance rate ``(b + c) / n`` is given, the per-query difference
    takes values in {-1, 0, 1} with variance ``~ discordance`` under ``H0``, so
    ``sd = sqrt(discordance)`` (Connor 1987, paired-proportion sample size).
    """
    rate = p if discordance is None else discordance
    if not 0.0 <= rate <= 1.0:
        raise StatisticsError(f"rate={rate} must be a proportion in [0, 1]")
    sd = math.sqrt(rate) if discordance is not None else math.sqrt(p * (1.0 - p))
    return minimum_detectable_effect(sd, n, alpha, power)


def holm(p_values: Sequence[float] | ArrayLike) -> NDArray[np.float64]:
    """Holm–Bonferroni adjusted p-values, in input order.

    With ``p_(1) <= ... <= p_(m)``: ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``
    (Holm 1979). Rejecting ``adj < alpha`` controls the family-wise error rate at ``alpha``
    under any dependence between the gates. Equals ``statsmodels`` ``multipletests(...,
    method="holm")[1]``.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    if not np.all((p >= 0.0) & (p <= 1.0)):
        i = int(np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))[0])
        raise StatisticsError(f"p_values[{i}]={p[i]} is not a probability in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


# --------------------------------------------------------------------------- comparisons


def compare_paired(
    candidate: ArrayLike,
    baseline: ArrayLike,
    threshold: float,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    seed: int = 0,
    binary: bool = False,
    bootstrap_seed: int | None = None,
) -> PairedComparison:
    """Compare paired per-query scores: bootstrap CI of ``mean(d)`` and one-sided p-values.

    ``p_value`` tests ``H0: mean(d) >= threshold`` and ``p_pass`` ``H0: mean(d) <=
    threshold``, both with the sign-flip randomisation test on ``d - threshold`` (exact over
    the changed queries when at most 16 differ), or, for ``binary=True`` and ``threshold ==
    0``, the exact McNemar test in each direction (``method`` says which). Raises
    :class:`StatisticsError` for unpaired, empty or non-finite scores. The sign flips are
    seeded with ``seed``, the bootstrap with ``bootstrap_seed`` (default ``seed``): comparisons
    on the same number of samples with the same ``bootstrap_seed`` share their resamples.
    """
    cand = _as_scores(candidate, "candidate")
    base = _as_scores(baseline, "baseline")
    _check_same_length(cand, base, "candidate", "baseline")
    _check_args(alpha, n_resamples)
    d = cand - base
    if binary and threshold == 0.0:
        ok = _as_bools(cand, "candidate"), _as_bools(base, "baseline")
        p = (mcnemar_exact(*ok, "less").p_value, mcnemar_exact(*ok, "greater").p_value)
        method = "bootstrap-percentile+mcnemar-exact"
    else:
        p = _sign_flip_both(d, threshold, n_resamples, seed)
        method = _randomization_method(d, threshold)
    seeds = (seed, seed if bootstrap_seed is None else bootstrap_seed)
    return _result(
        d, float(base.mean()), float(cand.mean()), p, method, threshold, alpha, n_resamples, seeds
    )


def compare_one_sample(
    values: ArrayLike,
    threshold: float,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    seed: int = 0,
    binary: bool = False,
    bootstrap_seed: int | None = None,
) -> PairedComparison:
    """Absolute floor: CI of ``mean(values)`` and p-value of ``H0: mean(values) >= threshold``.

    Same outputs as :func:`compare_paired` with ``d = values`` and ``baseline_mean = nan``.
    The p-values are the one-sample sign-flip tests about ``threshold`` or, for
    ``binary=True`` and ``0 < threshold < 1``, the exact binomial tests of the pass count
    against rate ``threshold`` (``"less"`` for ``p_value``, ``"greater"`` for ``p_pass``).
    """
    vals = _as_scores(values, "values")
    _check_args(alpha, n_resamples)
    if binary and 0.0 < threshold < 1.0:
        ok = _as_bools(vals, "values")
        p = (_binomial(ok, threshold, "less"), _binomial(ok, threshold, "greater"))
        method = "bootstrap-percentile+binomial-exact"
    else:
        p = _sign_flip_both(vals, threshold, n_resamples, seed)
        method = _randomization_method(vals, threshold)
    seeds = (seed, seed if bootstrap_seed is None else bootstrap_seed)
    return _result(
        vals, math.nan, float(vals.mean()), p, method, threshold, alpha, n_resamples, seeds
    )


def _binomial(ok: NDArray[np.bool_], rate: float, alternative: Alternative) -> float:
    from scipy.stats import binomtest

    return float(binomtest(int(ok.sum()), ok.size, rate, alternative=alternative).pvalue)


def _sign_flip_both(
    d: NDArray[np.float64], threshold: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """(``"less"``, ``"greater"``) sign-flip p-values, on the same seeded flips."""
    less, greater = _flip_p_values(d - float(threshold), ("less", "greater"), n_resamples, seed)
    return less, greater


def _randomization_method(d: NDArray[np.float64], threshold: float) -> str:
    exact = "-exact" if np.count_nonzero(d != threshold) <= _EXACT_MAX_N else ""
    return f"bootstrap-percentile+sign-flip{exact}"


def _result(
    d: NDArray[np.float64],
    base_mean: float,
    cand_mean: float,
    p: tuple[float, float],
    method: str,
    threshold: float,
    alpha: float,
    n_resamples: int,
    seeds: tuple[int, int],
) -> PairedComparison:
    """Assemble a :class:`PairedComparison` (CI, sd with ddof=1, MDE at power 0.8);
    ``seeds`` = (sign-flip seed, bootstrap seed)."""
    low, high = paired_bootstrap_ci(d, alpha, n_resamples, seeds[1])
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    return PairedComparison(
        n=int(d.size),
        baseline_mean=base_mean,
        candidate_mean=cand_mean,
        delta=float(d.mean()),
        ci_low=low,
        ci_high=high,
        p_value=float(p[0]),
        threshold=float(threshold),
        alpha=float(alpha),
        method=method,
        seed=int(seeds[0]),
        n_resamples=int(n_resamples),
        mde=minimum_detectable_effect(sd, d.size, alpha),
        sd=sd,
        p_pass=float(p[1]),
        bootstrap_seed=int(seeds[1]),
    )


def worst_indices(d: ArrayLike, k: int = 5) -> NDArray[np.intp]:
    """Indices of the (at most) ``k`` most negative deltas, worst first, ties in input order.

    Only negative deltas are returned: a query that did not get worse is not a regression.
    """
    arr = np.asarray(d, dtype=np.float64).ravel()
    order = np.argsort(arr, kind="stable")
    return order[arr[order] < 0.0][: max(k, 0)]
