"""The verdict as one self-contained HTML page for a release manager.

The page holds the decision and why (and the decision per component, when the policy defines
components), a forest plot of every comparative gate (delta with its
CI against the policy limit), drift plots when the verdict carries them (norm histograms and a
PCA of reference vs current embeddings), the worst samples with production's and the
candidate's outputs side by side, and the provenance. Plots are inline SVG
(:mod:`guardrails.report.svg`), so the page needs no plotting library to write and opens anywhere
with no network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from guardrails.gates import GateResult
from guardrails.report.svg import ForestRow, forest_svg, histogram_svg, scatter_svg
from guardrails.verdict import Verdict

__all__ = ["forest_plot_svg", "render_html"]

_COLORS = {"passed": "#1a7f37", "failed": "#cf222e", "inconclusive": "#9a6700"}
_BANNER = {"promote": "#1a7f37", "rollback": "#cf222e", "hold": "#9a6700"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2328;padding:0 1rem}
h1{margin:.2rem 0} h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.banner{color:#fff;padding:1.2rem 1.5rem;border-radius:8px}
.banner .decision{font-size:2.2rem;font-weight:700;letter-spacing:.05em}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600} svg{max-width:100%;height:auto} figure{margin:.5rem 0} .warn{color:#9a6700}
.side{display:grid;grid-template-columns:1fr 1fr;gap:.5rem} pre{white-space:pre-wrap;margin:0}
"""


def forest_plot_svg(gates: Sequence[GateResult]) -> str | None:
    """Inline SVG: each paired gate's delta and CI, with its policy limit as a red tick."""
    rows = [
        ForestRow(
            g.name,
            g.ci[0],
            g.ci[1],
            g.delta,
            g.threshold if g.higher_is_better else -g.threshold,
            _COLORS[g.status.value],
        )
        for g in gates
        if g.kind in ("noninferior", "superior") and g.delta is not None and not math.isnan(g.ci[0])
    ]
    if not rows:
        return None
    return forest_svg(
        rows,
        "Paired deltas with confidence intervals",
        "candidate − baseline (CI; red tick = policy limit)",
    )


def _drift_svgs(g: GateResult) -> list[str]:
    plots = []
    hist, pca = g.extra.get("norm_hist"), g.extra.get("pca")
    if hist:
        series = {"reference": hist["reference"], "current": hist["current"]}
        plots.append(histogram_svg(hist["edges"], series, f"{g.name}: embedding norms"))
    if pca:
        series = {"reference": pca["reference"], "current": pca["current"]}
        plots.append(scatter_svg(series, f"{g.name}: PCA of reference vs current"))
    return plots


def _fmt(x: Any, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def _gate_table(gates: Sequence[GateResult]) -> str:
    head = (
        "gate",
        "metric",
        "baseline",
        "candidate",
        "delta",
        "CI",
        "p",
        "p (Holm)",
        "limit",
        "status",
    )
    rows = []
    for g in gates:
        ci = "—" if math.isnan(g.ci[0]) else f"[{g.ci[0]:+.4f}, {g.ci[1]:+.4f}]"
        cells = (
            html.escape(g.name),
            g.metric,
            _fmt(g.baseline),
            _fmt(g.candidate),
            _fmt(g.delta, True),
            ci,
            _fmt(g.p_value),
            _fmt(g.p_adjusted),
            html.escape(g.limit),
        )
        tds = "".join(
            f"<td class='num'>{c}</td>" if i in (2, 3, 4, 6, 7) else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        color = _COLORS.get(g.status.value, "#000")
        rows.append(f"<tr>{tds}<td class='status' style='color:{color}'>{g.status.value}</td></tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _worst(g: GateResult) -> str:
    if not g.worst:
        return ""
    examples = g.extra.get("examples", {})
    rows = []
    for w in g.worst:
        ex = examples.get(str(w["id"]), {})
        side = ""
        if ex:
            side = (
                f"<div><b>input:</b> {html.escape(str(ex.get('input', '')))}</div>"
                "<div class='side'>"
                f"<div><b>production</b><pre>{html.escape(str(ex.get('baseline', '')))}</pre></div>"
                f"<div><b>candidate</b><pre>{html.escape(str(ex.get('candidate', '')))}</pre>"
                "</div></div>"
            )
        rows.append(
            f"<tr><td>{html.escape(str(w['id']))}</td><td class='num'>"
            f"{_fmt(w.get('baseline'))}</td><td class='num'>{_fmt(w.get('candidate'))}"
            f"</td><td>{side}</td></tr>"
        )
    return (
        f"<h3>{html.escape(g.name)} — worst samples</h3><table><tr><th>id</th>"
        f"<th>production</th><th>candidate</th><th>outputs</th></tr>{''.join(rows)}</table>"
    )


def _changed(g: GateResult) -> str:
    """Every discordant sample of a 0/1 gate whose examples say which rule decided it."""
    examples = g.extra.get("examples", {})
    rows = [
        f"<tr><td>{html.escape(i)}</td><td>{html.escape(str(ex.get('baseline_rule', '')))}"
        f"</td><td>{html.escape(str(ex.get('candidate_rule', '')))}</td></tr>"
        for i in g.changed()
        if "baseline_rule" in (ex := examples.get(i, {}))
    ]
    if not rows:
        return ""
    return (
        f"<h3>{html.escape(g.name)}</h3><table><tr><th>id</th><th>production</th>"
        f"<th>candidate</th></tr>{''.join(rows)}</table>"
    )


def _provenance(p: Any) -> str:
    rows = [
        ("created", p.get("created_at")),
        ("git", p.get("git", {}).get("commit")),
        ("seed", p.get("seed")),
        ("python", p.get("python")),
        ("session seconds", p.get("timings", {}).get("session_seconds")),
    ]
    rows += [(f"golden {k}", v) for k, v in p.get("golden", {}).items()]
    rows += [
        (f"{a.get('role')} {a.get('component')}", a.get("fingerprint"))
        for a in p.get("artifacts", [])
    ]
    rows += [(f"library {k}", v) for k, v in p.get("libraries", {}).items()]
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


def _components_table(verdict: Verdict) -> str:
    if not verdict.components:
        return ""
    rows = []
    for name, c in verdict.components.items():
        decision = c["decision"]
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class='status' "
            f"style='color:{_BANNER.get(decision, '#000')}'>{html.escape(decision.upper())}</td>"
            f"<td>{html.escape(c['reason'])}</td></tr>"
        )
    return (
        "<h2>Decision per component</h2><table id='components'><tr><th>component</th>"
        f"<th>decision</th><th>reason</th></tr>{''.join(rows)}</table>"
    )


def render_html(verdict: Verdict) -> str:
    """One self-contained HTML page for ``verdict``."""
    decision = verdict.decision.value
    forest = forest_plot_svg(verdict.gates)
    drift = [svg for g in verdict.gates if g.kind == "no_drift" for svg in _drift_svgs(g)]
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons)
    warnings = "".join(
        f"<li class='warn'>{html.escape(g.name)}: {html.escape(w)}</li>"
        for g in verdict.gates
        for w in g.warnings
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>guardrails verdict: {decision.upper()}</title><style>{_CSS}</style></head><body>",
        f"<div class='banner' style='background:{_BANNER[decision]}'>",
        f"<div>guardrails verdict · policy <b>{html.escape(str(verdict.policy.get('name')))}"
        f"</b></div><div class='decision' id='decision'>{decision.upper()}</div>",
        f"<div>{html.escape(verdict.reason)}</div></div>",
        _components_table(verdict),
        f"<h2>Why</h2><ul>{reasons}</ul>",
        f"<ul>{warnings}</ul>" if warnings else "",
        "<h2>Gates</h2>",
        _gate_table(verdict.gates),
        f"<figure class='plot' id='forest'>{forest}</figure>" if forest else "",
    ]
    if drift:
        parts.append("<h2>Drift</h2>")
        parts += [f"<figure class='plot drift'>{svg}</figure>" for svg in drift]
    worst = "".join(_worst(g) for g in verdict.gates if not g.passed)
    if worst:
        parts += ["<h2>Worst samples</h2>", worst]
    changed = "".join(_changed(g) for g in verdict.gates)
    if changed:
        parts += ["<h2>Changed samples and the rule that decided them</h2>", changed]
    parts += ["<h2>Provenance</h2>", _provenance(verdict.provenance), "</body></html>"]
    return "\n".join(parts)
