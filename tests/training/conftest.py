"""Fixtures for training tests: the tiny random sentence-transformer of the component tests
(imported, not duplicated) and a tiny corpus with triplets written in its vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardrails.golden import Document, load_corpus
from tests.components.conftest import tiny_hf_dir, tiny_st_path

__all__ = ["tiny_hf_dir", "tiny_st_path"]

DOCS = {
    "d1": "the cat sat on the mat",
    "d2": "the dog ran to the river",
    "d3": "a fast train on the rail",
    "d4": "the plane is big and new",
    "d5": "the king and queen of england",
    "d6": "the normans and the battle of france",
    "d7": "an algorithm and its time complexity",
    "d8": "a proof of the theory",
}
TRIPLETS = [
    ("cats on a mat", "d1", "d2"),
    ("dogs at the river", "d2", "d1"),
    ("trains on rail", "d3", "d4"),
    ("a big plane", "d4", "d3"),
    ("queen of england", "d5", "d6"),
    ("normans in france", "d6", "d5"),
    ("time complexity of an algorithm", "d7", "d8"),
    ("proof of a theory", "d8", "d7"),
]


@pytest.fixture(scope="session")
def tiny_corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_golden") / "corpus.jsonl"
    lines = [json.dumps({"_id": k, "title": "", "text": v}) for k, v in DOCS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tiny_corpus_path: Path) -> dict[str, Document]:
    return load_corpus(tiny_corpus_path)


@pytest.fixture(scope="session")
def tiny_triplets_path(tiny_corpus_path: Path) -> Path:
    path = tiny_corpus_path.parent / "train.jsonl"
    lines = [json.dumps({"query": q, "positive": p, "negative": n}) for q, p, n in TRIPLETS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
