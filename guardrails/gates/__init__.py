"""Gates: compare a candidate with a baseline under a policy -> :class:`GateResult`.

``evaluate`` holds the pure maths of a comparative gate (see its docstring for the rules),
``drift`` the drift gates and their plot data, ``samples`` the per-sample scores a gate is
given, ``fixture`` the :class:`Gate` object behind the ``gate`` fixture. The records
(:class:`GateResult`, :class:`Status`) live with the verdict (:mod:`guardrails.verdict.schema`)
and are re-exported here.
"""

from guardrails.gates.drift import drift_plot_data, drift_statistic, evaluate_drift_gate
from guardrails.gates.evaluate import (
    MIN_SAMPLES,
    GuardrailsWarning,
    evaluate_gate,
    gate_seed,
)
from guardrails.gates.fixture import Gate
from guardrails.gates.samples import score_samples
from guardrails.verdict.rules import restatus
from guardrails.verdict.schema import COMPARATIVE, GateResult, Status

__all__ = [
    "COMPARATIVE",
    "MIN_SAMPLES",
    "Gate",
    "GateResult",
    "GuardrailsWarning",
    "Status",
    "drift_plot_data",
    "drift_statistic",
    "evaluate_drift_gate",
    "evaluate_gate",
    "gate_seed",
    "restatus",
    "score_samples",
]
