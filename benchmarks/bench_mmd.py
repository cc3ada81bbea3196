"""Permutation MMD on embeddings: ours vs Evidently's MMD.

Run: ``.venv/bin/python benchmarks/bench_mmd.py [--n 5000] [--dim 384] [--permutations 100]
[--evidently-permutations 5]``. Ours builds the pooled float32 kernel once and evaluates
every permutation with one GEMM ``K @ A``. Evidently 0.7 ships two MMDs:

- the embeddings drift method ``mmd(bootstrap=True)`` (``MMDDriftMethod``): float64 kernels
  by scikit-learn, then 100 bootstrap resamples of the reference, each by fancy-indexing the
  kernel (a resampling null, not a permutation test) -- timed at full size;
- the stattest ``empirical_mmd`` (``mmd_stattest.mmd_pval``): a 100-permutation test whose
  every permutation re-indexes the whole pooled kernel (``K[idx][:, idx]``). Its own kernel
  helper only broadcasts for 1-D columns, so it is fed the pooled RBF kernel that Evidently's
  embedding method builds; its permutations are timed on ``--evidently-permutations`` and
  extrapolated linearly to ``--permutations`` (said in the output).

Goal: ours >= 50x faster.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from guardrails.metrics.drift import median_heuristic, mmd_permutation_test


def import_evidently():
    """Evidently 0.7.x imports ``infer_dtype_from_object``, which pandas 3 removed; shim it
    (only Evidently's data-integrity tests use it)."""
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: np.dtype(dtype).type
    import evidently
    from evidently.legacy.calculations.stattests import mmd_stattest
    from evidently.legacy.metrics.data_drift import embedding_drift_methods

    return evidently.__version__, mmd_stattest, embedding_drift_methods


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, I), y ~ N(delta, I) with |delta| = 0.5: a modest mean shift."""
    rng = np.random.default_rng(seed)
    delta = rng.standard_normal(dim)
    delta *= 0.5 / np.linalg.norm(delta)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    y = (rng.standard_normal((n, dim)) + delta).astype(np.float32)
    return x, y


def time_ours(x: np.ndarray, y: np.ndarray, permutations: int) -> float:
    mmd_permutation_test(x[:200], y[:200], 10)  # warm-up (imports, BLAS threads)
    start = time.perf_counter()
    mmd2, p = mmd_permutation_test(x, y, permutations, seed=0)
    elapsed = time.perf_counter() - start
    print(f"ours: {elapsed:.2f} s for {permutations} permutations; MMD^2_u={mmd2:.6f} p={p:.4f}")
    return elapsed


def time_evidently_method(x: np.ndarray, y: np.ndarray, methods) -> float:
    import pandas as pd

    start = time.perf_counter()
    mmd2, drifted, _ = methods.mmd(bootstrap=True)(pd.DataFrame(y), pd.DataFrame(x))
    elapsed = time.perf_counter() - start
    print(
        f"evidently mmd(bootstrap=True) embedding method: {elapsed:.2f} s at full size "
        f"(100 bootstrap resamples); MMD^2_u={mmd2:.6f} drifted={drifted}"
    )
    return elapsed


def time_evidently_permutations(x, y, permutations, measured, stattest) -> float:
    """Evidently's permutation loop (``mmd_2samp(permute=True)``) on the pooled kernel."""
    from sklearn.metrics import pairwise_kernels

    sigma = median_heuristic(x, y)
    start = time.perf_counter()
    kernel = pairwise_kernels(np.vstack([x, y]), metric="rbf", gamma=1.0 / (2 * sigma**2))
    kernel -= np.diag(np.diagonal(kernel))
    observed = stattest.mmd_2samp(kernel, y.shape[0], permute=False)
    t_kernel = time.perf_counter() - start
    start = time.perf_counter()
    null = [stattest.mmd_2samp(kernel, y.shape[0], permute=True) for _ in range(measured)]
    t_perm = (time.perf_counter() - start) / measured
    total = t_kernel + t_perm * permutations
    p = (np.array(null) >= observed).mean()
    print(
        f"evidently mmd_stattest permutation loop: kernel {t_kernel:.2f} s + "
        f"{t_perm:.2f} s/permutation -> {total:.2f} s for {permutations} permutations "
        f"(permutations MEASURED on {measured}, EXTRAPOLATED linearly); "
        f"MMD^2={observed:.6f}, p on {measured} permutations={p:.2f}"
    )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="rows per side")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--evidently-permutations", type=int, default=5)
    args = parser.parse_args()
    x, y = make_data(args.n, args.dim)
    print(f"data: x, y = {args.n:,d} x {args.dim} float32 each; pooled kernel {2 * args.n:,d}^2")
    t_ours = time_ours(x, y, args.permutations)
    try:
        version, stattest, methods = import_evidently()
    except ImportError as exc:
        print(f"evidently not importable ({exc}); skipping the comparison")
        return
    print(f"evidently {version}")
    t_method = time_evidently_method(x, y, methods)
    t_perm = time_evidently_permutations(
        x, y, args.permutations, args.evidently_permutations, stattest
    )
    print(
        f"ratio evidently / ours: {t_perm / t_ours:.1f}x vs its permutation test, "
        f"{t_method / t_ours:.1f}x vs its bootstrap embedding method; goal >= 50x"
    )


if __name__ == "__main__":
    main()
