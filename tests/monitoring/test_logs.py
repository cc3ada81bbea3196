"""Log schema: round trips in every format, malformed lines counted with file:line, strictness."""

from __future__ import annotations

import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from guardrails.errors import LogDataError
from guardrails.monitoring.logs import (
    LOG_SCHEMA_VERSION,
    Feedback,
    Hit,
    LogRecord,
    iter_logs,
    read_logs,
    record_from_dict,
    record_to_dict,
    to_columns,
    write_logs,
)


def full_record(i: int = 0) -> LogRecord:
    return LogRecord(
        timestamp=1772323200.25 + i,
        session_id=f"s{i}",
        query="payout not arrived",
        query_id="pay-q011",
        query_embedding=(0.5, -0.25, 1.0),
        domain="payments",
        retrieved=(Hit("pay-d019", 0.71), Hit("pay-d013")),
        reranked=(Hit("pay-d013", 2.5), Hit("pay-d019", -1.0)),
        answer="Payouts arrive in two days.",
        latency_ms={"embed": 8.0, "search": 4.5, "total": 700.0},
        tokens={"prompt": 512, "completion": 48},
        memory_mb=2140.5,
        clicked=("pay-d019",),
        skipped=("pay-d013",),
        dwell_s={"pay-d019": 41.0},
        scroll_depth=0.5,
        feedback=Feedback.FLAG,
        flag_reason="hallucination",
        complaint="made up a fee",
        ab={"a": "x", "b": "y", "winner": "tie"},
        versions={"embedder": "sha256:ab"},
        error=None,
        extra={"region": "eu", "nested": {"k": [1, 2]}},
    )


@pytest.mark.parametrize("name", ["logs.jsonl", "logs.jsonl.gz", "logs.parquet"])
def test_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    records = [full_record(0), full_record(1), LogRecord(5.0, "s9", "bare minimum")]
    write_logs(records, tmp_path / name)
    batch = read_logs(tmp_path / name)
    assert batch.errors == () and batch.n_lines == 3
    assert list(batch.records) == records
    assert math.isnan(batch.records[0].retrieved[1].score)
    assert batch.records[0].extra == {"region": "eu", "nested": {"k": [1, 2]}}
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


BAD_LINES = [
    {"timestamp": 10, "session_id": "a", "query": "ok", "brand_new_field": 7},  # 1 good
    "{not json",  # 2
    {"timestamp": 11, "session_id": "a", "query": "q", "scroll_depth": "deep"},  # 3
    {"timestamp": 12, "session_id": "a"},  # 4 missing query
    "",  # blank: not a line
    [1, 2, 3],  # 6 not an object
    {"timestamp": 13, "session_id": "a", "query": "q", "schema_version": 99},  # 7
    {"timestamp": 14, "session_id": "a", "query": "q", "feedback": "meh"},  # 8
    {"timestamp": 15, "session_id": "a", "query": "q", "retrieved": [{"score": 1}]},  # 9
    {"timestamp": 16, "session_id": "a", "query": "q", "latency_ms": {"total": -5}},  # 10
    {"timestamp": "yesterday", "session_id": "a", "query": "q"},  # 11
    {"timestamp": 17, "session_id": "a", "query": "q", "ab": {"a": "x", "winner": "c"}},  # 12
    {"timestamp": 18, "session_id": "b", "query": "fine", "clicked": ["d1"]},  # 13 good
]


def write_lines(path: Path, lines: list) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_lines_are_reported_with_file_line_and_counted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", BAD_LINES)
    batch = read_logs(path)
    assert batch.n_lines == 12 and len(batch.records) == 2 and len(batch.errors) == 10
    assert [e.line for e in batch.errors] == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    messages = {e.line: e.message for e in batch.errors}
    assert "not valid JSON" in messages[2]
    assert "scroll_depth" in messages[3]
    assert "'query'" in messages[4]
    assert "JSON object" in messages[6]
    assert "schema_version=99" in messages[7] and str(LOG_SCHEMA_VERSION) in messages[7]
    assert "feedback" in messages[8] and "like" in messages[8]
    assert "retrieved[0]" in messages[9]
    assert "latency_ms.total" in messages[10]
    assert "timestamp" in messages[11]
    assert "ab.winner" in messages[12]
    assert str(batch.errors[0]).startswith(f"{path}:2: ")
    assert batch.records[0].extra == {"brand_new_field": 7}
    assert batch.records[1].clicked == ("d1",)
    assert "2 records, 10 malformed of 12 lines" in batch.summary()


def test_strict_raises_on_the_first_bad_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", BAD_LINES)
    with pytest.raises(LogDataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_logs(path, strict=True)
    with pytest.raises(ValueError):  # LogDataError is a ValueError too
        read_logs(path, strict=True)


def test_iter_logs_streams_and_collects_errors_as_it_goes(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    lines = [json.dumps({"timestamp": i, "session_id": "s", "query": "q"}) for i in range(50)]
    lines[10] = "garbage"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines))
    stream = iter_logs(path)
    first = list(itertools.islice(stream, 5))
    assert [r.timestamp for r in first] == [0, 1, 2, 3, 4] and stream.errors == []
    rest = list(stream)
    assert len(rest) == 44 and stream.n_lines == 50
    assert [(e.line, e.message[:14]) for e in stream.errors] == [(11, "not valid JSON")]


def test_missing_file_is_a_log_data_error(tmp_path: Path) -> None:
    with pytest.raises(LogDataError, match="not found"):
        read_logs(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-01T00:00:00Z", 1772323200.0),
        ("2026-03-01T01:00:00+01:00", 1772323200.0),
        ("2026-03-01T00:00:00", 1772323200.0),  # naive is UTC
        (1772323200, 1772323200.0),
        (1772323200500, 1772323200.5),  # epoch milliseconds
    ],
)
def test_timestamp_forms(raw: object, expected: float) -> None:
    record = record_from_dict({"timestamp": raw, "session_id": "s", "query": "q"})
    assert record.timestamp == pytest.approx(expected)
    assert record.datetime.tzinfo is not None


def test_lenient_spellings_and_hit_forms() -> None:
    record = record_from_dict(
        {
            "ts": 5,
            "session": "s",
            "query": "q",
            "embedding": [1, 2],
            "retrieved": ["d1", ["d2", 0.5], {"doc_id": 3, "score": 1}],
            "feedback": "LIKE",
        }
    )
    assert record.timestamp == 5 and record.session_id == "s"
    assert record.query_embedding == (1.0, 2.0)
    assert [h.doc_id for h in record.retrieved] == ["d1", "d2", "3"]
    assert record.retrieved[1].score == 0.5 and record.feedback is Feedback.LIKE
    assert record.shown == record.retrieved


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    write_logs([full_record()], path)
    before = path.read_bytes()
    broken = LogRecord(1.0, "s", "q", memory_mb=math.nan)  # NaN cannot be written as JSON
    with pytest.raises(ValueError):
        write_logs([full_record(), broken], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["logs.jsonl"]


def test_native_nested_parquet_columns_are_read(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "timestamp": [1.0, 2.0],
            "session_id": ["a", "b"],
            "query": ["x", None],
            "retrieved": [[{"doc_id": "d1", "score": 0.5}], []],
            "dwell_s": pa.array([[("d1", 3.0)], []], type=pa.map_(pa.string(), pa.float64())),
            "query_embedding": [[0.1, 0.2], [0.3, 0.4]],
        }
    )
    pq.write_table(table, tmp_path / "native.parquet")
    batch = read_logs(tmp_path / "native.parquet")
    assert batch.n_lines == 2 and len(batch.records) == 1
    assert batch.errors[0].line == 2 and "'query'" in batch.errors[0].message
    assert batch.records[0].retrieved == (Hit("d1", 0.5),)
    assert batch.records[0].dwell_s == {"d1": 3.0}


def test_record_to_dict_omits_absent_optionals() -> None:
    out = record_to_dict(LogRecord(1.0, "s", "q"))
    assert "answer" not in out and "feedback" not in out and out["schema_version"] == 1


def test_to_columns() -> None:
    records = [full_record(0), LogRecord(9.0, "s9", "q")]
    cols = to_columns(records)
    assert cols["timestamp"].tolist() == [1772323200.25, 9.0]
    assert cols["latency_total"][0] == 700.0 and math.isnan(cols["latency_total"][1])
    assert math.isnan(cols["latency_generate"][0])
    assert cols["n_clicked"].tolist() == [1, 0]
    assert cols["feedback"].tolist() == ["flag", None]
    assert cols["query_embedding"].shape == (2, 3)
    assert np.isnan(cols["query_embedding"][1]).all()
    with pytest.raises(LogDataError, match="different sizes"):
        to_columns([full_record(0), LogRecord(1.0, "s", "q", query_embedding=(1.0,))])
