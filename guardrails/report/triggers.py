"""Why this run happened, for the reports: the retrain-trigger decision a run recorded
(``facts["triggers"]`` on a gate result, written by the stack's ``trigger_decision`` fixture or
by a test's ``gate.record``) as findings, a table of key signals per window and plots.

The data is :meth:`~guardrails.monitoring.triggers.TriggerDecision.to_dict`: ``findings``,
``signals`` (``reference`` / ``current``, each a
:func:`~guardrails.monitoring.signals.signal_summary`) and ``drift`` (each statistic with its
floor). Everything read here may come from a hand-edited verdict, so every access tolerates a
missing or mistyped field (it shows "—" or draws nothing) and the renderers escape every text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from guardrails.report.svg import FloorRow, floor_svg, paired_bars_svg
from guardrails.verdict import Verdict

__all__ = [
    "SIGNAL_ROWS",
    "format_signal",
    "recorded_triggers",
    "signal_rows",
    "trigger_findings",
    "trigger_svgs",
]

# (label, key in a window summary, unit) of the key-signals table, in reading order
SIGNAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("queries", "n_queries", "count"),
    ("sessions", "n_sessions", "count"),
    ("throughput", "throughput_qps", "queries/s"),
    ("memory mean", "memory_mean_mb", "MB"),
    ("memory max", "memory_max_mb", "MB"),
    ("CTR", "ctr", "share"),
    ("hit rate (clicked in top-k)", "hit_rate_clicked", "share"),
    ("mean dwell", "mean_dwell_s", "s"),
    ("repeat-query rate", "repeat_query_rate", "share"),
    ("like rate", "like_rate", "share"),
    ("dislike rate", "dislike_rate", "share"),
    ("flag rate", "flag_rate", "share"),
    ("hallucination rate", "hallucination_rate", "share"),
    ("unsafe rate", "unsafe_rate", "share"),
    ("complaint rate", "complaint_rate", "share"),
    ("error rate", "error_rate", "share"),
)
_RATES = ("ctr", "repeat_query_rate", "like_rate", "dislike_rate", "flag_rate")
_SAFETY = ("hallucination_rate", "unsafe_rate", "complaint_rate", "error_rate")
_LABEL = {key: label for label, key, _ in SIGNAL_ROWS}


def recorded_triggers(verdict: Verdict) -> list[dict[str, Any]]:
    """Every distinct trigger decision the run recorded (one per session usually; an xdist
    run or a test that also records it carries copies, counted once)."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for g in verdict.gates:
        facts = g.extra.get("facts") if isinstance(g.extra, Mapping) else None
        triggers = facts.get("triggers") if isinstance(facts, Mapping) else None
        if not isinstance(triggers, Mapping):
            continue
        key = json.dumps(triggers, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(dict(triggers))
    return out


def trigger_findings(verdict: Verdict) -> list[dict[str, Any]]:
    """The retrain-trigger findings the run recorded: why this run happened."""
    out: list[dict[str, Any]] = []
    for triggers in recorded_triggers(verdict):
        findings = triggers.get("findings")
        if isinstance(findings, list):
            out += [dict(f) for f in findings if isinstance(f, Mapping)]
    return out


def _windows(triggers: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    signals = triggers.get("signals")
    if not isinstance(signals, Mapping):
        return None
    ref, cur = signals.get("reference"), signals.get("current")
    if not isinstance(ref, Mapping) or not isinstance(cur, Mapping):
        return None
    return ref, cur


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _latency(window: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    latency = window.get("latency_ms")
    if not isinstance(latency, Mapping):
        return {}
    return {str(k): v for k, v in latency.items() if isinstance(v, Mapping)}


def _topics(window: Mapping[str, Any]) -> dict[str, float | None]:
    topics = window.get("complaint_topics")
    if not isinstance(topics, list):
        return {}
    return {str(t.get("label")): _number(t.get("rate")) for t in topics if isinstance(t, Mapping)}


def format_signal(x: float | None) -> str:
    """A signal value in a report's table: 4 significant digits, "—" when missing."""
    return "—" if x is None else f"{x:.4g}"


def signal_rows(triggers: Mapping[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    """``(signal, reference, current, unit)`` rows of the key-signals table: the scalars of
    :data:`SIGNAL_ROWS`, latency p50/p95/p99 per logged stage, then each complaint topic's
    per-query rate. Empty when the decision recorded no signals."""
    windows = _windows(triggers)
    if windows is None:
        return []
    ref, cur = windows
    rows = [(label, _number(ref.get(k)), _number(cur.get(k)), u) for label, k, u in SIGNAL_ROWS]
    lat_ref, lat_cur = _latency(ref), _latency(cur)
    for stage in [*lat_ref, *(s for s in lat_cur if s not in lat_ref)]:
        for q in ("p50", "p95", "p99"):
            a, b = lat_ref.get(stage, {}), lat_cur.get(stage, {})
            rows.append((f"latency {stage} {q}", _number(a.get(q)), _number(b.get(q)), "ms"))
    top_ref, top_cur = _topics(ref), _topics(cur)
    for label in [*top_ref, *(t for t in top_cur if t not in top_ref)]:
        rows.append((f"complaints: {label}", top_ref.get(label), top_cur.get(label), "share"))
    return rows


def trigger_svgs(triggers: Mapping[str, Any]) -> list[str]:
    """The plots of one decision: behaviour and feedback rates, safety rates, latency
    percentiles per stage, complaint topics (reference vs current window each), and every
    drift statistic against its floor."""
    plots = []
    windows = _windows(triggers)
    if windows is not None:
        ref, cur = windows
        for keys, title in ((_RATES, "behaviour and feedback"), (_SAFETY, "safety and errors")):
            rows = [(_LABEL[k], _number(ref.get(k)), _number(cur.get(k))) for k in keys]
            plots.append(paired_bars_svg(rows, f"{title}: reference vs current window", "share"))
        plots += _latency_svgs(ref, cur)
        plots += _topic_svgs(ref, cur)
    floors = _floor_rows(triggers.get("drift"))
    if floors:
        plots.append(floor_svg(floors, "drift statistics against their alarm floors"))
    return plots


def _latency_svgs(ref: Mapping[str, Any], cur: Mapping[str, Any]) -> list[str]:
    lat_ref, lat_cur = _latency(ref), _latency(cur)
    stages = [*lat_ref, *(s for s in lat_cur if s not in lat_ref)]
    empty: Mapping[str, Any] = {}
    rows = [
        (f"{s} {q}", _number(lat_ref.get(s, empty).get(q)), _number(lat_cur.get(s, empty).get(q)))
        for s in stages
        for q in ("p50", "p95", "p99")
    ]
    return [paired_bars_svg(rows, "latency percentiles per stage", "ms")] if rows else []


def _topic_svgs(ref: Mapping[str, Any], cur: Mapping[str, Any]) -> list[str]:
    top_ref, top_cur = _topics(ref), _topics(cur)
    labels = [*top_ref, *(t for t in top_cur if t not in top_ref)]
    rows = [(label, top_ref.get(label), top_cur.get(label)) for label in labels]
    title = "complaint topics (complaints per query)"
    return [paired_bars_svg(rows, title, "share of queries")] if rows else []


def _floor_rows(drift: Any) -> list[FloorRow]:
    if not isinstance(drift, list):
        return []
    rows = []
    for s in drift:
        if not isinstance(s, Mapping):
            continue
        value, floor = _number(s.get("value")), _number(s.get("critical"))
        rows.append(
            FloorRow(
                str(s.get("name", "")),
                math.nan if value is None else value,
                math.nan if floor is None else floor,
                s.get("alarm") is True,
            )
        )
    return rows
