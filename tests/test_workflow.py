"""The repository's GitHub Actions release gate: valid against GitHub's workflow schema, and
wired to the contract (exit statuses, caches, artifacts, one PR comment)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from guardrails.verdict.schema import EXIT_STATUS

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "release-gate.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_valid_against_githubs_workflow_schema() -> None:
    pytest.importorskip("check_jsonschema")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_runs_on_pull_requests_with_python_311_the_lock_and_caches(workflow: dict) -> None:
    on = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert "pull_request" in on
    steps = workflow["jobs"]["release-gate"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"
    caches = [s for s in steps if s.get("uses", "").startswith("actions/cache")]
    adapters = next(c for c in caches if c["with"]["path"].strip() == "adapters/")
    for hashed in ("golden/**", "pyproject.toml", ".ci/requirements.lock"):
        assert hashed in adapters["with"]["key"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "bash .ci/setup" in runs and "pytest suites/" in runs
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    assert any(u.startswith("actions/github-script") for u in uses)  # the PR comment


def test_the_outcome_step_reads_the_exit_statuses_guardrails_defines(workflow: dict) -> None:
    steps = workflow["jobs"]["release-gate"]["steps"]
    gates = next(s for s in steps if s.get("id") == "gates")["run"]
    for decision, status in EXIT_STATUS.items():
        assert f"{status}) decision={decision}" in gates
    outcome = steps[-1]["run"]
    assert 'rollback) echo "::error' in outcome and "exit 1" in outcome
    assert 'hold) echo "::warning' in outcome  # hold: its own outcome, not a failure
