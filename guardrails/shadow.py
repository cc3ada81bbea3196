"""Shadow index and traffic replay: mirror a sample of queries to production and to a shadow
retriever (a new embedder over its own index), and measure them paired.

Per replayed query: top-k overlap and rank-biased overlap between the two result lists,
each side's latency (embed + search), and, for golden queries, the ranking metrics. A
``shadow_share`` below 1 replays a gradual migration: only that share of the traffic (chosen
with the seed) is routed to the shadow, and the comparison uses exactly those queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrails.errors import ComponentError

__all__ = ["ReplayResult", "replay_traffic", "traffic_sample"]


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
