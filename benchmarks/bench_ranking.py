"""Ranking metrics, end to end from dicts: guardrails vs pytrec_eval vs ranx.

Usage::

    python benchmarks/bench_ranking.py [--queries 10000] [--depth 100] [--judged 5] [--seed 0]

Input: ``--queries`` queries, each with ``--depth`` retrieved documents (random float scores)
and ``--judged`` judged documents graded 0-2, about 60% of them retrieved. Every library
starts from the same plain dicts; each timing is the best of ``--repeat`` runs and includes
building the library's own objects (pytrec_eval's ``RelevanceEvaluator``, ranx's ``Qrels``
and ``Run``). ranx is run once on a tiny input first so that numba's JIT compilation is not
counted. Values are cross-checked per query (max absolute difference printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrails.metrics.ranking import evaluate_ranking, per_query_ids

# ours -> (pytrec_eval measure, ranx metric); None where the library has no such measure.
METRICS = {
    "ndcg@10": ("ndcg_cut_10", "ndcg@10"),
    "mrr@10": (None, "mrr@10"),
    "mrr": ("recip_rank", None),
    "recall@100": ("recall_100", "recall@100"),
    "precision@10": ("P_10", "precision@10"),
    "map@100": ("map_cut_100", "map@100"),
    "hit_rate@10": ("success_10", "hit_rate@10"),
}


def make_input(
    n_queries: int, depth: int, judged: int, seed: int
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Random qrels (grades 0-2) and run (``depth`` docs per query out of a 1M-doc corpus)."""
    rng = np.random.default_rng(seed)
    docs = rng.integers(0, 1_000_000, size=(n_queries, depth + judged))
    scores = rng.random((n_queries, depth))
    grades = rng.integers(0, 3, size=(n_queries, judged))
    from_run = rng.random((n_queries, judged)) < 0.6
    qrels, run = {}, {}
    for i in range(n_queries):
        row = [f"d{d}" for d in docs[i]]
        run[f"q{i}"] = dict(zip(row[:depth], scores[i].tolist(), strict=True))
        pool = [row[j] if from_run[i, j] else row[depth + j] for j in range(judged)]
        qrels[f"q{i}"] = dict(zip(pool, grades[i].tolist(), strict=True))
    return qrels, run


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[tuple[float, float], Any]:
    """((best wall seconds, best CPU seconds of this process), last result) over ``repeat``.

    CPU time sums all threads (ranx runs numba kernels in parallel); on a busy machine it is
    the steadier of the two.
    """
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return (wall, cpu), out


def run_ours(qrels: dict, run: dict) -> dict[str, np.ndarray]:
    return evaluate_ranking(qrels, run, list(METRICS))


def run_pytrec(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    import pytrec_eval

    measures = {m for m, _ in METRICS.values() if m}
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def run_ranx(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    from ranx import Qrels, Run, evaluate

    ranx_run = Run(run)
    evaluate(Qrels(qrels), ranx_run, [m for _, m in METRICS.values() if m], return_mean=False)
    return ranx_run.scores


def warm_up_ranx() -> None:
    """Compile ranx's numba kernels on a tiny input so JIT time is not measured."""
    qrels, run = make_input(3, 12, 3, seed=1)
    run_ranx(qrels, run)


def max_diffs(ours: dict, pytrec: dict, ranx: dict, ids: list[str]) -> dict[str, tuple]:
    """Per metric: (max |ours - pytrec_eval|, max |ours - ranx|), None where not comparable."""
    out = {}
    for name, (trec_m, ranx_m) in METRICS.items():
        d_trec = d_ranx = None
        if trec_m:
            ref = np.array([pytrec.get(q, {}).get(trec_m, 0.0) for q in ids])
            d_trec = float(np.abs(ours[name] - ref).max())
        if ranx_m:
            ref = np.array([float(ranx[ranx_m].get(q, 0.0)) for q in ids])
            d_ranx = float(np.abs(ours[name] - ref).max())
        out[name] = (d_trec, d_ranx)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--judged", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    qrels, run = make_input(args.queries, args.depth, args.judged, args.seed)
    print(
        f"input: {args.queries} queries x {args.depth} retrieved, {args.judged} judged (0-2), "
        f"seed={args.seed}, cpus={os.cpu_count()}, best of {args.repeat}"
    )
    warm_up_ranx()
    t_ours, ours = best_of(lambda: run_ours(qrels, run), args.repeat)
    t_trec, trec = best_of(lambda: run_pytrec(qrels, run), args.repeat)
    t_ranx, ranx = best_of(lambda: run_ranx(qrels, run), args.repeat)
    print_report(max_diffs(ours, trec, ranx, per_query_ids(qrels)), t_ours, t_trec, t_ranx)
    return 0


def print_report(
    diffs: dict[str, tuple],
    t_ours: tuple[float, float],
    t_trec: tuple[float, float],
    t_ranx: tuple[float, float],
) -> None:
    def fmt(x: float | None) -> str:
        return "      n/a" if x is None else f"{x:9.1e}"

    print(f"\n{'metric':<14}{'|d| trec':>10}{'|d| ranx':>10}")
    for name, (d_trec, d_ranx) in diffs.items():
        print(f"{name:<14}{fmt(d_trec):>10}{fmt(d_ranx):>10}")
    print(f"\n{'library':<14}{'wall s':>9}{'ratio':>8}{'cpu s':>9}{'ratio':>8}")
    for lib, (wall, cpu) in (("guardrails", t_ours), ("pytrec_eval", t_trec), ("ranx", t_ranx)):
        print(f"{lib:<14}{wall:>9.3f}{wall / t_ours[0]:>7.1f}x{cpu:>9.3f}{cpu / t_ours[1]:>7.1f}x")
    print("ratio = library time / guardrails time (higher: guardrails is faster)")


if __name__ == "__main__":
    raise SystemExit(main())
