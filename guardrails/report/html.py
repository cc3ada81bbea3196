"""The verdict as one self-contained HTML page for a release manager.

Every value from the verdict is passed through :func:`html.escape` (quotes too, so attribute
values are safe) and the SVG plots escape their labels: a crafted verdict renders as text.

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
from collections.abc import Mapping, Sequence
from typing import Any

from guardrails.gates import GateResult
from guardrails.report.markdown import decided_by
from guardrails.report.svg import ForestRow, forest_svg, histogram_svg, scatter_svg
from guardrails.report.triggers import (
    format_signal,
    recorded_triggers,
    signal_rows,
    trigger_findings,
    trigger_svgs,
)
from guardrails.verdict import Verdict

__all__ = ["forest_plot_svg", "forest_plot_svgs", "render_html"]

# Click a column header to sort the table by it (numbers numerically); no network, no library.
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('thead th').forEach(function (th, col) {
    th.style.cursor = 'pointer'; th.title = 'sort';
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.dataset.sort !== 'asc'; th.dataset.sort = asc ? 'asc' : 'desc';
      var key = function (r) {
        var t = r.cells[col].textContent.trim(), n = parseFloat(t.replace(/^\\[/, ''));
        return isNaN(n) ? t : n;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var both = typeof x === 'number' && typeof y === 'number';
        var c = both ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

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


def forest_plot_svgs(gates: Sequence[GateResult]) -> list[str]:
    """Inline SVGs, one forest plot per metric (each on its own axis, so a latency limit in ms
    does not squash nDCG deltas): every row is the paired delta with its CI and the policy limit
    as a red tick, oriented so that right is better (lower-is-better metrics are flipped)."""
    panels: dict[str, list[ForestRow]] = {}
    flipped: dict[str, bool] = {}
    for g in gates:
        if g.kind not in ("noninferior", "superior") or g.delta is None or math.isnan(g.ci[0]):
            continue
        s = 1.0 if g.higher_is_better else -1.0
        lo, hi = sorted((s * g.ci[0], s * g.ci[1]))
        panels.setdefault(g.metric, []).append(
            ForestRow(g.name, lo, hi, s * g.delta, g.threshold, _COLORS[g.status.value])
        )
        flipped[g.metric] = not g.higher_is_better
    return [
        forest_svg(
            rows,
            f"{metric}: paired deltas with confidence intervals",
            "improvement (right = better"
            + ("; lower raw values are better, so the sign is flipped" if flipped[metric] else "")
            + "); red tick = policy limit",
        )
        for metric, rows in sorted(panels.items())
    ]


def forest_plot_svg(gates: Sequence[GateResult]) -> str | None:
    """All the forest panels of :func:`forest_plot_svgs` as one fragment (None without any)."""
    panels = forest_plot_svgs(gates)
    return "".join(panels) if panels else None


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
        "decided by",
        "limit",
        "status",
    )
    rows = []
    for g in gates:
        ci = "—" if math.isnan(g.ci[0]) else f"[{g.ci[0]:+.4f}, {g.ci[1]:+.4f}]"
        cells = (
            html.escape(g.name),
            html.escape(g.metric),
            _fmt(g.baseline),
            _fmt(g.candidate),
            _fmt(g.delta, True),
            ci,
            html.escape(decided_by(g)),
            html.escape(g.limit),
        )
        tds = "".join(
            f"<td class='num'>{c}</td>" if i in (2, 3, 4) else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        color = _COLORS.get(g.status.value, "#000")
        status = html.escape(g.status.value)
        rows.append(f"<tr>{tds}<td class='status' style='color:{color}'>{status}</td></tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return (
        f"<table class='sortable' id='gates'><thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _worst(g: GateResult) -> str:
    if not g.worst:
        return ""
    examples = g.extra.get("examples", {})
    rows = []
    for w in g.worst:
        ex = examples.get(str(w["id"]), {})
        ex = ex if isinstance(ex, Mapping) else {}
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
    git, timings = p.get("git", {}), p.get("timings", {})
    rows = [
        ("created", p.get("created_at")),
        ("git", git.get("commit") if isinstance(git, Mapping) else git),
        ("seed", p.get("seed")),
        ("python", p.get("python")),
        (
            "session seconds",
            timings.get("session_seconds") if isinstance(timings, Mapping) else None,
        ),
    ]
    rows = [(k, "unknown" if v is None or v == "" else v) for k, v in rows]
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


def _triggers_table(verdict: Verdict) -> str:
    """Why this run happened: the retrain-trigger findings the run recorded, the key signals
    per window and their plots."""
    recorded = recorded_triggers(verdict)
    if not recorded:
        return ""
    findings = trigger_findings(verdict)
    rows = "".join(
        f"<tr><td>{html.escape(str(f.get('kind', '')))}</td>"
        f"<td>{html.escape(str(f.get('signal', '')))}</td>"
        f"<td>{html.escape(', '.join(str(c) for c in f.get('components', []) or []))}</td>"
        f"<td>{html.escape(str(f.get('message', '')))}</td></tr>"
        for f in findings
    )
    table = (
        "<table class='sortable' id='triggers'><thead><tr><th>kind</th><th>signal</th>"
        f"<th>retrain</th><th>evidence</th></tr></thead><tbody>{rows}</tbody></table>"
        if findings
        else "<p id='triggers'>No trigger fired: no finding on these windows.</p>"
    )
    parts = ["<h2>Why this run happened</h2>", table]
    for triggers in recorded:
        parts.append(_signals_table(triggers))
        parts += [f"<figure class='plot signals'>{svg}</figure>" for svg in trigger_svgs(triggers)]
    return "".join(parts)


def _signals_table(triggers: dict[str, Any]) -> str:
    rows = signal_rows(triggers)
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td class='num'>{format_signal(ref)}</td>"
        f"<td class='num'>{format_signal(cur)}</td><td class='num'>"
        f"{'—' if ref is None or cur is None else f'{cur - ref:+.4g}'}</td>"
        f"<td>{html.escape(unit)}</td></tr>"
        for label, ref, cur, unit in rows
    )
    return (
        "<h3>Key signals per window</h3><table class='sortable' id='signals'><thead><tr>"
        "<th>signal</th><th>reference</th><th>current</th><th>change</th><th>unit</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _components_table(verdict: Verdict) -> str:
    if not verdict.components:
        return ""
    rows = []
    for name, c in verdict.components.items():
        decision = str(c["decision"])
        rows.append(
            f"<tr><td>{html.escape(str(name))}</td><td class='status' "
            f"style='color:{_BANNER.get(decision, '#000')}'>{html.escape(decision.upper())}</td>"
            f"<td>{html.escape(str(c['reason']))}</td></tr>"
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
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in verdict.reasons)
    warnings = "".join(
        f"<li class='warn'>{html.escape(g.name)}: {html.escape(str(w))}</li>"
        for g in verdict.gates
        for w in g.warnings
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>guardrails verdict: {decision.upper()}</title><style>{_CSS}</style></head><body>",
        f"<div class='banner' style='background:{_BANNER[decision]}'>",
        f"<div>guardrails verdict · policy <b>{html.escape(str(verdict.policy.get('name')))}"
        f"</b></div><div class='decision' id='decision'>{decision.upper()}</div>",
        f"<div>{html.escape(str(verdict.reason))}</div></div>",
        _components_table(verdict),
        f"<h2>Why</h2><ul>{reasons}</ul>",
        _triggers_table(verdict),
        f"<h3>Warnings</h3><ul>{warnings}</ul>" if warnings else "",
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
    parts += [
        "<h2>Provenance</h2>",
        _provenance(verdict.provenance),
        f"<script>{_SORT_JS}</script></body></html>",
    ]
    return "\n".join(parts)
