"""SQLite registry of artifacts and aliases: atomic promote / rollback with an append-only history.

Three tables (plus ``migrations``, one row per applied ``schema_version``)::

    artifacts  fingerprint UNIQUE -> kind, component, path, parent_fingerprint, metadata (JSON)
    aliases    (component, alias) -> fingerprint      alias in production|shadow|candidate|previous
    history    append-only log of every register / set_alias / promote / rollback

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
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
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
    "HistoryEntry",
    "Mirror",
    "Registry",
    "Switch",
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
_MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
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

    def promotable(self) -> list[str]:
        return sorted(c for c, (d, _) in self.components.items() if d == "promote")


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
    return _Verdict(source, sha, checked.decision.value, checked.reason, rows, components)


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
            self._conn.execute("PRAGMA foreign_keys = ON")
            if read_only:
                self._check_schema()
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._migrate()
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

    @property
    def schema_version(self) -> int:
        """The highest applied migration."""
        return int(self._conn.execute("SELECT max(schema_version) FROM migrations").fetchone()[0])

    # ---- reads ----

    def get(self, fingerprint: str) -> Artifact | None:
        """The artifact with this fingerprint, or None."""
        with self._reading():
            return self._get(self._conn, fingerprint)

    def _get(self, conn: sqlite3.Connection, fingerprint: str) -> Artifact | None:
        row = conn.execute(
            "SELECT * FROM artifacts WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
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
        return None if fp is None else self.get(fp)

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
            return [HistoryEntry(**dict(r)) for r in rows]

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
    ) -> Artifact:
        """Record an artifact; registering the same fingerprint again returns the stored row.

        Raises RegistryError if the fingerprint is already registered as another kind/component.
        """
        with self._write() as conn:
            known = self._get(conn, fingerprint)
            if known is None:
                meta = json.dumps(dict(metadata or {}), sort_keys=True, default=str)
                conn.execute(
                    "INSERT INTO artifacts (kind, component, path, fingerprint, "
                    "parent_fingerprint, metadata, created_at) VALUES (?,?,?,?,?,?,?)",
                    (kind, component, self._stored(path), fingerprint, parent, meta, _now()),
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
                known = self._get(conn, fingerprint)
        assert known is not None
        if (known.kind, known.component) != (kind, component):
            raise RegistryError(
                f"fingerprint={fingerprint!r} is already registered as "
                f"kind={known.kind!r} component={known.component!r}; "
                f"refusing kind={kind!r} component={component!r}."
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
    ) -> Artifact:
        """Register an artifact and point ``alias`` at it, except that ``production`` is only
        bootstrapped (set when the component has none): once production exists it moves through
        :meth:`promote` / :meth:`rollback` and their verdicts, never by registering."""
        artifact = self.register(
            kind or component, component, path, fingerprint, parent=parent, metadata=metadata
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

    def _mirrored(self, switches: list[Switch]) -> list[Switch]:
        """After the commit: hand the switches to :attr:`mirror`; SQLite stays switched when it
        fails (a MirrorError carries the switches)."""
        if self.mirror is not None:
            self.mirror(self, switches)
        return switches

    # ---- transaction pieces (called inside _write) ----

    def _require_artifact(self, conn: sqlite3.Connection, component: str, fp: str) -> Artifact:
        art = self._get(conn, fp)
        if art is None:
            raise RegistryError(f"fingerprint={fp!r} is not registered; register() it first.")
        if art.component != component:
            raise RegistryError(
                f"fingerprint={fp!r} belongs to component={art.component!r}, "
                f"not component={component!r}."
            )
        return art

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
    ) -> None:
        conn.execute(
            "INSERT INTO history (at, actor, action, component, alias, from_fingerprint, "
            "to_fingerprint, verdict_sha256, verdict_decision, note) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
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
            ),
        )
