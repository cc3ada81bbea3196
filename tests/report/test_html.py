"""The HTML report: content, plots, and a real render in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from guardrails.gates import evaluate_drift_gate, evaluate_gate
from guardrails.policy import parse_policies
from guardrails.report.html import render_html
from guardrails.verdict import decide

POLICY = parse_policies(
    {
        "policies": {
            "p": {
                "n-resamples": 1000,
                "metrics": {"ndcg@10": {"max-drop": 0.03}, "psi": {"max": 0.2}},
            }
        }
    }
)["p"]


def _verdict(policy=POLICY):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 120)
    ok = evaluate_gate(
        "noninferior",
        "ndcg@10",
        candidate=base,
        baseline=base,
        policy=POLICY,
        name="retrieval-payments",
    )
    bad = evaluate_gate(
        "noninferior",
        "ndcg@10",
        candidate=base - 0.2,
        baseline=base,
        policy=POLICY,
        name="retrieval-devices",
    )
    ref = rng.normal(size=(400, 16)).astype(np.float32)
    cur = (rng.normal(size=(400, 16)) * 1.3 + 0.2).astype(np.float32)
    drift = evaluate_drift_gate(
        "psi", reference=ref, current=cur, policy=POLICY, name="query-norms"
    )
    return decide([ok, bad, drift], policy)


def test_html_holds_decision_plots_and_worst_samples() -> None:
    page = render_html(_verdict())
    assert "<div class='decision' id='decision'>ROLLBACK</div>" in page
    assert page.count("<svg ") == 3  # forest plot, norm histogram, PCA
    forest = page[page.index("<figure class='plot' id='forest'>") :]
    forest = ET.fromstring(forest[forest.index("<svg") : forest.index("</svg>") + 6])
    assert len(forest.findall("circle")) == 2  # one estimate per paired gate
    assert "retrieval-devices — worst samples" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_html_decision_per_component_table() -> None:
    assert "Decision per component" not in render_html(_verdict())  # no components, no table
    components = (
        ("retriever", ("retrieval-payments",)),
        ("devices", ("retrieval-devices", "query-*")),
    )
    page = render_html(_verdict(replace(POLICY, components=components)))
    table = page[page.index("<h2>Decision per component</h2>") : page.index("<h2>Why</h2>")]
    assert page.index("id='decision'") < page.index("<h2>Decision per component</h2>")
    assert "<td>retriever</td><td class='status' style='color:#1a7f37'>PROMOTE</td>" in table
    assert "<td>devices</td><td class='status' style='color:#cf222e'>ROLLBACK</td>" in table
    assert "gate retrieval-devices failed" in table


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install chromium)")


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(_verdict()), encoding="utf-8")
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *FLAGS, profile, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [browser, *FLAGS, profile, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'id="decision">ROLLBACK</div>' in dom
    image = pytest.importorskip("PIL.Image")
    pixels = np.asarray(image.open(shot).convert("RGB"), dtype=float) / 255
    assert pixels.shape[0] > 400 and pixels.std() > 0.05  # not blank
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.25) & (pixels[..., 2] < 0.3)
    assert red.mean() > 0.02  # the rollback banner is on screen


def _canary_verdict():
    from guardrails.gates.fixture import Gate
    from guardrails.report.markdown import render_markdown

    recorded: list = []
    policy = parse_policies({"policies": {"p": {"n-resamples": 1000}}})["p"]
    gate = Gate(policy, record=recorded.append, default_name="canaries")
    ids = [f"c{i}" for i in range(10)]
    base = np.ones(10)
    cand = base.copy()
    cand[3] = 0.0
    base[7] = 0.0
    gate.record(
        examples={
            i: {
                "input": "q",
                "baseline": "a <b>",
                "candidate": "b",
                "baseline_rule": f"rule-base-{i}",
                "candidate_rule": f"rule-cand-{i}",
            }
            for i in ids
        }
    )
    with pytest.raises(AssertionError):  # one canary newly fails: not shown safe
        gate.noninferior("pass_rate", candidate=cand, baseline=base, ids=ids, name="canaries-x")
    return decide(recorded, policy), render_markdown


def test_reports_show_the_rule_of_every_changed_sample() -> None:
    verdict, render_markdown = _canary_verdict()
    (g,) = verdict.gates
    assert sorted(g.extra["examples"]) == ["c3", "c7"]  # the improvement c7 is kept too
    page, md = render_html(verdict), render_markdown(verdict)
    md = md.replace("\\-", "-")  # Markdown escapes the hyphens of data-derived text
    for text in (page, md):
        assert "rule-base-c3" in text and "rule-cand-c3" in text
        assert "rule-base-c7" in text and "rule-cand-c7" in text
        assert "rule-base-c1" not in text  # unchanged samples are not listed
    assert "Changed samples and the rule that decided them" in page
    assert "| c7 | rule-base-c7 | rule-cand-c7 |" in md


def test_reports_say_why_the_run_happened() -> None:
    """Retrain-trigger findings recorded as facts show in both reports (escaped)."""
    from dataclasses import replace as dc_replace

    from guardrails.report.markdown import render_markdown as md_render

    verdict, _ = _canary_verdict()
    finding = {
        "kind": "event",
        "signal": "new_domain",
        "components": ["retriever", "generator"],
        "message": "new domain: 31% of queries <b>far</b> from every reference cluster",
        "p_value": 1e-9,
    }
    gate = dc_replace(verdict.gates[0], extra={"facts": {"triggers": {"findings": [finding]}}})
    verdict = dc_replace(verdict, gates=(gate,))
    page, md = render_html(verdict), md_render(verdict)
    assert "Why this run happened" in page and "new_domain" in page
    assert "&lt;b&gt;far&lt;/b&gt;" in page and "<b>far</b>" not in page
    assert "Why this run happened" in md and "retriever, generator" in md
