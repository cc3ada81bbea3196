"""Drift and retrain-trigger gates on the demo's simulated production logs.

Reference = the production window before the change, current = the one after (the demo writes
them once into ``adapters/logs/`` with its simulator; query vectors from the production
embedder).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _norms(embedder: Any, queries: list[str]) -> np.ndarray:
    # rounded: unit vectors' norms differ only by float32 noise, which is not drift
    return np.round(np.linalg.norm(embedder.encode_queries(queries), axis=1), 5)


def test_candidate_keeps_query_norms(
    gate: Any, production_embedder: Any, candidate_embedder: Any, drift_windows: Any
) -> None:
    """The candidate embedder must not shift the norms of real production queries."""
    queries = sorted(set(drift_windows[1].queries))[:400]
    for role, emb in (("baseline", production_embedder), ("candidate", candidate_embedder)):
        gate.record(
            artifact={"component": "embedder", "role": role, "fingerprint": emb.fingerprint}
        )
    gate.no_drift(
        "psi",
        reference=_norms(production_embedder, queries),
        current=_norms(candidate_embedder, queries),
        name="drift-query-norms",
        maximum=0.1,
    )


def test_new_domain_triggers_retraining(
    gate: Any, drift_windows: Any, trigger_decision: Any
) -> None:
    """After the launch the event trigger fires and names the retriever and the generator."""
    reference, current = drift_windows
    gate.record(facts={"triggers": trigger_decision.to_dict()})
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
