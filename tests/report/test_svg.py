"""Inline SVG plots: well-formed, geometrically right, and safe against hostile labels."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardrails.report.svg import ForestRow, forest_svg, histogram_svg, scatter_svg

HOSTILE = "</svg><script>alert('x')</script>&"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def test_forest_places_estimate_inside_its_ci_and_limit_where_it_belongs() -> None:
    rows = [
        ForestRow("a", -0.03, 0.01, -0.01, -0.02, "#1a7f37"),
        ForestRow("b", 0.10, 0.30, 0.20, 0.0, "#9a6700"),
    ]
    root = _parse(forest_svg(rows, "t", "x"))
    bars = [e for e in root.findall("line") if e.get("stroke-width") == "3"]
    dots = root.findall("circle")
    assert len(bars) == 2 and len(dots) == 2
    for bar, dot in zip(bars, dots, strict=True):
        lo, hi = sorted((float(bar.get("x1")), float(bar.get("x2"))))
        assert lo <= float(dot.get("cx")) <= hi
    a_hi, b_lo = float(bars[0].get("x2")), float(bars[1].get("x1"))
    assert a_hi < b_lo  # row b's whole CI lies right of row a's: one shared axis
    ticks = [e for e in root.findall("line") if e.get("stroke-width") == "2"]
    assert len(ticks) == 2 and float(ticks[0].get("x1")) < float(dots[0].get("cx"))


def test_labels_are_escaped() -> None:
    for svg in (
        forest_svg([ForestRow(HOSTILE, 0, 1, 0.5, None, "#000")], HOSTILE, HOSTILE),
        histogram_svg([0, 1, 2], {HOSTILE: [1, 2]}, HOSTILE),
        scatter_svg({HOSTILE: [(0, 0), (1, 1)]}, HOSTILE),
    ):
        root = _parse(svg)
        assert "<script>" not in svg
        assert root.find("title").text == HOSTILE


def test_histogram_outline_heights_follow_counts() -> None:
    root = _parse(histogram_svg([0.0, 1.0, 2.0, 3.0], {"ref": [1, 4, 2]}, "h"))
    points = [tuple(map(float, p.split(","))) for p in root.find("polyline").get("points").split()]
    tops = [y for _, y in points[1:-1:2]]  # one level per bin
    assert tops[1] < tops[2] < tops[0]  # SVG y grows downward: the tallest bin is smallest y


@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=30,
    )
)
def test_scatter_is_well_formed_for_any_points(points: list[tuple[float, float]]) -> None:
    root = _parse(scatter_svg({"reference": points, "current": points[:1]}, "s"))
    xs = [float(c.get("cx")) for c in root.findall("circle")]
    assert len(xs) == len(points) + 1
    assert all(0 <= x <= 420 for x in xs)


def test_degenerate_inputs_still_draw() -> None:
    _parse(forest_svg([ForestRow("same", 0.0, 0.0, 0.0, 0.0, "#000")], "t", "x"))
    _parse(histogram_svg([1.0, 1.0], {"ref": [0]}, "h"))
    with pytest.raises(ET.ParseError):
        _parse("<svg><unclosed></svg>")  # the parser used above is strict
