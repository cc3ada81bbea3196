"""Plots for the reports as inline SVG: no plotting library, so the core install draws them.

Five charts cover what a verdict shows: a forest plot (one row per paired gate: CI bar, point
estimate, policy limit), step histograms (reference vs current), a 2-D scatter (PCA of
reference vs current embeddings), paired bars (a signal per row, reference vs current window)
and a floor chart (each drift statistic against its own alarm floor). Each function returns
one ``<svg>`` element with a ``<title>`` for screen readers; every text is escaped, so names
from a verdict cannot inject markup.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "FloorRow",
    "ForestRow",
    "floor_svg",
    "forest_svg",
    "histogram_svg",
    "paired_bars_svg",
    "scatter_svg",
]

_FONT = "font-family='system-ui,sans-serif' font-size='11'"
_SERIES = ("#0969da", "#cf222e", "#1a7f37", "#8250df")
_LIMIT = "#cf222e"
_AXIS = "#8c959f"
_BOUND = 1e100


@dataclass(frozen=True)
class ForestRow:
    """One gate in a forest plot: its CI ``(low, high)``, estimate and policy limit."""

    label: str
    low: float
    high: float
    estimate: float
    limit: float | None
    color: str


class _Scale:
    """Linear map of ``[lo, hi]`` (padded by 5 %, never empty) onto ``[a, b]`` pixels."""

    def __init__(self, values: Sequence[float], a: float, b: float) -> None:
        # clipped so the span, its padding and the tick step stay finite for any input
        finite = [min(max(v, -_BOUND), _BOUND) for v in values if math.isfinite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        span = hi - lo
        tiny = span <= max(abs(hi), abs(lo), 1.0) * 1e-9  # a point: pad to a readable range
        pad = max(abs(hi), 1.0) * 0.05 if tiny else span * 0.05
        self.lo, self.hi, self.a, self.b = lo - pad, hi + pad, a, b

    def __call__(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi) if math.isfinite(v) else self.lo
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        step = _nice_step((self.hi - self.lo) / n)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(n + 2) if first + i * step <= self.hi]


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _svg(width: int, height: int, title: str, body: Sequence[str]) -> str:
    return (
        f"<svg width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' {_FONT}><title>{escape(title)}</title>"
        f"<text x='{width / 2:.0f}' y='14' text-anchor='middle' font-weight='600'>"
        f"{escape(title)}</text>{''.join(body)}</svg>"
    )


def _x_axis(scale: _Scale, y: float, label: str) -> list[str]:
    out = [f"<line x1='{scale.a}' x2='{scale.b}' y1='{y}' y2='{y}' stroke='{_AXIS}'/>"]
    for t in scale.ticks():
        x = scale(t)
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y}' y2='{y + 4}' stroke='{_AXIS}'/>")
        out.append(f"<text x='{x:.1f}' y='{y + 15}' text-anchor='middle'>{t:.4g}</text>")
    mid = (scale.a + scale.b) / 2
    out.append(f"<text x='{mid:.0f}' y='{y + 30}' text-anchor='middle'>{escape(label)}</text>")
    return out


def forest_svg(rows: Sequence[ForestRow], title: str, xlabel: str, width: int = 820) -> str:
    """A forest plot: per row a CI bar, a dot at the estimate, a red tick at the limit."""
    left, right, top, step = 260, width - 20, 28, 22
    values = [v for r in rows for v in (r.low, r.high, r.estimate, r.limit) if v is not None]
    scale = _Scale([*values, 0.0], left, right)
    bottom = top + step * len(rows)
    body = [
        f"<line x1='{scale(0):.1f}' x2='{scale(0):.1f}' y1='{top}' y2='{bottom}' "
        f"stroke='{_AXIS}' stroke-dasharray='4 3'/>"
    ]
    for i, r in enumerate(rows):
        y = top + step * i + step / 2
        label = escape(r.label)
        body.append(f"<text x='{left - 8}' y='{y + 4:.0f}' text-anchor='end'>{label}</text>")
        body.append(
            f"<line x1='{scale(r.low):.1f}' x2='{scale(r.high):.1f}' y1='{y}' y2='{y}' "
            f"stroke='{r.color}' stroke-width='3'/>"
            f"<circle cx='{scale(r.estimate):.1f}' cy='{y}' r='4' fill='{r.color}'/>"
        )
        if r.limit is not None:
            x = scale(r.limit)
            body.append(
                f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y - 8}' y2='{y + 8}' "
                f"stroke='{_LIMIT}' stroke-width='2'/>"
            )
    body += _x_axis(scale, bottom + 4, xlabel)
    return _svg(width, bottom + 40, title, body)


def histogram_svg(
    edges: Sequence[float], series: Mapping[str, Sequence[float]], title: str, width: int = 420
) -> str:
    """Step histograms over shared bin ``edges``, one outline per series, with a legend."""
    left, right, top, bottom = 40, width - 10, 40, 230
    if len(edges) < 2:
        edges = [0.0, 1.0]  # nothing to draw but the frame
    xs = _Scale(list(edges), left, right)
    peak = max((max(counts, default=0.0) for counts in series.values()), default=0.0)
    peak = peak if math.isfinite(peak) and peak > 0 else 1.0
    body = []
    for (name, counts), color in zip(series.items(), _colors(), strict=False):
        points = [f"{xs(edges[0]):.1f},{bottom}"]
        # a count per bin; extra counts or edges of a malformed histogram are not drawn
        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=False):
            y = bottom - (bottom - top) * c / peak
            points += [f"{xs(lo):.1f},{y:.1f}", f"{xs(hi):.1f},{y:.1f}"]
        points.append(f"{xs(edges[-1]):.1f},{bottom}")
        body.append(
            f"<polyline points='{' '.join(points)}' fill='{color}' fill-opacity='0.15' "
            f"stroke='{color}' stroke-width='1.5'><title>{escape(name)}</title></polyline>"
        )
    body += _legend(list(series), left + 6, top - 14)
    body += _x_axis(xs, bottom, "value")
    return _svg(width, bottom + 40, title, body)


def scatter_svg(
    series: Mapping[str, Sequence[Sequence[float]]], title: str, width: int = 420
) -> str:
    """A 2-D scatter, one colour per series (e.g. PCA of reference vs current)."""
    left, right, top, bottom = 40, width - 10, 40, 300
    points = [p for pts in series.values() for p in pts]
    xs = _Scale([p[0] for p in points], left, right)
    ys = _Scale([p[1] for p in points], bottom, top)
    body = []
    for (_, pts), color in zip(series.items(), _colors(), strict=False):
        body += [
            f"<circle cx='{xs(p[0]):.1f}' cy='{ys(p[1]):.1f}' r='2' fill='{color}' "
            "fill-opacity='0.5'/>"
            for p in pts
        ]
    body += _legend(list(series), left + 6, top - 14)
    body += _x_axis(xs, bottom, "component 1")
    return _svg(width, bottom + 40, title, body)


def paired_bars_svg(
    rows: Sequence[tuple[str, float | None, float | None]],
    title: str,
    xlabel: str,
    series: tuple[str, str] = ("reference", "current"),
    width: int = 820,
) -> str:
    """Horizontal bars on one shared axis: per row (label, first, second) two bars, one per
    ``series``; a missing value (None / NaN) draws no bar and reads "n/a"."""
    left, right, top, step = 260, width - 70, 40, 30
    values = [v for _, a, b in rows for v in (a, b) if v is not None and math.isfinite(v)]
    scale = _Scale([0.0, *values], left, right)
    bottom = top + step * len(rows)
    body = _legend(list(series), left + 6, top - 14)
    for i, (label, *pair) in enumerate(rows):
        y = top + step * i
        body.append(
            f"<text x='{left - 8}' y='{y + step / 2 + 4:.0f}' text-anchor='end'>"
            f"{escape(label)}</text>"
        )
        for j, (value, color) in enumerate(zip(pair, _SERIES, strict=False)):
            body += _bar(scale, value, y + 3 + j * 12, 11, color)
    body += _x_axis(scale, bottom + 4, xlabel)
    return _svg(width, bottom + 40, title, body)


def _bar(scale: _Scale, value: float | None, y: float, h: float, color: str) -> list[str]:
    x0 = scale(0.0)
    if value is None or not math.isfinite(value):
        return [f"<text x='{x0 + 4:.1f}' y='{y + h - 2:.0f}' fill='{_AXIS}'>n/a</text>"]
    x1 = scale(value)
    lo, hi = sorted((x0, x1))
    return [
        f"<rect x='{lo:.1f}' y='{y:.1f}' width='{max(hi - lo, 1.0):.1f}' height='{h}' "
        f"fill='{color}'><title>{value:.4g}</title></rect>",
        f"<text x='{hi + 4:.1f}' y='{y + h - 2:.0f}'>{value:.4g}</text>",
    ]


@dataclass(frozen=True)
class FloorRow:
    """One statistic against its alarm floor (``alarm``: it crossed the floor, significantly)."""

    label: str
    value: float
    floor: float
    alarm: bool


def floor_svg(rows: Sequence[FloorRow], title: str, width: int = 820) -> str:
    """Per row, on its own axis from 0 (statistics have different units): a bar to the value
    (red when the row alarms) and a red tick at the floor, both labelled."""
    left, right, top, step = 160, width - 190, 30, 26
    body = []
    for i, r in enumerate(rows):
        y = top + step * i
        scale = _Scale([0.0, r.value, r.floor], left, right)
        color = _LIMIT if r.alarm else _SERIES[0]
        body.append(
            f"<text x='{left - 8}' y='{y + 15}' text-anchor='end'>{escape(r.label)}</text>"
            f"<line x1='{left}' x2='{right}' y1='{y + 20}' y2='{y + 20}' stroke='{_AXIS}'/>"
        )
        body += _bar(scale, r.value, y + 6, 12, color)[:1]
        if math.isfinite(r.floor):
            x = scale(r.floor)
            body.append(
                f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y + 2}' y2='{y + 22}' stroke='{_LIMIT}' "
                f"stroke-width='2'><title>floor {r.floor:.4g}</title></line>"
            )
        verdict = "ALARM" if r.alarm else "quiet"
        # some statistics alarm below their floor (a cosine that drops): say which side it is on
        side = "<" if r.value < r.floor else "≥" if r.value >= r.floor else "vs"
        body.append(
            f"<text x='{right + 8}' y='{y + 15}'>{_num(r.value)} {escape(side)} floor "
            f"{_num(r.floor)} · {verdict}</text>"
        )
    return _svg(width, top + step * len(rows) + 10, title, body)


def _num(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "n/a"


def _colors() -> Iterator[str]:
    return itertools.cycle(_SERIES)


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, (name, color) in enumerate(zip(names, _colors(), strict=False)):
        at = x + i * 110
        out.append(
            f"<rect x='{at}' y='{y - 8}' width='10' height='10' fill='{color}'/>"
            f"<text x='{at + 14}' y='{y + 1}'>{escape(name)}</text>"
        )
    return out
