"""Registry schema 2: artifacts keyed by (component, fingerprint), the migration of a schema-1
file, branches and lineage, and ``watch`` (automatic rollback after a promote)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from guardrails.errors import RegistryError
from guardrails.registry import SCHEMA_VERSION, Registry
from tests.registry_worker import verdict_for

SCHEMA1_DUMP = Path(__file__).with_name("data") / "registry_schema1.sql"


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    with Registry(tmp_path / "registry.sqlite") as r:
        yield r


def _schema1(path: Path) -> Path:
    """A registry file exactly as schema-1 guardrails wrote it (from the committed dump)."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA1_DUMP.read_text(encoding="utf-8"))
    conn.close()
    return path


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---- migration ------------------------------------------------------------------------------


def test_schema1_registry_migrates_in_place_keeping_every_row(tmp_path: Path) -> None:
    db = _schema1(tmp_path / "registry.sqlite")
    artifacts = _rows(
        db,
        "SELECT id, kind, component, path, fingerprint, parent_fingerprint, "
        "metadata, created_at FROM artifacts ORDER BY id",
    )
    aliases = _rows(db, "SELECT * FROM aliases ORDER BY component, alias")
    history = _rows(db, "SELECT * FROM history ORDER BY id")
    assert len(artifacts) == 9 and len(aliases) == 7 and len(history) == 17
    assert Registry.stored_schema_version(db) == 1
    with pytest.raises(RegistryError, match="read-only open cannot migrate"):
        Registry(db, read_only=True)

    with Registry(db, root=tmp_path) as reg:
        assert reg.schema_version == SCHEMA_VERSION == 2
        prod = reg.resolve("embedder", "production")
        assert prod is not None and prod.fingerprint == "sha256:embedder-1"
        assert prod.path == str(tmp_path / "embedder-1") and prod.branch is None
        assert [h.evidence for h in reg.history()] == [None] * 17
    assert (
        _rows(
            db,
            "SELECT id, kind, component, path, fingerprint, parent_fingerprint, "
            "metadata, created_at FROM artifacts ORDER BY id",
        )
        == artifacts
    )
    assert _rows(db, "SELECT * FROM aliases ORDER BY component, alias") == aliases
    assert [r[:-1] for r in _rows(db, "SELECT * FROM history ORDER BY id")] == history
    assert _rows(db, "SELECT schema_version FROM migrations ORDER BY 1") == [(1,), (2,)]
    assert _rows(db, "PRAGMA foreign_key_check") == [] and _rows(db, "PRAGMA integrity_check") == [
        ("ok",)
    ]
    with Registry(db) as reg:  # reopen: nothing to migrate, history still append-only
        assert reg._conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == 2
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            reg._conn.execute("DELETE FROM history")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # (component, fp) now
            reg._conn.execute(
                "UPDATE aliases SET fingerprint = 'sha256:generator-1' "
                "WHERE component = 'embedder' AND alias = 'shadow'"
            )
        reg.rollback("embedder")  # the migrated aliases and history keep working
        assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-0"  # type: ignore[union-attr]
    with Registry(db, read_only=True) as ro:
        assert ro.schema_version == 2


def test_concurrent_openers_migrate_once(tmp_path: Path) -> None:
    """Four processes open the same schema-1 file at once: one migrates, the others wait for
    its transaction and find schema 2 (the version is re-read inside BEGIN IMMEDIATE)."""
    import os
    import subprocess
    import sys

    db = _schema1(tmp_path / "registry.sqlite")
    repo = str(Path(__file__).resolve().parents[1])
    code = "import sys; from guardrails.registry import Registry; Registry(sys.argv[1]).close()"
    env = {**os.environ, "PYTHONPATH": repo}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    assert [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs] == [
        (0, b"")
    ] * 4
    assert _rows(db, "SELECT schema_version FROM migrations ORDER BY 1") == [(1,), (2,)]
    assert _rows(db, "SELECT count(*) FROM artifacts") == [(9,)]
    assert _rows(db, "PRAGMA foreign_key_check") == []


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    db = _schema1(tmp_path / "registry.sqlite")
    conn = sqlite3.connect(db)  # foreign keys off (sqlite's default): plant a dangling alias
    conn.execute(
        "INSERT INTO aliases VALUES ('reranker', 'production', 'sha256:nowhere', 'now', NULL)"
    )
    conn.commit()
    conn.close()
    before = _rows(db, "SELECT name, sql FROM sqlite_master ORDER BY name")
    with pytest.raises(RegistryError, match=r"dangling reference.*table='aliases'.*nothing"):
        Registry(db)
    assert _rows(db, "SELECT name, sql FROM sqlite_master ORDER BY name") == before
    assert Registry.stored_schema_version(db) == 1


# ---- one artifact, several components ---------------------------------------------------------


def test_same_fingerprint_serves_two_components(reg: Registry, tmp_path: Path) -> None:
    base = "sha256:smollm2"
    gen = reg.register_as("generator", tmp_path / "smollm2", base, "production")
    ali = reg.register_as("alignment", tmp_path / "smollm2", base, "production", kind="generator")
    assert (gen.component, ali.component) == ("generator", "alignment") and gen.id != ali.id
    assert reg.get(base) == gen and reg.get(base, "alignment") == ali
    reg.register("adapter", "alignment", tmp_path / "dpo", "sha256:dpo", parent=base)
    v = verdict_for({"alignment": ("sha256:dpo", base)})
    [switch] = reg.promote(v)
    assert (switch.component, switch.to_fingerprint) == ("alignment", "sha256:dpo")
    assert reg.resolve("generator", "production") == gen  # the generator did not move
    assert reg.resolve("alignment", "previous") == ali
    with pytest.raises(RegistryError, match=r"belongs to component='alignment'.*register it"):
        reg.set_alias("generator", "candidate", "sha256:dpo")


# ---- branches and lineage -------------------------------------------------------------------


def test_branches_are_idempotent_and_record_their_base(reg: Registry) -> None:
    reg.register_as("reranker", "r0", "sha256:r0", "production")
    first = reg.open_branch(
        "retrain-20261206-mmd", ["reranker", "retriever"], "mmd alarm", {"p": 0.001}
    )
    again = reg.open_branch("retrain-20261206-mmd", ["generator"], "other", {"p": 1})
    assert again == first and first.components == ("reranker", "retriever")
    assert dict(first.base) == {"reranker": "sha256:r0"} and dict(first.evidence) == {"p": 0.001}
    child = reg.open_branch("retrain-20261207-ks", ["reranker"], parent=first.name)
    assert child.parent == first.name
    assert [b.name for b in reg.branches()] == [first.name, child.name]
    with pytest.raises(RegistryError, match="branch='nope' is not open"):
        reg.open_branch("x", ["reranker"], parent="nope")
    with pytest.raises(RegistryError, match="branch name="):
        reg.open_branch("bad name!", ["reranker"])


def test_candidates_join_a_branch_and_lineage_walks_parents(reg: Registry) -> None:
    reg.register_as("reranker", "r0", "sha256:r0", "production")
    with pytest.raises(RegistryError, match="is not open"):
        reg.register_as("reranker", "r1", "sha256:r1", "candidate", branch="b1")
    reg.open_branch("b1", ["reranker"], "drift")
    reg.register_as("reranker", "r1", "sha256:r1", "candidate", parent="sha256:r0", branch="b1")
    reg.open_branch("b2", ["reranker"], "drift again", parent="b1")
    reg.register_as("reranker", "r2", "sha256:r2", "candidate", parent="sha256:r1", branch="b2")
    reg.register_as("reranker", "r2", "sha256:r2", "candidate", branch="b1")  # keeps b2
    assert [a.fingerprint for a in reg.branch_artifacts("b1")] == ["sha256:r1"]
    assert [a.fingerprint for a in reg.branch_artifacts("b2")] == ["sha256:r2"]
    chain = reg.lineage("sha256:r2")
    assert [(a.fingerprint, a.branch) for a in chain] == [
        ("sha256:r2", "b2"),
        ("sha256:r1", "b1"),
        ("sha256:r0", None),
    ]
    assert reg.lineage("sha256:unknown") == []


def test_a_trigger_decision_names_and_opens_its_branch(reg: Registry) -> None:
    from datetime import datetime, timezone

    from guardrails.monitoring.triggers import Finding, TriggerDecision

    decision = TriggerDecision(
        fire=True,
        findings=(
            Finding("note", "latency_p95", "slow", ()),
            Finding("threshold", "MMD", "mmd 0.4 > 0.1", ("retriever",), 0.002),
            Finding("threshold", "novel_share", "0.3 > 0.1", ("retriever", "generator"), 0.01),
        ),
        components=("generator", "retriever"),
    )
    now = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
    assert decision.branch_name(now) == "retrain-20261206-mmd"
    branch = decision.open_branch(reg, now=now)
    assert branch is not None and branch.name == "retrain-20261206-mmd"
    assert branch.components == ("generator", "retriever")
    assert [f["signal"] for f in branch.evidence["findings"]] == ["MMD", "novel_share"]
    quiet = TriggerDecision(fire=False, findings=(), components=())
    assert quiet.branch_name(now) is None and quiet.open_branch(reg, now=now) is None
    assert len(reg.branches()) == 1


# ---- watch: automatic rollback after a promote ------------------------------------------------


def _promoted(reg: Registry) -> None:
    """embedder: 0 -> 1 by a promote; reranker: 0 in production, never promoted."""
    for comp in ("embedder", "reranker"):
        for i in range(3):
            reg.register("adapter", comp, f"{comp}-{i}", f"sha256:{comp}-{i}")
        reg.set_alias(comp, "production", f"sha256:{comp}-0")
    reg.promote(verdict_for({"embedder": ("sha256:embedder-1", "sha256:embedder-0")}))


def test_watch_rolls_back_a_regressed_promoted_production_with_evidence(reg: Registry) -> None:
    _promoted(reg)
    monitoring = verdict_for(
        {"embedder": ("sha256:embedder-1", "sha256:embedder-0")}, "rollback", nonce="m1"
    )
    [plan] = reg.watch(monitoring)  # dry run: nothing written
    assert (plan.action, plan.from_fingerprint, plan.to_fingerprint) == (
        "rollback",
        "sha256:embedder-1",
        "sha256:embedder-0",
    )
    assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-1"  # type: ignore[union-attr]
    [done] = reg.watch(monitoring, apply=True, actor="watcher")
    assert done == plan
    assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-0"  # type: ignore[union-attr]
    last = reg.history("embedder", limit=1)[0]
    assert (last.action, last.actor, last.verdict_decision) == ("rollback", "watcher", "rollback")
    assert last.evidence is not None and last.verdict_sha256 == last.evidence["verdict_sha256"]
    [gate] = last.evidence["failing_gates"]
    assert gate["name"] == "embedder-quality" and gate["delta"] < -0.1
    assert gate["ci"][1] < 0 and gate["limit"] and gate["metric"] == "ndcg@10"
    assert last.note is not None and "embedder-quality: ndcg@10 delta=-0.2" in last.note
    from tests.test_registry import _alias_map, _replay

    assert _replay(reg) == _alias_map(reg)  # the history still reproduces the aliases
    [again] = reg.watch(monitoring, apply=True)  # idempotent: it judged the old production
    assert again.action == "skip" and "not a monitoring verdict" in again.reason
    restored = verdict_for(  # the restored production regressing too is not undone by a flip
        {"embedder": ("sha256:embedder-0", "sha256:embedder-1")}, "rollback"
    )
    [skip] = reg.watch(restored, apply=True)
    assert skip.action == "skip" and "last switch was a rollback" in skip.reason
    assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-0"  # type: ignore[union-attr]


def test_watch_skips_what_a_monitoring_verdict_does_not_show(reg: Registry) -> None:
    _promoted(reg)
    candidate_eval = verdict_for(  # a rejected candidate says nothing about production
        {"embedder": ("sha256:embedder-2", "sha256:embedder-1")}, "rollback"
    )
    [skip] = reg.watch(candidate_eval, apply=True)
    assert skip.action == "skip" and "not a monitoring verdict" in skip.reason
    never_promoted = verdict_for(
        {"reranker": ("sha256:reranker-0", "sha256:reranker-0")}, "rollback"
    )
    [skip] = reg.watch(never_promoted, apply=True)
    assert skip.action == "skip" and "nothing was promoted" in skip.reason
    healthy = verdict_for({"embedder": ("sha256:embedder-1", "sha256:embedder-0")}, "promote")
    assert reg.watch(healthy, apply=True) == []
    assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-1"  # type: ignore[union-attr]
    assert [h.action for h in reg.history(limit=1)] == ["promote"]


def test_watch_follows_per_component_decisions(reg: Registry) -> None:
    _promoted(reg)
    reg.promote(verdict_for({"reranker": ("sha256:reranker-1", "sha256:reranker-0")}))
    mixed = verdict_for(
        {
            "embedder": ("sha256:embedder-1", "sha256:embedder-0"),
            "reranker": ("sha256:reranker-1", "sha256:reranker-0"),
        },
        "rollback",
        components={"embedder": "promote", "reranker": "rollback"},
    )
    [result] = reg.watch(mixed, apply=True)
    assert (result.component, result.action) == ("reranker", "rollback")
    assert reg.resolve("reranker", "production").fingerprint == "sha256:reranker-0"  # type: ignore[union-attr]
    assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-1"  # type: ignore[union-attr]


def test_the_retrain_branch_fixture_opens_the_triggers_branch(pytester: pytest.Pytester) -> None:
    """The stack's ``retrain_branch`` fixture: a fired trigger opens its branch in the
    configured registry (the candidates' fixtures pass it to ``register_as``)."""
    pytester.makepyprojecttoml('[tool.guardrails.stack]\nregistry = "state/registry.sqlite"\n')
    pytester.makeconftest(
        """
import pytest
from guardrails.monitoring.triggers import Finding, TriggerDecision

@pytest.fixture(scope="session")
def trigger_decision():
    found = Finding("threshold", "ks_max", "ks 0.3 > 0.1", ("retriever",), 0.004)
    return TriggerDecision(fire=True, findings=(found,), components=("retriever",))
"""
    )
    pytester.makepyfile(
        """
def test_branch(retrain_branch, registry):
    assert retrain_branch.startswith("retrain-") and retrain_branch.endswith("-ks_max")
    registry.register_as("retriever", "lora", "sha256:lora", "candidate", branch=retrain_branch)
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    with Registry(pytester.path / "state" / "registry.sqlite") as reg:
        [branch] = reg.branches()
        assert branch.components == ("retriever",) and "ks 0.3 > 0.1" in branch.reason
        assert [a.fingerprint for a in reg.branch_artifacts(branch.name)] == ["sha256:lora"]


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_reads_a_schema1_registry_and_lists_branches_and_lineage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from guardrails.cli import main

    monkeypatch.chdir(tmp_path)  # no pyproject.toml here: the built-in defaults
    db = _schema1(tmp_path / "registry.sqlite")
    assert main(["status", "--registry", str(db)]) == 0  # read-only command, old file
    out, err = capsys.readouterr()
    assert "migrated" in err and "schema_version=1 to 2" in err and "embedder" in out
    assert Registry.stored_schema_version(db) == 2
    assert main(["branches", "--registry", str(db)]) == 0
    assert "no branches yet" in capsys.readouterr().out
    with Registry(db) as reg:
        reg.open_branch("retrain-20261206-ks", ["embedder"], "ks alarm", {"p": 0.01})
        reg.register(
            "adapter",
            "embedder",
            "e3",
            "sha256:embedder-3",
            "sha256:embedder-1",
            branch="retrain-20261206-ks",
        )
    assert main(["branches", "--registry", str(db), "--json"]) == 0
    [branch] = json.loads(capsys.readouterr().out)
    assert branch["name"] == "retrain-20261206-ks" and branch["evidence"] == {"p": 0.01}
    assert branch["base"] == {"embedder": "sha256:embedder-1"}
    assert [a["fingerprint"] for a in branch["artifacts"]] == ["sha256:embedder-3"]
    assert main(["lineage", "sha256:embedder-3", "--registry", str(db), "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert [(a["fingerprint"], a["branch"]) for a in chain] == [
        ("sha256:embedder-3", "retrain-20261206-ks"),
        ("sha256:embedder-1", None),
        ("sha256:embedder-0", None),
    ]
    assert main(["branches", "nope", "--registry", str(db)]) == 2
    assert "branch='nope' is not in" in capsys.readouterr().err


def test_cli_watch_refuses_a_forged_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from guardrails.cli import main

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "registry.sqlite"
    with Registry(db) as reg:
        _promoted(reg)
    honest = verdict_for({"embedder": ("sha256:embedder-1", "sha256:embedder-0")}, "promote")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**honest, "decision": "rollback"}))
    assert main(["watch", str(forged), "--registry", str(db), "--apply"]) == 2
    assert "does not follow from its gates" in capsys.readouterr().err
    with Registry(db) as reg:
        assert reg.resolve("embedder", "production").fingerprint == "sha256:embedder-1"  # type: ignore[union-attr]
    never = tmp_path / "never.json"  # production regressed but came from no promote: hold
    never.write_text(
        json.dumps(
            verdict_for({"reranker": ("sha256:reranker-0", "sha256:reranker-0")}, "rollback")
        )
    )
    assert main(["watch", str(never), "--registry", str(db), "--apply"]) == 10
    assert "not rolled back reranker" in capsys.readouterr().out
