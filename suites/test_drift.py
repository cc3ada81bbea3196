"""Drift and retrain-trigger gates on the demo's simulated production logs.

Reference = the day before ``devices`` launches, current = the day after (written once into
``adapters/logs/`` by the simulator, query vectors from the production embedder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "adapters" / "logs"


@pytest.fixture(scope="session")
def simulated_logs(production_embedder: Any) -> tuple[Path, Path]:
    """``(reference.jsonl, current.jsonl)``; simulated with the demo config when absent."""
    reference, current = LOGS / "reference.jsonl", LOGS / "current.jsonl"
    if not (reference.is_file() and current.is_file()):
        from guardrails.simulator import demo_config, write_simulated_logs

        write_simulated_logs(LOGS, demo_config(), ROOT / "golden", production_embedder)
    return reference, current


@pytest.fixture(scope="session")
def drift_windows(simulated_logs: tuple[Path, Path]) -> tuple[Any, Any]:
    from guardrails.drift_report import load_window

    return load_window(simulated_logs[0]), load_window(simulated_logs[1])


def _norms(embedder: Any, queries: list[str]) -> np.ndarray:
    # rounded: unit vectors' norms differ only by float32 noise, which is not drift
    return np.round(np.linalg.norm(embedder.encode_queries(queries), axis=1), 5)


def test_candidate_keeps_query_norms(
    gate: Any, production_embedder: Any, candidate_embedder: Any, drift_windows: Any
) -> None:
    """The candidate embedder must not shift the norms of real production queries."""
    queries = sorted(set(drift_windows[1].queries))[:400]
    for role, emb in (("production", production_embedder), ("candidate", candidate_embedder)):
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


def test_new_domain_triggers_retraining(gate: Any, drift_windows: Any) -> None:
    """After the launch the event trigger fires and names the retriever and the generator."""
    from guardrails.drift_report import compare_windows
    from guardrails.triggers import decide_triggers, window_pair

    reference, current = drift_windows
    report = compare_windows(reference, current, projections=False)
    assert reference.batch is not None and current.batch is not None
    signals = window_pair(reference.batch.records, current.batch.records)
    decision = decide_triggers(*signals, report)
    gate.record(facts={"drift_alarms": list(report.alarms), "triggers": decision.to_dict()})
    gate.no_drift(
        "psi",
        reference=reference.rerank_scores,
        current=current.rerank_scores,
        name="drift-rerank-scores",
        maximum=0.1,
    )
    new_domain = [f for f in decision.findings if f.signal == "new_domain"]
    assert new_domain and new_domain[0].kind == "event", decision.summary_lines()
    assert {"retriever", "generator"} <= set(new_domain[0].components)
    assert decision.fire and {"retriever", "generator"} <= set(decision.components)
