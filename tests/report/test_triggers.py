"""Why this run happened: a real trigger decision's findings, key signals per window and plots
in both reports (the HTML parsed, every plot well-formed SVG), and the plot helpers."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

from guardrails.demo.simulator import ComplaintSurge, LSAEmbedder
from guardrails.gates import evaluate_gate
from guardrails.monitoring.drift import compare_windows
from guardrails.monitoring.triggers import decide_triggers, window_pair
from guardrails.policy import parse_policies
from guardrails.report.html import render_html
from guardrails.report.markdown import render_markdown
from guardrails.report.svg import FloorRow, floor_svg, paired_bars_svg
from guardrails.report.triggers import signal_rows
from guardrails.verdict import decide
from tests.monitoring.test_drift import AT, GOLDEN, simulated

POLICY = parse_policies({"policies": {"p": {"n-resamples": 200}}})["p"]
HOSTILE = "</svg><script>alert('x')</script>&"


@pytest.fixture(scope="module")
def decision():
    """A complaint surge about made-up answers after ``AT``: findings, topics and signals."""
    lsa = LSAEmbedder(GOLDEN, ("payments", "devices"))
    before, after = simulated(lsa, (ComplaintSurge("made-up", 0.08, AT),))
    report = compare_windows(before, after, projections=False)
    signals = window_pair(before.records, after.records)
    return decide_triggers(*signals, report, now=datetime(2026, 3, 2, tzinfo=timezone.utc))


def _verdict(triggers: dict, copies: int = 1):
    gate = evaluate_gate(
        "at_least",
        "pass_rate",
        candidate=[1.0] * 20,
        policy=POLICY,
        name="g",
        overrides={"min": 0.5},
    )
    gate = replace(gate, extra={"facts": {"triggers": triggers}})
    return decide([replace(gate, name=f"g{i}") for i in range(copies)], POLICY)


class _Page(HTMLParser):
    """The cells of table#signals and the SVGs inside the plots of the trigger section."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.svgs: list[str] = []
        self._table = self._cell = self._svg = False
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "signals":
            self._table = True
        elif self._table and tag == "tr":
            self.rows.append([])
        elif self._table and tag == "td":
            self._cell, self._buf = True, []

    def handle_endtag(self, tag) -> None:
        if tag == "table":
            self._table = False
        elif self._cell and tag == "td":
            self.rows[-1].append("".join(self._buf).strip())
            self._cell = False

    def handle_data(self, data) -> None:
        if self._cell:
            self._buf.append(data)


def _svgs(page: str) -> list[ET.Element]:
    section = page[page.index("<h2>Why this run happened</h2>") : page.index("<h2>Gates</h2>")]
    parts = section.split("<svg ")[1:]
    return [ET.fromstring("<svg " + p[: p.index("</svg>") + 6]) for p in parts]


def test_html_shows_findings_signals_and_plots(decision) -> None:
    triggers = decision.to_dict()
    assert {f["signal"] for f in triggers["findings"]} >= {"complaint_rate", "complaint_topic"}
    page = render_html(_verdict(triggers, copies=3))  # three gates carry it: shown once
    assert page.count("<h2>Why this run happened</h2>") == 1
    assert page.count("Key signals per window") == 1
    parser = _Page()
    parser.feed(page)
    rows = {r[0]: r[1:] for r in parser.rows if r}
    ref, cur = triggers["signals"]["reference"], triggers["signals"]["current"]
    assert rows["complaint rate"][:2] == [
        f"{ref['complaint_rate']:.4g}",
        f"{cur['complaint_rate']:.4g}",
    ]
    assert float(rows["complaint rate"][2]) == pytest.approx(
        cur["complaint_rate"] - ref["complaint_rate"], rel=1e-3
    )
    for name in (
        "CTR",
        "mean dwell",
        "repeat-query rate",
        "like rate",
        "dislike rate",
        "unsafe rate",
        "hallucination rate",
        "throughput",
        "memory max",
        "latency total p50",
        "latency total p95",
        "latency generate p99",
    ):
        assert name in rows, sorted(rows)
    assert any(k.startswith("complaints: ") for k in rows)
    svgs = _svgs(page)  # each parses as XML: well-formed
    titles = [s.findtext("title") for s in svgs]
    assert titles[:2] == [
        "behaviour and feedback: reference vs current window",
        "safety and errors: reference vs current window",
    ]
    assert "latency percentiles per stage" in titles
    assert "complaint topics (complaints per query)" in titles
    floors = svgs[titles.index("drift statistics against their alarm floors")]
    assert len(floors.findall("rect")) == len(triggers["drift"])  # one bar per statistic


def test_markdown_shows_findings_and_signals(decision) -> None:
    triggers = decision.to_dict()
    md = render_markdown(_verdict(triggers, copies=2))
    assert md.count("### Why this run happened") == 1 and md.count("#### Key signals") == 1
    ref, cur = triggers["signals"]["reference"], triggers["signals"]["current"]
    assert f"| CTR | {ref['ctr']:.4g} | {cur['ctr']:.4g} | {cur['ctr'] - ref['ctr']:+.4g} |" in md
    assert "| latency total p95 |" in md and "complaint\\_rate" in md
    rows = signal_rows(triggers)
    assert sum(line.startswith("| ") for line in md.splitlines()) >= len(rows)


def test_no_finding_still_shows_the_signals_and_hostile_text_is_inert(decision) -> None:
    triggers = decision.to_dict() | {"findings": []}
    triggers["signals"]["current"]["complaint_topics"] = [{"label": HOSTILE, "rate": 0.1}]
    page, md = render_html(_verdict(triggers)), render_markdown(_verdict(triggers))
    assert "No trigger fired" in page and "No trigger fired" in md
    assert "<script>alert" not in page and "<script>alert" not in md
    assert all(s.tag == "svg" for s in _svgs(page))


def test_paired_bars_scale_with_the_values_and_skip_missing_ones() -> None:
    root = ET.fromstring(paired_bars_svg([("a", 0.1, 0.2), ("b", None, 0.4)], "t", "x"))
    widths = [float(r.get("width")) for r in root.findall("rect") if r.find("title") is not None]
    assert len(widths) == 3  # the missing reference of row b draws no bar
    assert widths[1] == pytest.approx(2 * widths[0], rel=1e-2)
    assert widths[2] == pytest.approx(4 * widths[0], rel=1e-2)
    assert any(t.text == "n/a" for t in root.findall("text"))


def test_floor_chart_marks_the_floor_and_the_alarm() -> None:
    rows = [FloorRow("mmd", 0.03, 0.01, True), FloorRow("ks_max", 0.05, 0.1, False)]
    root = ET.fromstring(floor_svg(rows, "t"))
    bars = root.findall("rect")
    ticks = [e for e in root.findall("line") if e.get("stroke-width") == "2"]
    assert [b.get("fill") for b in bars] == ["#cf222e", "#0969da"]  # red only when alarming
    for bar, tick in zip(bars, ticks, strict=True):  # alarm: value beyond the floor tick
        end = float(bar.get("x")) + float(bar.get("width"))
        assert (end > float(tick.get("x1"))) == (bar.get("fill") == "#cf222e")
    lone = ET.fromstring(floor_svg([FloorRow(HOSTILE, math.nan, math.nan, False)], HOSTILE))
    assert lone.findtext("title") == HOSTILE  # escaped: parsed back as text
