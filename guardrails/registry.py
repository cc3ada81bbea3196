"""SQLite registry of artifacts and aliases: atomic promote / rollback with an append-only history.

Four tables (plus ``migrations``, one row per applied ``schema_version``)::

    artifacts  (component, fingerprint) UNIQUE -> kind, path, parent_fingerprint, metadata (JSON),
               branch                  the same artifact (a bare base model) may serve several
                                       components: it is registered once per component
    aliases    (component, alias) -> fingerprint      alias in production|shadow|candidate|previous
               (component, fingerprint) references artifacts: an alias names its own component's
    branches   name -> components, reason, evidence (JSON), parent branch, base (the production
               fingerprints it forked from): the lineage a retrain trigger opens (schema 2)
    history    append-only log of every register / set_alias / promote / rollback; ``evidence``
               (JSON) says why an automatic rollback happened (schema 2)

Schema 2 (``_V2``) rebuilds ``artifacts`` / ``aliases`` in place, in the one migration
transaction, following SQLite's "other ALTER TABLE" recipe [4]: foreign keys off for the
connection, copy into new tables, drop, rename, ``PRAGMA foreign_key_check`` before the commit.
A registry written by schema 1 keeps every row, id and alias; nothing changes if it fails.

Contract:

- Every mutation is ONE ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the
  first read, so the checks (candidate registered, verdict baseline == current production) and
  the switch see the same state and two promoters cannot both win [1]. A process killed inside
  a transaction leaves no trace: WAL recovery drops the uncommitted frames [2].
- ``promote(verdict)`` switches every component listed in the verdict's
  ``provenance.artifacts`` at once: ``previous <- production <- candidate``. It refuses any
  decision but ``"promote"`` and any *stale* verdict (baseline != current production).
  When the overall decision is not promote, a verdict with per-component decisions
  (``components``) still lets ``promote(verdict, component=X)`` switch X if X's own decision is
  promote, and ``promote_components(verdict)`` switch every such component in one transaction.
- ``rollback(component)`` swaps ``production`` and ``previous``; a second rollback flips back.
- A ``mirror`` (optional) is called with the switches AFTER the commit, so an external
  registry (MLflow aliases) follows; its failure never undoes the SQLite switch.
- ``history`` rows cannot be updated or deleted: triggers ``RAISE(ABORT)`` [3], so the DB
  itself enforces the audit trail. Replaying history reproduces the alias table exactly.

Test hook: ``GUARDRAILS_REGISTRY_TEST_SLEEP_IN_TXN=<seconds>`` sleeps between the alias updates
of a switch, inside the transaction, so crash tests can kill a process mid-switch.

[1] https://www.sqlite.org/lang_transaction.html  [2] https://www.sqlite.org/wal.html
[3] https://www.sqlite.org/lang_createtrigger.html#raise
[4] https://www.sqlite.org/lang_altertable.html#otheralter
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from guardrails.artifacts import fingerprint_json
from guardrails.errors import RegistryError, VerdictError

__all__ = [
    "DEFAULT_REGISTRY_PATH",
    "SCHEMA_VERSION",
    "Action",
    "Alias",
    "AliasName",
    "Artifact",
    "Branch",
    "HistoryEntry",
    "Mirror",
    "Registry",
    "Switch",
    "WatchResult",
    "default_actor",
]

DEFAULT_REGISTRY_PATH = Path("adapters/registry.sqlite")
BUSY_TIMEOUT_S = 30.0
TEST_SLEEP_ENV = "GUARDRAILS_REGISTRY_TEST_SLEEP_IN_TXN"


class AliasName(str, Enum):
    """The closed set of alias names; ``previous`` is written only by promote / rollback."""

    PRODUCTION = "production"
    SHADOW = "shadow"
    CANDIDATE = "candidate"
    PREVIOUS = "previous"


class Action(str, Enum):
    """What a history row records."""

    REGISTER = "register"
    SET_ALIAS = "set_alias"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


_V1 = (
    """CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (length(kind) > 0),
        component TEXT NOT NULL CHECK (length(component) > 0),
        path TEXT NOT NULL,
        fingerprint TEXT UNIQUE NOT NULL CHECK (length(fingerprint) > 0),
        parent_fingerprint TEXT NULL,
        metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
        created_at TEXT NOT NULL)""",
    """CREATE TABLE aliases (
        component TEXT NOT NULL,
        alias TEXT NOT NULL CHECK (alias IN ('production', 'shadow', 'candidate', 'previous')),
        fingerprint TEXT NOT NULL REFERENCES artifacts (fingerprint),
        updated_at TEXT NOT NULL,
        verdict_sha256 TEXT NULL,
        PRIMARY KEY (component, alias))""",
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('register', 'set_alias', 'promote', 'rollback')),
        component TEXT NOT NULL,
        alias TEXT NULL,
        from_fingerprint TEXT NULL,
        to_fingerprint TEXT NULL,
        verdict_sha256 TEXT NULL,
        verdict_decision TEXT NULL,
        note TEXT NULL)""",
    "CREATE INDEX history_by_component ON history (component, id)",
    """CREATE TRIGGER history_no_update BEFORE UPDATE ON history
        BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be updated'); END""",
    """CREATE TRIGGER history_no_delete BEFORE DELETE ON history
        BEGIN SELECT RAISE(ABORT, 'history is append-only: rows cannot be deleted'); END""",
)
_V2 = (
    """CREATE TABLE branches (
        name TEXT PRIMARY KEY CHECK (length(name) > 0),
        parent TEXT NULL REFERENCES branches (name),
        components TEXT NOT NULL CHECK (json_valid(components)),
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(evidence)),
        base TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(base)),
        opened_at TEXT NOT NULL,
        actor TEXT NOT NULL)""",
    """CREATE TABLE artifacts_v2 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (length(kind) > 0),
        component TEXT NOT NULL CHECK (length(component) > 0),
        path TEXT NOT NULL,
        fingerprint TEXT NOT NULL CHECK (length(fingerprint) > 0),
        parent_fingerprint TEXT NULL,
        metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
        created_at TEXT NOT NULL,
        branch TEXT NULL REFERENCES branches (name),
        UNIQUE (component, fingerprint))""",
    "INSERT INTO artifacts_v2 (id, kind, component, path, fingerprint, parent_fingerprint, "
    "metadata, created_at) SELECT id, kind, component, path, fingerprint, parent_fingerprint, "
    "metadata, created_at FROM artifacts",
    """CREATE TABLE aliases_v2 (
        component TEXT NOT NULL,
        alias TEXT NOT NULL CHECK (alias IN ('production', 'shadow', 'candidate', 'previous')),
        fingerprint TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        verdict_sha256 TEXT NULL,
        PRIMARY KEY (component, alias),
        FOREIGN KEY (component, fingerprint) REFERENCES artifacts_v2 (component, fingerprint))""",
    "INSERT INTO aliases_v2 SELECT component, alias, fingerprint, updated_at, verdict_sha256 "
    "FROM aliases",
    "DROP TABLE aliases",
    "DROP TABLE artifacts",
    "ALTER TABLE artifacts_v2 RENAME TO artifacts",  # rewrites aliases_v2's foreign key too
    "ALTER TABLE aliases_v2 RENAME TO aliases",
    "CREATE INDEX artifacts_by_fingerprint ON artifacts (fingerprint)",
    "ALTER TABLE history ADD COLUMN evidence TEXT NULL "
    "CHECK (evidence IS NULL OR json_valid(evidence))",
)
_MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True)
class Artifact:
    """One registered artifact; ``fingerprint`` is its identity."""

    id: int
    kind: str
    component: str
    path: str
    fingerprint: str
    parent_fingerprint: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    created_at: str = ""
    branch: str | None = None


@dataclass(frozen=True)
class Alias:
    """``component/alias -> fingerprint``; ``verdict_sha256`` is the verdict that last set it."""

    component: str
    alias: str
    fingerprint: str
    updated_at: str
    verdict_sha256: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One append-only history row."""

    id: int
    at: str
    actor: str
    action: str
    component: str
    alias: str | None
    from_fingerprint: str | None
    to_fingerprint: str | None
    verdict_sha256: str | None
    verdict_decision: str | None
    note: str | None
    evidence: Mapping[str, Any] | None = field(default=None, hash=False)
    """Why an automatic rollback happened (``watch``): verdict sha256, failing gates (schema 2)."""


@dataclass(frozen=True)
class Branch:
    """A line of candidates opened for one reason (a retrain trigger): ``base`` is the production
    fingerprint of each component when it opened, ``parent`` the branch it continues."""

    name: str
    parent: str | None
    components: tuple[str, ...]
    reason: str
    evidence: Mapping[str, Any] = field(hash=False)
    base: Mapping[str, str] = field(hash=False)
    opened_at: str
    actor: str


@dataclass(frozen=True)
class WatchResult:
    """One regressed component of a monitoring verdict (:meth:`Registry.watch`): ``action`` is
    ``rollback`` (done with ``apply``, else planned) or ``skip`` (``reason`` says why);
    ``judged_production``: the verdict's candidate for it is its current production (False: a
    candidate evaluation, whose rollback rejects the candidate and leaves production alone)."""

    component: str
    action: str
    from_fingerprint: str | None
    to_fingerprint: str | None
    reason: str
    evidence: Mapping[str, Any] = field(hash=False)
    judged_production: bool = False


@dataclass(frozen=True)
class Switch:
    """A production switch: ``previous`` now holds ``from_fingerprint``."""

    component: str
    action: str
    from_fingerprint: str
    to_fingerprint: str
    verdict_sha256: str | None


Mirror = Callable[["Registry", Sequence[Switch]], None]
"""Called with the committed switches of a promote / rollback (e.g. an MLflow alias mirror,
:mod:`guardrails.integrations.mlflow`); raises :class:`~guardrails.errors.MirrorError`."""


@dataclass(frozen=True)
class _Verdict:
    """The parts of a verdict the registry depends on."""

    source: str
    sha256: str
    decision: str
    reason: str
    artifacts: tuple[tuple[str, str, str], ...]  # (component, role, fingerprint)
    components: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # (decision, reason)
    regressed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # see _regressed

    def promotable(self) -> list[str]:
        return sorted(c for c, (d, _) in self.components.items() if d == "promote")

    def candidate(self, component: str) -> str | None:
        """The fingerprint the verdict judged as ``component``'s candidate, if it names one."""
        return next(
            (fp for c, role, fp in self.artifacts if c == component and role == "candidate"), None
        )


def default_actor() -> str:
    """``$GUARDRAILS_ACTOR`` if set, else ``user@host``."""
    env = os.environ.get("GUARDRAILS_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


_BRANCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


def _gate_line(g: Mapping[str, Any]) -> str:
    """``name: metric delta=-0.12 (CI -0.15..-0.09), limit`` of a failing-gate evidence."""
    lo, hi = g["ci"]
    fmt = lambda x: "nan" if x is None else f"{x:+.4g}"  # noqa: E731
    ci = f"CI {fmt(lo)}..{fmt(hi)}"
    return f"{g['name']}: {g['metric']} delta={fmt(g['delta'])} ({ci}), {g['limit']}"


def _history_entry(row: dict[str, Any]) -> HistoryEntry:
    evidence = row.get("evidence")
    row["evidence"] = None if evidence is None else json.loads(evidence)
    return HistoryEntry(**row)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _alias_name(alias: str | AliasName) -> AliasName:
    try:
        return AliasName(alias)
    except ValueError:
        names = ", ".join(repr(a.value) for a in AliasName)
        raise RegistryError(f"unknown alias={alias!r}; use one of {names}.") from None


def _test_sleep_in_txn() -> None:
    """Crash-test hook: widen the window between alias updates (never set in production)."""
    seconds = os.environ.get(TEST_SLEEP_ENV)
    if seconds:
        time.sleep(float(seconds))


# ---- verdict reading: the one reader, then verification ------------------------------------


def _read_verdict(verdict: str | Path | Mapping[str, Any]) -> _Verdict:
    """Read a verdict file or dict with the verdict package's reader and verify it
    (:func:`guardrails.verdict.integrity.verify_verdict`: re-derived from its per-sample
    evidence, signed when a key is configured); sha256 of the file bytes or canonical JSON."""
    from guardrails.verdict.integrity import verify_verdict

    if isinstance(verdict, Mapping):
        data, source = dict(verdict), "<verdict dict>"
        sha = fingerprint_json(data).removeprefix("sha256:")
    else:
        source = str(verdict)
        try:
            raw = Path(verdict).read_bytes()
        except OSError as exc:
            raise VerdictError(
                f"{source}: cannot read the verdict: {exc.strerror or exc}"
            ) from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise VerdictError(f"{source}: not UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise VerdictError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        sha = hashlib.sha256(raw).hexdigest()
    checked = verify_verdict(data, source)
    arts = checked.provenance.get("artifacts")
    if not isinstance(arts, list):
        raise VerdictError(
            f"{source}: key 'provenance.artifacts' must be a list; got {arts!r:.80}."
        )
    rows = tuple(
        tuple(_check_keys(a, _ARTIFACT_KEYS, source, f"provenance.artifacts[{i}]."))
        for i, a in enumerate(arts)
    )
    components = {
        name: (str(entry["decision"]), str(entry.get("reason", "")))
        for name, entry in checked.components.items()
    }
    regressed = _regressed(checked, {c for c, _, _ in rows})
    return _Verdict(
        source, sha, checked.decision.value, checked.reason, rows, components, regressed
    )


def _gate_evidence(gate: Any) -> dict[str, Any]:
    """A failed gate as history evidence: name, metric, delta with its CI, the policy limit
    (numbers as the verdict's JSON writes them: NaN as None)."""
    full = gate.to_dict()
    keys = ("name", "metric", "kind", "delta", "ci", "p_value", "p_adjusted", "limit")
    return {k: full[k] for k in keys}


def _regressed(checked: Any, listed: set[str]) -> dict[str, dict[str, Any]]:
    """``component -> {decision, reason, failing_gates}`` for every component the verdict says
    regressed: its own decision is rollback or one of its gates failed. Without per-component
    decisions, an overall rollback (or any failed gate) concerns every component it lists."""
    failed = {g.name: _gate_evidence(g) for g in checked.gates if g.status.value == "failed"}
    out: dict[str, dict[str, Any]] = {}
    if checked.components:
        for comp, entry in checked.components.items():
            mine = [failed[n] for n in entry.get("gates", ()) if n in failed]
            if entry["decision"] == "rollback" or mine:
                out[comp] = {
                    "decision": entry["decision"],
                    "reason": str(entry.get("reason", "")),
                    "failing_gates": mine,
                }
    elif checked.decision.value == "rollback" or failed:
        for comp in listed:
            out[comp] = {
                "decision": checked.decision.value,
                "reason": checked.reason,
                "failing_gates": list(failed.values()),
            }
    return out


_ARTIFACT_KEYS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("component", lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    ("role", lambda v: v in ("candidate", "baseline"), "'candidate' or 'baseline'"),
    ("fingerprint", lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
)


def _check_keys(
    obj: Any,
    keys: tuple[tuple[str, Callable[[Any], bool], str], ...],
    source: str,
    prefix: str = "",
) -> list[Any]:
    """Values of ``keys`` in ``obj``; VerdictError naming the first bad key."""
    values = []
    for key, ok, what in keys:
        value = obj.get(key) if isinstance(obj, dict) else None
        if not ok(value):
            raise VerdictError(
                f"{source}: key {prefix + key!r} must be {what}; got {prefix + key}={value!r:.80}."
            )
        values.append(value)
    return values


def _pairs(verdict: _Verdict, only: str | None) -> dict[str, tuple[str, str]]:
    """``component -> (candidate, baseline)``; each listed component needs exactly one of each."""
    found: dict[str, dict[str, str]] = {}
    for comp, role, fp in verdict.artifacts:
        if role in found.setdefault(comp, {}):
            raise VerdictError(
                f"{verdict.source}: component={comp!r} lists role={role!r} twice "
                "in 'provenance.artifacts'."
            )
        found[comp][role] = fp
    for comp, roles in found.items():
        if len(roles) != 2:
            raise VerdictError(
                f"{verdict.source}: component={comp!r} needs both a 'candidate' and "
                f"a 'baseline' in 'provenance.artifacts'; got {sorted(roles)}."
            )
    if only is not None and only not in found:
        raise RegistryError(f"component={only!r} is not in the verdict; it lists {sorted(found)}.")
    chosen = [only] if only is not None else sorted(found)
    if not chosen:
        raise VerdictError(
            f"{verdict.source}: 'provenance.artifacts' is empty; nothing to promote."
        )
    return {c: (found[c]["candidate"], found[c]["baseline"]) for c in chosen}


# ---- the registry ---------------------------------------------------------------------------


class Registry:
    """Artifacts, aliases and history in one SQLite file (WAL, foreign keys, busy timeout).

    One connection per instance and per process; safe to use from many processes at once.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_REGISTRY_PATH,
        *,
        read_only: bool = False,
        create: bool = True,
        mirror: Mirror | None = None,
        root: str | Path | None = None,
    ) -> None:
        """Open (and, unless ``create=False`` or ``read_only``, create) the registry at ``path``.

        ``read_only`` opens the file with SQLite's ``mode=ro`` (nothing is created, migrated
        or written); a missing file with ``create=False`` or ``read_only`` is a
        :class:`RegistryError` "no registry at PATH", and a file that is not a guardrails
        registry (corrupt, another database, random bytes) is a :class:`RegistryError` naming
        it, never a ``sqlite3`` traceback. ``mirror``, when given, is called with the
        switches after each promote / rollback commits (e.g. MLflow aliases).

        ``root`` (default: the registry file's folder) makes the registry portable: an artifact
        path under it is stored relative to it and resolved against it when read, so a moved or
        re-cloned checkout still finds its adapters; a path outside it is stored absolute.
        """
        self.path = Path(path)
        self.read_only = read_only
        self.mirror = mirror
        self.root = Path(root if root is not None else self.path.parent).resolve()
        if (read_only or not create) and not self.path.is_file():
            what = "a folder, not a registry file" if self.path.is_dir() else "no such file"
            raise RegistryError(
                f"no registry at {self.path} ({what}); pass --registry with the path of an "
                "existing registry"
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if read_only:
                uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
            else:
                self._conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: cannot open the registry ({exc})") from None
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if read_only:
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._check_schema()
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._migrate()
                self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise RegistryError(
                f"{self.path}: not a readable guardrails registry (SQLite: {exc}); restore it "
                "from a backup or point --registry at the right file"
            ) from None
        except BaseException:
            self._conn.close()
            raise

    def _check_schema(self) -> None:
        """Read-only open: the file must already hold a registry this guardrails can read."""
        has = self._conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
            "('migrations', 'artifacts', 'aliases', 'history')"
        ).fetchone()[0]
        if has != 4:
            raise RegistryError(
                f"{self.path}: an SQLite file but not a guardrails registry (tables missing); "
                "point --registry at the right file"
            )
        current = self._conn.execute("SELECT max(schema_version) FROM migrations").fetchone()[0]
        if current is None or current > SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path}: schema_version={current} is not one this guardrails reads "
                f"(1..{SCHEMA_VERSION}); upgrade guardrails."
            )
        if current < SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path}: schema_version={current} predates this guardrails' "
                f"{SCHEMA_VERSION} and a read-only open cannot migrate it; open it once "
                "writable (Registry(path), or any guardrails command that writes)."
            )

    @staticmethod
    def stored_schema_version(path: str | Path) -> int | None:
        """The schema version of the registry file at ``path`` (read-only), or None when it
        is missing or not a registry; lets a reader migrate an older file before reading."""
        try:
            uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error:
            return None
        try:
            row = conn.execute("SELECT max(schema_version) FROM migrations").fetchone()
            return None if row is None or row[0] is None else int(row[0])
        except sqlite3.Error:
            return None
        finally:
            conn.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        """Apply the missing migrations in ONE transaction. Foreign keys are off for it (a
        no-op inside a transaction, so set before): schema 2 rebuilds referenced tables; the
        caller turns them on after, and ``foreign_key_check`` must be empty before the commit."""
        self._conn.execute("PRAGMA foreign_keys = OFF")
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(schema_version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = conn.execute(
                "SELECT coalesce(max(schema_version), 0) FROM migrations"
            ).fetchone()[0]
            if current > SCHEMA_VERSION:
                raise RegistryError(
                    f"{self.path}: schema_version={current} is newer than this "
                    f"guardrails supports ({SCHEMA_VERSION}); upgrade guardrails."
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations VALUES (?, ?)", (version, _now()))
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RegistryError(
                    f"{self.path}: migrating to schema_version={SCHEMA_VERSION} would leave "
                    f"{len(broken)} dangling reference(s) (first: table={broken[0][0]!r} "
                    f"rowid={broken[0][1]}); nothing was changed: repair or restore the file."
                )

    @property
    def schema_version(self) -> int:
        """The highest applied migration."""
        return int(self._conn.execute("SELECT max(schema_version) FROM migrations").fetchone()[0])

    # ---- reads ----

    def get(self, fingerprint: str, component: str | None = None) -> Artifact | None:
        """The artifact with this fingerprint (registered for ``component``; without one, its
        first registration), or None."""
        with self._reading():
            return self._get(self._conn, fingerprint, component)

    def _get(
        self, conn: sqlite3.Connection, fingerprint: str, component: str | None = None
    ) -> Artifact | None:
        sql, args = "SELECT * FROM artifacts WHERE fingerprint = ?", [fingerprint]
        if component is not None:
            sql, args = sql + " AND component = ?", [*args, component]
        row = conn.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()
        if row is None:
            return None
        values = dict(row)
        values["metadata"] = MappingProxyType(json.loads(values["metadata"]))
        values["path"] = self._resolved(values["path"])
        return Artifact(**values)

    def _stored(self, path: str | Path) -> str:
        """``path`` as stored: relative (POSIX) to :attr:`root` when under it, else absolute."""
        full = Path(path).expanduser()
        full = (full if full.is_absolute() else Path.cwd() / full).resolve()
        try:
            return full.relative_to(self.root).as_posix()
        except ValueError:
            return str(full)

    def _resolved(self, stored: str) -> str:
        """A stored path as a usable one: relative paths are resolved against :attr:`root`."""
        return stored if Path(stored).is_absolute() else str(self.root / stored)

    def portable(self, path: str | Path) -> str:
        """``path`` as metadata should keep it: relative to :attr:`root` when under it (so a
        moved checkout still resolves it with :meth:`locate`), else absolute."""
        return self._stored(path)

    def locate(self, stored: str | Path) -> Path:
        """A path kept with :meth:`portable` (or an artifact path) as a usable path."""
        return Path(self._resolved(str(stored)))

    def resolve(self, component: str, alias: str | AliasName) -> Artifact | None:
        """The artifact ``component/alias`` points at, or None if the alias is unset."""
        fp = self._alias_fp(self._conn, component, _alias_name(alias))
        return None if fp is None else self.get(fp, component)

    def aliases(self) -> list[Alias]:
        """Every alias, ordered by component then alias name."""
        with self._reading():
            rows = self._conn.execute("SELECT * FROM aliases ORDER BY component, alias")
            return [Alias(**dict(r)) for r in rows]

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A damaged page found while reading is a :class:`RegistryError` naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"{self.path}: the registry is damaged (SQLite: {exc})") from None

    def history(self, component: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        """History rows, newest first (optionally one component, at most ``limit`` rows)."""
        sql, args = "SELECT * FROM history", []
        if component is not None:
            sql, args = sql + " WHERE component = ?", [component]
        sql += " ORDER BY id DESC LIMIT ?"
        with self._reading():
            rows = self._conn.execute(sql, [*args, -1 if limit is None else limit])
            return [_history_entry(dict(r)) for r in rows]

    def last_promoted(self, components: Sequence[str] | None = None) -> datetime | None:
        """When production last moved by a promote (of one of ``components``, or of any), from
        the history: the schedule trigger's "last retrain" (None if nothing was promoted)."""
        sql, args = "SELECT max(at) FROM history WHERE action = ?", [Action.PROMOTE.value]
        if components is not None:
            sql += f" AND component IN ({','.join('?' * len(components))})"
            args += list(components)
        with self._reading():
            (at,) = self._conn.execute(sql, args).fetchone()
        return None if at is None else datetime.fromisoformat(at)

    @staticmethod
    def _alias_fp(conn: sqlite3.Connection, component: str, alias: AliasName) -> str | None:
        row = conn.execute(
            "SELECT fingerprint FROM aliases WHERE component = ? AND alias = ?",
            (component, alias.value),
        ).fetchone()
        return None if row is None else str(row[0])

    # ---- writes ----

    def register(
        self,
        kind: str,
        component: str,
        path: str | Path,
        fingerprint: str,
        parent: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        branch: str | None = None,
    ) -> Artifact:
        """Record an artifact for ``component``; registering the same (component, fingerprint)
        again returns the stored row. The same fingerprint may be registered for several
        components (a bare base model is the generator's production and the alignment's).

        ``branch`` (opened with :meth:`open_branch`) records which line the artifact belongs
        to; an artifact registered without one joins the first branch it is registered with.
        Raises RegistryError if (component, fingerprint) is already registered as another kind.
        """
        with self._write() as conn:
            if branch is not None:
                self._require_branch(conn, branch)
            known = self._get(conn, fingerprint, component)
            if known is None:
                meta = json.dumps(dict(metadata or {}), sort_keys=True, default=str)
                conn.execute(
                    "INSERT INTO artifacts (kind, component, path, fingerprint, "
                    "parent_fingerprint, metadata, created_at, branch) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        kind,
                        component,
                        self._stored(path),
                        fingerprint,
                        parent,
                        meta,
                        _now(),
                        branch,
                    ),
                )
                self._log(
                    conn,
                    Action.REGISTER,
                    component,
                    None,
                    None,
                    fingerprint,
                    note=f"{kind} at {path}",
                )
                known = self._get(conn, fingerprint, component)
            elif branch is not None and known.branch is None and known.kind == kind:
                conn.execute("UPDATE artifacts SET branch = ? WHERE id = ?", (branch, known.id))
                known = self._get(conn, fingerprint, component)
        assert known is not None
        if known.kind != kind:
            raise RegistryError(
                f"fingerprint={fingerprint!r} is already registered for "
                f"component={component!r} as kind={known.kind!r}; refusing kind={kind!r}."
            )
        return known

    def register_as(
        self,
        component: str,
        path: str | Path,
        fingerprint: str,
        alias: str | AliasName,
        *,
        kind: str | None = None,
        parent: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        branch: str | None = None,
    ) -> Artifact:
        """Register an artifact and point ``alias`` at it, except that ``production`` is only
        bootstrapped (set when the component has none): once production exists it moves through
        :meth:`promote` / :meth:`rollback` and their verdicts, never by registering.
        ``branch``: see :meth:`register`."""
        artifact = self.register(
            kind or component,
            component,
            path,
            fingerprint,
            parent=parent,
            metadata=metadata,
            branch=branch,
        )
        name = _alias_name(alias)
        if name is not AliasName.PRODUCTION or self.resolve(component, name) is None:
            self.set_alias(component, name, fingerprint)
        return artifact

    def set_alias(
        self, component: str, alias: str | AliasName, fingerprint: str, actor: str | None = None
    ) -> Alias:
        """Point ``shadow`` / ``candidate`` at an artifact, or bootstrap an unset ``production``.

        A set ``production`` changes only through :meth:`promote` / :meth:`rollback`, and
        ``previous`` only through those, so every production change is backed by history.
        """
        name = _alias_name(alias)
        if name is AliasName.PREVIOUS:
            raise RegistryError("alias='previous' is written only by promote() and rollback().")
        with self._write() as conn:
            self._require_artifact(conn, component, fingerprint)
            old = self._alias_fp(conn, component, name)
            if name is AliasName.PRODUCTION and old not in (None, fingerprint):
                raise RegistryError(
                    f"component={component!r} already has production={old!r}; "
                    "change it with promote(verdict) or rollback()."
                )
            if old != fingerprint:
                self._put_alias(conn, component, name, fingerprint, None)
                self._log(conn, Action.SET_ALIAS, component, name, old, fingerprint, actor=actor)
        return next(a for a in self.aliases() if (a.component, a.alias) == (component, name.value))

    def promote(
        self,
        verdict: str | Path | Mapping[str, Any],
        *,
        component: str | None = None,
        actor: str | None = None,
    ) -> list[Switch]:
        """Apply a ``decision == "promote"`` verdict: ``previous <- production <- candidate``.

        All listed components (or just ``component``) switch in ONE transaction, after checking
        inside it that each candidate is registered for its component and each baseline is the
        current production (a stale verdict is refused). Components whose candidate equals their
        baseline are checked but not switched. If the overall decision is not promote, only
        ``component=X`` whose own decision (the verdict's ``components``) is promote switches.
        Raises VerdictError / RegistryError.
        """
        v = _read_verdict(verdict)
        notes: dict[str, str] = {}
        if v.decision != "promote":
            refusal = f"refusing to promote: verdict decision={v.decision!r} (reason: {v.reason})"
            if not v.components:
                raise RegistryError(f"{refusal}; only decision='promote' switches production.")
            promotable = v.promotable()
            if component is None:
                raise RegistryError(
                    f"{refusal}; per-component decisions allow promoting "
                    f"{promotable or 'no component'}: pass component=NAME (CLI: --component "
                    "NAME) for one, or use promote_components (CLI: --promotable) for all."
                )
            decision, reason = v.components.get(component, (None, ""))
            if decision != "promote":
                raise RegistryError(
                    f"{refusal}; component={component!r} has decision={decision!r}"
                    f"{f' (reason: {reason})' if reason else ''}; promotable components: "
                    f"{promotable}."
                )
            notes[component] = f"component {component}: {reason or 'promote'}"
        pairs = _pairs(v, component)
        return self._promote_pairs(v, pairs, actor, notes)

    def promote_components(
        self, verdict: str | Path | Mapping[str, Any], *, actor: str | None = None
    ) -> list[Switch]:
        """Switch every component whose own decision is promote, in ONE transaction.

        The verdict must carry per-component decisions (``components``); components without
        a candidate and a baseline in ``provenance.artifacts`` are left out. The checks of
        :meth:`promote` apply to each chosen component; one stale baseline refuses them all.
        """
        v = _read_verdict(verdict)
        if not v.components:
            raise RegistryError(
                f"{v.source}: the verdict has no per-component decisions ('components'); "
                "use promote() for a decision='promote' verdict."
            )
        pairs = _pairs(v, None)
        chosen = {c: pairs[c] for c in v.promotable() if c in pairs}
        if not chosen:
            decisions = {c: d for c, (d, _) in sorted(v.components.items())}
            raise RegistryError(
                f"refusing to promote: no component has decision='promote' and a candidate "
                f"in 'provenance.artifacts' (decisions: {decisions}; artifacts for "
                f"{sorted(pairs)})."
            )
        notes = {c: f"component {c}: {v.components[c][1] or 'promote'}" for c in chosen}
        return self._promote_pairs(v, chosen, actor, notes)

    def _promote_pairs(
        self,
        v: _Verdict,
        pairs: Mapping[str, tuple[str, str]],
        actor: str | None,
        notes: Mapping[str, str],
    ) -> list[Switch]:
        with self._write() as conn:
            for comp, (candidate, baseline) in pairs.items():
                self._check_promotable(conn, comp, candidate, baseline)
            moving = [(c, cand) for c, (cand, base) in pairs.items() if cand != base]
            if not moving:
                raise RegistryError(
                    f"{v.source}: every candidate equals its baseline; nothing to promote."
                )
            switches = [
                self._switch(conn, c, cand, Action.PROMOTE, v, actor, note=notes.get(c))
                for c, cand in moving
            ]
        return self._mirrored(switches)

    def rollback(
        self,
        component: str,
        *,
        actor: str | None = None,
        verdict: str | Path | Mapping[str, Any] | None = None,
    ) -> Switch:
        """Swap ``production`` and ``previous`` atomically (a second rollback flips back).

        ``verdict``, if given, must have ``decision == "rollback"``; its sha256 is recorded.
        """
        v = None if verdict is None else _read_verdict(verdict)
        if v is not None and v.decision != "rollback":
            raise RegistryError(
                f"refusing to roll back with verdict decision={v.decision!r} "
                f"(reason: {v.reason}); pass a 'rollback' verdict or none."
            )
        with self._write() as conn:
            previous = self._alias_fp(conn, component, AliasName.PREVIOUS)
            if previous is None:
                raise RegistryError(
                    f"cannot roll back component={component!r}: no previous "
                    "production is recorded (nothing was promoted yet)."
                )
            switch = self._switch(conn, component, previous, Action.ROLLBACK, v, actor)
        return self._mirrored([switch])[0]

    # ---- lineage: branches and parent chains ----

    def open_branch(
        self,
        name: str,
        components: Sequence[str],
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
        *,
        parent: str | None = None,
        actor: str | None = None,
    ) -> Branch:
        """Open the branch ``name`` (a retrain trigger's line of candidates) for ``components``;
        ``base`` records each component's production now. Idempotent per name: an open branch
        is returned as stored (its reason and evidence are those of the first opening)."""
        if not _BRANCH_NAME.fullmatch(name):
            raise RegistryError(
                f"branch name={name!r}: use letters, digits and . _ / - (starting with a letter "
                "or digit), e.g. 'retrain-20260101-novel_share'."
            )
        with self._write() as conn:
            known = self._branch(conn, name)
            if known is not None:
                return known
            if parent is not None:
                self._require_branch(conn, parent)
            comps = sorted(set(components))
            base = {
                c: fp
                for c in comps
                if (fp := self._alias_fp(conn, c, AliasName.PRODUCTION)) is not None
            }
            conn.execute(
                "INSERT INTO branches VALUES (?,?,?,?,?,?,?,?)",
                (
                    name,
                    parent,
                    json.dumps(comps),
                    reason,
                    json.dumps(dict(evidence or {}), sort_keys=True, default=str),
                    json.dumps(base, sort_keys=True),
                    _now(),
                    actor or default_actor(),
                ),
            )
            known = self._branch(conn, name)
        assert known is not None
        return known

    def branch(self, name: str) -> Branch | None:
        """The branch ``name``, or None."""
        with self._reading():
            return self._branch(self._conn, name)

    def branches(self) -> list[Branch]:
        """Every branch, oldest first."""
        with self._reading():
            rows = self._conn.execute("SELECT name FROM branches ORDER BY opened_at, name")
            names = [r[0] for r in rows]
            return [b for n in names if (b := self._branch(self._conn, n)) is not None]

    def branch_artifacts(self, name: str) -> list[Artifact]:
        """The artifacts registered on branch ``name``, in registration order."""
        with self._reading():
            rows = self._conn.execute(
                "SELECT fingerprint, component FROM artifacts WHERE branch = ? ORDER BY id",
                (name,),
            ).fetchall()
            return [a for fp, c in rows if (a := self._get(self._conn, fp, c)) is not None]

    @staticmethod
    def _branch(conn: sqlite3.Connection, name: str) -> Branch | None:
        row = conn.execute("SELECT * FROM branches WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        values = dict(row)
        values["components"] = tuple(json.loads(values["components"]))
        values["evidence"] = MappingProxyType(json.loads(values["evidence"]))
        values["base"] = MappingProxyType(json.loads(values["base"]))
        return Branch(**values)

    def lineage(self, fingerprint: str, component: str | None = None) -> list[Artifact]:
        """The artifact and its ancestors, newest first, following ``parent_fingerprint``
        (within the same component when the parent is registered there, else its first
        registration); empty when the fingerprint is not registered. A cycle stops the walk."""
        chain: list[Artifact] = []
        seen: set[tuple[str, str]] = set()
        with self._reading():
            art = self._get(self._conn, fingerprint, component)
            while art is not None and (art.component, art.fingerprint) not in seen:
                chain.append(art)
                seen.add((art.component, art.fingerprint))
                parent = art.parent_fingerprint
                if parent is None:
                    break
                art = self._get(self._conn, parent, art.component) or self._get(self._conn, parent)
        return chain

    # ---- automatic rollback after a promote ----

    def watch(
        self,
        verdict: str | Path | Mapping[str, Any],
        *,
        apply: bool = False,
        actor: str | None = None,
    ) -> list[WatchResult]:
        """Roll back every component a monitoring verdict of the *current production* shows
        regressed (its own decision is rollback or one of its gates failed), when that
        production came from a promote: ``production <- previous``, in ONE transaction, with
        the evidence (verdict sha256, the failing gates' delta and CI) in the history.

        A component is skipped (``action == "skip"``, with the reason) when the verdict's
        candidate for it is not the current production (a candidate evaluation's rollback
        rejects the candidate, it says nothing about production) or when its last switch was
        not a promote (nothing to undo, or already rolled back). Without ``apply`` nothing is
        written: the results say what would happen. Raises VerdictError / RegistryError.
        """
        v = _read_verdict(verdict)
        if not apply:
            with self._reading():
                return [self._watch_one(self._conn, v, c, e) for c, e in v.regressed.items()]
        with self._write() as conn:
            results = [self._watch_one(conn, v, c, e) for c, e in v.regressed.items()]
            switches = [
                self._switch(
                    conn,
                    r.component,
                    str(r.to_fingerprint),
                    Action.ROLLBACK,
                    v,
                    actor,
                    note=r.reason,
                    evidence=r.evidence,
                )
                for r in results
                if r.action == "rollback"
            ]
        self._mirrored(switches)
        return results

    def _watch_one(
        self, conn: sqlite3.Connection, v: _Verdict, component: str, found: Mapping[str, Any]
    ) -> WatchResult:
        """What :meth:`watch` does for one regressed component (reads only)."""
        evidence = {"verdict": v.source, "verdict_sha256": v.sha256, **found}
        production = self._alias_fp(conn, component, AliasName.PRODUCTION)
        judged = v.candidate(component)

        def skip(why: str) -> WatchResult:
            monitored = production is not None and judged == production
            return WatchResult(component, "skip", production, None, why, evidence, monitored)

        if production is None:
            return skip(f"component={component!r} has no production alias")
        if judged != production:
            return skip(
                f"the verdict judged candidate={judged!r} of component={component!r}, not its "
                f"production={production!r}: not a monitoring verdict of the current production"
            )
        last = conn.execute(
            "SELECT action, from_fingerprint, to_fingerprint FROM history WHERE component = ? "
            "AND action IN ('promote', 'rollback') ORDER BY id DESC LIMIT 1",
            (component,),
        ).fetchone()
        if last is None or last[0] != Action.PROMOTE.value or last[2] != production:
            what = "nothing was promoted" if last is None else f"its last switch was a {last[0]}"
            return skip(
                f"production of component={component!r} did not come from a promote "
                f"({what}): nothing to roll back automatically"
            )
        gates = "; ".join(_gate_line(g) for g in found["failing_gates"])
        reason = f"watch: {component} regressed after promote: {gates or found['reason']}"
        return WatchResult(component, "rollback", production, str(last[1]), reason, evidence, True)

    def _mirrored(self, switches: list[Switch]) -> list[Switch]:
        """After the commit: hand the switches to :attr:`mirror`; SQLite stays switched when it
        fails (a MirrorError carries the switches)."""
        if self.mirror is not None:
            self.mirror(self, switches)
        return switches

    # ---- transaction pieces (called inside _write) ----

    def _require_artifact(self, conn: sqlite3.Connection, component: str, fp: str) -> Artifact:
        art = self._get(conn, fp, component)
        if art is not None:
            return art
        other = self._get(conn, fp)
        if other is None:
            raise RegistryError(f"fingerprint={fp!r} is not registered; register() it first.")
        raise RegistryError(
            f"fingerprint={fp!r} belongs to component={other.component!r}, "
            f"not component={component!r}; register it for {component!r} too if it serves both."
        )

    def _require_branch(self, conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM branches WHERE name = ?", (name,)).fetchone() is None:
            raise RegistryError(f"branch={name!r} is not open; open_branch({name!r}, ...) first.")

    def _check_promotable(
        self, conn: sqlite3.Connection, component: str, candidate: str, baseline: str
    ) -> None:
        self._require_artifact(conn, component, candidate)
        production = self._alias_fp(conn, component, AliasName.PRODUCTION)
        if production is None:
            raise RegistryError(
                f"component={component!r} has no production alias; bootstrap it "
                "with set_alias(component, 'production', fingerprint)."
            )
        if production != baseline:
            raise RegistryError(
                f"stale verdict for component={component!r}: it was computed "
                f"against baseline={baseline!r} but production={production!r} now; "
                "re-run the gates against the current production."
            )

    def _switch(
        self,
        conn: sqlite3.Connection,
        component: str,
        new: str,
        action: Action,
        verdict: _Verdict | None,
        actor: str | None,
        note: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Switch:
        old = self._alias_fp(conn, component, AliasName.PRODUCTION)
        assert old is not None  # promote / rollback checked it
        sha = None if verdict is None else verdict.sha256
        self._put_alias(conn, component, AliasName.PREVIOUS, old, sha)
        _test_sleep_in_txn()
        self._put_alias(conn, component, AliasName.PRODUCTION, new, sha)
        if note is None:
            note = "manual rollback" if verdict is None else verdict.reason
        self._log(
            conn,
            action,
            component,
            AliasName.PRODUCTION,
            old,
            new,
            actor=actor,
            verdict=verdict,
            note=note,
            evidence=evidence,
        )
        _test_sleep_in_txn()
        return Switch(component, action.value, old, new, sha)

    @staticmethod
    def _put_alias(
        conn: sqlite3.Connection, component: str, alias: AliasName, fp: str, sha: str | None
    ) -> None:
        conn.execute(
            "INSERT INTO aliases VALUES (?, ?, ?, ?, ?) ON CONFLICT (component, alias) "
            "DO UPDATE SET fingerprint = excluded.fingerprint, "
            "updated_at = excluded.updated_at, verdict_sha256 = excluded.verdict_sha256",
            (component, alias.value, fp, _now(), sha),
        )

    @staticmethod
    def _log(
        conn: sqlite3.Connection,
        action: Action,
        component: str,
        alias: AliasName | None,
        old: str | None,
        new: str | None,
        *,
        actor: str | None = None,
        verdict: _Verdict | None = None,
        note: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO history (at, actor, action, component, alias, from_fingerprint, "
            "to_fingerprint, verdict_sha256, verdict_decision, note, evidence) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                _now(),
                actor or default_actor(),
                action.value,
                component,
                None if alias is None else alias.value,
                old,
                new,
                None if verdict is None else verdict.sha256,
                None if verdict is None else verdict.decision,
                note,
                None if evidence is None else json.dumps(evidence, sort_keys=True),
            ),
        )
