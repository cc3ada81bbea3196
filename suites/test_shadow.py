"""Shadow index vs production: golden quality, agreement on traffic, latency, throughput, memory.

The shadow is the candidate embedder over a freshly built index (``--guardrails-shadow-index``,
HNSW by default). A sample of traffic (every golden query plus logged production queries) is
mirrored to both; ``--guardrails-shadow-share`` replays a gradual migration with only that
share routed to the shadow.

Performance guardrails, each paired: mean per-query latency (paired by query), p95 latency
(per contiguous block of routed queries, paired by block: a quantile is not a per-query
score), batch throughput over the whole traffic sample (paired by repeat, the side that
goes first alternating), and serving memory (index + embedder weights: one number per side,
recorded as a fact and bounded at 1.5x production's).
"""

from __future__ import annotations

from typing import Any

import pytest

# Throughput repeats: with the exact sign-flip test the smallest p-value is 2**-repeats, and a
# failure must survive Holm across the run's ~30 gates (0.05 / 30 ~ 0.0017): 10 repeats.
THROUGHPUT_REPEATS = 10
MEMORY_RATIO = 1.5  # the shadow may need at most this multiple of production's memory


@pytest.fixture(scope="session")
def traffic(retrieval_golden: dict[str, Any], logged_queries: list[str]) -> list[tuple[str, str]]:
    """The mirrored sample: every golden query, then logged production queries."""
    from guardrails.components.shadow import traffic_sample

    golden = [(q, g.queries[q]) for g in retrieval_golden.values() for q in g.query_ids]
    return traffic_sample(golden, logged_queries, size=len(golden) + 100)


@pytest.fixture(scope="session")
def replay(
    pytestconfig: pytest.Config,
    traffic: list[tuple[str, str]],
    production_retriever: Any,
    shadow_retriever: Any,
) -> Any:
    from guardrails.components.shadow import replay_traffic

    return replay_traffic(
        production_retriever,
        shadow_retriever,
        traffic,
        shadow_share=pytestconfig.getoption("--guardrails-shadow-share"),
    )


@pytest.fixture(scope="session")
def serving_memory(production_retriever: Any, shadow_retriever: Any) -> dict[str, dict[str, int]]:
    """Bytes each side holds to serve: index + embedder parameters and buffers."""
    from guardrails.components.shadow import serving_memory_bytes

    return {
        "production": serving_memory_bytes(production_retriever),
        "shadow": serving_memory_bytes(shadow_retriever),
    }


def _record(gate: Any, production: Any, shadow: Any) -> None:
    for role, retriever in (("baseline", production), ("candidate", shadow)):
        for component, fp in retriever.fingerprints.items():
            gate.record(artifact={"component": component, "role": role, "fingerprint": fp})


def test_shadow_golden_quality(
    gate: Any,
    replay: Any,
    retrieval_golden: dict[str, Any],
    production_retriever: Any,
    shadow_retriever: Any,
    domain: str,
) -> None:
    """On the routed golden queries the shadow is no worse than production (nDCG@10)."""
    golden = retrieval_golden[domain]
    qids = [q for q in golden.query_ids if q in set(replay.query_ids)]
    _record(gate, production_retriever, shadow_retriever)
    gate.noninferior(
        "ndcg@10",
        candidate=replay.shadow_run,
        baseline=replay.production_run,
        qrels=golden,
        ids=qids,
        name=f"shadow-{domain}:ndcg@10",
    )


def test_shadow_agrees_on_traffic(gate: Any, replay: Any) -> None:
    """The shadow's top-10 overlaps production's on the traffic sample (a sanity floor: a
    new embedder may reorder, but not return unrelated documents)."""
    ids = list(replay.query_ids)
    gate.at_least("top_k_overlap@10", candidate=replay.overlap, ids=ids, name="shadow-overlap")
    gate.at_least("rbo", candidate=replay.rbo, ids=ids, name="shadow-rbo")


def test_shadow_latency(gate: Any, replay: Any, serving_memory: dict[str, Any]) -> None:
    """Per-query latency (embed + search) of the shadow is non-inferior to production's."""
    gate.record(facts={**replay.to_extra(), "serving_memory_bytes": serving_memory})
    result = gate.noninferior(
        "latency",
        candidate=replay.shadow_latency_ms,
        baseline=replay.production_latency_ms,
        ids=list(replay.query_ids),
        name="shadow-latency",
    )
    assert result.passed


def test_shadow_latency_p95(gate: Any, replay: Any) -> None:
    """The shadow's p95 latency is non-inferior to production's: per-block p95 of the routed
    queries in replay order, paired by block (batch means of a quantile)."""
    blocks = replay.block_p95()
    gate.record(facts={"latency_p95_blocks": {"n": len(blocks.sizes), "sizes": blocks.sizes}})
    result = gate.noninferior(
        "latency_p95",
        candidate=blocks.shadow,
        baseline=blocks.production,
        ids=list(blocks.ids),
        name="shadow-latency-p95",
    )
    assert result.passed


def test_shadow_throughput(
    gate: Any, traffic: list[tuple[str, str]], production_retriever: Any, shadow_retriever: Any
) -> None:
    """Batch throughput (queries/s, embed + search) of the shadow is non-inferior to
    production's over the whole traffic sample, paired by repeat."""
    from guardrails.components.shadow import measure_throughput

    tp = measure_throughput(
        production_retriever,
        shadow_retriever,
        [text for _, text in traffic],
        repeats=THROUGHPUT_REPEATS,
    )
    gate.record(facts={"throughput": tp.summary()})
    result = gate.noninferior(
        "throughput",
        candidate=tp.shadow_qps,
        baseline=tp.production_qps,
        ids=tp.ids,
        name="shadow-throughput",
    )
    assert result.passed


def test_shadow_index_memory(gate: Any, serving_memory: dict[str, Any]) -> None:
    """The shadow's serving memory (index + embedder weights) is at most 1.5x production's.

    One number per side, so a bound rather than a statistical gate; the numbers are recorded
    as facts (and in the ``shadow-latency`` gate's facts, since facts reach the verdict only
    on a gate)."""
    production, shadow = serving_memory["production"], serving_memory["shadow"]
    limit = MEMORY_RATIO * production["total"]
    gate.record(facts={"serving_memory_bytes": serving_memory, "limit_bytes": limit})
    assert shadow["total"] <= limit, (
        f"shadow needs {shadow['total']} bytes to serve (index {shadow['index']}, model "
        f"{shadow['model']}); production {production['total']} (index {production['index']}, "
        f"model {production['model']}), limit {MEMORY_RATIO:g}x = {limit:.0f}"
    )
