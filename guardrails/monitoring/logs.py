"""Production log schema (version 1): one record per interaction, JSONL or Parquet, validated.

Schema, ``LOG_SCHEMA_VERSION = 1``
----------------------------------
One JSON object per line (``.jsonl``, ``.jsonl.gz``) or one row (``.parquet``)::

    {"schema_version": 1,                      # optional; a newer version is refused
     "timestamp": "2026-03-01T12:00:05Z",      # REQUIRED: ISO-8601 or epoch seconds
     "session_id": "s-0042",                   # REQUIRED
     "query": "payout not arrived",            # REQUIRED
     "query_id": "pay-q011",                   # golden query id when known
     "query_embedding": [0.01, ...],           # the vector the retriever searched with
     "domain": "payments",
     "retrieved": [{"doc_id": "pay-d019", "score": 0.71}, ...],   # ranked, best first
     "reranked":  [{"doc_id": "pay-d019", "score": 7.9}, ...],    # ranked, best first
     "answer": "Payouts arrive ...",
     "latency_ms": {"embed": 8, "search": 4, "rerank": 35, "generate": 610, "total": 660},
     "tokens": {"prompt": 512, "completion": 48},
     "memory_mb": 2140.5,
     "clicked": ["pay-d019"], "skipped": ["pay-d013"], "dwell_s": {"pay-d019": 41.0},
     "scroll_depth": 0.3,                      # 0..1, fraction of the result list seen
     "feedback": "like" | "dislike" | "flag" | null,
     "flag_reason": "hallucination" | "unsafe" | "wrong" | "other" | null,
     "complaint": "free text",
     "ab": {"a": "...", "b": "...", "winner": "a" | "b" | "tie"},
     "versions": {"embedder": "sha256:...", "index": "sha256:..."},
     "error": null}

In memory a timestamp is a **float of epoch seconds (UTC)**; files may hold ISO-8601 strings
(an offset or ``Z``; a naive time is read as UTC), epoch seconds, or epoch milliseconds
(numbers above 1e11). :func:`write_logs` writes epoch seconds, so a round trip is exact.
``retrieved`` entries may also be bare doc ids or ``[doc_id, score]`` pairs (score NaN when
absent). Fields not in the schema are kept in :attr:`LogRecord.extra`; a few common spellings
(``ts``, ``time``, ``session``, ``embedding``, ``latency``) are read as their schema field.
In Parquet, nested fields are JSON strings (or native nested columns when read).

Bad lines are never dropped silently: :class:`LogBatch.errors` lists each as
``(path, line, message)`` and ``strict=True`` raises :class:`LogDataError` on the first.
``n_lines`` counts non-blank lines, so ``len(records) + len(errors) == n_lines``.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from guardrails.artifacts import atomic_path
from guardrails.errors import LogDataError
from guardrails.golden import json_problem, parse_json_line

__all__ = [
    "LATENCY_STAGES",
    "LOG_SCHEMA_VERSION",
    "Feedback",
    "Hit",
    "LogBatch",
    "LogError",
    "LogRecord",
    "LogStream",
    "iter_logs",
    "read_logs",
    "record_from_dict",
    "record_to_dict",
    "to_columns",
    "write_logs",
]

LOG_SCHEMA_VERSION = 1
LATENCY_STAGES = ("embed", "search", "rerank", "generate", "total")
TOKEN_KINDS = ("prompt", "completion")
AB_WINNERS = ("a", "b", "tie")
_ALIASES = {
    "ts": "timestamp",
    "time": "timestamp",
    "session": "session_id",
    "embedding": "query_embedding",
    "latency": "latency_ms",
}
_PARQUET_BATCH = 4096
_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a datetime can hold


class Feedback(str, Enum):
    LIKE = "like"
    DISLIKE = "dislike"
    FLAG = "flag"


@dataclass(frozen=True)
class Hit:
    """One ranked result: a document id and the score that ranked it."""

    doc_id: str
    score: float = math.nan


@dataclass(frozen=True)
class LogRecord:
    """One interaction (see the module docstring for the file form)."""

    timestamp: float
    session_id: str
    query: str
    query_id: str | None = None
    query_embedding: tuple[float, ...] | None = None
    domain: str | None = None
    retrieved: tuple[Hit, ...] = ()
    reranked: tuple[Hit, ...] | None = None
    answer: str | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    tokens: Mapping[str, int] = field(default_factory=dict)
    memory_mb: float | None = None
    clicked: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    dwell_s: Mapping[str, float] = field(default_factory=dict)
    scroll_depth: float | None = None
    feedback: Feedback | None = None
    flag_reason: str | None = None
    complaint: str | None = None
    ab: Mapping[str, str] | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = LOG_SCHEMA_VERSION

    @property
    def datetime(self) -> datetime:
        """The timestamp as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, tz=timezone.utc)

    @property
    def shown(self) -> tuple[Hit, ...]:
        """The list the user saw: the reranked list when there is one, else the retrieved."""
        return self.reranked if self.reranked is not None else self.retrieved


class LogError(NamedTuple):
    """A malformed line: where it is and why it was refused."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class LogBatch:
    """Records read from one or more files, with every refused line."""

    records: tuple[LogRecord, ...]
    errors: tuple[LogError, ...]
    n_lines: int

    def __len__(self) -> int:
        return len(self.records)

    def summary(self) -> str:
        """``"N records, M malformed of L lines"`` plus the first few errors."""
        head = f"{len(self.records)} records, {len(self.errors)} malformed of {self.n_lines} lines"
        return "\n".join([head, *(str(e) for e in self.errors[:5])])


# ----------------------------------------------------------------------------- parsing


class _Invalid(Exception):
    """A field failed validation; the reader adds ``path:line``."""


def _number(name: str, value: Any, *, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{name}={value!r:.60} must be a number")
    try:
        x = float(value)
    except OverflowError:
        raise _Invalid(f"{name} has {len(str(abs(value)))} digits: must be finite") from None
    if not (math.isfinite(x) and low <= x <= high):
        raise _Invalid(f"{name}={value!r} must be finite and within [{low}, {high}]")
    return x


def _opt_number(name: str, value: Any, **bounds: float) -> float | None:
    return None if value is None else _number(name, value, **bounds)


def _string(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _Invalid(f"missing required field {name!r}")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name.endswith("_id"):
        return str(value)
    if not isinstance(value, str):
        raise _Invalid(f"{name}={value!r:.60} must be a string")
    if required and not value.strip():
        raise _Invalid(f"{name} is empty")
    return value


def _decoded(name: str, value: Any) -> Any:
    """Nested fields arrive as JSON strings from Parquet; decode them."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return parse_json_line(value)
        except (ValueError, RecursionError):
            raise _Invalid(f"{name}={value!r:.60} is not valid JSON") from None
    return value


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    value = _decoded(name, value)
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        # a Parquet map column reads as (key, value) pairs
        if not all(isinstance(k, str | int) and not isinstance(k, bool) for k, _ in value):
            raise _Invalid(f"{name}={value!r:.60} must be an object with string keys")
        value = {str(k): v for k, v in value}
    if not isinstance(value, dict):
        raise _Invalid(f"{name}={value!r:.60} must be an object")
    return value


def _string_map(name: str, value: Any) -> dict[str, str]:
    """An object of string -> string (or number, kept as its text), e.g. ``versions``."""
    out = {}
    for key, item in _mapping(name, value).items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _Invalid(f"{name}.{key}={item!r:.60} must be a string")
        out[str(key)] = str(item)
    return out


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        try:
            return stamp.timestamp()
        except (OverflowError, ValueError):
            raise _Invalid(f"timestamp={value!r:.60} is out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid(f"timestamp={value!r:.60} is not ISO-8601 nor epoch seconds") from None
        return _timestamp(parsed)
    if value is None:
        raise _Invalid("missing required field 'timestamp'")
    seconds = _number("timestamp", value, low=0.0, high=_MAX_EPOCH * 1000.0)
    seconds = seconds / 1000.0 if seconds > 1e11 else seconds
    if seconds > _MAX_EPOCH:
        raise _Invalid(
            f"timestamp={value!r:.60} is after year 9999: epoch seconds or milliseconds expected"
        )
    return seconds


def _hits(name: str, value: Any) -> tuple[Hit, ...]:
    value = _decoded(name, value)
    if not isinstance(value, list):
        raise _Invalid(f"{name}={value!r:.60} must be a list of {{doc_id, score}}")
    return tuple(_hit(f"{name}[{i}]", item) for i, item in enumerate(value))


def _hit(name: str, item: Any) -> Hit:
    if isinstance(item, str | int) and not isinstance(item, bool):
        return Hit(str(item))
    if isinstance(item, list | tuple) and len(item) == 2:
        item = {"doc_id": item[0], "score": item[1]}
    if not isinstance(item, dict) or item.get("doc_id") is None:
        raise _Invalid(f"{name}={item!r:.60} must be {{'doc_id': str, 'score': float}}")
    raw_id = item["doc_id"]
    doc_id = str(raw_id) if isinstance(raw_id, int) else _string(f"{name}.doc_id", raw_id)
    score = item.get("score")
    return Hit(str(doc_id), math.nan if score is None else _number(f"{name}.score", score))


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    value = _decoded(name, value)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise _Invalid(f"{name}={value!r:.60} must be a list of doc ids")
    return tuple(str(v) for v in value)


def _embedding(value: Any) -> tuple[float, ...] | None:
    value = _decoded("query_embedding", value)
    if value is None:
        return None
    if not isinstance(value, list | tuple | np.ndarray) or len(value) == 0:
        raise _Invalid(f"query_embedding={value!r:.60} must be a non-empty list of numbers")
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Invalid(f"query_embedding={value!r:.60} must be a list of numbers") from None
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise _Invalid("query_embedding must be a flat list of finite numbers")
    return tuple(vector.tolist())


def _number_map(name: str, value: Any, keys: Sequence[str] | None) -> dict[str, float]:
    out = {}
    for key, x in _mapping(name, value).items():
        if keys is not None and key not in keys:
            raise _Invalid(f"{name} has unknown key {key!r}; allowed: {list(keys)}")
        if x is not None:
            out[str(key)] = _number(f"{name}.{key}", x, low=0.0)
    return out


def _feedback(value: Any) -> Feedback | None:
    if value is None:
        return None
    try:
        return Feedback(str(value).lower())
    except ValueError:
        allowed = [f.value for f in Feedback]
        raise _Invalid(f"feedback={value!r:.60}; allowed values: {allowed} or null") from None


def _ab(value: Any) -> Mapping[str, str] | None:
    value = _decoded("ab", value)
    if value is None:
        return None
    ab = _mapping("ab", value)
    if ab.get("winner") not in AB_WINNERS:
        raise _Invalid(f"ab.winner={ab.get('winner')!r}; allowed values: {list(AB_WINNERS)}")
    return {k: str(v) for k, v in ab.items() if v is not None}


def _version(value: Any) -> int:
    version = 1 if value is None else int(_number("schema_version", value, low=1))
    if version > LOG_SCHEMA_VERSION:
        raise _Invalid(
            f"schema_version={version} is newer than this guardrails supports "
            f"({LOG_SCHEMA_VERSION}); upgrade guardrails to read it"
        )
    return version


_FIELDS = {f for f in LogRecord.__dataclass_fields__ if f != "extra"}


def record_from_dict(obj: Mapping[str, Any]) -> LogRecord:
    """Validate one decoded object into a :class:`LogRecord`; raise :class:`LogDataError`."""
    try:
        return _record(obj)
    except _Invalid as exc:
        raise LogDataError(str(exc)) from None


def _record(raw: Mapping[str, Any]) -> LogRecord:
    if not isinstance(raw, Mapping):
        raise _Invalid(f"expected a JSON object, got {raw!r:.60}")
    obj = _canonical_keys(raw)
    g = obj.get
    reranked = g("reranked")
    return LogRecord(
        timestamp=_timestamp(g("timestamp")),
        session_id=str(_string("session_id", g("session_id"), required=True)),
        query=str(_string("query", g("query"), required=True)),
        query_id=_string("query_id", g("query_id")),
        query_embedding=_embedding(g("query_embedding")),
        domain=_string("domain", g("domain")),
        retrieved=_hits("retrieved", g("retrieved") or []),
        reranked=None if reranked is None else _hits("reranked", reranked),
        answer=_string("answer", g("answer")),
        latency_ms=_number_map("latency_ms", g("latency_ms"), LATENCY_STAGES),
        tokens={k: int(v) for k, v in _number_map("tokens", g("tokens"), TOKEN_KINDS).items()},
        memory_mb=_opt_number("memory_mb", g("memory_mb"), low=0.0),
        clicked=_str_tuple("clicked", g("clicked")),
        skipped=_str_tuple("skipped", g("skipped")),
        dwell_s=_number_map("dwell_s", g("dwell_s"), None),
        scroll_depth=_opt_number("scroll_depth", g("scroll_depth"), low=0.0, high=1.0),
        feedback=_feedback(g("feedback")),
        flag_reason=_lower(_string("flag_reason", g("flag_reason"))),
        complaint=_string("complaint", g("complaint")) or None,
        ab=_ab(g("ab")),
        versions=_string_map("versions", g("versions")),
        error=_string("error", g("error")) or None,
        extra={k: v for k, v in obj.items() if k not in _FIELDS},
        schema_version=_version(g("schema_version")),
    )


def _canonical_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Rename common spellings (``ts`` -> ``timestamp``) unless the schema name is present;
    unpack the ``_extra`` JSON column that Parquet files carry."""
    obj = {}
    for key, value in raw.items():
        canonical = _ALIASES.get(key)
        obj[canonical if canonical and canonical not in raw else key] = value
    packed = obj.pop("_extra", None)
    if isinstance(packed, str):
        extra = _mapping("_extra", packed)
        obj.update({k: v for k, v in extra.items() if k not in obj})
    return obj


def _lower(value: str | None) -> str | None:
    return value.strip().lower() or None if value else None


def record_to_dict(record: LogRecord) -> dict[str, Any]:
    """The JSON form of a record (epoch-seconds timestamp; ``None`` fields omitted)."""
    out: dict[str, Any] = dict(record.extra)
    out.update(
        schema_version=record.schema_version,
        timestamp=record.timestamp,
        session_id=record.session_id,
        query=record.query,
        retrieved=[_hit_dict(h) for h in record.retrieved],
        latency_ms=dict(record.latency_ms),
        tokens=dict(record.tokens),
        clicked=list(record.clicked),
        skipped=list(record.skipped),
        dwell_s=dict(record.dwell_s),
        versions=dict(record.versions),
    )
    optional = {
        "query_id": record.query_id,
        "query_embedding": None if record.query_embedding is None else list(record.query_embedding),
        "domain": record.domain,
        "reranked": None if record.reranked is None else [_hit_dict(h) for h in record.reranked],
        "answer": record.answer,
        "memory_mb": record.memory_mb,
        "scroll_depth": record.scroll_depth,
        "feedback": None if record.feedback is None else record.feedback.value,
        "flag_reason": record.flag_reason,
        "complaint": record.complaint,
        "ab": None if record.ab is None else dict(record.ab),
        "error": record.error,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def _hit_dict(hit: Hit) -> dict[str, Any]:
    return {"doc_id": hit.doc_id, "score": None if math.isnan(hit.score) else hit.score}


# ----------------------------------------------------------------------------- reading


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line, decoded object | _Invalid)`` per non-blank line, read in binary and decoded
    line by line (a line that is not UTF-8 is refused with its number, not the whole file);
    a truncated or corrupt ``.gz`` raises :class:`LogDataError` naming the line reached."""
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield lineno, _Invalid(f"not valid UTF-8 (byte at column {exc.start + 1})")
                    continue
                if not line.strip():
                    continue
                try:
                    yield lineno, parse_json_line(line)
                except (ValueError, RecursionError) as exc:
                    yield lineno, _Invalid(f"not valid JSON ({json_problem(exc)}): {line[:60]!r}")
    except (EOFError, OSError, zlib.error) as exc:
        where = f"{path}:{lineno + 1}" if lineno else str(path)
        raise LogDataError(f"{where}: cannot read the file ({exc}); is it truncated?") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(row number from 1, dict)`` streamed in record batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH)
        for batch in batches:
            rows = batch.to_pylist()
            for obj in rows:
                row += 1
                yield row, {k: v for k, v in obj.items() if v is not None}
    except (pa.ArrowException, OSError, ValueError) as exc:
        where = f"{path}:{row + 1}" if row else str(path)
        raise LogDataError(f"{where}: not a readable Parquet file ({exc})") from None


class LogStream:
    """Records of one file, streamed once; refused lines collect in :attr:`errors` as it goes."""

    def __init__(self, path: str | Path, *, strict: bool = False, otel: bool | None = None) -> None:
        self.path = Path(path)
        self.strict = strict
        self.otel = otel
        self.errors: list[LogError] = []
        self.n_lines = 0
        self._records: Iterator[LogRecord] | None = None
        if not self.path.is_file():
            raise LogDataError(f"{self.path}: log file not found")

    def __iter__(self) -> Iterator[LogRecord]:
        return self

    def __next__(self) -> LogRecord:
        if self._records is None:
            self._records = self._generate()
        return next(self._records)

    def _generate(self) -> Iterator[LogRecord]:
        for lineno, obj in self._rows():
            self.n_lines += 1
            try:
                if isinstance(obj, _Invalid):
                    raise obj
                yield _record(obj)
            except _Invalid as exc:
                self._refuse(lineno, str(exc))

    def _rows(self) -> Iterator[tuple[int, Any]]:
        if _is_parquet(self.path):
            return _parquet_rows(self.path)
        from guardrails.monitoring import otel

        if self.otel or (self.otel is None and otel.is_otel_file(self.path)):
            return (
                (n, _Invalid(r) if isinstance(r, str) else r) for n, r in otel.otel_rows(self.path)
            )
        return _jsonl_rows(self.path)

    def _refuse(self, lineno: int, message: str) -> None:
        error = LogError(str(self.path), lineno, message)
        if self.strict:
            raise LogDataError(str(error))
        self.errors.append(error)


def iter_logs(path: str | Path, *, strict: bool = False, otel: bool | None = None) -> LogStream:
    """Stream the records of a JSONL(.gz) or Parquet log without loading it whole; an
    OpenTelemetry span export (:mod:`guardrails.monitoring.otel`: ``.otel.json`` /
    ``.otlp.json`` or sniffed ``.json``; ``otel=True`` forces it) gives one record per trace."""
    return LogStream(path, strict=strict, otel=otel)


def read_logs(
    paths: str | Path | Sequence[str | Path], *, strict: bool = False, otel: bool | None = None
) -> LogBatch:
    """Read one or more log files (JSONL, JSONL.gz, Parquet, OpenTelemetry span exports) into a
    :class:`LogBatch`."""
    sources = [paths] if isinstance(paths, str | Path) else list(paths)
    records: list[LogRecord] = []
    errors: list[LogError] = []
    n_lines = 0
    for source in sources:
        stream = iter_logs(source, strict=strict, otel=otel)
        records.extend(stream)
        errors.extend(stream.errors)
        n_lines += stream.n_lines
    return LogBatch(tuple(records), tuple(errors), n_lines)


# ----------------------------------------------------------------------------- writing


def write_logs(records: Iterable[LogRecord], path: str | Path) -> Path:
    """Write records atomically: Parquet for ``.parquet``, gzip for ``.gz``, else JSONL."""
    target = Path(path)
    with atomic_path(target) as tmp:
        if _is_parquet(target):
            _write_parquet(records, tmp)
        else:
            opener = gzip.open if target.suffix.lower() == ".gz" else open
            with opener(tmp, "wt", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(record_to_dict(record), sort_keys=True, allow_nan=False))
                    f.write("\n")
    return target


_NESTED = (
    "retrieved",
    "reranked",
    "latency_ms",
    "tokens",
    "clicked",
    "skipped",
    "dwell_s",
    "ab",
    "versions",
)


def _write_parquet(records: Iterable[LogRecord], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_parquet_row(record) for record in records]
    keys = sorted({key for row in rows for key in row})
    table = pa.table({key: [row.get(key) for row in rows] for key in keys})
    pq.write_table(table, path)


def _parquet_row(record: LogRecord) -> dict[str, Any]:
    """Nested fields as JSON strings, unknown fields packed into one ``_extra`` column."""
    row = record_to_dict(record)
    extra = {key: row.pop(key) for key in record.extra if key in row}
    if extra:
        row["_extra"] = json.dumps(extra, sort_keys=True)
    for key in _NESTED:
        if key in row:
            row[key] = json.dumps(row[key], sort_keys=True)
    return row


# ----------------------------------------------------------------------------- columns


def to_columns(records: Sequence[LogRecord]) -> dict[str, np.ndarray]:
    """Column arrays for vectorised signals; a missing number is NaN.

    Keys: ``timestamp``, ``session_id``, ``domain``, ``feedback``, ``flag_reason`` (object),
    ``latency_<stage>`` for each of :data:`LATENCY_STAGES`, ``tokens_prompt``,
    ``tokens_completion``, ``memory_mb``, ``scroll_depth`` (float), ``n_clicked`` (int),
    ``has_complaint``, ``has_error`` (bool), and ``query_embedding`` (``(n, dim)`` float,
    NaN rows for records without one) when any record has an embedding.
    """
    cols: dict[str, np.ndarray] = {
        "timestamp": np.array([r.timestamp for r in records], dtype=np.float64),
        "session_id": np.array([r.session_id for r in records], dtype=object),
        "domain": np.array([r.domain for r in records], dtype=object),
        "feedback": np.array([r.feedback and r.feedback.value for r in records], dtype=object),
        "flag_reason": np.array([r.flag_reason for r in records], dtype=object),
        "n_clicked": np.array([len(r.clicked) for r in records], dtype=np.int64),
        "has_complaint": np.array([bool(r.complaint) for r in records], dtype=bool),
        "has_error": np.array([bool(r.error) for r in records], dtype=bool),
        "memory_mb": _floats(r.memory_mb for r in records),
        "scroll_depth": _floats(r.scroll_depth for r in records),
    }
    for stage in LATENCY_STAGES:
        cols[f"latency_{stage}"] = _floats(r.latency_ms.get(stage) for r in records)
    for kind in TOKEN_KINDS:
        cols[f"tokens_{kind}"] = _floats(r.tokens.get(kind) for r in records)
    embeddings = _embedding_matrix(records)
    if embeddings is not None:
        cols["query_embedding"] = embeddings
    return cols


def _floats(values: Iterable[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _embedding_matrix(records: Sequence[LogRecord]) -> np.ndarray | None:
    dims = {len(r.query_embedding) for r in records if r.query_embedding is not None}
    if not dims:
        return None
    if len(dims) > 1:
        raise LogDataError(f"query embeddings of different sizes in one batch: {sorted(dims)}")
    out = np.full((len(records), dims.pop()), np.nan)
    for i, r in enumerate(records):
        if r.query_embedding is not None:
            out[i] = r.query_embedding
    return out
