"""The verdict as text: the terminal summary table and a Markdown report for PR comments
or ``$GITHUB_STEP_SUMMARY``.

Every field that comes from the verdict (gate names, metrics, reasons, sample ids, warnings,
provenance) is neutralised before it is interpolated: in Markdown by :func:`escape_markdown`
(one line, HTML tags as text, every Markdown punctuation backslash-escaped), so a crafted
verdict cannot add a heading, a link, an image, a table row or close the ``<details>``; in the
terminal by :func:`plain` (one line, no control characters, so no ANSI escapes).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from guardrails.gates import GateResult
from guardrails.report.triggers import (
    format_signal,
    recorded_triggers,
    signal_rows,
    trigger_findings,
)
from guardrails.verdict import Verdict

__all__ = ["escape_markdown", "plain", "render_markdown", "summary_lines"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")
# control characters, line / paragraph separators, zero-width and bidi overrides
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")


def plain(value: object) -> str:
    """``value`` as one line of terminal text: control characters (newlines, ANSI escapes)
    become spaces."""
    return _CONTROL.sub(" ", str(value)).strip()


def escape_markdown(value: object) -> str:
    """``value`` as inert Markdown text on one line: ``<``, ``>`` and ``&`` as HTML entities
    (no tag renders), every Markdown punctuation backslash-escaped (no heading, emphasis,
    link, image, code span, table cell or list starts)."""
    text = html.escape(plain(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


_ICON = {"passed": "✅", "failed": "❌", "inconclusive": "⚠️"}
_DECISION_ICON = {"promote": "✅", "rollback": "❌", "hold": "⚠️"}
_HEADER = ("gate", "metric", "baseline", "candidate", "delta", "CI", "decided by", "status")


def decided_by(g: GateResult) -> str:
    """What decided this gate, in words: the interval against the limit (a pass, or neither
    side shown), or the violation test (a failure); for a drift gate, statistic and test."""
    lo, hi = g.ci
    p_adj = g.p_adjusted if g.p_adjusted is not None else g.p_value
    p = "—" if p_adj is None else f"{p_adj:.3g}"
    if g.kind == "no_drift":
        above = "above" if g.candidate > g.threshold else "within"
        return f"{g.metric}={g.candidate:.4g} {above} max {g.threshold:g}; p={p} vs α={g.alpha:g}"
    if math.isnan(lo):
        return f"violation p={p} vs α={g.alpha:g}"
    t = (g.threshold if g.higher_is_better else -g.threshold) + 0.0  # + 0.0: no "-0"
    side = "lower" if g.higher_is_better else "upper"
    bound = (lo if g.higher_is_better else hi) + 0.0
    lo, hi = lo + 0.0, hi + 0.0
    if g.status.value == "passed":
        return f"CI {side} bound {bound:+.4g} clears limit {t:+.4g}"
    if g.status.value == "failed":
        return f"violation test p={p} < α={g.alpha:g} (limit {t:+.4g})"
    return f"CI [{lo:+.4g}, {hi:+.4g}] straddles limit {t:+.4g}; violation p={p} ≥ α={g.alpha:g}"


def _fmt(x: float | None, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def _row(g: GateResult) -> tuple[str, ...]:
    lo, hi = g.ci
    ci = "—" if math.isnan(lo) else f"[{lo:+.4f}, {hi:+.4f}]"
    return (
        g.name,
        g.metric,
        _fmt(g.baseline),
        _fmt(g.candidate),
        _fmt(g.delta, True),
        ci,
        decided_by(g),
        g.status.value,
    )


def summary_lines(verdict: Verdict) -> list[str]:
    """A fixed-width table of gates and the decision, for the terminal."""
    rows = [_HEADER, *(tuple(plain(c) for c in _row(g)) for g in verdict.gates)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"decision: {verdict.decision.value.upper()} — {plain(verdict.reason)}")
    lines += [f"  - {plain(r)}" for r in verdict.reasons[1:]]
    components = getattr(verdict, "components", {})  # a session may predate components
    if components:
        lines.append("decision per component:")
        lines += [
            f"  {plain(name)}: {plain(c['decision']).upper()} — {plain(c['reason'])}"
            for name, c in components.items()
        ]
    warnings = [f"  ! {plain(g.name)}: {plain(w)}" for g in verdict.gates for w in g.warnings]
    return lines + warnings


def render_markdown(verdict: Verdict) -> str:
    """Markdown for a PR comment: decision, gate table, worst samples, provenance."""
    md = escape_markdown
    decision = verdict.decision.value.upper()
    out = [f"## guardrails verdict: **{decision}**", "", md(verdict.reason), ""]
    out += [f"- {md(r)}" for r in verdict.reasons[1:]]
    out += _components_table(verdict)
    out += _triggers_section(verdict)
    out += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for g in verdict.gates:
        cells = list(_row(g))  # numbers are ours; the names come from the verdict
        cells[0], cells[1], cells[6] = md(g.name), md(g.metric), md(cells[6])
        cells[-1] = f"{_ICON.get(g.status.value, '')} {g.status.value}"
        out.append("| " + " | ".join(cells) + " |")
    warnings = [f"- ⚠️ {md(g.name)}: {md(w)}" for g in verdict.gates for w in g.warnings]
    if warnings:
        out += ["", "### Warnings (weak evidence: margins below the detectable effect, ...)", ""]
        out += warnings
    out += _worst_sections(verdict)
    out += _changed_sections(verdict)
    out += [
        "",
        "<details><summary>provenance</summary>",
        "",
        *_provenance(verdict.provenance),
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def _components_table(verdict: Verdict) -> list[str]:
    if not verdict.components:
        return []
    out = [
        "",
        "### Decision per component",
        "",
        "| component | decision | reason |",
        "|---|---|---|",
    ]
    for name, c in verdict.components.items():
        decision = str(c["decision"])
        icon = _DECISION_ICON.get(decision, "")
        cells = (
            escape_markdown(name),
            f"{icon} **{escape_markdown(decision.upper())}**",
            escape_markdown(c["reason"]),
        )
        out.append("| " + " | ".join(cells) + " |")
    return out


def _worst_sections(verdict: Verdict) -> list[str]:
    md = escape_markdown
    out: list[str] = []
    for g in verdict.gates:
        if g.passed or not g.worst:
            continue
        out += [
            "",
            f"### worst samples of {md(g.name)}",
            "",
            "| id | baseline | candidate |",
            "|---|---|---|",
        ]
        out += [
            f"| {md(w['id'])} | {_fmt(w.get('baseline'))} | {_fmt(w.get('candidate'))} |"
            for w in g.worst
        ]
    return out


def _changed_sections(verdict: Verdict) -> list[str]:
    """Every discordant sample of a 0/1 gate with the rule that decided each side."""
    out: list[str] = []
    for g in verdict.gates:
        examples = g.extra.get("examples", {})
        rows = [
            f"| {escape_markdown(i)} | {escape_markdown(str(ex['baseline_rule']))} | "
            f"{escape_markdown(str(ex.get('candidate_rule', '')))} |"
            for i in g.changed()
            if "baseline_rule" in (ex := examples.get(i, {}))
        ]
        if rows:
            out += ["", f"### changed samples of `{g.name}`", "", "| id | production | candidate |"]
            out += ["|---|---|---|", *rows]
    return out


def _provenance(p: dict[str, Any] | Any) -> list[str]:
    md = escape_markdown
    git = p.get("git", {}) if isinstance(p.get("git"), dict) else {}
    lines = [
        f"- policy seed: {md(_known(p.get('seed')))}, created: {md(_known(p.get('created_at')))}",
        f"- git: {md(_known(git.get('commit')))}{' (dirty)' if git.get('dirty') else ''}",
    ]
    lines += [f"- golden {md(k)}: {md(v)}" for k, v in p.get("golden", {}).items()]
    lines += [
        f"- {md(a.get('role'))} {md(a.get('component'))}: {md(a.get('fingerprint'))}"
        for a in p.get("artifacts", [])
    ]
    libs = ", ".join(f"{md(k)} {md(v)}" for k, v in p.get("libraries", {}).items())
    return [*lines, f"- libraries: {libs}"]


def _known(value: Any) -> Any:
    """Missing provenance reads "unknown" (e.g. no git repository), never "None"."""
    return "unknown" if value is None or value == "" else value


def _triggers_section(verdict: Verdict) -> list[str]:
    """The trigger findings and the key signals per window (reference vs current)."""
    recorded = recorded_triggers(verdict)
    if not recorded:
        return []
    md = escape_markdown
    out = ["", "### Why this run happened (retrain triggers)", ""]
    findings = trigger_findings(verdict)
    if not findings:
        out.append("No trigger fired: no finding on these windows.")
    else:
        out += ["| kind | signal | retrain | evidence |", "|---|---|---|---|"]
    for f in findings:
        comps = ", ".join(str(c) for c in f.get("components", []) or [])
        out.append(
            f"| {md(f.get('kind', ''))} | {md(f.get('signal', ''))} | {md(comps)} | "
            f"{md(f.get('message', ''))} |"
        )
    for triggers in recorded:
        out += _signals_table(triggers)
    return out


def _signals_table(triggers: dict[str, Any]) -> list[str]:
    rows = signal_rows(triggers)
    if not rows:
        return []
    out = [
        "",
        "#### Key signals per window",
        "",
        "| signal | reference | current | change | unit |",
        "|---|---|---|---|---|",
    ]
    for label, ref, cur, unit in rows:
        change = "—" if ref is None or cur is None else f"{cur - ref:+.4g}"
        values = f"{format_signal(ref)} | {format_signal(cur)} | {change}"
        out.append(f"| {escape_markdown(label)} | {values} | {escape_markdown(unit)} |")
    return out
