"""guardrails: release gates for RAG and LLM stacks, as pytest suites.

The public API, re-exported here and imported on first use (``import guardrails`` stays cheap,
and never imports torch): gates (:class:`Gate`, :func:`evaluate_gate`,
:func:`evaluate_drift_gate`), verdicts (:func:`decide`, :func:`redecide`, :class:`Verdict`,
:func:`load_verdict`, :func:`write_verdict`), policies (:func:`load_policy`), golden-set
loaders (:func:`load_beir`, :func:`load_qa`, :func:`load_canaries`, ...), the refusal detector
:func:`is_refusal`, metric names (:func:`parse_metric`) and the exception tree
(:class:`GuardrailsError` and its subclasses).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from guardrails.errors import (
    ComponentError,
    DependencyError,
    FingerprintMismatch,
    GateError,
    GateFailed,
    GateInconclusive,
    GoldenDataError,
    GuardrailsError,
    LogDataError,
    MetricError,
    MirrorError,
    PolicyError,
    RegistryError,
    StatisticsError,
    TrainingError,
    VerdictError,
)

if TYPE_CHECKING:
    from guardrails.gates import Gate, GateResult, Status, evaluate_drift_gate, evaluate_gate
    from guardrails.golden import (
        is_refusal,
        load_beir,
        load_canaries,
        load_corpus,
        load_preferences,
        load_qa,
        load_trec_qrels,
        load_trec_run,
    )
    from guardrails.metrics import parse_metric, register_metric
    from guardrails.metrics.canary import check_answer
    from guardrails.metrics.degeneration import degeneration
    from guardrails.policy import Policy, load_policy
    from guardrails.verdict.integrity import verify_verdict
    from guardrails.verdict.rules import decide, redecide
    from guardrails.verdict.schema import (
        EXIT_STATUS,
        Decision,
        Verdict,
        load_verdict,
        write_verdict,
    )

# where each lazily imported name lives
_HOME = {
    **dict.fromkeys(
        ("Gate", "GateResult", "Status", "evaluate_drift_gate", "evaluate_gate"),
        "guardrails.gates",
    ),
    **dict.fromkeys(
        (
            "is_refusal",
            "load_beir",
            "load_canaries",
            "load_corpus",
            "load_preferences",
            "load_qa",
            "load_trec_qrels",
            "load_trec_run",
        ),
        "guardrails.golden",
    ),
    **dict.fromkeys(("parse_metric", "register_metric"), "guardrails.metrics"),
    "check_answer": "guardrails.metrics.canary",
    "degeneration": "guardrails.metrics.degeneration",
    "verify_verdict": "guardrails.verdict.integrity",
    **dict.fromkeys(("Policy", "load_policy"), "guardrails.policy"),
    **dict.fromkeys(("decide", "redecide"), "guardrails.verdict.rules"),
    **dict.fromkeys(
        ("EXIT_STATUS", "Decision", "Verdict", "load_verdict", "write_verdict"),
        "guardrails.verdict.schema",
    ),
}

__all__ = [
    "EXIT_STATUS",
    "ComponentError",
    "Decision",
    "DependencyError",
    "FingerprintMismatch",
    "Gate",
    "GateError",
    "GateFailed",
    "GateInconclusive",
    "GateResult",
    "GoldenDataError",
    "GuardrailsError",
    "LogDataError",
    "MetricError",
    "MirrorError",
    "Policy",
    "PolicyError",
    "RegistryError",
    "StatisticsError",
    "Status",
    "TrainingError",
    "Verdict",
    "VerdictError",
    "check_answer",
    "decide",
    "degeneration",
    "evaluate_drift_gate",
    "evaluate_gate",
    "is_refusal",
    "load_beir",
    "load_canaries",
    "load_corpus",
    "load_policy",
    "load_preferences",
    "load_qa",
    "load_trec_qrels",
    "load_trec_run",
    "load_verdict",
    "parse_metric",
    "redecide",
    "register_metric",
    "verify_verdict",
    "write_verdict",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'guardrails' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
