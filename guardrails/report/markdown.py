"""The verdict as text: the terminal summary table and a Markdown report for PR comments
or ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import math
from typing import Any

from guardrails.gates import GateResult
from guardrails.verdict import Verdict

__all__ = ["render_markdown", "summary_lines"]

_ICON = {"passed": "✅", "failed": "❌", "inconclusive": "⚠️"}
_DECISION_ICON = {"promote": "✅", "rollback": "❌", "hold": "⚠️"}
_HEADER = ("gate", "metric", "baseline", "candidate", "delta", "CI", "p (adj)", "status")


def _fmt(x: float | None, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def _row(g: GateResult) -> tuple[str, ...]:
    lo, hi = g.ci
    ci = "—" if math.isnan(lo) else f"[{lo:+.4f}, {hi:+.4f}]"
    p = "—" if g.p_value is None else f"{g.p_value:.3g}"
    if g.p_adjusted is not None:
        p += f" ({g.p_adjusted:.3g})"
    return (
        g.name,
        g.metric,
        _fmt(g.baseline),
        _fmt(g.candidate),
        _fmt(g.delta, True),
        ci,
        p,
        g.status.value,
    )


def summary_lines(verdict: Verdict) -> list[str]:
    """A fixed-width table of gates and the decision, for the terminal."""
    rows = [_HEADER, *(_row(g) for g in verdict.gates)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"decision: {verdict.decision.value.upper()} — {verdict.reason}")
    lines += [f"  - {r}" for r in verdict.reasons[1:]]
    components = getattr(verdict, "components", {})  # a session may predate components
    if components:
        lines.append("decision per component:")
        lines += [
            f"  {name}: {c['decision'].upper()} — {c['reason']}" for name, c in components.items()
        ]
    warnings = [f"  ! {g.name}: {w}" for g in verdict.gates for w in g.warnings]
    return lines + warnings


def render_markdown(verdict: Verdict) -> str:
    """Markdown for a PR comment: decision, gate table, worst samples, provenance."""
    out = [f"## guardrails verdict: **{verdict.decision.value.upper()}**", "", verdict.reason, ""]
    out += [f"- {r}" for r in verdict.reasons[1:]]
    out += _components_table(verdict)
    out += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for g in verdict.gates:
        cells = list(_row(g))
        cells[-1] = f"{_ICON.get(g.status.value, '')} {g.status.value}"
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
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
        icon = _DECISION_ICON.get(c["decision"], "")
        cells = (name, f"{icon} **{c['decision'].upper()}**", c["reason"])
        out.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _worst_sections(verdict: Verdict) -> list[str]:
    out: list[str] = []
    for g in verdict.gates:
        if g.passed or not g.worst:
            continue
        out += [
            "",
            f"### worst samples of `{g.name}`",
            "",
            "| id | baseline | candidate |",
            "|---|---|---|",
        ]
        out += [f"| {w['id']} | {_fmt(w['baseline'])} | {_fmt(w['candidate'])} |" for w in g.worst]
        out += [f"> ⚠️ {w}" for w in g.warnings]
    return out


def _changed_sections(verdict: Verdict) -> list[str]:
    """Every discordant sample of a 0/1 gate with the rule that decided each side."""
    out: list[str] = []
    for g in verdict.gates:
        examples = g.extra.get("examples", {})
        rows = [
            f"| {_cell(i)} | {_cell(str(ex['baseline_rule']))} | "
            f"{_cell(str(ex.get('candidate_rule', '')))} |"
            for i in g.changed()
            if "baseline_rule" in (ex := examples.get(i, {}))
        ]
        if rows:
            out += ["", f"### changed samples of `{g.name}`", "", "| id | production | candidate |"]
            out += ["|---|---|---|", *rows]
    return out


def _provenance(p: dict[str, Any] | Any) -> list[str]:
    git = p.get("git", {})
    lines = [
        f"- policy seed: `{p.get('seed')}`, created: `{p.get('created_at')}`",
        f"- git: `{git.get('commit', 'unknown')}`{' (dirty)' if git.get('dirty') else ''}",
    ]
    lines += [f"- golden `{k}`: `{v}`" for k, v in p.get("golden", {}).items()]
    lines += [
        f"- {a.get('role')} {a.get('component')}: `{a.get('fingerprint')}`"
        for a in p.get("artifacts", [])
    ]
    libs = ", ".join(f"{k} {v}" for k, v in p.get("libraries", {}).items())
    return [*lines, f"- libraries: {libs}"]
