"""Drift gates: a statistic of reference vs current vectors (PSI, KL, MMD, ...) against the
policy's ``max``, alarming only when it exceeds the limit *and* is significant (permutation
p-value below alpha), plus the plot data the report draws (norm histograms, a 2-D PCA)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from guardrails.errors import (
    MetricError,
    PolicyError,
)
from guardrails.gates.evaluate import gate_seed, missing_limit
from guardrails.metrics import parse_metric
from guardrails.policy import Policy
from guardrails.verdict.schema import GateResult, Status

__all__ = [
    "drift_plot_data",
    "drift_statistic",
    "evaluate_drift_gate",
]


def evaluate_drift_gate(
    metric: str,
    *,
    reference: np.ndarray,
    current: np.ndarray,
    policy: Policy,
    name: str,
    maximum: float | None = None,
    bins: int = 10,
    seed: int | None = None,
) -> GateResult:
    """No-drift gate: alarm when the statistic exceeds the policy's ``max`` *and* is
    significant at α (so neither a huge n nor a tiny one raises a false alarm)."""
    spec = parse_metric(metric)
    limits = policy.threshold(spec.name, name)
    bound = maximum if maximum is not None else limits.max
    if bound is None:
        raise PolicyError(missing_limit("max", spec.name))
    alpha = limits.alpha if limits.alpha is not None else policy.alpha
    run_seed = gate_seed(policy.seed if seed is None else seed, name)
    ref, cur = _drift_inputs(spec.name, reference, current)
    value, p = drift_statistic(spec.name, ref, cur, bins=bins, seed=run_seed)
    plots = drift_plot_data(np.asarray(reference), np.asarray(current), seed=run_seed)
    status = Status.FAILED if (value > bound and p < alpha) else Status.PASSED
    return GateResult(
        name=name,
        kind="no_drift",
        metric=spec.name,
        status=status,
        candidate=float(value),
        baseline=None,
        delta=None,
        ci=(math.nan, math.nan),
        p_value=p,
        threshold=bound,
        limit=f"max {bound:g} and significant at alpha={alpha:g}",
        alpha=alpha,
        n=len(cur),
        higher_is_better=False,
        method=f"{spec.name}-test",
        seed=run_seed,
        extra={"n_reference": len(ref), "n_current": len(cur), "bins": bins, **plots},
        overrides={} if maximum is None else {"max": float(maximum)},
    )


def drift_plot_data(
    reference: np.ndarray, current: np.ndarray, *, seed: int = 0, points: int = 300, bins: int = 30
) -> dict[str, Any]:
    """Small, JSON-able data for the report's drift plots: histograms of the values (of the
    norms, for embeddings) and, for embeddings, a 2-D PCA of both sides fitted on the pooled
    sample (at most ``points`` per side)."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    ref_v = np.linalg.norm(reference, axis=1) if reference.ndim == 2 else reference.ravel()
    cur_v = np.linalg.norm(current, axis=1) if current.ndim == 2 else current.ravel()
    edges = _plot_edges(np.concatenate([ref_v, cur_v]), bins)
    out: dict[str, Any] = {
        "norm_hist": {
            "edges": edges.tolist(),
            "reference": (np.histogram(ref_v, edges)[0] / max(len(ref_v), 1)).tolist(),
            "current": (np.histogram(cur_v, edges)[0] / max(len(cur_v), 1)).tolist(),
        }
    }
    if reference.ndim == 2 and reference.shape[1] >= 2:
        a, b = _subsample(reference, points, seed), _subsample(current, points, seed + 1)
        pooled = np.concatenate([a, b]).astype(np.float64)
        mean = pooled.mean(axis=0)
        _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
        out["pca"] = {
            "reference": np.round((a - mean) @ vt[:2].T, 4).tolist(),
            "current": np.round((b - mean) @ vt[:2].T, 4).tolist(),
        }
    return out


def _plot_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Histogram edges over the values; a range too narrow for ``bins`` float bins (the norms
    of unit vectors: 1 up to rounding) is padded to a readable width around it."""
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi), 1.0):
        pad = max(abs(hi), 1.0) * 1e-3
        return np.linspace(lo - pad, hi + pad, bins + 1)
    return np.histogram_bin_edges(values, bins=bins)


def drift_statistic(
    metric: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    bins: int = 10,
    seed: int = 0,
    n_permutations: int = 200,
) -> tuple[float, float]:
    """``(statistic, p_value)`` of H0 "same distribution" for a drift metric.

    PSI uses its asymptotic null (``n·m/(n+m)·PSI ~ χ²(bins−1)``); KS its exact test; MMD the
    pooled permutation null; KL, JS and Wasserstein a permutation null over the pooled sample
    (subsampled to 20k per side, which bounds the cost, not the statistic).
    """

    from guardrails.metrics import drift

    n, m = len(reference), len(current)
    if metric == "psi":
        value = drift.psi(reference, current, bins=bins)
        return float(value), drift.psi_p_value(value, n, m, bins)
    if metric == "ks":
        stat, p = drift.ks(reference, current)
        return float(stat), float(p)
    if metric == "mmd":
        mmd2, p = drift.mmd_permutation_test(
            _subsample(reference, 2000, seed),
            _subsample(current, 2000, seed + 1),
            n_permutations=n_permutations,
            seed=seed,
        )
        return float(mmd2), float(p)
    funcs = {
        "kl": lambda a, b: drift.kl(a, b, bins=bins),
        "js": lambda a, b: drift.js(a, b, bins=bins),
        "wasserstein": drift.wasserstein,
    }
    if metric not in funcs:
        raise MetricError(
            f"no_drift does not support {metric!r}; allowed: {sorted([*funcs, 'psi', 'ks', 'mmd'])}"
        )
    return _permutation_drift(funcs[metric], reference, current, seed, n_permutations)


def _subsample(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    if len(x) <= k:
        return x
    return x[np.random.default_rng(seed).choice(len(x), k, replace=False)]


def _permutation_drift(
    fn: Callable[[np.ndarray, np.ndarray], float],
    ref: np.ndarray,
    cur: np.ndarray,
    seed: int,
    n_perm: int,
) -> tuple[float, float]:
    ref, cur = _subsample(ref, 20000, seed), _subsample(cur, 20000, seed + 1)
    observed = float(fn(ref, cur))
    pooled = np.concatenate([ref, cur])
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        perm = rng.permutation(pooled)
        hits += fn(perm[: len(ref)], perm[len(ref) :]) >= observed
    return observed, (1 + hits) / (1 + n_perm)


def _drift_inputs(
    metric: str, reference: np.ndarray, current: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = np.asarray(reference), np.asarray(current)
    if ref.ndim == 2 and metric not in ("mmd",):
        # embedding matrices: the 1-D statistics run on the L2 norms (seed: norm drift)
        ref, cur = np.linalg.norm(ref, axis=1), np.linalg.norm(cur, axis=1)
    return ref, cur
