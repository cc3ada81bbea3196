"""OpenTelemetry GenAI spans as a production log: one :class:`LogRecord` per trace.

Two file forms, read with the standard library only (no OpenTelemetry package needed):

- the SDK's ``ConsoleSpanExporter`` output: ``ReadableSpan.to_json()`` objects one after
  another (``context.trace_id`` "0x…", ``parent_id``, ISO ``start_time`` / ``end_time``,
  plain ``attributes``);
- OTLP/JSON: ``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}``, one document or one
  per line (the collector's file exporter); ids hex (the OTLP spec) or base64 (protobuf's
  ``MessageToJson``), times ``*UnixNano``, attributes as typed ``{"key", "value"}`` pairs.

Spans are grouped by trace id; the trace's root span (no parent) gives the timestamp and the
``total`` latency. GenAI semantic conventions [1] map to the log schema
(:mod:`guardrails.monitoring.logs`) by ``gen_ai.operation.name`` (or a span name containing
the stage)::

    embeddings                     -> latency_ms.embed,    versions.embedder = request.model
    retrieval                      -> latency_ms.search,   retrieved <- gen_ai.retrieval.documents
    rerank (span name or op)       -> latency_ms.rerank,   reranked  <- gen_ai.retrieval.documents
    chat / text_completion /
    generate_content               -> latency_ms.generate, versions.generator = request.model,
                                      tokens.prompt/completion <- gen_ai.usage.input/output_tokens,
                                      answer <- gen_ai.output.messages (or gen_ai.completion)
    query  <- guardrails.query | gen_ai.retrieval.query.text | first user gen_ai.input.messages
    session_id <- session.id | gen_ai.conversation.id | the trace id
    feedback <- event gen_ai.evaluation.result with gen_ai.evaluation.name = user_feedback and
                gen_ai.evaluation.score.label like|dislike|flag (gen_ai.evaluation.explanation
                -> flag_reason), or an event ``feedback`` with attributes feedback / flag_reason /
                complaint
    error  <- a span with status ERROR (its description)
    domain, query_id, query_embedding <- guardrails.domain, guardrails.query_id,
                guardrails.query_embedding (a float array attribute);  extra.trace_id

``gen_ai.retrieval.documents`` is a list (or a JSON string of one) of ``{"id", "score"}``
objects (``doc_id`` also read) or bare ids. Latencies of several spans of one stage add up.
A trace that cannot become a record (no root span in the file, no query) is refused as
``path:line`` (the line where its root or first span starts), like a malformed log line.

[1] https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from guardrails.monitoring.logs import LogBatch, read_logs

__all__ = ["OTEL_SUFFIXES", "is_otel_file", "otel_rows", "read_otel_spans"]

OTEL_SUFFIXES = (".otel.json", ".otlp.json", ".otel.jsonl", ".otlp.jsonl")
_STAGES = {
    "embeddings": "embed",
    "retrieval": "search",
    "rerank": "rerank",
    "chat": "generate",
    "text_completion": "generate",
    "generate_content": "generate",
}
_MODEL_OF = {"embed": "embedder", "rerank": "reranker", "generate": "generator"}
_FEEDBACK_NAMES = ("user_feedback", "feedback")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class _Span:
    trace_id: str
    parent: str | None
    name: str
    start: int  # ns since the epoch: a float of seconds would lose the microseconds
    end: int
    line: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


class _FormatError(Exception):
    """A file that is not a span export; the log reader reports it as ``path:line``."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(message)


def is_otel_file(path: str | Path) -> bool:
    """True for the ``.otel.json`` / ``.otlp.json`` (and ``.jsonl``) suffixes, or a ``.json``
    file whose first object is an OTLP document or a console-exported span."""
    name = Path(path).name.lower()
    if name.endswith(OTEL_SUFFIXES):
        return True
    if not name.endswith(".json"):
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    return '"resourceSpans"' in head or ('"context"' in head and '"trace_id"' in head)


def read_otel_spans(path: str | Path, *, strict: bool = False) -> LogBatch:
    """Read one span export (any file name) into a :class:`LogBatch`, one record per trace."""
    return read_logs(path, strict=strict, otel=True)


def otel_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """``(line, log-schema dict | refusal message)`` per trace, in root start-time order."""
    try:
        spans = list(_spans(path.read_text(encoding="utf-8")))
    except _FormatError as exc:
        yield exc.line, str(exc)
        return
    traces: dict[str, list[_Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    built = [_trace_row(tid, group) for tid, group in traces.items()]
    yield from sorted(built, key=lambda row: (row[0], str(row[1])))


# ---- decoding the two file forms -----------------------------------------------------------


def _documents(text: str) -> Iterator[tuple[int, Any]]:
    """``(line, object)`` for each JSON value in ``text`` (concatenated or one per line)."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _FormatError(exc.lineno, f"not valid JSON ({exc.msg})") from None
        yield line, obj


def _spans(text: str) -> Iterator[_Span]:
    for line, obj in _documents(text):
        if isinstance(obj, dict) and "resourceSpans" in obj:
            yield from _otlp_spans(obj, line)
        elif isinstance(obj, dict) and isinstance(obj.get("context"), dict):
            yield _console_span(obj, line)
        elif isinstance(obj, list):  # a JSON array of console spans
            yield from (_console_span(s, line) for s in obj)
        else:
            raise _FormatError(
                line,
                "neither an OTLP/JSON document ('resourceSpans') nor an exported span "
                "('context.trace_id'); export with ConsoleSpanExporter or the OTLP file exporter",
            )


def _console_span(obj: Any, line: int) -> _Span:
    if not isinstance(obj, dict) or not isinstance(obj.get("context"), dict):
        raise _FormatError(line, f"not an exported span: {str(obj)[:60]!r}")
    status = obj.get("status") or {}
    error = None
    if str(status.get("status_code", "")).upper().endswith("ERROR"):
        error = status.get("description") or "span status ERROR"
    return _Span(
        trace_id=_console_id(obj["context"].get("trace_id"), line),
        parent=_console_id(obj["parent_id"], line) if obj.get("parent_id") else None,
        name=str(obj.get("name", "")),
        start=_iso(obj.get("start_time"), line),
        end=_iso(obj.get("end_time"), line),
        line=line,
        attributes=dict(obj.get("attributes") or {}),
        events=[
            (str(e.get("name")), dict(e.get("attributes") or {})) for e in obj.get("events", [])
        ],
        error=error,
    )


def _console_id(value: Any, line: int) -> str:
    if not isinstance(value, str) or not value:
        raise _FormatError(line, f"span id={value!r} must be a hex string")
    return value.lower().removeprefix("0x")


def _iso(value: Any, line: int) -> int:
    """ISO-8601 (the console exporter writes microseconds) -> integer ns since the epoch."""
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _FormatError(line, f"span time={value!r} is not ISO-8601") from None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return (stamp - _EPOCH) // timedelta(microseconds=1) * 1000


def _otlp_spans(doc: Mapping[str, Any], line: int) -> Iterator[_Span]:
    for resource in doc.get("resourceSpans") or []:
        for scope in (
            resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans") or []
        ):
            for span in scope.get("spans") or []:
                yield _otlp_span(span, line)


def _otlp_span(span: Mapping[str, Any], line: int) -> _Span:
    status = span.get("status") or {}
    code = status.get("code")
    error = None
    if code in (2, "2", "STATUS_CODE_ERROR"):
        error = status.get("message") or "span status ERROR"
    parent = span.get("parentSpanId")
    return _Span(
        trace_id=_otlp_id(span.get("traceId"), 16, line),
        parent=_otlp_id(parent, 8, line) if parent else None,
        name=str(span.get("name", "")),
        start=_nanos(span.get("startTimeUnixNano"), line),
        end=_nanos(span.get("endTimeUnixNano"), line),
        line=line,
        attributes=_otlp_attributes(span.get("attributes")),
        events=[
            (str(e.get("name")), _otlp_attributes(e.get("attributes")))
            for e in span.get("events") or []
        ],
        error=error,
    )


def _otlp_id(value: Any, size: int, line: int) -> str:
    """Hex per the OTLP/JSON spec; base64 (protobuf's JSON mapping of bytes) also accepted."""
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise _FormatError(line, f"span id={value!r} is neither {2 * size} hex digits nor base64")
    return raw.hex()


def _nanos(value: Any, line: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _FormatError(line, f"span time={value!r} must be integer nanoseconds") from None


def _otlp_attributes(pairs: Any) -> dict[str, Any]:
    return {str(p.get("key")): _any_value(p.get("value") or {}) for p in pairs or []}


def _any_value(value: Mapping[str, Any]) -> Any:
    """An OTLP ``AnyValue`` as a Python value (int64 arrive as strings in JSON)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _otlp_attributes((value["kvlistValue"] or {}).get("values"))
    return None


# ---- one trace -> one log-schema dict ------------------------------------------------------


def _trace_row(trace_id: str, spans: list[_Span]) -> tuple[int, Mapping[str, Any] | str]:
    roots = [s for s in spans if s.parent is None]
    first = min(spans, key=lambda s: (s.start, s.line))
    if len(roots) != 1:
        what = "no root span" if not roots else f"{len(roots)} root spans"
        return first.line, (
            f"trace {trace_id} has {what} in this file; export whole traces "
            "(every span of a trace in the same file)"
        )
    root = roots[0]
    row: dict[str, Any] = {
        "timestamp": root.start / 1e9,
        "session_id": _first(spans, root, "session.id", "gen_ai.conversation.id") or trace_id,
        "latency_ms": {"total": _ms(root)},
        "trace_id": trace_id,
    }
    for span in sorted(spans, key=lambda s: (s.start, s.line)):
        _apply_span(row, span)
    row["query"] = _query(spans, root)
    if not row["query"]:
        return root.line, (
            f"trace {trace_id} has no query: set guardrails.query, gen_ai.retrieval.query.text "
            "or a user message in gen_ai.input.messages"
        )
    for key in ("domain", "query_id", "query_embedding"):
        value = _first(spans, root, f"guardrails.{key}")
        if value is not None:
            row[key] = value
    return root.line, row


def _first(spans: list[_Span], root: _Span, *keys: str) -> Any:
    """The first of ``keys`` set on the root, else on any span in start order."""
    for span in [root, *sorted(spans, key=lambda s: s.start)]:
        for key in keys:
            if span.attributes.get(key) not in (None, ""):
                return span.attributes[key]
    return None


def _ms(span: _Span) -> float:
    return max(0, span.end - span.start) / 1e6


def _stage(span: _Span) -> str | None:
    op = str(span.attributes.get("gen_ai.operation.name", "")).lower()
    if op in _STAGES:
        return _STAGES[op]
    name = span.name.lower()
    return "rerank" if "rerank" in name else None


def _apply_span(row: dict[str, Any], span: _Span) -> None:
    stage = _stage(span)
    attrs = span.attributes
    if stage is not None:
        latency = row["latency_ms"]
        latency[stage] = latency.get(stage, 0.0) + _ms(span)
        model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
        if model and stage in _MODEL_OF:
            row.setdefault("versions", {})[_MODEL_OF[stage]] = str(model)
        docs = attrs.get("gen_ai.retrieval.documents")
        if docs is not None and stage in ("search", "rerank"):
            row["retrieved" if stage == "search" else "reranked"] = _hits(docs)
        if stage == "generate":
            _generation(row, attrs)
    if span.error and "error" not in row:
        row["error"] = str(span.error)
    for name, event in span.events:
        _feedback(row, name, event)


def _generation(row: dict[str, Any], attrs: Mapping[str, Any]) -> None:
    tokens = row.setdefault("tokens", {})
    for kind, keys in (
        ("prompt", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
        ("completion", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
    ):
        value = next((attrs[k] for k in keys if attrs.get(k) is not None), None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            tokens[kind] = tokens.get(kind, 0) + int(value)
    answer = _message_text(attrs.get("gen_ai.output.messages"), "assistant")
    answer = answer or attrs.get("gen_ai.completion")
    if isinstance(answer, str) and answer:
        row["answer"] = answer


def _hits(docs: Any) -> Any:
    """``[{"id", "score"}]`` (or a JSON string of it) -> the log schema's ``retrieved``; a value
    of another shape is passed on so the log validation refuses it with its field name."""
    if isinstance(docs, str):
        try:
            docs = json.loads(docs)
        except json.JSONDecodeError:
            return docs
    if not isinstance(docs, list):
        return docs
    return [
        {"doc_id": d.get("doc_id", d.get("id")), "score": d.get("score")}
        if isinstance(d, dict)
        else d
        for d in docs
    ]


def _query(spans: list[_Span], root: _Span) -> Any:
    query = _first(spans, root, "guardrails.query", "gen_ai.retrieval.query.text")
    if query:
        return query
    for span in sorted(spans, key=lambda s: s.start):
        text = _message_text(span.attributes.get("gen_ai.input.messages"), "user")
        text = text or _message_text(span.attributes.get("gen_ai.prompt"), "user")
        if text:
            return text
    return None


def _message_text(messages: Any, role: str) -> str | None:
    """Text of the first ``role`` message: GenAI ``[{"role", "parts": [{"type": "text",
    "content"}]}]`` (or a JSON string of it), or ``{"role", "content"}`` messages."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            return messages if role == "user" else None
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") != role:
            continue
        if isinstance(message.get("content"), str):
            return str(message["content"])
        texts = [
            str(p.get("content"))
            for p in message.get("parts") or []
            if isinstance(p, dict) and p.get("type") == "text"
        ]
        if texts:
            return "\n".join(texts)
    return None


def _feedback(row: dict[str, Any], name: str, attrs: Mapping[str, Any]) -> None:
    if name == "gen_ai.evaluation.result":
        if attrs.get("gen_ai.evaluation.name") not in _FEEDBACK_NAMES:
            return
        row["feedback"] = attrs.get("gen_ai.evaluation.score.label")
        if attrs.get("gen_ai.evaluation.explanation"):
            row["flag_reason"] = attrs["gen_ai.evaluation.explanation"]
    elif name == "feedback":
        for key in ("feedback", "flag_reason", "complaint"):
            if attrs.get(key) is not None:
                row[key] = attrs[key]
