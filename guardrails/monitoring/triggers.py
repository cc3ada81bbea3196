"""Retrain triggers: schedule, threshold and event findings -> which components to retrain.

:func:`decide_triggers` compares the reference and current window signals
(:class:`~guardrails.monitoring.signals.WindowSignals`) and reads a drift report
(:class:`~guardrails.monitoring.drift.DriftReport`). Each finding has a kind, a signal, a
message quoting the numbers, and the components it sends to retraining:

* **schedule**: ``now - last_retrain > max-age-days`` -> retriever, reranker, generator.
* **threshold**: CTR drop beyond ``ctr-drop`` with a one-sided two-proportion z-test at
  ``alpha`` -> reranker when the query embeddings are stable, else retriever; norm PSI alarm
  -> retriever (re-embed and re-index); complaint-rate rise beyond ``complaint-rise`` (z-test)
  or a rising complaint topic (:func:`~guardrails.monitoring.signals.rising_topics`) ->
  generator and alignment; hallucination-rate rise -> generator and alignment; latency p95 of a
  stage up by ``latency-p95-ratio`` or more -> no component (an operations alert, reported).
* **event**: a new domain (the drift report's ``novel_share`` alarm: a coherent group of current
  queries far from every reference cluster) -> retriever, reranker, generator; an error-rate
  rise beyond ``error-rise`` (z-test) -> no component (operations).

**One family.** Every tested trigger (CTR, complaint rate, each complaint topic,
hallucination rate, error rate) and every statistic of the drift report are Holm-adjusted
together (:func:`~guardrails.monitoring.drift.with_family`, at the drift report's ``alpha``, the
policy's without a report): a finding needs its adjusted p-value below ``alpha`` AND its effect
floor, so one decision's family-wise false-alarm rate is at most ``alpha``. Latency p95 ratios
are untested operations notes (the signals keep percentiles only) and never alarm.

``fire`` is true when at least one finding names a component. Thresholds come from
``[tool.guardrails.triggers]`` in ``pyproject.toml`` (:func:`load_trigger_policy`)::

    [tool.guardrails.triggers]
    max-age-days = 30         ctr-drop = 0.03          complaint-rise = 0.01
    latency-p95-ratio = 1.25  error-rise = 0.01        hallucination-rise = 0.01
    alpha = 0.05              min-queries = 50
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from guardrails.errors import MetricError, PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "COMPONENTS",
    "Finding",
    "TriggerDecision",
    "TriggerPolicy",
    "decide_triggers",
    "load_trigger_policy",
    "parse_trigger_policy",
    "window_pair",
]

COMPONENTS = ("retriever", "reranker", "generator", "alignment")
_ANSWER_TOPICS = ("made-up", "invent", "wrong", "unrelated", "hallucinat", "unsafe", "answer")


@dataclass(frozen=True)
class TriggerPolicy:
    """Trigger thresholds (TOML keys are these names with ``-`` for ``_``)."""

    max_age_days: float = 30.0
    ctr_drop: float = 0.03
    complaint_rise: float = 0.01
    hallucination_rise: float = 0.01
    latency_p95_ratio: float = 1.25
    error_rise: float = 0.01
    alpha: float = 0.05
    min_queries: int = 50


def parse_trigger_policy(table: Mapping[str, Any], source: str = "pyproject.toml") -> TriggerPolicy:
    """Validate a ``[tool.guardrails.triggers]`` table; :class:`PolicyError` names the key."""
    allowed = {f.name.replace("_", "-"): f for f in fields(TriggerPolicy)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            raise PolicyError(
                f"{source}: [tool.guardrails.triggers] has unknown key {key!r}; "
                f"allowed keys: {sorted(allowed)}"
            )
        values[allowed[key].name] = _checked(key, value, source)
    return TriggerPolicy(**values)


def _checked(key: str, value: Any, source: str) -> float | int:
    where = f"{source}: [tool.guardrails.triggers] {key}={value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"{where}; allowed values: a finite number")
    if key == "alpha" and not 0.0 < value < 0.5:
        raise PolicyError(f"{where}; allowed values: 0 < alpha < 0.5")
    if key == "latency-p95-ratio" and value <= 1.0:
        raise PolicyError(f"{where}; allowed values: a ratio > 1 (1.25 = 25% slower)")
    if key == "min-queries" and (not isinstance(value, int) or value < 1):
        raise PolicyError(f"{where}; allowed values: an integer >= 1")
    if value < 0:
        raise PolicyError(f"{where}; allowed values: a number >= 0")
    return value


def load_trigger_policy(pyproject: str | Path | None) -> TriggerPolicy:
    """The ``[tool.guardrails.triggers]`` table of ``pyproject`` (defaults when absent)."""
    if pyproject is None or not Path(pyproject).is_file():
        return TriggerPolicy()
    try:
        with open(pyproject, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{pyproject}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("guardrails", {}).get("triggers", {})
    if not isinstance(table, Mapping):
        raise PolicyError(f"{pyproject}: [tool.guardrails.triggers] must be a table")
    return parse_trigger_policy(table, str(pyproject))


class Finding(NamedTuple):
    """One reason to act: ``kind`` is schedule / threshold / event / note. ``p_value`` is the
    Holm-adjusted p-value of a tested finding (NaN for the schedule and the untested
    latency notes, which never count as a statistical alarm)."""

    kind: str
    signal: str
    message: str
    components: tuple[str, ...] = ()
    p_value: float = math.nan


@dataclass(frozen=True)
class TriggerDecision:
    """``fire``: retrain ``components``; ``findings`` include operations-only alerts;
    ``signals``: the key signals of each window (``{"reference": ..., "current": ...}``, see
    :func:`~guardrails.monitoring.signals.signal_summary`), for the reports."""

    fire: bool
    findings: tuple[Finding, ...]
    components: tuple[str, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    drift: Any = None
    family: Mapping[str, float] = field(default_factory=dict)
    tests: Mapping[str, float] = field(default_factory=dict)
    signals: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alarm(self) -> bool:
        """A retrain fired or a tested finding (Holm-adjusted) is significant; untested
        latency notes are shown but do not alarm."""
        return self.fire or any(math.isfinite(f.p_value) for f in self.findings)

    @property
    def reasons(self) -> list[tuple[str, str]]:
        """``(kind, message)`` of every finding."""
        return [(f.kind, f.message) for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fire": self.fire,
            "components": list(self.components),
            "findings": [
                f._asdict()
                | {"components": list(f.components)}
                | {"p_value": f.p_value if math.isfinite(f.p_value) else None}
                for f in self.findings
            ],
            "facts": dict(self.facts),
            "family": dict(self.family),
            "tests": dict(self.tests),
            "signals": dict(self.signals),
            "drift": _drift_statistics(self.drift),
        }

    def branch_name(self, now: datetime | None = None) -> str | None:
        """``retrain-<YYYYMMDD>-<signal>`` of the first finding that asks for a retrain (UTC
        date; None when nothing fires): one branch per day and signal, so re-runs reuse it."""
        first = next((f for f in self.findings if f.components), None)
        if not self.fire or first is None:
            return None
        day = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%d")
        signal = re.sub(r"[^a-z0-9._-]+", "_", first.signal.lower()).strip("_.-") or "signal"
        return f"retrain-{day}-{signal}"

    def open_branch(self, registry: Any, now: datetime | None = None) -> Any:
        """Open (or reuse) this decision's branch in ``registry`` for the components to
        retrain, with the findings that asked for it as evidence; None when nothing fires."""
        name = self.branch_name(now)
        if name is None:
            return None
        asked = [f for f in self.to_dict()["findings"] if f["components"]]
        reason = "; ".join(f"{f['signal']}: {f['message']}" for f in asked)
        evidence = {"findings": asked, "components": list(self.components)}
        return registry.open_branch(name, self.components, reason, evidence)

    def summary_lines(self) -> list[str]:
        head = f"retrain: {', '.join(self.components)}" if self.fire else "retrain: no"
        lines = [head]
        for f in self.findings:
            target = ", ".join(f.components) or "ops only"
            lines.append(f"  [{f.kind}] {f.signal}: {f.message} -> {target}")
        return lines


def _drift_statistics(report: Any) -> list[dict[str, Any]]:
    """Each drift statistic with its floor, for the report's value-vs-floor plot."""
    if report is None:
        return []
    return [
        {
            "name": s.name,
            "value": s.value,
            "critical": s.critical,
            "p_adjusted": s.p_adjusted if math.isfinite(s.p_adjusted) else None,
            "alarm": s.alarm,
        }
        for s in report.statistics
    ]


# ----------------------------------------------------------------------------- tests


def _proportion_rise(p0: float, n0: int, p1: float, n1: int) -> float:
    """One-sided p-value of ``p1 > p0`` (pooled two-proportion z-test)."""
    from scipy.stats import norm

    if not (math.isfinite(p0) and math.isfinite(p1)) or n0 < 1 or n1 < 1:
        return 1.0
    pooled = (p0 * n0 + p1 * n1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0:
        return 0.0 if p1 > p0 else 1.0
    return float(norm.sf((p1 - p0) / se))


class _Test(NamedTuple):
    """A tested trigger before the family adjustment: its raw p-value, whether its effect
    floor is met, and the finding it becomes when significant."""

    name: str
    p_value: float
    floor_met: bool
    kind: str
    message: str
    components: tuple[str, ...] = ()


def _n_eff(w: Any) -> int:
    """Sample size of a rate test: sessions, not queries. A session's queries share a user and
    an intent (repeats, follow-ups), so their outcomes are positively correlated; the design
    effect is at most the session size, so ``n_sessions`` is a conservative effective n (with
    ``n_queries`` the CTR test rejected 12.5 % of same-distribution pairs at 0.05)."""
    sessions = int(getattr(w, "n_sessions", 0) or 0)
    return sessions if 0 < sessions <= w.n_queries else w.n_queries


def _rise(
    name: str, ref: Any, cur: Any, margin: float, policy: TriggerPolicy, kind: str, to: tuple
) -> _Test:
    """The rate ``name`` rose by more than ``margin`` (one-sided two-proportion z-test)."""
    p0, p1 = getattr(ref, name), getattr(cur, name)
    p = _proportion_rise(p0, _n_eff(ref), p1, _n_eff(cur))
    msg = f"{name} {p0:.4f} -> {p1:.4f} (+{p1 - p0:.4f} > {margin:g}, p={p:.2g})"
    return _Test(name, p, bool(math.isfinite(p1 - p0) and p1 - p0 > margin), kind, msg, to)


# ----------------------------------------------------------------------------- findings


def _schedule(last: datetime | None, now: datetime, policy: TriggerPolicy) -> list[Finding]:
    if last is None:
        return []
    age = (now - last).total_seconds() / 86400.0
    if age <= policy.max_age_days:
        return []
    msg = f"last retrain {age:.1f} days ago > max-age-days={policy.max_age_days:g}"
    return [Finding("schedule", "age", msg, ("retriever", "reranker", "generator"))]


def _ctr(ref: Any, cur: Any, policy: TriggerPolicy) -> _Test:
    p = _proportion_rise(cur.ctr, _n_eff(cur), ref.ctr, _n_eff(ref))
    drop = ref.ctr - cur.ctr
    msg = f"CTR {ref.ctr:.4f} -> {cur.ctr:.4f} (-{drop:.4f} > {policy.ctr_drop:g}, p={p:.2g})"
    return _Test("ctr", p, bool(math.isfinite(drop) and drop > policy.ctr_drop), "threshold", msg)


def _complaint_topics(ref: Any, cur: Any) -> list[_Test]:
    """One test per complaint topic whose rate ratio is large enough; its p-value is already
    Bonferroni-adjusted over the topics by :func:`rising_topics` (valid, conservative)."""
    from guardrails.monitoring.signals import rising_topics

    out = []
    for topic in rising_topics(ref, cur, alpha=1.0 + 1e-9):
        about_answers = any(word in topic.label for word in _ANSWER_TOPICS)
        msg = (
            f"complaint topic {topic.label!r} rising {topic.reference_rate:.4f} -> "
            f"{topic.current_rate:.4f} (x{topic.ratio:.1f}, p={topic.p_value:.2g})"
        )
        target = ("generator", "alignment") if about_answers or not topic.label else ("generator",)
        name = f"complaint_topic:{topic.topic_id}"
        out.append(_Test(name, topic.p_value, True, "threshold", msg, target))
    return out


def _latency(ref: Any, cur: Any, policy: TriggerPolicy) -> list[Finding]:
    """Operations notes (no test: the signals keep percentiles, not the latencies)."""
    out = []
    for stage, now_p in cur.latency_ms.items():
        before = ref.latency_ms.get(stage)
        if before is None or min(before.n, now_p.n) < policy.min_queries or not before.p95 > 0:
            continue
        ratio = now_p.p95 / before.p95
        if ratio >= policy.latency_p95_ratio:
            msg = f"{stage} p95 {before.p95:.1f} -> {now_p.p95:.1f} ms (x{ratio:.2f}; untested)"
            out.append(Finding("note", f"latency_p95_{stage}", msg))
    return out


# Which components an alarmed drift statistic sends to retraining (every statistic of the drift
# report counts; ``novel_share`` is the new-domain event below). Query-embedding statistics
# (norms, MMD, per-dimension KS, cosine to the history centroid, cluster shares) mean the
# queries moved: retrain the retriever, and the reranker when the topic mix moved; reranker
# score drift means the reranker's inputs or calibration moved.
DRIFT_TARGETS: dict[str, tuple[str, ...]] = {
    "norm_psi": ("retriever",),
    "norm_kl": ("retriever",),
    "mmd": ("retriever",),
    "ks_max": ("retriever",),
    "cosine_to_history": ("retriever",),
    "cluster_share_psi": ("retriever", "reranker"),
    "rerank_score_psi": ("reranker",),
}


def _drift(report: Any) -> list[Finding]:
    if report is None:
        return []
    out = []
    for stat in report.statistics:
        if not stat.alarm or stat.name == "novel_share":
            continue
        msg = (
            f"{stat.name}={stat.value:.4g} beyond its floor {stat.critical:.4g} "
            f"(p_holm={stat.p_adjusted:.2g})" + (f"; {stat.detail}" if stat.detail else "")
        )
        targets = DRIFT_TARGETS.get(stat.name, ("retriever",))
        out.append(Finding("threshold", stat.name, msg, targets, stat.p_adjusted))
    novel = report.statistic("novel_share")
    if novel is not None and novel.alarm:
        nov = report.novelty
        examples = "; ".join(nov.examples[:3]) if nov is not None else ""
        msg = f"new domain: {novel.detail}; p_holm={novel.p_adjusted:.2g}; e.g. {examples}"
        targets = ("retriever", "reranker", "generator")
        out.append(Finding("event", "new_domain", msg, targets, novel.p_adjusted))
    return out


def _embeddings_stable(report: Any) -> bool:
    names = ("norm_psi", "mmd", "cosine_to_history", "novel_share")
    return report is None or not any(s.alarm for s in report.statistics if s.name in names)


def decide_triggers(
    reference_signals: Any,
    current_signals: Any,
    drift_report: Any = None,
    *,
    policy: TriggerPolicy = TriggerPolicy(),
    last_retrain: datetime | None = None,
    now: datetime | None = None,
) -> TriggerDecision:
    """Findings of every trigger (see the module docstring) and the components to retrain.

    Signals are one :class:`~guardrails.monitoring.signals.WindowSignals` per side, both from one
    complaint-topic model (:func:`window_pair`); ``drift_report`` may be None (no embeddings).
    The decision's ``drift`` is the report re-adjusted over the joint family (print that one).
    """
    from guardrails.monitoring.drift import with_family
    from guardrails.monitoring.signals import signal_summary
    from guardrails.stats import holm

    now = now or datetime.now(timezone.utc)
    ref, cur = reference_signals, current_signals
    tests: list[_Test] = []
    if min(ref.n_queries, cur.n_queries) >= policy.min_queries:
        tests.append(_ctr(ref, cur, policy))
        tests.append(
            _rise("complaint_rate", ref, cur, policy.complaint_rise, policy, "threshold", _GEN)
        )
        tests += _complaint_topics(ref, cur)
        tests.append(
            _rise(
                "hallucination_rate", ref, cur, policy.hallucination_rise, policy, "threshold", _GEN
            )
        )
        tests.append(_rise("error_rate", ref, cur, policy.error_rise, policy, "event", ()))
    raw = {t.name: t.p_value for t in tests}
    if drift_report is not None:
        drift_report = with_family(drift_report, raw)
        family = dict(drift_report.family)
        alpha = drift_report.thresholds.alpha
    else:
        family = dict(zip(raw, holm([min(max(p, 0.0), 1.0) for p in raw.values()]), strict=True))
        alpha = policy.alpha
    findings = _schedule(last_retrain, now, policy) + _drift(drift_report)
    stable = _embeddings_stable(drift_report)
    for t in tests:
        if t.floor_met and family[t.name] < alpha:
            to = t.components if t.name != "ctr" else (("reranker",) if stable else ("retriever",))
            findings.append(Finding(t.kind, t.name.split(":")[0], t.message, to, family[t.name]))
    if min(ref.n_queries, cur.n_queries) >= policy.min_queries:
        findings += _latency(ref, cur, policy)
    components = tuple(c for c in COMPONENTS if any(c in f.components for f in findings))
    facts = {
        "n_reference": ref.n_queries,
        "n_current": cur.n_queries,
        "now": now.isoformat(),
        "alpha": alpha,
    }
    signals = {"reference": signal_summary(ref), "current": signal_summary(cur)}
    return TriggerDecision(
        bool(components), tuple(findings), components, facts, drift_report, family, raw, signals
    )


_GEN = ("generator", "alignment")


def window_pair(reference: Sequence[Any], current: Sequence[Any], **kwargs: Any) -> tuple[Any, Any]:
    """One :class:`~guardrails.monitoring.signals.WindowSignals` per side with ONE complaint-topic
    model fitted on both sides' complaints (so :func:`rising_topics` can compare them)."""
    from guardrails.monitoring.signals import compute_signals, fit_complaint_topics

    complaints = [r.complaint for r in (*reference, *current) if r.complaint]
    topics = kwargs.pop("topics", None)
    if topics is None and complaints:
        topics = fit_complaint_topics(complaints, embedder=kwargs.get("embedder"), seed=0)
    ref = compute_signals(reference, topics=topics, **kwargs)
    cur = compute_signals(current, topics=topics, **kwargs)
    if not ref or not cur:
        raise MetricError("window_pair: both windows need at least one log record")
    return ref[0], cur[0]
