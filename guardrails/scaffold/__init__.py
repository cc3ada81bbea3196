"""``guardrails init [DIR]``: a working project to start from, with no ML stack.

It writes a ``pyproject.toml`` with a ``[tool.guardrails]`` policy, a tiny golden set in the
BEIR layout (``golden/``: corpus, queries, graded qrels), a production and a candidate run in
TREC format (``runs/``) and one suite (``suites/test_retrieval.py``, one gate per test), so that
``pytest`` there writes ``out/verdict.json`` and ``out/verdict.html`` straight away. A team then
swaps in its own golden set and the runs its retriever produces. Nothing is overwritten: if any
file exists the call refuses and names it.
"""

from __future__ import annotations

import json
from pathlib import Path

from guardrails.errors import GuardrailsError

__all__ = ["TEMPLATE_FILES", "init_project"]

_DOCS = {
    "d1": ("Resetting a password", "Open Settings, choose Account, then Reset password."),
    "d2": ("Changing the e-mail address", "Account settings hold the e-mail; confirm the link."),
    "d3": ("Exporting invoices", "Invoices export as PDF or CSV from the Billing page."),
    "d4": ("Refund times", "Refunds reach the original card within five business days."),
    "d5": ("Two-factor sign-in", "Turn on two-factor sign-in under Security with an app."),
    "d6": ("Closing an account", "Support closes an account within two days of a request."),
    "d7": ("Team seats", "Owners add or remove seats on the Team page; billing follows."),
    "d8": ("API keys", "Create API keys under Developer; a key is shown only once."),
}
_QUERIES = {
    "q1": ("how do I reset my password", {"d1": 2, "d5": 1}),
    "q2": ("change my email address", {"d2": 2}),
    "q3": ("download invoices as csv", {"d3": 2}),
    "q4": ("when will I get my refund", {"d4": 2}),
    "q5": ("enable two factor authentication", {"d5": 2, "d1": 1}),
    "q6": ("delete my account", {"d6": 2}),
    "q7": ("add a seat for a new colleague", {"d7": 2}),
    "q8": ("where do I create an api key", {"d8": 2}),
}
# the production retriever's ranking per query (the candidate's starts as the same run)
_RANKED = {
    "q1": ["d1", "d5", "d2"],
    "q2": ["d2", "d1", "d6"],
    "q3": ["d3", "d4", "d7"],
    "q4": ["d3", "d4", "d6"],
    "q5": ["d5", "d1", "d8"],
    "q6": ["d6", "d2", "d7"],
    "q7": ["d7", "d3", "d8"],
    "q8": ["d8", "d5", "d1"],
}

_PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["suites"]
addopts = "--guardrails-verdict out/verdict.json"

[tool.guardrails]
policy = "release"
seed = 1

[tool.guardrails.policies.release]
alpha = 0.05
required = ["retrieval-*"]  # these gates must run, else the release is held

[tool.guardrails.policies.release.metrics."ndcg@10"]
max-drop = 0.05   # non-inferiority margin (absolute)
min = 0.3         # absolute floor for the candidate

[tool.guardrails.policies.release.metrics."recall@10"]
max-drop = 0.05
"""

_SUITE = '''\
"""Retrieval gates: the candidate run against the production run on the golden queries.

Replace golden/ with your own BEIR folder and runs/*.run with the runs your production and
candidate retrievers produce (TREC format: qid Q0 docid rank score tag).
"""

from pathlib import Path

import pytest

from guardrails import load_beir, load_trec_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def golden():
    return load_beir(ROOT / "golden", name="golden")


@pytest.fixture(scope="session")
def runs():
    sides = ("production", "candidate")
    return {side: load_trec_run(ROOT / "runs" / f"{side}.run") for side in sides}


def test_ndcg_not_worse(gate, golden, runs):
    gate.noninferior(
        "ndcg@10", candidate=runs["candidate"], baseline=runs["production"], qrels=golden,
        name="retrieval-ndcg",
    )


def test_recall_not_worse(gate, golden, runs):
    gate.noninferior(
        "recall@10", candidate=runs["candidate"], baseline=runs["production"], qrels=golden,
        name="retrieval-recall",
    )


def test_ndcg_floor(gate, golden, runs):
    gate.at_least("ndcg@10", candidate=runs["candidate"], qrels=golden, name="retrieval-floor")
'''


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def _run() -> str:
    return "".join(
        f"{q} Q0 {d} {rank} {len(docs) - rank + 1}.0 production\n"
        for q, docs in _RANKED.items()
        for rank, d in enumerate(docs, 1)
    )


def _files() -> dict[str, str]:
    corpus = [{"_id": d, "title": t, "text": x} for d, (t, x) in _DOCS.items()]
    queries = [{"_id": q, "text": text} for q, (text, _) in _QUERIES.items()]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, (_, judged) in _QUERIES.items() for d, g in judged.items()
    )
    return {
        "pyproject.toml": _PYPROJECT,
        "golden/corpus.jsonl": _jsonl(corpus),
        "golden/queries.jsonl": _jsonl(queries),
        "golden/qrels/test.tsv": qrels,
        "runs/production.run": _run(),
        "runs/candidate.run": _run(),
        "suites/test_retrieval.py": _SUITE,
    }


TEMPLATE_FILES = tuple(sorted(_files()))


def init_project(folder: str | Path) -> list[Path]:
    """Write the starter project into ``folder``; refuse (naming them) if any file exists."""
    from guardrails.artifacts import atomic_write_text

    root = Path(folder)
    files = _files()
    taken = [rel for rel in sorted(files) if (root / rel).exists()]
    if taken:
        raise GuardrailsError(
            f"{root}: would overwrite {', '.join(taken)}; choose an empty folder or move them"
        )
    written = []
    for rel, text in sorted(files.items()):
        atomic_write_text(root / rel, text)
        written.append(root / rel)
    return written
