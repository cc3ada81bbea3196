"""The ``gate`` fixture's object: :class:`Gate` evaluates gates inside a test, records each
result on the test report for the verdict, and raises when a gate does not pass."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from guardrails.errors import (
    GateFailed,
    GateInconclusive,
    MetricError,
)
from guardrails.gates.drift import evaluate_drift_gate
from guardrails.gates.evaluate import GuardrailsWarning, evaluate_gate
from guardrails.gates.samples import score_samples
from guardrails.metrics import parse_metric
from guardrails.policy import Policy
from guardrails.verdict.schema import GateResult, Status

__all__ = [
    "Gate",
]


class Gate:
    """The ``gate`` fixture: each method evaluates, records the result on the test report
    and raises :class:`GateFailed` / :class:`GateInconclusive` unless the gate passed.

    ``candidate`` / ``baseline`` are per-sample scores, or runs (``{qid: {doc: score}}``)
    scored against ``qrels`` for ranking metrics, or answer strings scored against
    ``references`` for text metrics.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        record: Callable[[GateResult], None],
        default_name: str,
        nodeid: str = "",
    ) -> None:
        self.policy = policy
        self._record = record
        self._default_name = default_name
        self._nodeid = nodeid
        self._count = 0
        self.golden: dict[str, str] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}
        self.examples: dict[str, dict[str, Any]] = {}

    def noninferior(
        self,
        metric: str,
        *,
        candidate: Any,
        baseline: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        max_drop: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate is no worse than baseline by more than ``max-drop``."""
        return self._compare(
            "noninferior",
            metric,
            candidate,
            baseline,
            name,
            qrels,
            references,
            ids,
            {"max_drop": max_drop},
        )

    def superior(
        self,
        metric: str,
        *,
        candidate: Any,
        baseline: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        min_gain: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate beats baseline by more than ``min-gain`` (default 0)."""
        return self._compare(
            "superior",
            metric,
            candidate,
            baseline,
            name,
            qrels,
            references,
            ids,
            {"min_gain": min_gain},
        )

    def at_least(
        self,
        metric: str,
        *,
        candidate: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        minimum: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate's mean clears the absolute floor ``min`` (or ceiling ``max``)."""
        key = "min" if parse_metric(metric).higher_is_better else "max"
        return self._compare(
            "at_least", metric, candidate, None, name, qrels, references, ids, {key: minimum}
        )

    def no_drift(
        self,
        metric: str,
        *,
        reference: Any,
        current: Any,
        name: str | None = None,
        maximum: float | None = None,
        bins: int = 10,
    ) -> GateResult:
        """No significant drift of ``current`` from ``reference`` beyond the policy's ``max``."""
        gate_name = self._name(name, metric)
        result = evaluate_drift_gate(
            metric,
            reference=reference,
            current=current,
            policy=self.policy,
            name=gate_name,
            maximum=maximum,
            bins=bins,
        )
        return self._finish(result)

    def record(
        self,
        *,
        golden: Any = None,
        artifact: Mapping[str, Any] | None = None,
        facts: Mapping[str, Any] | None = None,
        examples: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Add provenance and evidence to the gates this test records next: a golden set,
        an artifact ``{"component", "role", "fingerprint"}``, JSON-able ``facts`` (e.g.
        latency percentiles), or ``examples`` (``{sample_id: {"input", "baseline",
        "candidate"}}``, the outputs the report shows beside the worst samples)."""
        if golden is not None:
            self.golden[golden.name] = golden.fingerprint
        if artifact is not None:
            self.artifacts.append(dict(artifact))
        if facts:
            self.facts.update(facts)
        if examples:
            self.examples.update({str(k): dict(v) for k, v in examples.items()})

    # -- internals

    def _name(self, name: str | None, metric: str) -> str:
        self._count += 1
        return name or f"{self._default_name}:{parse_metric(metric).name}"

    def _compare(
        self,
        kind: str,
        metric: str,
        candidate: Any,
        baseline: Any,
        name: str | None,
        qrels: Any,
        references: Any,
        ids: Sequence[str] | None,
        overrides: Mapping[str, float | None],
    ) -> GateResult:
        gate_name = self._name(name, metric)
        if hasattr(qrels, "fingerprint"):
            self.golden[qrels.name] = qrels.fingerprint
        if hasattr(references, "fingerprint"):
            self.golden[references.name] = references.fingerprint
        cand, sample_ids = score_samples(metric, candidate, qrels, references, ids)
        base = None
        if baseline is not None:
            base, base_ids = score_samples(metric, baseline, qrels, references, ids)
            if base_ids != sample_ids:
                raise MetricError(
                    f"gate {gate_name}: candidate and baseline are scored on "
                    "different samples; pass the same ids / qrels"
                )
        from guardrails.report.progress import timed

        with timed("gates", quiet=True):
            result = evaluate_gate(
                kind,
                metric,
                candidate=cand,
                baseline=base,
                policy=self.policy,
                name=gate_name,
                ids=sample_ids,
                overrides={k: v for k, v in overrides.items() if v is not None},
            )
        return self._finish(result)

    def _finish(self, result: GateResult) -> GateResult:
        extra = dict(result.extra)
        if self.artifacts:
            extra["artifacts"] = list(self.artifacts)
        if self.facts:
            extra["facts"] = dict(self.facts)
        # a 0/1 gate shows every discordant sample (McNemar counts them all), not the worst 5
        shown = {str(w["id"]) for w in result.worst} | set(result.changed())
        if self.examples and shown:
            extra["examples"] = {k: v for k, v in self.examples.items() if k in shown}
        result = replace(result, nodeid=self._nodeid, golden=dict(self.golden), extra=extra)
        self._record(result)
        for w in result.warnings:
            warnings.warn(GuardrailsWarning(f"gate {result.name}: {w}"), stacklevel=3)
        if result.status is Status.FAILED:
            raise GateFailed(result.message(), result)
        if result.status is Status.INCONCLUSIVE:
            raise GateInconclusive(result.message(), result)
        return result
