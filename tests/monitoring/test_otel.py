"""OpenTelemetry GenAI spans as production logs: spans made by the real SDK, exported by its
ConsoleSpanExporter and encoded as OTLP/JSON by its OTLP encoder, read back as log records."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.monitoring.drift import load_window
from guardrails.monitoring.logs import Feedback, read_logs, record_to_dict
from guardrails.monitoring.otel import is_otel_file, read_otel_spans
from guardrails.monitoring.signals import compute_signals
from guardrails.training.curation import sft_pairs

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
trace_api = pytest.importorskip("opentelemetry.trace")

T0 = 1_790_000_000 * 10**9  # ns
MS = 10**6
N = 24


def _interaction(tracer: Any, i: int) -> dict[str, Any]:
    """One traced RAG request with explicit times; returns what the record must hold."""
    start = T0 + i * 60 * 10**9
    embed, search, rerank, gen = 5 + i % 3, 3 + i % 2, 20 + i, 300 + 10 * i
    docs = [{"id": f"d{i}", "score": 0.9}, {"id": f"d{i + 1}", "score": 0.5}]
    liked = i % 3 == 0
    query = f"how do I reset device {i}"
    root_attrs = {"session.id": f"s{i // 2}", "guardrails.domain": "devices"}
    if i % 4:  # the others carry the query only as a GenAI user message
        root_attrs["guardrails.query"] = query
    root_attrs["guardrails.query_embedding"] = [float(i % 5), 1.0, float(i % 7)]
    root = tracer.start_span("rag.request", start_time=start, attributes=root_attrs)
    ctx = trace_api.set_span_in_context(root)
    t = start + MS

    def child(name: str, ms: int, attrs: dict[str, Any]) -> Any:
        nonlocal t
        span = tracer.start_span(name, context=ctx, start_time=t, attributes=attrs)
        t += ms * MS
        return span, t

    span, end = child(
        "embeddings e5",
        embed,
        {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5-small"},
    )
    span.end(end_time=end)
    span, end = child(
        "retrieval",
        search,
        {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": json.dumps(docs)},
    )
    span.end(end_time=end)
    span, end = child(
        "rerank cross-encoder", rerank, {"gen_ai.retrieval.documents": json.dumps(docs[::-1])}
    )
    span.end(end_time=end)
    messages = [{"role": "user", "parts": [{"type": "text", "content": query}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": f"Hold power {i}s."}]}]
    span, end = child(
        "chat smollm",
        gen,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "smollm2-135m",
            "gen_ai.usage.input_tokens": 100 + i,
            "gen_ai.usage.output_tokens": 20 + i,
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps(answer),
        },
    )
    if liked:
        span.add_event(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "user_feedback", "gen_ai.evaluation.score.label": "like"},
        )
    if i == 5:
        span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, "generator timeout"))
    span.end(end_time=end)
    root.end(end_time=end + MS)
    return {
        "query": query,
        "session": f"s{i // 2}",
        "liked": liked,
        "docs": docs,
        "latency": {
            "embed": embed,
            "search": search,
            "rerank": rerank,
            "generate": gen,
            "total": embed + search + rerank + gen + 2,
        },
        "tokens": {"prompt": 100 + i, "completion": 20 + i},
        "error": i == 5,
    }


@pytest.fixture(scope="module")
def traced() -> tuple[list[Any], list[dict[str, Any]]]:
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("rag-service")
    expected = [_interaction(tracer, i) for i in range(N)]
    return list(exporter.get_finished_spans()), expected


def _console(spans: list[Any], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        exporter = export.ConsoleSpanExporter(out=out)
        exporter.export(spans)
    return path


def _otlp(spans: list[Any], path: Path, *, hex_ids: bool) -> Path:
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    json_format = pytest.importorskip("google.protobuf.json_format")
    doc = json_format.MessageToDict(encoder.encode_spans(spans))
    if hex_ids:  # the OTLP/JSON spec's form (the collector's file exporter): hex ids
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if s.get(key):
                            s[key] = base64.b64decode(s[key]).hex()
    # half the spans per line, as a batching exporter writes them: traces cross documents
    first, second = json.loads(json.dumps(doc)), doc
    spans_of = lambda d: d["resourceSpans"][0]["scopeSpans"][0]["spans"]  # noqa: E731
    all_spans = spans_of(doc)
    spans_of(first)[:] = all_spans[: len(all_spans) // 2]
    spans_of(second)[:] = all_spans[len(all_spans) // 2 :]
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n", encoding="utf-8")
    return path


def _check(batch: Any, expected: list[dict[str, Any]]) -> None:
    assert batch.errors == ()
    assert len(batch.records) == len(expected)
    for rec, exp in zip(batch.records, expected, strict=True):
        assert rec.query == exp["query"]
        assert rec.session_id == exp["session"]
        assert rec.domain == "devices"
        assert dict(rec.latency_ms) == pytest.approx(exp["latency"], abs=1e-6)
        assert dict(rec.tokens) == exp["tokens"]
        assert [h.doc_id for h in rec.retrieved] == [d["id"] for d in exp["docs"]]
        assert [h.doc_id for h in rec.reranked or ()] == [d["id"] for d in exp["docs"][::-1]]
        assert dict(rec.versions) == {"embedder": "e5-small", "generator": "smollm2-135m"}
        assert rec.feedback == (Feedback.LIKE if exp["liked"] else None)
        assert rec.error == ("generator timeout" if exp["error"] else None)
        assert rec.answer and rec.answer.startswith("Hold power")
        assert len(rec.extra["trace_id"]) == 32


def test_console_export_reads_one_record_per_trace(traced, tmp_path: Path) -> None:
    spans, expected = traced
    path = _console(spans, tmp_path / "spans.otel.json")
    batch = read_logs(path)
    _check(batch, expected)
    assert batch.records[0].timestamp == pytest.approx(T0 / 1e9)


@pytest.mark.parametrize("hex_ids", [True, False], ids=["spec-hex", "protobuf-base64"])
def test_otlp_json_gives_the_same_records(traced, tmp_path: Path, hex_ids: bool) -> None:
    spans, expected = traced
    otlp = read_logs(_otlp(spans, tmp_path / "spans.otlp.jsonl", hex_ids=hex_ids))
    _check(otlp, expected)
    console = read_logs(_console(spans, tmp_path / "spans.otel.json"))
    assert [record_to_dict(r) for r in otlp.records] == [record_to_dict(r) for r in console.records]


def test_signals_drift_and_curation_run_on_traces(traced, tmp_path: Path) -> None:
    spans, expected = traced
    path = _console(spans, tmp_path / "export.json")  # no suffix hint: sniffed
    assert is_otel_file(path)
    batch = read_logs(path)
    (signals,) = compute_signals(batch, timedelta(days=1))
    assert signals.n_queries == N
    assert signals.n_sessions == N // 2
    assert signals.like_rate == pytest.approx(sum(e["liked"] for e in expected) / N)
    assert signals.error_rate == pytest.approx(1 / N)
    gen = [e["latency"]["generate"] for e in expected]
    assert signals.latency_ms["generate"].p95 == pytest.approx(np.percentile(gen, 95))
    window = load_window(path)
    assert window.embeddings is not None and window.embeddings.shape == (N, 3)
    assert window.n_rerank_lists == N
    pairs = sft_pairs(batch.records)
    liked_ok = [e for e in expected if e["liked"] and not e["error"]]
    assert [p.data["prompt"] for p in pairs] == [e["query"] for e in liked_ok]


def test_partial_traces_and_bad_files_are_refused_with_path_and_line(
    traced, tmp_path: Path
) -> None:
    spans, _ = traced
    children = [s for s in spans if s.parent is not None][:4]  # one trace without its root
    path = _console(children, tmp_path / "partial.otel.json")
    batch = read_otel_spans(path)
    assert batch.records == ()
    (error,) = batch.errors
    assert error.line == 1 and "has no root span" in error.message
    assert str(error).startswith(f"{path}:1:")

    no_query = [s for s in spans if s.name != "chat smollm"]  # trace 0's query was in the chat
    batch = read_otel_spans(_console(no_query, tmp_path / "noquery.otel.json"))
    assert len(batch.errors) == N // 4 and all("has no query" in e.message for e in batch.errors)
    assert len(batch.records) == N - N // 4

    bad = tmp_path / "bad.otel.json"
    bad.write_text('{"context": {"trace_id": "0x1"}, "start_time": "yesterday"}\n{', "utf-8")
    (error,) = read_logs(bad).errors
    assert error.line == 1 and "not ISO-8601" in error.message


def test_attribute_values_that_break_the_schema_are_refused(tmp_path: Path) -> None:
    provider = sdk_trace.TracerProvider()
    exporter = in_memory.InMemorySpanExporter()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    docs = {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": '[{"score": 1}]'}
    root = tracer.start_span("rag", attributes={"guardrails.query": "q"})
    tracer.start_span(
        "retrieval", context=trace_api.set_span_in_context(root), attributes=docs
    ).end()
    root.end()
    path = _console(list(exporter.get_finished_spans()), tmp_path / "x.otel.json")
    (error,) = read_otel_spans(path).errors
    assert "retrieved[0]" in error.message
