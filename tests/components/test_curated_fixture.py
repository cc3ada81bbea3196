"""The stack's ``curated`` fixture runs the off-topic filter: configuration alone (an embedder
factory, one domain, log windows) and a logged off-topic question and a question of an
unconfigured domain never reach a training set; the datasheets count the drop."""

from __future__ import annotations

import json

import pytest

PYPROJECT = """
[tool.guardrails]
n-resamples = 1000
[tool.guardrails.stack]
artifacts = "store"
[tool.guardrails.stack.domains.alpha]
golden = "golden/alpha"
[tool.guardrails.stack.logs]
reference = "logs/ref.jsonl"
current = "logs/cur.jsonl"
[tool.guardrails.stack.embedder]
factory = "words:Words"
"""

# A bag-of-words embedder: cosine = shared words / sqrt(|a| |b|) (on distinct hashed words).
WORDS = """
import re
import zlib
import numpy as np

class Words:
    fingerprint = "words:64"

    def _encode(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in set(re.findall(r"[a-z]+", text.lower())):
                out[i, zlib.crc32(word.encode()) % 64] = 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def encode_queries(self, texts, **options):
        return self._encode(texts)

    def encode_documents(self, texts, cache=None, **options):
        return self._encode(texts)
"""

SUITE = """
import json
from pathlib import Path

def test_curated(curated, guardrails_stack):
    sft = curated["sft"]
    prompts = [r.data["prompt"] for r in sft.rows]
    assert prompts and all(p.startswith("how do I reset the device") for p in prompts), prompts
    steps = {name: (n_in, n_out) for name, n_in, n_out in sft.datasheet.steps}
    assert steps["off_topic"][0] - steps["off_topic"][1] == 2, steps
    sheet = guardrails_stack.artifacts / "datasets" / "sft.datasheet.json"
    written = json.loads(sheet.read_text())
    assert ["off_topic", *steps["off_topic"]] in written["steps"]
    assert written["params"]["topic_filter"]["topics"] == ["alpha"]
    assert written["params"]["topic_filter"]["embedder"] == "words:64"
    assert written["sources"] == ["logs/cur.jsonl"]  # relative to the project: a move keeps it
"""


def _logs(seed: int) -> str:
    rows = []
    for i in range(60):
        query, domain = f"how do I reset the device {'abcdefghij'[i % 10]}", "alpha"
        if i == 7:
            query = "a good banana bread recipe please"  # liked, configured domain, off-topic
        if i == 14:
            domain = "beta"  # on-topic words, but a domain the stack does not configure
        rows.append(
            {
                "timestamp": 1772323200 + 60 * i + seed * 86400,
                "session_id": f"s{seed}-{i}",
                "query": query,
                "query_embedding": [0.1 * ((i + k) % 7) + 0.01 for k in range(8)],
                "domain": domain,
                "latency_ms": {"total": 100.0 + i},
                "answer": f"Hold the power button for {i} seconds.",
                "feedback": "like" if i % 7 == 0 else None,
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_the_curated_fixture_filters_off_topic_rows(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    golden = pytester.path / "golden" / "alpha"
    (golden / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "text": "how do I reset the device: hold the power button"},
        {"_id": "d2", "text": "the device light blinks when the battery is low"},
    ]
    (golden / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (golden / "queries.jsonl").write_text('{"_id": "q1", "text": "device battery light"}\n')
    (golden / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    (golden / "qa.jsonl").write_text('{"id": "a1", "question": "light?", "answers": ["low"]}\n')
    (golden / "canaries.jsonl").write_text(
        '{"id": "c1", "kind": "factual", "prompt": "light?", "expect": ["low"]}\n'
    )
    (pytester.path / "logs").mkdir()
    (pytester.path / "logs" / "ref.jsonl").write_text(_logs(0))
    (pytester.path / "logs" / "cur.jsonl").write_text(_logs(1))
    pytester.makepyfile(words=WORDS, test_curated=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    assert result.ret == 0, result.stdout.str()
