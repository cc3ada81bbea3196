"""Drift and retrain-trigger gates on the demo's simulated production logs.

Reference = the production window before the change, current = the one after (the demo writes
them once into ``adapters/logs/`` with its simulator; query vectors from the production
embedder).

**The candidate embedder must not shift production traffic's geometry.** The replayed
production queries are embedded by production and by the candidate, and two views of the space
that only use cosines inside it are compared (so a candidate whose space is a rotation of
production's passes, where an MMD of the raw vectors would call it drift; norms are not used:
unit vectors have norm 1 by construction):

* ``drift-retrieval-top1-score``: PSI of each query's top-1 retrieval score (its cosine to the
  best document of the served index). Score thresholds, "no good match" fallbacks and the
  reranker's inputs are tuned on this distribution.
* ``drift-query-neighbour-cosine``: KS of each query's cosine to its nearest other replayed
  query: how tightly traffic clusters (a collapsed space pushes it up, a scattered one down).

The two sides are the same queries, so the samples are positively correlated; the
independent-sample tests are then conservative (fewer false alarms, less power), which suits a
gate. ``tests/metrics/test_embedding_geometry.py`` shows both fire on a collapsed space and stay
quiet on a rotation and on a small perturbation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from guardrails.metrics.drift import nearest_neighbour_cosine

REPLAYED = 400  # distinct production queries replayed through both embedders
TOP1_PSI_MAX = 0.2  # between PSI's "moderate" (0.1) and "major" (0.25) shift bands
NEIGHBOUR_KS_MAX = 0.2  # the two CDFs of nearest-neighbour cosine 20 points apart


def _replayed(drift_windows: Any) -> list[str]:
    return sorted(set(drift_windows[1].queries))[:REPLAYED]


def _record_embedders(gate: Any, production: Any, candidate: Any) -> None:
    for role, emb in (("baseline", production), ("candidate", candidate)):
        gate.record(
            artifact={"component": "embedder", "role": role, "fingerprint": emb.fingerprint}
        )


def _top1(retriever: Any, queries: list[str]) -> np.ndarray:
    ids = [f"replayed-{i}" for i in range(len(queries))]
    run = retriever.search_run(ids, queries, 1)
    return np.array([max(run[i].values(), default=np.nan) for i in ids])


def test_candidate_keeps_top1_retrieval_scores(
    gate: Any,
    production_embedder: Any,
    candidate_embedder: Any,
    production_retriever: Any,
    candidate_retriever: Any,
    drift_windows: Any,
) -> None:
    """The candidate must not shift how well production queries match their best document."""
    queries = _replayed(drift_windows)
    _record_embedders(gate, production_embedder, candidate_embedder)
    gate.no_drift(
        "psi",
        reference=_top1(production_retriever, queries),
        current=_top1(candidate_retriever, queries),
        name="drift-retrieval-top1-score",
        maximum=TOP1_PSI_MAX,
    )


def test_candidate_keeps_query_neighbourhoods(
    gate: Any, production_embedder: Any, candidate_embedder: Any, drift_windows: Any
) -> None:
    """The candidate must not collapse or scatter production queries' neighbourhoods."""
    queries = _replayed(drift_windows)
    _record_embedders(gate, production_embedder, candidate_embedder)
    gate.no_drift(
        "ks",
        reference=nearest_neighbour_cosine(production_embedder.encode_queries(queries)),
        current=nearest_neighbour_cosine(candidate_embedder.encode_queries(queries)),
        name="drift-query-neighbour-cosine",
        maximum=NEIGHBOUR_KS_MAX,
    )


def test_new_domain_triggers_retraining(
    gate: Any, drift_windows: Any, trigger_decision: Any
) -> None:
    """After the launch the event trigger fires and names the retriever and the generator.
    (The stack's ``trigger_decision`` fixture records the decision for the reports.)"""
    reference, current = drift_windows
    gate.no_drift(
        "psi",
        reference=reference.rerank_scores,
        current=current.rerank_scores,
        name="drift-rerank-scores",
        maximum=0.1,
    )
    new_domain = [f for f in trigger_decision.findings if f.signal == "new_domain"]
    assert new_domain and new_domain[0].kind == "event", trigger_decision.summary_lines()
    assert {"retriever", "generator"} <= set(new_domain[0].components)
    assert trigger_decision.fire and {"retriever", "generator"} <= set(trigger_decision.components)
