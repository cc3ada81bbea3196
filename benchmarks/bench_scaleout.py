"""Scale-out overhead: drift and batch re-embed in-process vs on Ray Data, same machine, same run.

Goal (issue 15, item 4): ``guardrails drift`` / ``guardrails reembed`` reach Ray; on one machine
Ray can only add overhead, so this prints how much (``ray / in-process`` wall time) and checks
that the results are equal.

1. drift: a seeded reference of ``--ref-rows`` and a current window of ``--rows`` Gaussian
   vectors of ``--dim`` dimensions (the current shifted by ``--shift`` in every coordinate).
   The reference is profiled once (timed apart) and both sides run
   :func:`~guardrails.monitoring.drift.compare_windows` on it, the path ``guardrails drift``
   takes: in-process, and with ``summarize=scaleout.summarizer(config)`` (the current window's
   histograms, sums and norm moments reduced on Ray Data in blocks of ``--block-rows`` rows,
   merged on the driver; everything else stays on the driver). The summarize step is timed
   inside both runs. Equal: every statistic's value and p-values within 1e-6 relative, the
   alarms identical.
2. re-embed: :func:`~guardrails.components.reembed.batch_reembed` of ``--docs`` documents into
   a flat index with the real MiniLM (``minilm_path()``, CPU, no cache), in-process and with
   ``encode=scaleout.encoder(config, factory)`` (``--actors`` Ray actors, each loading MiniLM
   once, batches of ``--batch-size`` texts). Corpus: the DBpedia-Entity sample beside the
   checkout when present (read in place, never copied), else seeded synthetic texts
   (``bench_reembed.load_texts``). Equal: vectors within 1e-5 absolute, the same top-10 of 200
   queries.

Ray is local (``ray.init(num_cpus=os.cpu_count())``); its start-up is timed apart and not in
the ratios. The machine is shared: run it once, niced::

    nice -n 10 python benchmarks/bench_scaleout.py --rows 600000 --docs 600 [--json]

Measured 2026-12-06 (2 cores shared, load average 15-21 during the run; ray 2.60.0), with
``--rows 600000 --ref-rows 20000 --docs 600`` (seed 0, 99 permutations, blocks of 65,536 rows,
2 actors, batches of 256; DBpedia-Entity sample):

* drift 600,000 x 384: in-process 91.7 s, Ray 101.5 s, ratio 1.11 (the summarize step alone:
  44.1 s vs 61.6 s, 1.40); equal (largest relative difference 0.0, no alarm on either side).
* re-embed 600 documents with MiniLM: in-process 111.4 s (2 torch threads), Ray 117.6 s
  (2 actors), ratio 1.06; equal (largest absolute difference 7.8e-08, same top-10 for 200
  queries).
* local Ray start 18.9 s, not in the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reembed import load_texts  # benchmarks/ is not a package

from guardrails.components.embedder import Embedder, minilm_path
from guardrails.components.index import IndexConfig
from guardrails.components.reembed import batch_reembed
from guardrails.metrics.drift import summarize_embeddings_like
from guardrails.monitoring import scaleout
from guardrails.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    compare_windows,
    profile_reference,
)
from guardrails.stack import ScaleoutConfig


class _Timed:
    """A summarize hook that adds up the seconds spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter()
        out = self.fn(*args)
        self.seconds += time.perf_counter() - start
        return out


def _wall(run: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def _same_report(a: DriftReport, b: DriftReport) -> tuple[bool, float]:
    """(decisions identical, largest relative difference of any value / p-value)."""
    worst = 0.0
    same = a.alarms == b.alarms and [s.name for s in a.statistics] == [s.name for s in b.statistics]
    for s, t in zip(a.statistics, b.statistics, strict=True):
        same &= (s.alarm, s.floor_met) == (t.alarm, t.floor_met)
        for key in ("value", "p_value", "p_adjusted"):
            x, y = getattr(s, key), getattr(t, key)
            worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
    return same and worst <= 1e-6, worst


def bench_drift(args: argparse.Namespace, config: ScaleoutConfig) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    ref = rng.standard_normal((args.ref_rows, args.dim), dtype=np.float32)
    cur = rng.standard_normal((args.rows, args.dim), dtype=np.float32) + np.float32(args.shift)
    thresholds = DriftThresholds(n_permutations=args.permutations, seed=args.seed)
    profile, profile_s = _wall(lambda: profile_reference(ref, thresholds))
    here_sum = _Timed(summarize_embeddings_like)
    here, here_s = _wall(
        lambda: compare_windows(profile, cur, projections=False, summarize=here_sum)
    )
    ray_sum = _Timed(scaleout.summarizer(config))
    on_ray, ray_s = _wall(
        lambda: compare_windows(profile, cur, projections=False, summarize=ray_sum)
    )
    equal, worst = _same_report(on_ray, here)
    return {
        "rows": args.rows,
        "ref_rows": args.ref_rows,
        "dim": args.dim,
        "shift": args.shift,
        "permutations": args.permutations,
        "block_rows": config.block_rows,
        "profile_s": round(profile_s, 2),
        "in_process_s": round(here_s, 2),
        "ray_s": round(ray_s, 2),
        "ratio": round(ray_s / here_s, 3),
        "summarize_in_process_s": round(here_sum.seconds, 2),
        "summarize_ray_s": round(ray_sum.seconds, 2),
        "summarize_ratio": round(ray_sum.seconds / here_sum.seconds, 3),
        "alarms": list(here.alarms),
        "equal": equal,
        "max_rel_diff": worst,
    }


def bench_reembed(args: argparse.Namespace, config: ScaleoutConfig) -> dict[str, Any]:
    texts, source = load_texts(args.docs, args.seed)
    embedder = Embedder.load(minilm_path())
    embedder.encode(list(texts.values())[:64], progress=False)  # warm-up: first-call overheads
    flat = IndexConfig(kind="flat")
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        here, here_s = _wall(
            lambda: batch_reembed(embedder, texts, Path(tmp) / "a", config=flat, progress=False)
        )
        encode = scaleout.encoder(config, partial(Embedder.load, minilm_path()))
        on_ray, ray_s = _wall(
            lambda: batch_reembed(
                embedder, texts, Path(tmp) / "b", config=flat, progress=False, encode=encode
            )
        )
    ids = sorted(texts)
    a = np.stack([here.reconstruct(d) for d in ids])
    b = np.stack([on_ray.reconstruct(d) for d in ids])
    queries = [texts[d][:200] for d in random.Random(1).sample(ids, min(200, len(ids)))]
    q = embedder.encode_queries(queries, progress=False)
    top_here = here.search(q, 10, embedder_fingerprint=embedder.fingerprint)[1]
    top_ray = on_ray.search(q, 10, embedder_fingerprint=embedder.fingerprint)[1]
    max_abs = float(np.abs(a - b).max())
    return {
        "source": source,
        "docs": len(texts),
        "actors": config.concurrency,
        "batch_size": config.batch_size,
        "torch_threads_in_process": _torch_threads(),
        "in_process_s": round(here_s, 2),
        "ray_s": round(ray_s, 2),
        "ratio": round(ray_s / here_s, 3),
        "max_abs_diff": max_abs,
        "same_top10": top_here == top_ray,
        "equal": max_abs <= 1e-5 and top_here == top_ray,
    }


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    config = ScaleoutConfig(
        backend="ray",
        block_rows=args.block_rows,
        batch_size=args.batch_size,
        concurrency=args.actors,
        num_cpus=os.cpu_count(),
    )
    _, connect_s = _wall(lambda: scaleout.connect(config))
    out: dict[str, Any] = {"ray": ray.__version__, "ray_start_s": round(connect_s, 2)}
    if args.rows:
        out["drift"] = bench_drift(args, config)
    if args.docs:
        out["reembed"] = bench_reembed(args, config)
    out["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_1min_at_end": round(os.getloadavg()[0], 2),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000, help="drift: current rows (0: skip)")
    parser.add_argument("--ref-rows", type=int, default=50_000, help="drift: reference rows")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shift", type=float, default=0.02, help="drift: current mean shift")
    parser.add_argument("--permutations", type=int, default=99, help="drift: MMD / novelty")
    parser.add_argument("--block-rows", type=int, default=65536, help="drift: rows per block")
    parser.add_argument("--docs", type=int, default=600, help="re-embed: documents (0: skip)")
    parser.add_argument("--actors", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=256, help="re-embed: texts per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    print(f"ray {result['ray']}: local start {result['ray_start_s']:.1f} s (not in the ratios)")
    if "drift" in result:
        d = result["drift"]
        print(
            f"drift {d['rows']} x {d['dim']} vs reference {d['ref_rows']} (profile "
            f"{d['profile_s']:.1f} s, once): in-process {d['in_process_s']:.1f} s, "
            f"ray {d['ray_s']:.1f} s, ratio {d['ratio']:.2f}; summarize step "
            f"{d['summarize_in_process_s']:.1f} s vs {d['summarize_ray_s']:.1f} s "
            f"(ratio {d['summarize_ratio']:.2f}); equal={d['equal']} "
            f"(max rel diff {d['max_rel_diff']:.1e}, alarms {d['alarms']})"
        )
    if "reembed" in result:
        r = result["reembed"]
        print(
            f"re-embed {r['docs']} docs ({r['source']}), MiniLM: in-process {r['in_process_s']:.1f}"
            f" s ({r['torch_threads_in_process']} torch threads), ray {r['ray_s']:.1f} s "
            f"({r['actors']} actors), ratio {r['ratio']:.2f}; equal={r['equal']} "
            f"(max abs diff {r['max_abs_diff']:.1e}, same top-10: {r['same_top10']})"
        )
    print(f"load average at the end: {result['machine']['load_1min_at_end']}")


if __name__ == "__main__":
    main()
