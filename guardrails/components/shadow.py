"""Shadow index and traffic replay: mirror a sample of queries to production and to a shadow
retriever (a new embedder over its own index), and measure them paired.

Per replayed query: top-k overlap and rank-biased overlap between the two result lists,
each side's latency (embed + search), and, for golden queries, the ranking metrics. A
``shadow_share`` below 1 replays a gradual migration: only that share of the traffic (chosen
with the seed) is routed to the shadow, and the comparison uses exactly those queries.

Performance beyond the mean latency, each measured so that a paired gate applies:

* **p95 latency** (:func:`block_quantiles`, :meth:`ReplayResult.block_p95`): a quantile is
  not a per-query score, so the routed queries are cut, in replay order, into contiguous
  blocks and each side's p95 is taken within each block (batch means of a quantile); the
  per-block values are paired by block (both sides answered the same queries, interleaved).
* **throughput** (:func:`measure_throughput`): batch queries/second over the traffic texts,
  one value per repeat and side, the side that goes first alternating between repeats.
* **serving memory** (:func:`serving_memory_bytes`): index bytes plus the embedder's
  parameter and buffer bytes. A single number per side, so it is a recorded fact and a
  plain bound, not a statistical gate.

Everything is deterministic (routing, blocks, order) except the timings themselves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrails.errors import ComponentError

__all__ = [
    "BlockQuantiles",
    "ReplayResult",
    "Throughput",
    "block_quantiles",
    "measure_throughput",
    "model_memory_bytes",
    "replay_traffic",
    "serving_memory_bytes",
    "traffic_sample",
]

MIN_BLOCK = 20  # queries per block below which a block p95 is little more than its maximum


@dataclass(frozen=True)
class BlockQuantiles:
    """A latency quantile of each side per contiguous block of queries, paired by block."""

    ids: tuple[str, ...]
    production: np.ndarray
    shadow: np.ndarray
    sizes: tuple[int, ...]
    q: float


def _n_blocks(n: int) -> int:
    """``max(5, n // 30)`` blocks when every block keeps >= ``MIN_BLOCK`` queries, else as
    many blocks of >= ``MIN_BLOCK`` as fit (at least one: too few blocks leave the gate
    inconclusive, which is the honest answer for so little traffic)."""
    if n >= 5 * MIN_BLOCK:
        return max(5, n // 30)
    return max(1, n // MIN_BLOCK)


def block_quantiles(
    production_ms: Sequence[float] | np.ndarray,
    shadow_ms: Sequence[float] | np.ndarray,
    *,
    q: float = 95.0,
    blocks: int | None = None,
    ids: Sequence[str] | None = None,
) -> BlockQuantiles:
    """Per-block ``q``-th percentile of paired per-query latencies: batch means of a quantile,
    paired by block.

    Method: the ``n`` queries, in replay order, are split into ``B`` contiguous blocks of
    near-equal size (``np.array_split``; default ``B = max(5, n // 30)``, fewer when a block
    would hold under ``MIN_BLOCK`` = 20 queries); within each block each side's percentile
    is ``np.percentile(block, q)`` (linear interpolation). Block ``b`` of production and
    block ``b`` of the shadow cover the same queries timed under the same conditions, so the
    pair is one sample of the gate; the mean over blocks estimates the p95, and blocks that
    are contiguous in time make the pairs close to independent (a batch-means argument).
    The small-block bias of a sample quantile is the same on both sides and largely cancels
    in the paired difference.

    ``ids`` are the query ids (for the block labels ``"block-00:<first>..<last>"``).
    Raises :class:`ComponentError` for unpaired or empty latencies or a bad ``blocks``.
    """
    prod = np.asarray(production_ms, dtype=np.float64)
    shadow = np.asarray(shadow_ms, dtype=np.float64)
    if prod.ndim != 1 or prod.shape != shadow.shape or prod.size == 0:
        raise ComponentError(
            f"block quantiles need paired non-empty latencies; got {prod.shape} and {shadow.shape}"
        )
    n = prod.size
    b = _n_blocks(n) if blocks is None else int(blocks)
    if not 1 <= b <= n:
        raise ComponentError(f"blocks={blocks!r} for n={n} queries; allowed: 1 <= blocks <= n")
    if not 0.0 <= q <= 100.0:
        raise ComponentError(f"q={q!r}; allowed: 0 <= q <= 100")
    names = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ComponentError(f"{len(names)} ids for {n} latencies")
    parts = np.array_split(np.arange(n), b)
    width = len(str(b - 1))
    return BlockQuantiles(
        ids=tuple(
            f"block-{i:0{width}d}:{names[p[0]]}..{names[p[-1]]}" for i, p in enumerate(parts)
        ),
        production=np.array([np.percentile(prod[p], q) for p in parts]),
        shadow=np.array([np.percentile(shadow[p], q) for p in parts]),
        sizes=tuple(int(p.size) for p in parts),
        q=float(q),
    )


@dataclass(frozen=True)
class ReplayResult:
    """Paired measurements of production and shadow on the routed queries."""

    query_ids: tuple[str, ...]
    production_run: dict[str, dict[str, float]]
    shadow_run: dict[str, dict[str, float]]
    production_latency_ms: np.ndarray
    shadow_latency_ms: np.ndarray
    overlap: np.ndarray
    rbo: np.ndarray
    k: int
    shadow_share: float
    n_offered: int
    production_memory_bytes: int
    shadow_memory_bytes: int

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """p50 / p95 / p99 latency (ms) of each side."""
        return {
            side: {f"p{q}": float(np.percentile(lat, q)) for q in (50, 95, 99)}
            for side, lat in (
                ("production", self.production_latency_ms),
                ("shadow", self.shadow_latency_ms),
            )
        }

    def block_p95(self, blocks: int | None = None) -> BlockQuantiles:
        """Each side's p95 latency (ms) per contiguous block of routed queries, in replay
        order (see :func:`block_quantiles`)."""
        return block_quantiles(
            self.production_latency_ms,
            self.shadow_latency_ms,
            q=95.0,
            blocks=blocks,
            ids=self.query_ids,
        )

    def to_extra(self) -> dict[str, Any]:
        """JSON-able facts for a gate's ``extra`` (the verdict and the report show them)."""
        return {
            "latency_ms": self.latency_summary(),
            "shadow_share": self.shadow_share,
            "n_offered": self.n_offered,
            "n_routed": len(self.query_ids),
            "index_memory_bytes": {
                "production": self.production_memory_bytes,
                "shadow": self.shadow_memory_bytes,
            },
        }


def traffic_sample(
    golden_queries: Sequence[tuple[str, str]],
    logged_queries: Sequence[str] = (),
    *,
    size: int = 300,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """Up to ``size`` (id, text) pairs: every golden query, then logged production queries
    (deduplicated, sampled with the seed) to fill the rest."""
    sample = list(golden_queries)[:size]
    seen = {text for _, text in sample}
    fresh = list(dict.fromkeys(q for q in logged_queries if q and q not in seen))
    rng = np.random.default_rng(seed)
    room = max(size - len(sample), 0)
    if fresh and room:
        picks = rng.choice(len(fresh), min(room, len(fresh)), replace=False)
        sample += [(f"log-{i}", fresh[i]) for i in sorted(picks)]
    return sample


def _routed(n: int, share: float, seed: int) -> np.ndarray:
    if not 0.0 < share <= 1.0:
        raise ComponentError(f"shadow_share={share!r}; allowed: 0 < shadow_share <= 1")
    if share == 1.0:
        return np.ones(n, dtype=bool)
    return np.random.default_rng(seed).random(n) < share


def _interleaved(
    production: Any, shadow: Any, ids: Sequence[str], texts: Sequence[str], depth: int
) -> tuple[dict, dict, list[float], list[float]]:
    """Both sides per query, alternating which goes first, after one untimed warm-up each.

    Timing all of production and then all of the shadow lets a change in machine load
    (another job, thermal throttling) land on one side only; per-query interleaving puts both
    sides under the same conditions, so the paired latency difference is the models'.
    """
    production.timed_search(ids[:1], texts[:1], depth)  # lazy initialisation, caches
    shadow.timed_search(ids[:1], texts[:1], depth)
    runs: tuple[dict, dict] = ({}, {})
    lat: tuple[list[float], list[float]] = ([], [])
    for i, (qid, text) in enumerate(zip(ids, texts, strict=True)):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            run, seconds = (production, shadow)[side].timed_search([qid], [text], depth)
            runs[side].update(run)
            lat[side].append(seconds[0])
    return runs[0], runs[1], lat[0], lat[1]


def replay_traffic(
    production: Any,
    shadow: Any,
    queries: Sequence[tuple[str, str]],
    *,
    k: int = 10,
    depth: int = 100,
    shadow_share: float = 1.0,
    seed: int = 0,
    rbo_p: float = 0.9,
) -> ReplayResult:
    """Replay ``queries`` through both retrievers (``Retriever``-like: ``timed_search``)."""
    from guardrails.metrics.overlap import overlap_per_query, rbo_per_query

    mask = _routed(len(queries), shadow_share, seed)
    routed = [q for q, keep in zip(queries, mask, strict=True) if keep]
    if not routed:
        raise ComponentError(
            f"no query routed to the shadow (n={len(queries)}, "
            f"shadow_share={shadow_share}); raise the share or the sample"
        )
    ids, texts = [q for q, _ in routed], [t for _, t in routed]
    prod_run, shadow_run, prod_lat, shadow_lat = _interleaved(production, shadow, ids, texts, depth)
    return ReplayResult(
        query_ids=tuple(ids),
        production_run=prod_run,
        shadow_run=shadow_run,
        production_latency_ms=np.asarray(prod_lat) * 1000.0,
        shadow_latency_ms=np.asarray(shadow_lat) * 1000.0,
        overlap=overlap_per_query(prod_run, shadow_run, k, qids=ids),
        rbo=rbo_per_query(prod_run, shadow_run, p=rbo_p, depth=depth, qids=ids),
        k=k,
        shadow_share=shadow_share,
        n_offered=len(queries),
        production_memory_bytes=int(production.index.memory_bytes()),
        shadow_memory_bytes=int(shadow.index.memory_bytes()),
    )


@dataclass(frozen=True)
class Throughput:
    """Batch throughput (queries/second) per repeat, paired by repeat; ``first[r]`` names
    the side that ran first in repeat ``r``."""

    production_qps: np.ndarray
    shadow_qps: np.ndarray
    first: tuple[str, ...]
    n_queries: int
    batch_size: int

    @property
    def ids(self) -> list[str]:
        return [f"repeat-{r}:{side}-first" for r, side in enumerate(self.first)]

    def summary(self) -> dict[str, Any]:
        """JSON-able facts: mean qps per side, repeats, queries, batch size."""
        return {
            "mean_qps": {
                "production": float(self.production_qps.mean()),
                "shadow": float(self.shadow_qps.mean()),
            },
            "repeats": len(self.first),
            "n_queries": self.n_queries,
            "batch_size": self.batch_size,
        }


def _batched_qps(retriever: Any, ids: list[str], texts: list[str], batch: int, depth: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        retriever.search_run(ids[i : i + batch], texts[i : i + batch], depth)
    elapsed = time.perf_counter() - start
    return len(texts) / max(elapsed, 1e-9)


def measure_throughput(
    production: Any,
    shadow: Any,
    texts: Sequence[str],
    *,
    repeats: int = 5,
    batch_size: int = 32,
    depth: int = 100,
) -> Throughput:
    """Queries/second of both retrievers (``Retriever``-like: ``search_run``) over ``texts``.

    After one untimed warm-up batch each, every repeat embeds and searches all ``texts`` in
    batches of ``batch_size`` on one side and then on the other; production goes first in
    even repeats, the shadow in odd ones, so warm caches and a drift in machine load do not
    favour one side. Each repeat gives one paired sample (a gate needs >= 3; with the exact
    sign-flip test the smallest p-value is ``2**-repeats``).
    """
    texts = list(texts)
    if not texts:
        raise ComponentError("throughput needs at least one query text")
    if repeats < 1 or batch_size < 1:
        raise ComponentError(f"repeats={repeats!r}, batch_size={batch_size!r}; both must be >= 1")
    ids = [f"t{i}" for i in range(len(texts))]
    for side in (production, shadow):
        side.search_run(ids[:batch_size], texts[:batch_size], depth)  # lazy initialisation
    qps: tuple[list[float], list[float]] = ([], [])
    first = []
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        first.append(("production", "shadow")[order[0]])
        for side in order:
            retriever = (production, shadow)[side]
            qps[side].append(_batched_qps(retriever, ids, texts, batch_size, depth))
    return Throughput(
        production_qps=np.asarray(qps[0]),
        shadow_qps=np.asarray(qps[1]),
        first=tuple(first),
        n_queries=len(texts),
        batch_size=batch_size,
    )


def model_memory_bytes(model: Any) -> int:
    """Bytes of a torch module's parameters and buffers (``numel * element_size``; shared
    tensors counted once, as ``parameters()`` / ``buffers()`` yield them once)."""
    tensors = [*model.parameters(), *model.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))


def serving_memory_bytes(retriever: Any) -> dict[str, int]:
    """What a retriever holds in memory to serve: ``{"index", "model", "total"}`` bytes.

    ``model`` counts the embedder's parameters and buffers; after a LoRA merge the
    candidate keeps the (small) LoRA tensors beside the merged base weights, and they count.
    Activations and allocator overhead are not included: a like-for-like static footprint.
    """
    index = int(retriever.index.memory_bytes())
    model = model_memory_bytes(retriever.embedder.model)
    return {"index": index, "model": model, "total": index + model}
