"""Reranker gates: retrieval top-20 reranked by the candidate vs by production, per domain."""

from __future__ import annotations

from typing import Any

import pytest

TOP_K = 20


@pytest.fixture(scope="session")
def reranked(
    retrieval_golden: dict[str, Any],
    retrieval_runs: dict,
    knowledge_base: dict,
    production_reranker: Any,
    candidate_reranker: Any,
) -> dict[str, tuple]:
    """``{domain: (production-reranked run, candidate-reranked run)}`` over production's
    retrieval, so the gate isolates the reranker."""
    out = {}
    for domain, golden in retrieval_golden.items():
        run = retrieval_runs[domain][0]
        prod = production_reranker.rerank_run(run, golden.queries, knowledge_base, top_k=TOP_K)
        cand = (
            prod
            if candidate_reranker is production_reranker
            else candidate_reranker.rerank_run(run, golden.queries, knowledge_base, top_k=TOP_K)
        )
        out[domain] = (prod, cand)
    return out


def test_reranker_quality(
    gate: Any,
    reranked: dict,
    retrieval_golden: dict[str, Any],
    production_reranker: Any,
    candidate_reranker: Any,
    guardrails_stack: Any,
    domain: str,
) -> None:
    """Superior on a new domain (the candidate adapter was trained for it), non-inferior on an
    established one."""
    prod, cand = reranked[domain]
    for role, r in (("baseline", production_reranker), ("candidate", candidate_reranker)):
        gate.record(artifact={"component": "reranker", "role": role, "fingerprint": r.fingerprint})
    name = f"reranker-{domain}:ndcg@10"
    new = guardrails_stack.domains[domain].is_new
    if new and candidate_reranker is not production_reranker:
        gate.superior(
            "ndcg@10", candidate=cand, baseline=prod, qrels=retrieval_golden[domain], name=name
        )
    else:
        gate.noninferior(
            "ndcg@10", candidate=cand, baseline=prod, qrels=retrieval_golden[domain], name=name
        )


def test_reranked_floor(
    gate: Any, reranked: dict, retrieval_golden: dict[str, Any], domain: str
) -> None:
    """Reranking must leave nDCG@10 above the absolute floor (a reranker that scrambles the
    retriever's order is caught here even when candidate and production are equally bad)."""
    _, cand = reranked[domain]
    gate.at_least(
        "ndcg@10",
        candidate=cand,
        qrels=retrieval_golden[domain],
        name=f"reranker-floor-{domain}:ndcg@10",
    )
