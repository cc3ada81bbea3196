"""Embedding drift at scale: our one-pass statistics vs a memory pass and vs Evidently.

Run: ``.venv/bin/python benchmarks/bench_drift.py [--rows 1000000] [--dim 384]
[--evidently-rows N]``. The reference summary is computed once (as in production, where the
reference is fixed and each new window of traffic is compared to it); the timed pass computes
norm PSI + norm KL + cosine to history + centroid shift on the CURRENT side. Goals: that pass
within 3x of one memory pass over the current array, and >= 50x faster than Evidently
computing the same statistics (PSI and KL stattests on the norms, ``distance(dist="cosine")``
embedding drift). Also checks that ``psi(..., binning="uniform", eps=1e-4)`` equals
Evidently's ``psi`` on Evidently's own bins (Sturges over the pooled sample).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from guardrails.metrics.drift import compare_embeddings, kl, psi, summarize_embeddings


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_data(rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Anisotropic embeddings: reference ~ N(mu, I) with |mu| = 2 (a common direction, as
    real sentence embeddings have); current ~ N(mu + delta, 1.01^2 I), |delta| = 0.4."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(dim).astype(np.float32)
    delta = rng.standard_normal(dim).astype(np.float32)
    mu *= 2 / np.linalg.norm(mu)
    delta *= 0.4 / np.linalg.norm(delta)
    reference = rng.standard_normal((rows, dim), dtype=np.float32)
    reference += mu
    current = rng.standard_normal((rows, dim), dtype=np.float32)
    current *= np.float32(1.01)
    current += mu + delta
    return reference, current


def chunked_ones_matmul(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    ones, total = np.ones(chunk, np.float32), np.zeros(x.shape[1])
    for start in range(0, x.shape[0], chunk):
        block = x[start : start + chunk]
        total += ones[: block.shape[0]] @ block
    return total


def import_evidently():
    """Evidently 0.7.x imports ``infer_dtype_from_object``, which pandas 3 removed; shim it
    (only Evidently's data-integrity tests use it, not the stattests timed here)."""
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: np.dtype(dtype).type
    import evidently
    from evidently.legacy.calculations.stattests import kl_div_stat_test, psi_stat_test
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance

    return evidently.__version__, psi_stat_test, kl_div_stat_test, distance, ColumnType


def evidently_pass(reference: np.ndarray, current: np.ndarray) -> tuple[dict, float]:
    """Evidently's PSI and KL stattests on the norms + cosine distance of mean embeddings."""
    import pandas as pd

    _, psi_test, kl_test, distance, column_type = import_evidently()
    start = time.perf_counter()
    ref_norms = pd.Series(np.linalg.norm(reference, axis=1))
    cur_norms = pd.Series(np.linalg.norm(current, axis=1))
    out = {
        "psi": psi_test(ref_norms, cur_norms, column_type.Numerical, None).drift_score,
        "kl": kl_test(ref_norms, cur_norms, column_type.Numerical, None).drift_score,
        "cosine": distance(dist="cosine")(pd.DataFrame(current), pd.DataFrame(reference))[0],
    }
    return out, time.perf_counter() - start


def ours_on_evidently_bins(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, int]:
    """Our PSI and KL(reference || current) of the norms on Evidently's binning: equal-width
    bins over the pooled range, Sturges count, eps = 1e-4."""
    ref_n = np.linalg.norm(reference, axis=1).astype(np.float64)
    cur_n = np.linalg.norm(current, axis=1).astype(np.float64)
    bins = len(np.histogram_bin_edges(np.concatenate([ref_n, cur_n]), bins="sturges")) - 1
    ours_kl = kl(cur_n, ref_n, bins, "uniform", eps=1e-4)  # Evidently's kl_div direction
    return psi(ref_n, cur_n, bins, "uniform", eps=1e-4), ours_kl, bins


def print_value_check(reference: np.ndarray, current: np.ndarray, ev: dict) -> None:
    ours_psi, ours_kl, bins = ours_on_evidently_bins(reference, current)
    drift = compare_embeddings(summarize_embeddings(reference, per_dim_ks=False), current)
    print(
        f"  rows={reference.shape[0]:>9,d} bins={bins}: PSI ours={ours_psi:.12g} "
        f"evidently={ev['psi']:.12g} |diff|={abs(ours_psi - ev['psi']):.1e}; "
        f"KL(ref||cur) ours={ours_kl:.12g} evidently={ev['kl']:.12g} "
        f"|diff|={abs(ours_kl - ev['kl']):.1e}; cosine distance of centroids "
        f"ours={drift.centroid_cosine_distance:.9f} evidently={ev['cosine']:.9f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ks-rows", type=int, default=100_000, help="rows for per-dim KS")
    parser.add_argument("--evidently-rows", type=int, default=None, help="default: --rows")
    args = parser.parse_args()
    reference, current = make_data(args.rows, args.dim)
    gb = current.nbytes / 1e9
    print(f"data: reference and current {args.rows:,d} x {args.dim} float32 ({gb:.2f} GB each)")

    t_sum = best_of(lambda: current.sum(axis=0, dtype=np.float64))
    t_gemm = best_of(lambda: chunked_ones_matmul(current))
    t_mem = min(t_sum, t_gemm)
    print(f"one memory pass: x.sum(axis=0, dtype=float64) {t_sum:.3f} s ({gb / t_sum:.1f} GB/s);")
    print(f"                 chunked ones @ x             {t_gemm:.3f} s ({gb / t_gemm:.1f} GB/s)")

    start = time.perf_counter()
    summary = summarize_embeddings(reference, per_dim_ks=False)
    t_ref = time.perf_counter() - start
    print(f"reference summary, once: {t_ref:.3f} s")

    result = compare_embeddings(summary, current, per_dim_ks=False)
    t_ours = best_of(lambda: compare_embeddings(summary, current, per_dim_ks=False))
    verdict = "OK" if t_ours <= 3 * t_mem else "MISSED"
    print(
        f"ours, current side (norm PSI+KL, cosine to history, centroid shift): {t_ours:.3f} s "
        f"= {t_ours / t_sum:.2f}x x.sum, {t_ours / t_gemm:.2f}x ones@x; goal <= 3x: {verdict}"
    )
    time_per_dim_ks(reference, current, min(args.ks_rows, args.rows))
    print(
        f"  norm_psi={result.norm_psi:.5f} norm_kl={result.norm_kl:.5f} "
        f"cosine_to_history={result.cosine_to_history:.3e} "
        f"centroid_shift={result.centroid_shift:.4f} "
        f"centroid_cosine_distance={result.centroid_cosine_distance:.5f}"
    )
    compare_with_evidently(reference, current, args.evidently_rows or args.rows, t_ours, t_ref)


def time_per_dim_ks(reference: np.ndarray, current: np.ndarray, rows: int) -> None:
    """Per-dimension 256-bin KS costs one binary search per value: timed on ``rows`` rows."""
    start = time.perf_counter()
    summary = summarize_embeddings(reference[:rows])
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    drift = compare_embeddings(summary, current[:rows])
    t_cur = time.perf_counter() - start
    per_value = t_cur / (rows * current.shape[1]) * 1e9
    print(
        f"per-dimension binned KS (256 bins) on {rows:,d} rows: reference {t_ref:.2f} s, "
        f"current {t_cur:.2f} s ({per_value:.0f} ns per value), ks_max={drift.ks_max:.4f}"
    )


def compare_with_evidently(reference, current, rows, t_ours, t_ref) -> None:
    try:
        version = import_evidently()[0]
    except ImportError as exc:
        print(f"evidently not importable ({exc}); skipping the comparison")
        return
    scale = reference.shape[0] / rows
    ev, t_ev = evidently_pass(reference[:rows], current[:rows])
    how = (
        "measured at full size"
        if scale == 1
        else (f"measured on {rows:,d} rows and EXTRAPOLATED linearly (x{scale:g})")
    )
    print(
        f"evidently {version}: PSI + KL stattests on norms + distance(cosine): "
        f"{t_ev * scale:.3f} s, {how}"
    )
    print(
        f"ratio evidently / ours: {t_ev * scale / t_ours:.1f}x per batch (reference summary "
        f"reused); {t_ev * scale / (t_ours + t_ref):.1f}x counting our one-off reference "
        "summary; goal >= 50x"
    )
    print("values on Evidently's binning (uniform over the pooled range, Sturges, eps=1e-4):")
    small, _ = evidently_pass(reference[:5000], current[:5000])
    print_value_check(reference[:5000], current[:5000], small)
    print_value_check(reference[:rows], current[:rows], ev)
    print(
        "  (PSI/KL equal while every non-empty bin holds > 1e-4 of its side, e.g. n < 10 000; "
        "beyond, Evidently fills empty bins with min/1e6 and leaves tail bins < 1e-4 "
        "unfloored, we floor every proportion at eps)"
    )


if __name__ == "__main__":
    main()
