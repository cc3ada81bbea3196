"""One exception tree for guardrails.

Every error subclasses :class:`GuardrailsError` *and* the builtin a caller would naturally
catch, so ``except ValueError`` keeps working for code that does not know about us::

    GuardrailsError (Exception)
    ├── PolicyError (ValueError)            bad [tool.guardrails] policy or option value
    ├── GoldenDataError (ValueError)        a golden / qrels / run / canary file is malformed
    ├── MetricError (ValueError)            unknown metric name or unusable metric input
    ├── StatisticsError (ValueError)        statistics asked of unusable samples
    ├── GateError (AssertionError)          a gate did not pass (pytest shows it as F)
    │   ├── GateFailed                      evidence of a regression beyond the policy limit
    │   └── GateInconclusive                not enough evidence either way (release is held)
    ├── VerdictError (ValueError)           a verdict file is malformed or inconsistent
    ├── ComponentError (RuntimeError)       a model / index component cannot be loaded or used
    │   └── FingerprintMismatch (ValueError) vectors / artifacts from a different fingerprint
    ├── RegistryError (RuntimeError)        registry refused an alias switch or lookup
    │   └── MirrorError                     switched in SQLite, not mirrored (e.g. MLflow)
    ├── LogDataError (ValueError)           a production log line is malformed
    ├── TrainingError (RuntimeError)        a candidate could not be trained
    └── DependencyError (ImportError)       installed packages that do not work together

Messages quote ``name=value`` and say what to do next.
"""

from __future__ import annotations

__all__ = [
    "ComponentError",
    "DependencyError",
    "FingerprintMismatch",
    "GateError",
    "GateFailed",
    "GateInconclusive",
    "GoldenDataError",
    "GuardrailsError",
    "LogDataError",
    "MetricError",
    "MirrorError",
    "PolicyError",
    "RegistryError",
    "StatisticsError",
    "TrainingError",
    "VerdictError",
]


class GuardrailsError(Exception):
    """Root of every error raised by guardrails."""


class PolicyError(GuardrailsError, ValueError):
    """A policy in ``[tool.guardrails]`` or a ``--guardrails-*`` option is invalid."""


class GoldenDataError(GuardrailsError, ValueError):
    """A golden set file is malformed; the message starts with ``path:line:``."""

    def __init__(self, path: object, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class MetricError(GuardrailsError, ValueError):
    """Unknown metric name, or inputs a metric cannot score."""


class StatisticsError(GuardrailsError, ValueError):
    """Paired statistics asked of unpaired, empty or non-finite samples."""


class GateError(GuardrailsError, AssertionError):
    """A gate did not pass. Carries the :class:`~guardrails.gates.GateResult`."""

    def __init__(self, message: str, result: object = None) -> None:
        self.result = result
        super().__init__(message)


class GateFailed(GateError):
    """The candidate is worse than the policy allows, with statistical evidence."""


class GateInconclusive(GateError):
    """Neither a pass nor a failure could be shown; the release is held."""


class VerdictError(GuardrailsError, ValueError):
    """A verdict file is malformed, of an unknown schema, or inconsistent."""


class ComponentError(GuardrailsError, RuntimeError):
    """A model or index component cannot be loaded or used."""


class FingerprintMismatch(ComponentError, ValueError):
    """Two artifacts that must share a fingerprint do not (e.g. index vs embedder)."""


class RegistryError(GuardrailsError, RuntimeError):
    """The registry refused an operation (unknown alias, unverified verdict, ...)."""


class LogDataError(GuardrailsError, ValueError):
    """A production log record is malformed; the message starts with ``path:line:``."""


class TrainingError(GuardrailsError, RuntimeError):
    """A candidate adapter could not be trained or loaded."""


class DependencyError(GuardrailsError, ImportError):
    """Installed packages that do not work together (e.g. transformers and peft releases)."""


class MirrorError(RegistryError):
    """The SQLite registry switched (it is the source of truth) but mirroring the switch to an
    external registry (MLflow aliases) failed. ``switches`` are the committed switches."""

    def __init__(self, message: str, switches: object = ()) -> None:
        self.switches = switches
        super().__init__(message)
