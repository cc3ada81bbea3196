"""Retrieval golden gates: the candidate retriever vs production, per product area.

Copy and edit: each domain's golden queries (graded qrels) are searched by production and by
the candidate; the gates compare per-query scores with paired statistics under the policy in
``[tool.guardrails]``.
"""

from __future__ import annotations

from typing import Any

import pytest

DEPTH = 100


def _record(gate: Any, production: Any, candidate: Any) -> None:
    # only the embedder: the index a promotion switches to is the shadow index, which
    # test_shadow.py records (a verdict names one candidate per component)
    for role, retriever in (("baseline", production), ("candidate", candidate)):
        gate.record(
            artifact={
                "component": "embedder",
                "role": role,
                "fingerprint": retriever.embedder.fingerprint,
            }
        )


def _top(run: dict, qid: str, golden: Any, n: int = 3) -> str:
    ranked = sorted(run.get(qid, {}).items(), key=lambda kv: -kv[1])[:n]
    grades = golden.qrels.get(qid, {})
    return "\n".join(f"[{grades.get(d, '-')}] {d}: {golden.corpus[d].title}" for d, _ in ranked)


def _examples(golden: Any, production: dict, candidate: dict) -> dict[str, dict[str, str]]:
    """What the report shows beside each worst query: its text and both top-3 lists."""
    return {
        q: {
            "input": golden.queries[q],
            "baseline": _top(production, q, golden),
            "candidate": _top(candidate, q, golden),
        }
        for q in golden.query_ids
    }


@pytest.mark.parametrize("metric", ["ndcg@10", "mrr@10", "recall@10"])
def test_retrieval_noninferior(
    gate: Any,
    retrieval_golden: dict[str, Any],
    retrieval_runs: dict,
    production_retriever: Any,
    candidate_retriever: Any,
    domain: str,
    metric: str,
) -> None:
    """The candidate loses no more than the policy's max-drop on this domain."""
    production, candidate = retrieval_runs[domain]
    _record(gate, production_retriever, candidate_retriever)
    gate.record(examples=_examples(retrieval_golden[domain], production, candidate))
    gate.noninferior(
        metric,
        candidate=candidate,
        baseline=production,
        qrels=retrieval_golden[domain],
        name=f"retrieval-{domain}:{metric}",
    )


def test_retrieval_floor(
    gate: Any, retrieval_golden: dict[str, Any], retrieval_runs: dict, domain: str
) -> None:
    """Whatever the baseline, the candidate's nDCG@10 clears the absolute floor."""
    _, candidate = retrieval_runs[domain]
    gate.at_least(
        "ndcg@10",
        candidate=candidate,
        qrels=retrieval_golden[domain],
        name=f"retrieval-floor-{domain}:ndcg@10",
    )
