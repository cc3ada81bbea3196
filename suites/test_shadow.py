"""Shadow index vs production: golden quality, agreement on traffic, latency, memory.

The shadow is the candidate embedder over a freshly built index (``--guardrails-shadow-index``,
HNSW by default). A sample of traffic (every golden query plus logged production queries) is
mirrored to both; ``--guardrails-shadow-share`` replays a gradual migration with only that
share routed to the shadow.
"""

from __future__ import annotations

from typing import Any

import pytest

DOMAINS = ("payments", "devices")


@pytest.fixture(scope="session")
def replay(
    pytestconfig: pytest.Config,
    retrieval_golden: dict[str, Any],
    production_retriever: Any,
    shadow_retriever: Any,
    logged_queries: list[str],
) -> Any:
    from guardrails.shadow import replay_traffic, traffic_sample

    golden = [(q, g.queries[q]) for g in retrieval_golden.values() for q in g.query_ids]
    sample = traffic_sample(golden, logged_queries, size=len(golden) + 100)
    return replay_traffic(
        production_retriever,
        shadow_retriever,
        sample,
        shadow_share=pytestconfig.getoption("--guardrails-shadow-share"),
    )


def _record(gate: Any, production: Any, shadow: Any) -> None:
    for role, retriever in (("baseline", production), ("candidate", shadow)):
        for component, fp in retriever.fingerprints.items():
            gate.record(artifact={"component": component, "role": role, "fingerprint": fp})


@pytest.mark.parametrize("domain", DOMAINS)
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


def test_shadow_latency(gate: Any, replay: Any) -> None:
    """Per-query latency (embed + search) of the shadow is non-inferior to production's."""
    gate.record(facts=replay.to_extra())
    result = gate.noninferior(
        "latency",
        candidate=replay.shadow_latency_ms,
        baseline=replay.production_latency_ms,
        ids=list(replay.query_ids),
        name="shadow-latency",
    )
    assert result.passed


def test_shadow_index_memory(replay: Any) -> None:
    """The shadow index fits in twice production's memory."""
    limit = 2 * replay.production_memory_bytes
    assert replay.shadow_memory_bytes <= limit, (
        f"shadow index needs {replay.shadow_memory_bytes} bytes; production "
        f"{replay.production_memory_bytes}, limit {limit}"
    )
