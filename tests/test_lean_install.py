"""The core install (no `ml` extra, no matplotlib) runs a gate suite and writes every artifact.

The ML stack and the plotting library are blocked from import in a subprocess (a
``sitecustomize`` on ``PYTHONPATH`` that refuses them), which is what a team that installed
``pytest-guardrails`` without extras has: the plugin, the gates, the verdict JSON, the Markdown
and the HTML report (plots as inline SVG) must all work there, with no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = (
    "torch",
    "transformers",
    "sentence_transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "faiss",
    "sklearn",
    "pyarrow",
    "pandas",
    "ray",
    "gguf",
    "matplotlib",
)

SITECUSTOMIZE = f"""
import importlib.abc, sys

BLOCKED = {BLOCKED!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: lean install)")
        return None

sys.meta_path.insert(0, Block())
"""

PYPROJECT = """
[tool.guardrails]
policy = "release"
seed = 3
n-resamples = 2000
[tool.guardrails.policies.release]
required = ["retrieval*", "answers*", "norms*"]
[tool.guardrails.policies.release.metrics."ndcg@10"]
max-drop = 0.05
[tool.guardrails.policies.release.metrics."rouge_l"]
max-drop = 0.05
[tool.guardrails.policies.release.metrics."psi"]
max = 0.2
"""

SUITE = """
import numpy as np

QRELS = {f"q{i}": {f"d{i}": 2, f"d{i + 1}": 1} for i in range(60)}

def run(shift):
    return {q: {f"d{(i + shift) % 70}": 2.0, f"d{i + 1}": 1.0, "x": 0.5}
            for i, q in enumerate(QRELS)}

def test_retrieval(gate):
    gate.noninferior("ndcg@10", candidate=run(0), baseline=run(0), qrels=QRELS,
                     name="retrieval")

def test_answers(gate):
    refs = [f"the fee is {i} percent of the amount" for i in range(50)]
    gate.noninferior("rouge_l", candidate=refs, baseline=refs, references=refs,
                     name="answers")

def test_norms(gate):
    rng = np.random.default_rng(0)
    gate.no_drift("psi", reference=rng.normal(size=(300, 8)),
                  current=rng.normal(size=(300, 8)), name="norms")
"""


def _run(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def lean(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "test_gates.py").write_text(SUITE, encoding="utf-8")
    return project, site


def test_the_blocker_blocks(lean: tuple[Path, Path]) -> None:
    project, site = lean
    done = _run([sys.executable, "-c", "import matplotlib"], project, site)
    assert done.returncode != 0 and "blocked: lean install" in done.stderr


def test_core_install_writes_verdict_markdown_and_html(lean: tuple[Path, Path]) -> None:
    project, site = lean
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist"]
    done = _run([*cmd, "--guardrails-verdict=out/verdict.json"], project, site)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output and "guardrails verdict" in output
    verdict = json.loads((project / "out" / "verdict.json").read_text(encoding="utf-8"))
    assert verdict["decision"] == "promote"
    assert {g["name"] for g in verdict["gates"]} >= {"retrieval", "answers", "norms"}
    page = (project / "out" / "verdict.html").read_text(encoding="utf-8")
    assert "id='decision'>PROMOTE<" in page and page.count("<svg ") >= 2
    cli = [sys.executable, "-m", "guardrails.cli", "report", "out/verdict.json"]
    markdown = _run([*cli, "--format", "markdown"], project, site)
    assert markdown.returncode == 0, markdown.stderr
    assert "PROMOTE" in markdown.stdout.upper() and "retrieval" in markdown.stdout
