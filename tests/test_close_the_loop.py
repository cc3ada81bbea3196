"""The loop run twice in a temp project (pytester, tiny gates, no models): run 1 judges a
candidate on a branch and promotes it; run 2 monitors the new production with an injected
regression (its per-sample scores drop beyond the margin) and production rolls back to the
original, through ``guardrails watch --apply`` or ``--guardrails-apply``, with the evidence in
the registry's history."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from guardrails.cli import main
from guardrails.registry import Registry

ORIGINAL, TRAINED = "sha256:embedder-0", "sha256:embedder-1"

PYPROJECT = """
[tool.guardrails]
policy = "release"
seed = 3
n-resamples = 1000
[tool.guardrails.components]
embedder = ["quality*"]
[tool.guardrails.policies.release]
required = ["quality*"]
[tool.guardrails.policies.release.metrics."ndcg@10"]
max-drop = 0.05
"""

# The suite: run 1 (no GUARDRAILS_TEST_MONITOR) judges the trained candidate, registered on the
# branch a retrain opened, against production; run 2 (monitoring) judges production (the
# candidate role) against the previous production on the same queries. The per-sample scores
# of an artifact come from a fixed table; GUARDRAILS_TEST_REGRESSED injects a drop of 0.2.
SUITE = """
import os

import numpy as np

SEEDS = {"sha256:embedder-0": (1, 0.0), "sha256:embedder-1": (2, 0.03)}

def scores(fingerprint, n=150):
    seed, gain = SEEDS[fingerprint]
    base = np.random.default_rng(0).uniform(0.3, 0.9, n)
    noise = np.random.default_rng(seed).normal(0, 0.01, n)
    drop = 0.2 if fingerprint == os.environ.get("GUARDRAILS_TEST_REGRESSED") else 0.0
    return np.clip(base + gain - drop + noise, 0, 1)

def test_quality(gate, registry):
    production = registry.resolve("embedder", "production").fingerprint
    if os.environ.get("GUARDRAILS_TEST_MONITOR"):
        candidate = production
        baseline = registry.resolve("embedder", "previous").fingerprint
    else:
        branch = registry.open_branch("retrain-20261206-mmd", ["embedder"], "mmd alarm")
        candidate, baseline = "sha256:embedder-1", production
        registry.register_as("embedder", "embedder-1", candidate, "candidate",
                             parent=production, branch=branch.name)
    for role, fp in (("candidate", candidate), ("baseline", baseline)):
        gate.record(artifact={"component": "embedder", "role": role, "fingerprint": fp})
    gate.noninferior("ndcg@10", candidate=scores(candidate), baseline=scores(baseline),
                     name="quality")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_monitor=SUITE)
    db = pytester.path / "registry.sqlite"
    with Registry(db) as reg:
        reg.register_as("embedder", "embedder-0", ORIGINAL, "production")
    return db


def _aliases(db: Path) -> dict[str, str]:
    with Registry(db) as reg:
        return {a.alias: a.fingerprint for a in reg.aliases() if a.component == "embedder"}


def _run(pytester: pytest.Pytester, db: Path, verdict: str, *extra: str) -> Any:
    return pytester.runpytest(
        f"--guardrails-verdict={verdict}",
        f"--guardrails-registry={db}",
        "-p",
        "no:cacheprovider",
        *extra,
    )


def _check_rollback_entry(db: Path, sha256: str | None) -> None:
    with Registry(db) as reg:
        switches = [h for h in reg.history("embedder") if h.action in ("promote", "rollback")]
        lineage = reg.lineage(TRAINED, "embedder")
    rollback, promote = switches[0], switches[1]
    assert len(switches) == 2 and (promote.action, rollback.action) == ("promote", "rollback")
    assert (promote.from_fingerprint, promote.to_fingerprint) == (ORIGINAL, TRAINED)
    assert (rollback.from_fingerprint, rollback.to_fingerprint) == (TRAINED, ORIGINAL)
    assert rollback.verdict_decision == "rollback" and rollback.evidence is not None
    assert rollback.evidence["verdict_sha256"] == rollback.verdict_sha256
    if sha256 is not None:
        assert rollback.verdict_sha256 == sha256
    [gate] = rollback.evidence["failing_gates"]
    assert gate["name"] == "quality" and gate["metric"] == "ndcg@10"
    assert -0.2 < gate["delta"] < -0.14 and gate["ci"][1] < -0.05  # 0.03 - 0.2, beyond 0.05
    assert rollback.note is not None and "quality: ndcg@10 delta=-0.1" in rollback.note
    assert [(a.fingerprint, a.branch) for a in lineage] == [
        (TRAINED, "retrain-20261206-mmd"),
        (ORIGINAL, None),
    ]


def test_promote_then_watch_apply_rolls_back(
    project: Path,
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = project
    first = _run(pytester, db, "v1.json")
    assert first.ret == 0, first.stdout.str()
    assert main(["promote", "v1.json", "--registry", str(db)]) == 0
    assert _aliases(db) == {"production": TRAINED, "previous": ORIGINAL, "candidate": TRAINED}

    monkeypatch.setenv("GUARDRAILS_TEST_MONITOR", "1")
    monkeypatch.setenv("GUARDRAILS_TEST_REGRESSED", TRAINED)
    second = _run(pytester, db, "v2.json")
    assert second.ret == 11, second.stdout.str()  # production regressed: rollback verdict
    assert _aliases(db)["production"] == TRAINED  # no --guardrails-apply: nothing moved
    capsys.readouterr()
    assert main(["watch", "v2.json", "--registry", str(db)]) == 11  # dry run
    assert "would roll back embedder: embedder-1 -> embedder-0" in capsys.readouterr().out
    assert _aliases(db)["production"] == TRAINED
    assert main(["watch", "v2.json", "--registry", str(db), "--apply"]) == 11
    assert "rolled back embedder: embedder-1 -> embedder-0" in capsys.readouterr().out
    assert _aliases(db) == {"production": ORIGINAL, "previous": TRAINED, "candidate": TRAINED}
    _check_rollback_entry(db, hashlib.sha256((pytester.path / "v2.json").read_bytes()).hexdigest())
    assert main(["history", "embedder", "--limit", "1", "--registry", str(db)]) == 0
    assert "watch: embedder regressed after promote: quality" in capsys.readouterr().out

    assert main(["watch", "v2.json", "--registry", str(db), "--apply", "--json"]) == 0
    [again] = json.loads(capsys.readouterr().out)  # it judged the old production: left alone
    assert again["action"] == "skip" and again["judged_production"] is False
    assert _aliases(db)["production"] == ORIGINAL


def test_guardrails_apply_promotes_then_rolls_back(
    project: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = project
    first = _run(pytester, db, "v1.json", "--guardrails-apply")
    assert first.ret == 0
    first.stdout.fnmatch_lines(["guardrails apply: promoted embedder: embedder-0 -> embedder-1"])
    assert _aliases(db)["production"] == TRAINED

    monkeypatch.setenv("GUARDRAILS_TEST_MONITOR", "1")
    healthy = _run(pytester, db, "v2.json", "--guardrails-apply")  # no regression: stays
    assert healthy.ret == 0 and _aliases(db)["production"] == TRAINED
    assert "rolled back" not in healthy.stdout.str()

    monkeypatch.setenv("GUARDRAILS_TEST_REGRESSED", TRAINED)
    second = _run(pytester, db, "v3.json", "--guardrails-apply")
    assert second.ret == 11
    second.stdout.fnmatch_lines(
        [
            "decision: ROLLBACK*",
            "guardrails apply: rolled back embedder (production regressed after a promote): "
            "embedder-1 -> embedder-0",
        ]
    )
    assert _aliases(db) == {"production": ORIGINAL, "previous": TRAINED, "candidate": TRAINED}
    _check_rollback_entry(db, None)


# The same loop through configuration alone: a reranker built by a factory; run 1 trains nothing
# but judges the configured candidate (boost 2) and --guardrails-apply promotes it; run 2 is a
# monitoring run (--guardrails-monitor: production judged against the production it replaced,
# both rebuilt from the registry's recorded factory and options) after the served reranker
# broke on new traffic (GUARDRAILS_TEST_BROKEN: boost 2 ranks by missing words); it rolls back.
STACK_PYPROJECT = """
[tool.guardrails]
policy = "release"
seed = 3
n-resamples = 1000
[tool.guardrails.components]
reranker = ["rerank*"]
[tool.guardrails.policies.release]
required = ["rerank*"]
[tool.guardrails.policies.release.metrics.preference_margin]
max-drop = 0.05
[tool.guardrails.stack]
artifacts = "store"
[tool.guardrails.stack.reranker]
factory = "overlap:Overlap"
[tool.guardrails.stack.reranker.candidate]
boost = 2.0
"""

OVERLAP = """
import os


class Overlap:
    def __init__(self, boost=1.0):
        self.boost = boost

    @property
    def fingerprint(self):
        return f"overlap:{self.boost}"

    def rerank_run(self, run, queries, docs, *, top_k=20):
        broken = self.boost == 2.0 and os.environ.get("GUARDRAILS_TEST_BROKEN")
        out = {}
        for qid, ranked in run.items():
            words = set(queries[qid].split())
            for d in ranked:
                shared = len(words & set(docs[d].split()))
                out.setdefault(qid, {})[d] = self.boost * (-shared if broken else shared)
        return out
"""

STACK_SUITE = '''
import math

def margins(reranker, n=80):
    """Per query: how far the reranker puts the relevant document above the other one."""
    queries = {f"q{i}": " ".join(f"w{j}" for j in range(1 + i % 7)) for i in range(n)}
    docs = {}
    run = {}
    for i in range(n):
        docs[f"good{i}"] = queries[f"q{i}"] + " filler"
        docs[f"bad{i}"] = "w0 filler" if i % 3 else "filler"
        run[f"q{i}"] = {f"good{i}": 1.0, f"bad{i}": 1.0}
    out = reranker.rerank_run(run, queries, docs)
    return [math.tanh((out[f"q{i}"][f"good{i}"] - out[f"q{i}"][f"bad{i}"]) / 8) for i in range(n)]

def test_rerank(gate, production_reranker, candidate_reranker):
    for role, r in (("baseline", production_reranker), ("candidate", candidate_reranker)):
        gate.record(artifact={"component": "reranker", "role": role, "fingerprint": r.fingerprint})
    gate.noninferior("preference_margin", candidate=margins(candidate_reranker),
                     baseline=margins(production_reranker), name="rerank")
'''


def test_a_configured_stack_promotes_then_a_monitoring_run_rolls_back(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml(STACK_PYPROJECT)
    pytester.makepyfile(overlap=OVERLAP, test_rerank=STACK_SUITE)
    db = pytester.path / "store" / "registry.sqlite"
    args = ("--guardrails-apply", "-p", "no:cacheprovider")

    first = pytester.runpytest_subprocess("--guardrails-verdict=v1.json", *args)
    assert first.ret == 0, first.stdout.str()
    with Registry(db) as reg:
        production = reg.resolve("reranker", "production")
        assert production is not None and production.fingerprint == "overlap:2.0"
        assert production.metadata["options"] == {"boost": 2.0}
        assert reg.resolve("reranker", "previous").fingerprint == "overlap:1.0"

    healthy = pytester.runpytest_subprocess(
        "--guardrails-verdict=v2.json", "--guardrails-monitor", *args
    )
    assert healthy.ret == 0, healthy.stdout.str()
    verdict = json.loads((pytester.path / "v2.json").read_text())
    roles = {a["role"]: a["fingerprint"] for a in verdict["gates"][0]["extra"]["artifacts"]}
    assert roles == {"baseline": "overlap:1.0", "candidate": "overlap:2.0"}  # previous vs served

    monkeypatch.setenv("GUARDRAILS_TEST_BROKEN", "1")
    broken = pytester.runpytest_subprocess(
        "--guardrails-verdict=v3.json", "--guardrails-monitor", *args
    )
    assert broken.ret == 11, broken.stdout.str()
    broken.stdout.fnmatch_lines(
        ["guardrails apply: rolled back reranker (production regressed after a promote)*"]
    )
    with Registry(db) as reg:
        assert reg.resolve("reranker", "production").fingerprint == "overlap:1.0"
        [last] = [h for h in reg.history("reranker") if h.action == "rollback"]
        assert last.evidence is not None and last.evidence["failing_gates"][0]["name"] == "rerank"
    # production is rebuilt from the registry: the next ordinary run judges boost 1 again
    again = pytester.runpytest_subprocess("--guardrails-verdict=v4.json", "-p", "no:cacheprovider")
    verdict = json.loads((pytester.path / "v4.json").read_text())
    roles = {a["role"]: a["fingerprint"] for a in verdict["gates"][0]["extra"]["artifacts"]}
    assert roles["baseline"] == "overlap:1.0", again.stdout.str()
