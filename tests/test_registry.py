"""Registry: aliases, append-only history, promote / rollback, races and SIGKILL mid-switch.

Real SQLite files in ``tmp_path``; racing promoters are real processes; the crash test
SIGKILLs ``tests/registry_worker.py`` at random moments and re-checks the invariants.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from guardrails.artifacts import fingerprint_json
from guardrails.errors import RegistryError, VerdictError
from guardrails.registry import (
    DEFAULT_REGISTRY_PATH,
    SCHEMA_VERSION,
    TEST_SLEEP_ENV,
    AliasName,
    HistoryEntry,
    Registry,
)
from tests.registry_worker import COMPONENTS, race_promote, seed, verdict_for

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("registry_worker.py")


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    with Registry(tmp_path / "adapters" / "registry.sqlite") as r:
        yield r


def _fp(name: str) -> str:
    return fingerprint_json({"name": name})


def _stack(reg: Registry, *components: str, n: int = 3) -> dict[str, list[str]]:
    """Register ``n`` versions per component; version 0 is bootstrapped as production."""
    fps = {}
    for comp in components:
        fps[comp] = [_fp(f"{comp}-{i}") for i in range(n)]
        for i, fp in enumerate(fps[comp]):
            reg.register("adapter", comp, f"adapters/{comp}-{i}", fp, parent=None)
        reg.set_alias(comp, "production", fps[comp][0])
    return fps


def _alias_map(reg: Registry) -> dict[tuple[str, str], str]:
    return {(a.component, a.alias): a.fingerprint for a in reg.aliases()}


def _replay(reg: Registry) -> dict[tuple[str, str], str]:
    """The alias table implied by replaying history from the first row."""
    state: dict[tuple[str, str], str] = {}
    for h in reversed(reg.history()):
        assert h.to_fingerprint is not None or h.action == "register"
        if h.action == "set_alias":
            state[(h.component, str(h.alias))] = str(h.to_fingerprint)
        elif h.action in ("promote", "rollback"):
            state[(h.component, "previous")] = str(h.from_fingerprint)
            state[(h.component, "production")] = str(h.to_fingerprint)
    return state


# ---- basics ---------------------------------------------------------------------------------


def test_open_creates_schema_wal_and_foreign_keys(reg: Registry) -> None:
    assert reg.schema_version == SCHEMA_VERSION == 2
    conn = sqlite3.connect(reg.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"artifacts", "aliases", "branches", "history", "migrations"} <= tables
    assert reg._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert Path("adapters/registry.sqlite") == DEFAULT_REGISTRY_PATH


def test_reopen_does_not_migrate_twice(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    Registry(db).close()
    with Registry(db) as r:
        assert r._conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    Registry(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO migrations VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    conn.commit()
    with pytest.raises(RegistryError, match="newer"):
        Registry(db)


def test_register_get_is_idempotent(reg: Registry) -> None:
    a = reg.register("embedder", "embedder", "adapters/e", _fp("e"), metadata={"dim": 384})
    b = reg.register("embedder", "embedder", "elsewhere", _fp("e"), metadata={"dim": 1})
    assert (
        a == b and a.metadata == {"dim": 384} and a.path == str(Path("adapters/e").resolve())
    )  # stored resolved
    assert reg.get(_fp("e")) == a and reg.get("sha256:none") is None
    assert [h.action for h in reg.history()] == ["register"]
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("reranker", "embedder", "x", _fp("e"))  # same component, another kind


def test_set_alias_resolve_and_rules(reg: Registry) -> None:
    fps = _stack(reg, "reranker")["reranker"]
    reg.set_alias("reranker", AliasName.SHADOW, fps[1], actor="ann@box")
    reg.set_alias("reranker", "candidate", fps[2])
    resolved = reg.resolve("reranker", "shadow")
    assert resolved is not None and resolved.fingerprint == fps[1]
    assert reg.resolve("reranker", "previous") is None
    assert reg.history(limit=1)[0].actor != "ann@box"  # candidate row uses the default actor
    assert reg.history("reranker", limit=2)[1].actor == "ann@box"
    with pytest.raises(RegistryError, match="promote"):
        reg.set_alias("reranker", "production", fps[1])
    with pytest.raises(RegistryError, match="previous"):
        reg.set_alias("reranker", "previous", fps[1])
    with pytest.raises(RegistryError, match="unknown alias"):
        reg.set_alias("reranker", "prod", fps[1])
    with pytest.raises(RegistryError, match="not registered"):
        reg.set_alias("reranker", "shadow", "sha256:nope")
    reg.register("embedder", "embedder", "e", _fp("e"))
    with pytest.raises(RegistryError, match="belongs to component='embedder'"):
        reg.set_alias("reranker", "shadow", _fp("e"))


def test_actor_from_environment(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAILS_ACTOR", "ci-bot")
    reg.register("index", "index", "i", _fp("i"))
    assert reg.history()[0].actor == "ci-bot"


def test_history_is_append_only_in_the_database(reg: Registry) -> None:
    _stack(reg, "embedder")
    conn = sqlite3.connect(reg.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE history SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM history")
    conn.rollback()
    assert len(reg.history()) == 4 and {h.actor for h in reg.history()} != {"mallory"}


def test_alias_must_reference_a_registered_artifact(reg: Registry) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        reg._conn.execute("INSERT INTO aliases VALUES ('x', 'shadow', 'sha256:ghost', 't', NULL)")


# ---- promote --------------------------------------------------------------------------------


def test_promote_switches_all_components_in_one_go(reg: Registry, tmp_path: Path) -> None:
    fps = _stack(reg, "embedder", "reranker")
    path = tmp_path / "verdict.json"
    verdict = verdict_for({c: (fps[c][1], fps[c][0]) for c in fps})
    path.write_text(json.dumps(verdict, indent=2))
    switches = reg.promote(path, actor="rm@host")
    assert [(s.component, s.from_fingerprint, s.to_fingerprint) for s in switches] == [
        (c, fps[c][0], fps[c][1]) for c in ("embedder", "reranker")
    ]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for c in fps:
        assert _alias_map(reg)[(c, "production")] == fps[c][1]
        assert _alias_map(reg)[(c, "previous")] == fps[c][0]
    rows = [h for h in reg.history() if h.action == "promote"]
    assert len(rows) == 2 and {(h.verdict_sha256, h.verdict_decision, h.actor) for h in rows} == {
        (sha, "promote", "rm@host")
    }
    assert {a.verdict_sha256 for a in reg.aliases() if a.alias == "production"} == {sha}
    assert _replay(reg) == _alias_map(reg)


def test_promote_dict_hashes_canonical_json(reg: Registry) -> None:
    fps = _stack(reg, "generator")["generator"]
    verdict = verdict_for({"generator": (fps[1], fps[0])})
    (switch,) = reg.promote(verdict)
    canonical = json.dumps(verdict, sort_keys=True, separators=(",", ":")).encode()
    assert switch.verdict_sha256 == hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize("decision", ["hold", "rollback"])
def test_promote_refuses_other_decisions(reg: Registry, decision: str) -> None:
    fps = _stack(reg, "embedder")["embedder"]
    verdict = verdict_for({"embedder": (fps[1], fps[0])}, decision)
    with pytest.raises(RegistryError, match=f"decision='{decision}'.*gate embedder-quality"):
        reg.promote(verdict)
    assert _alias_map(reg)[("embedder", "production")] == fps[0]


def test_promote_refuses_unknown_candidate_and_stale_baseline(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker")
    unknown = {
        "embedder": (fps["embedder"][1], fps["embedder"][0]),
        "reranker": ("sha256:unregistered", fps["reranker"][0]),
    }
    with pytest.raises(RegistryError, match="not registered"):
        reg.promote(verdict_for(unknown))
    first = verdict_for({c: (fps[c][1], fps[c][0]) for c in fps})
    second = verdict_for({c: (fps[c][2], fps[c][0]) for c in fps})  # also against version 0
    reg.promote(first)
    before = _alias_map(reg)
    with pytest.raises(RegistryError, match="stale verdict"):
        reg.promote(second)
    with pytest.raises(RegistryError, match="stale verdict"):
        reg.promote(first)  # re-applying is stale too
    assert _alias_map(reg) == before
    assert len([h for h in reg.history() if h.action == "promote"]) == 2


def test_half_stale_verdict_switches_nothing(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker")
    reg.promote(verdict_for({"reranker": (fps["reranker"][1], fps["reranker"][0])}))
    before = _alias_map(reg)
    stale = verdict_for({c: (fps[c][2], fps[c][0]) for c in fps})  # embedder fresh, reranker stale
    with pytest.raises(RegistryError, match="component='reranker'"):
        reg.promote(stale)
    assert _alias_map(reg) == before


def test_promote_one_component_and_unchanged_components(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker")
    verdict = verdict_for(
        {
            "embedder": (fps["embedder"][0], fps["embedder"][0]),
            "reranker": (fps["reranker"][1], fps["reranker"][0]),
        }
    )
    assert [s.component for s in reg.promote(verdict, component="reranker")] == ["reranker"]
    with pytest.raises(RegistryError, match="nothing to promote"):
        reg.promote(verdict, component="embedder")
    with pytest.raises(RegistryError, match="not in the verdict"):
        reg.promote(verdict, component="generator")


def test_promote_without_production_asks_for_bootstrap(reg: Registry) -> None:
    reg.register("index", "index", "i0", _fp("i0"))
    reg.register("index", "index", "i1", _fp("i1"))
    with pytest.raises(RegistryError, match="bootstrap"):
        reg.promote(verdict_for({"index": (_fp("i1"), _fp("i0"))}))


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda v: v.pop("schema_version"), "schema_version"),
        (lambda v: v.update(schema_version="1"), "schema_version"),
        (lambda v: v.update(schema_version=99), "schema_version"),
        (lambda v: v.update(decision="ship"), "decision"),
        (lambda v: v.pop("reason"), "reason"),
        (lambda v: v.update(provenance=[]), "provenance"),
        (lambda v: v["provenance"].pop("artifacts"), "provenance.artifacts"),
        (
            lambda v: v["provenance"]["artifacts"][0].update(role="champion"),
            r"provenance.artifacts\[0\].role",
        ),
        (
            lambda v: v["provenance"]["artifacts"][1].pop("fingerprint"),
            r"provenance.artifacts\[1\].fingerprint",
        ),
        (lambda v: v["provenance"]["artifacts"].pop(), "baseline"),
        (lambda v: v["provenance"]["artifacts"].append(v["provenance"]["artifacts"][0]), "twice"),
        (lambda v: v["provenance"].update(artifacts=[]), "empty"),
    ],
)
def test_malformed_verdict_names_the_key(reg: Registry, mutate: Any, key: str) -> None:
    verdict = verdict_for({"embedder": ("sha256:c", "sha256:b")})
    mutate(verdict)
    with pytest.raises(VerdictError, match=key):
        reg.promote(verdict)


def test_unreadable_verdict_file(reg: Registry, tmp_path: Path) -> None:
    bad = tmp_path / "v.json"
    bad.write_text("{not json")
    with pytest.raises(VerdictError, match=r"v\.json"):
        reg.promote(bad)
    with pytest.raises(VerdictError, match=r"missing\.json"):
        reg.promote(tmp_path / "missing.json")


# ---- rollback -------------------------------------------------------------------------------


def test_rollback_restores_and_second_rollback_flips_back(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker")
    with pytest.raises(RegistryError, match="no previous"):
        reg.rollback("embedder")
    reg.promote(verdict_for({c: (fps[c][1], fps[c][0]) for c in fps}))
    s = reg.rollback("embedder", actor="oncall")
    assert (s.from_fingerprint, s.to_fingerprint, s.action) == (
        fps["embedder"][1],
        fps["embedder"][0],
        "rollback",
    )
    state = _alias_map(reg)
    assert state[("embedder", "production")] == fps["embedder"][0]
    assert state[("embedder", "previous")] == fps["embedder"][1]
    assert state[("reranker", "production")] == fps["reranker"][1]  # untouched
    reg.rollback("embedder")
    assert _alias_map(reg)[("embedder", "production")] == fps["embedder"][1]
    assert [h.action for h in reg.history("embedder", limit=3)] == [
        "rollback",
        "rollback",
        "promote",
    ]
    assert _replay(reg) == _alias_map(reg)


def test_rollback_with_verdict(reg: Registry) -> None:
    fps = _stack(reg, "embedder")["embedder"]
    reg.promote(verdict_for({"embedder": (fps[1], fps[0])}))
    bad = verdict_for({"embedder": (fps[0], fps[1])}, "hold")
    with pytest.raises(RegistryError, match="decision='hold'"):
        reg.rollback("embedder", verdict=bad)
    good = verdict_for({"embedder": (fps[0], fps[1])}, "rollback")
    s = reg.rollback("embedder", verdict=good)
    row = reg.history(limit=1)[0]
    assert (row.verdict_sha256, row.verdict_decision, row.note) == (
        s.verdict_sha256,
        "rollback",
        good["reason"],
    )


def test_import_pulls_no_heavy_modules() -> None:
    code = (
        "import sys, guardrails.registry; "
        "print([m for m in ('torch', 'numpy', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert out.stdout.strip() == "[]"


# ---- concurrency ----------------------------------------------------------------------------

RACERS = 8
ROUNDS = 3


def test_racing_promoters_exactly_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite"
    comps = ("embedder", "reranker")
    with Registry(db) as reg:
        fps = _stack(reg, *comps, n=ROUNDS + 1)
    verdicts = [
        verdict_for({c: (fps[c][r + 1], fps[c][r]) for c in comps}, nonce=f"round {r}")
        for r in range(ROUNDS)
    ]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    procs = [
        ctx.Process(target=race_promote, args=(str(db), verdicts, barrier, results))
        for _ in range(RACERS)
    ]
    for p in procs:
        p.start()
    outcomes = defaultdict(list)
    for _ in range(RACERS * ROUNDS):
        r, outcome = results.get(timeout=60)
        outcomes[r].append(outcome)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for r in range(ROUNDS):
        assert outcomes[r].count("ok") == 1, outcomes[r]
        losers = [o for o in outcomes[r] if o != "ok"]
        assert len(losers) == RACERS - 1
        assert all(o.startswith("RegistryError: stale verdict") for o in losers), losers
    with Registry(db) as reg:
        promotes = [h for h in reg.history() if h.action == "promote"]
        assert len(promotes) == ROUNDS * len(comps)
        for c in comps:
            assert [h.to_fingerprint for h in reversed(promotes) if h.component == c] == fps[c][1:]
            assert reg.resolve(c, "production").fingerprint == fps[c][-1]  # type: ignore[union-attr]
            assert reg.resolve(c, "previous").fingerprint == fps[c][-2]  # type: ignore[union-attr]
        assert _replay(reg) == _alias_map(reg)


# ---- SIGKILL at random moments --------------------------------------------------------------

KILL_ROUNDS = 25


def _writer_active(db: Path) -> bool:
    """True if another connection holds the write lock (is inside a write transaction)."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return False


def _kill_once(db: Path, env: dict[str, str], rng: random.Random, wait_lines: int) -> bool:
    """Start the worker, read ``wait_lines`` lines of progress, SIGKILL it after a random delay.

    Returns True if the kill landed while the worker held the write lock (mid-transaction).
    """
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(wait_lines):  # "ready", then "switched N" per committed round
        assert proc.stdout.readline(), proc.stderr.read()
    time.sleep(rng.uniform(0, 0.05))
    mid = _writer_active(db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "worker exited by itself"
    return mid


def _check_invariants(db: Path) -> None:
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    with Registry(db) as reg:
        for comp in COMPONENTS:
            prod, prev = reg.resolve(comp, "production"), reg.resolve(comp, "previous")
            assert prod is not None and prev is not None and prod != prev
        assert _replay(reg) == _alias_map(reg)
        by_verdict: dict[str, set[str]] = defaultdict(set)
        for h in reg.history():
            if h.action == "promote":
                assert h.verdict_sha256 is not None
                by_verdict[h.verdict_sha256].add(h.component)
        assert all(comps == set(COMPONENTS) for comps in by_verdict.values())  # all-or-none
        last: dict[str, HistoryEntry] = {}
        for h in reg.history():  # newest first: keep each component's latest switch
            if h.action in ("promote", "rollback"):
                last.setdefault(h.component, h)
        for a in reg.aliases():
            if a.alias == "production":
                assert a.verdict_sha256 == last[a.component].verdict_sha256


@pytest.mark.parametrize("sleep_in_txn", ["", "0.005"], ids=["plain", "sleep-in-txn"])
def test_sigkill_never_leaves_a_half_switch(tmp_path: Path, sleep_in_txn: str) -> None:
    db = tmp_path / "registry.sqlite"
    seed(db)
    env = {**os.environ, "PYTHONPATH": str(REPO), TEST_SLEEP_ENV: sleep_in_txn}
    rng = random.Random(20240607 + len(sleep_in_txn))
    mid = 0
    waits = [0 if i % 5 == 4 else 2 if i % 2 == 0 else 1 for i in range(KILL_ROUNDS)]
    for wait_lines in waits:  # 0: kill while starting; 2: after one committed round
        mid += _kill_once(db, env, rng, wait_lines)
        _check_invariants(db)
    with Registry(db) as reg:
        switches = sum(h.action in ("promote", "rollback") for h in reg.history())
    print(
        f"\n[{sleep_in_txn or 'plain'}] kills={KILL_ROUNDS} mid-transaction={mid} "
        f"committed switches={switches}"
    )
    assert switches >= 2 + waits.count(2)  # the seed, then at least one round per wait of 2
    if sleep_in_txn:
        assert mid > 0, "no kill landed inside a transaction"


# ---- per-component decisions ----------------------------------------------------------------


def test_component_promote_allowed_only_for_a_promotable_component(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "generator")
    verdict = verdict_for(
        {c: (fps[c][1], fps[c][0]) for c in fps},
        "rollback",
        components={"embedder": "promote", "generator": "rollback"},
    )
    with pytest.raises(RegistryError, match=r"\['embedder'\].*component=NAME.*promote_components"):
        reg.promote(verdict)
    with pytest.raises(RegistryError, match="component='generator' has decision='rollback'"):
        reg.promote(verdict, component="generator")
    with pytest.raises(RegistryError, match="component='index' has decision=None"):
        reg.promote(verdict, component="index")
    assert not [h for h in reg.history() if h.action == "promote"]
    (switch,) = reg.promote(verdict, component="embedder", actor="rm")
    assert (switch.component, switch.to_fingerprint) == ("embedder", fps["embedder"][1])
    state = _alias_map(reg)
    assert state[("embedder", "production")] == fps["embedder"][1]
    assert state[("generator", "production")] == fps["generator"][0]
    row = reg.history(limit=1)[0]
    assert row.verdict_decision == "rollback"
    assert row.note == f"component embedder: {verdict['components']['embedder']['reason']}"


def test_promote_components_switches_only_promotable_ones_at_once(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker", "generator")
    verdict = verdict_for(
        {c: (fps[c][1], fps[c][0]) for c in fps},
        "rollback",
        components={
            "embedder": "promote",
            "reranker": "promote",
            "generator": "rollback",
            "alignment": "promote",  # promotable, but no artifacts in the verdict: left out
        },
    )
    switches = reg.promote_components(verdict)
    assert [s.component for s in switches] == ["embedder", "reranker"]
    state = _alias_map(reg)
    assert state[("embedder", "production")] == fps["embedder"][1]
    assert state[("reranker", "production")] == fps["reranker"][1]
    assert state[("generator", "production")] == fps["generator"][0]
    promotes = [h for h in reg.history() if h.action == "promote"]
    assert len(promotes) == 2 and len({h.verdict_sha256 for h in promotes}) == 1
    assert _replay(reg) == _alias_map(reg)


def test_promote_components_refuses_a_stale_baseline_and_switches_nothing(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "reranker")
    reg.promote(verdict_for({"reranker": (fps["reranker"][1], fps["reranker"][0])}))
    before = _alias_map(reg)
    stale = verdict_for(  # reranker is stale
        {c: (fps[c][2], fps[c][0]) for c in fps},
        "hold",
        components={"embedder": "promote", "reranker": "promote", "generator": "hold"},
    )
    with pytest.raises(RegistryError, match="stale verdict for component='reranker'"):
        reg.promote_components(stale)
    assert _alias_map(reg) == before  # the fresh embedder did not switch either


def test_promote_components_needs_a_promotable_component(reg: Registry) -> None:
    fps = _stack(reg, "embedder")["embedder"]
    pairs = {"embedder": (fps[1], fps[0])}
    with pytest.raises(RegistryError, match="no per-component decisions"):
        reg.promote_components(verdict_for(pairs, "hold"))
    held = verdict_for(pairs, "hold", components={"embedder": "hold"})
    with pytest.raises(RegistryError, match=r"no component has decision='promote'.*'hold'"):
        reg.promote_components(held)
    assert not [h for h in reg.history() if h.action == "promote"]


@pytest.mark.parametrize(
    ("components", "key"),
    [
        ("promote", "'components'"),
        ({"embedder": "promote"}, "'components.embedder'"),
        ({"embedder": {"decision": "ship"}}, "components.embedder.decision"),
        ({"embedder": {}}, "components.embedder.decision"),
    ],
)
def test_bad_components_value_is_a_verdict_error(reg: Registry, components: Any, key: str) -> None:
    verdict = verdict_for({"embedder": ("sha256:c", "sha256:b")}, "hold")
    verdict["components"] = components
    with pytest.raises(VerdictError, match=key):
        reg.promote(verdict, component="embedder")
    with pytest.raises(VerdictError, match=key):
        reg.promote_components(verdict)


# ---- forged verdicts: promote re-derives the decision from the evidence -------------------


def _forge_decision(v: dict[str, Any]) -> None:
    v["decision"] = "promote"


def _forge_numbers(v: dict[str, Any]) -> None:
    v["gates"][0]["delta"] = 0.5


def _forge_status(v: dict[str, Any]) -> None:
    v["gates"][0]["status"] = "passed"


def _drop_gates(v: dict[str, Any]) -> None:
    v["gates"] = []


def _drop_per_sample(v: dict[str, Any]) -> None:
    v["decision"] = "promote"
    v["gates"][0]["status"] = "passed"
    v["gates"][0]["per_sample"] = {}


def _component_forged(v: dict[str, Any]) -> None:
    v["components"]["embedder"]["decision"] = "promote"


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (_forge_decision, "its own evidence .* gives 'rollback'"),
        (_forge_status, "status='passed' in the file, 'failed' re-derived"),
        (_drop_gates, "gives 'hold'.*no gate ran"),
        (_drop_per_sample, "no per-sample scores"),
    ],
)
def test_a_forged_rollback_verdict_is_refused(
    reg: Registry, tmp_path: Path, forge: Any, message: str
) -> None:
    fps = _stack(reg, "embedder")["embedder"]
    verdict = verdict_for({"embedder": (fps[1], fps[0])}, "rollback")
    forge(verdict)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(verdict))
    with pytest.raises(VerdictError, match=message):
        reg.promote(path)
    assert _alias_map(reg)[("embedder", "production")] == fps[0]
    assert not [h for h in reg.history() if h.action == "promote"]


def test_edited_gate_numbers_and_component_decisions_are_refused(reg: Registry) -> None:
    fps = _stack(reg, "embedder", "generator")
    pairs = {c: (fps[c][1], fps[c][0]) for c in fps}
    edited = verdict_for(pairs)
    _forge_numbers(edited)
    with pytest.raises(VerdictError, match=r"delta=0.5 in the file, .* re-derived"):
        reg.promote(edited)
    mixed = verdict_for(pairs, "rollback", components={"embedder": "hold", "generator": "rollback"})
    _component_forged(mixed)
    with pytest.raises(VerdictError, match="per-component decisions"):
        reg.promote(mixed, component="embedder")
    assert not [h for h in reg.history() if h.action == "promote"]


def test_signed_verdicts(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardrails.verdict.integrity import SIGNING_KEY_ENV, sign_verdict

    fps = _stack(reg, "embedder")["embedder"]
    verdict = verdict_for({"embedder": (fps[1], fps[0])})
    monkeypatch.setenv(SIGNING_KEY_ENV, "s3cret")
    with pytest.raises(VerdictError, match="not signed"):
        reg.promote(verdict)
    other = sign_verdict(verdict, b"another key")
    with pytest.raises(VerdictError, match="does not match"):
        reg.promote(other)
    signed = sign_verdict(verdict, b"s3cret")
    altered = {**signed, "provenance": {**signed["provenance"], "run": "edited"}}
    with pytest.raises(VerdictError, match="does not match"):
        reg.promote(altered)
    (switch,) = reg.promote(signed)
    assert switch.to_fingerprint == fps[1]
    assert reg.history(limit=1)[0].verdict_sha256 == switch.verdict_sha256


def test_register_as_bootstraps_production_once_and_moves_other_aliases(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as reg:
        reg.register_as("embedder", "m1", "sha256:a", "production")
        reg.register_as("embedder", "m2", "sha256:b", "production", parent="sha256:a")
        assert reg.resolve("embedder", "production").fingerprint == "sha256:a"  # kept
        reg.register_as("embedder", "m2", "sha256:b", "candidate")
        reg.register_as("embedder", "m3", "sha256:c", "candidate")  # candidates move freely
        assert reg.resolve("embedder", "candidate").fingerprint == "sha256:c"
        assert reg.get("sha256:b").parent_fingerprint == "sha256:a"
        with pytest.raises(RegistryError, match="unknown alias='staging'"):
            reg.register_as("embedder", "m4", "sha256:d", "staging")


def test_paths_under_the_root_are_stored_relative_and_survive_a_moved_checkout(
    tmp_path: Path,
) -> None:
    """A registry inside a project stores its artifacts' paths relative to the project root,
    so a moved (or re-cloned) checkout still resolves them; paths outside stay absolute."""
    import shutil

    project = tmp_path / "project"
    adapter = project / "adapters" / "retriever" / "abc"
    adapter.mkdir(parents=True)
    outside = tmp_path / "models" / "base"
    outside.mkdir(parents=True)
    with Registry(project / "adapters" / "registry.sqlite", root=project) as reg:
        reg.register("adapter", "embedder", adapter, "sha256:a")
        reg.register("model", "embedder", outside, "sha256:b")
        stored = dict(reg._conn.execute("SELECT fingerprint, path FROM artifacts").fetchall())
        assert stored == {"sha256:a": "adapters/retriever/abc", "sha256:b": str(outside)}
        assert reg.get("sha256:a").path == str(adapter)
    moved = tmp_path / "elsewhere" / "project"
    shutil.move(str(project), str(moved))
    with Registry(moved / "adapters" / "registry.sqlite", root=moved) as reg:
        art = reg.get("sha256:a")
        assert art is not None and art.path == str(moved / "adapters" / "retriever" / "abc")
        assert Path(art.path).is_dir()
        assert reg.get("sha256:b").path == str(outside)


def test_last_promoted_is_the_schedule_triggers_last_retrain(reg: Registry) -> None:
    from datetime import datetime, timedelta, timezone

    from guardrails.monitoring.triggers import TriggerPolicy, _schedule

    assert reg.last_promoted() is None
    fps = _stack(reg, "embedder", "reranker")
    reg.promote(verdict_for({"embedder": (fps["embedder"][1], fps["embedder"][0])}))
    last = reg.last_promoted()
    now = datetime.now(timezone.utc)
    assert last is not None and abs((now - last).total_seconds()) < 60
    assert reg.last_promoted(["reranker"]) is None
    assert reg.last_promoted(["embedder", "reranker"]) == last
    policy = TriggerPolicy()
    assert _schedule(last, now, policy) == []  # just promoted: not due
    later = now + timedelta(days=policy.max_age_days + 1)
    assert [f.kind for f in _schedule(last, later, policy)] == ["schedule"]
