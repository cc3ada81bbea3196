"""The plugin's hooks (pytester): a conftest overrides the decision, acts on the written
verdict, and a wrong return type is refused with a clear message."""

from __future__ import annotations

import json

import pytest

PYPROJECT = """
[tool.guardrails]
policy = "p"
n-resamples = 1000
[tool.guardrails.policies.p.metrics."ndcg@10"]
max-drop = 0.05
"""

SUITE = """
import numpy as np

def test_quality(gate):
    base = np.random.default_rng(0).uniform(0, 1, 100)
    gate.noninferior("ndcg@10", candidate=base, baseline=base, name="quality")
"""

CONFTEST = """
from dataclasses import replace
from guardrails.verdict import Decision

def pytest_guardrails_decide(verdict, config):
    if verdict.decision is Decision.PROMOTE:
        return replace(verdict, decision=Decision.HOLD, reason="team rule: hold on Fridays")

def pytest_guardrails_verdict_written(verdict, path, report, config):
    (config.rootpath / "posted.txt").write_text(
        f"{verdict.decision.value} {path.name} {report.name}"
    )
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_gates=SUITE)
    return pytester


def test_a_decide_hook_overrides_and_is_recorded(project: pytest.Pytester) -> None:
    project.makeconftest(CONFTEST)
    result = project.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    assert result.ret == 10  # held: the session is red (exit status of hold)
    verdict = json.loads((project.path / "v.json").read_text())
    assert verdict["decision"] == "hold" and verdict["reason"] == "team rule: hold on Fridays"
    assert verdict["provenance"]["rules_decided"]["decision"] == "promote"
    assert "conftest" in verdict["provenance"]["decided_by_hook"]
    assert (project.path / "posted.txt").read_text() == "hold v.json v.html"


def test_without_hooks_the_rules_decide(project: pytest.Pytester) -> None:
    result = project.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    assert result.ret == 0
    verdict = json.loads((project.path / "v.json").read_text())
    assert verdict["decision"] == "promote" and "decided_by_hook" not in verdict["provenance"]


def test_a_decide_hook_returning_something_else_is_refused(project: pytest.Pytester) -> None:
    project.makeconftest("def pytest_guardrails_decide(verdict, config):\n    return 'promote'\n")
    result = project.runpytest("--guardrails-verdict=v.json", "-p", "no:cacheprovider")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "pytest_guardrails_decide in" in output and "returned str" in output
    assert not (project.path / "v.json").exists()
