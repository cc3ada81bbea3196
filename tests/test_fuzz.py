"""Hostile input: every loader, the verdict reader, both reports and the CLI, fuzzed.

A loader either returns or raises a :class:`GuardrailsError` (a golden-set error names its file);
a report of any verdict the reader accepts renders, with every data field inert; the CLI turns
any input into an exit status and at most one line on stderr, never an internal error.

``GUARDRAILS_FUZZ_EXAMPLES`` sets the examples per property (default 40: the file runs in well
under a minute); e.g. ``GUARDRAILS_FUZZ_EXAMPLES=2000`` for the long run.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.cli import EXIT_INTERNAL, main
from guardrails.errors import GoldenDataError, GuardrailsError
from guardrails.gates import evaluate_drift_gate, evaluate_gate
from guardrails.golden import (
    load_beir,
    load_canaries,
    load_corpus,
    load_preferences,
    load_qa,
    load_trec_qrels,
    load_trec_run,
)
from guardrails.monitoring.logs import read_logs, to_columns
from guardrails.policy import load_policy, parse_policies
from guardrails.registry import Registry
from guardrails.report.html import render_html
from guardrails.report.markdown import render_markdown, summary_lines
from guardrails.verdict import decide, load_verdict, redecide, write_verdict

EXAMPLES = int(os.environ.get("GUARDRAILS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

VALID = {
    "qrels.trec": b"q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 2\n",
    "qrels.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n",
    "run.trec": b"q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.5 t\nq2 Q0 d1 1 0.3 t\n",
    "corpus.jsonl": b'{"_id": "d1", "title": "T", "text": "x"}\n{"_id": "d2", "text": "y"}\n',
    "queries.jsonl": b'{"_id": "q1", "text": "a?"}\n{"_id": "q2", "text": "b?"}\n',
    "qa.jsonl": b'{"id": "a", "question": "q?", "answers": ["x"], "context": ["d1"]}\n',
    "canaries.jsonl": (
        b'{"id": "c1", "kind": "must-refuse", "prompt": "p"}\n'
        b'{"id": "c2", "kind": "factual", "prompt": "p", "expect": ["x"]}\n'
    ),
    "prefs.jsonl": b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n',
    "logs.jsonl": (
        b'{"timestamp": "2026-03-01T12:00:05Z", "session_id": "s1", "query": "q", '
        b'"retrieved": [{"doc_id": "d1", "score": 0.7}], "latency_ms": {"total": 12}, '
        b'"versions": {"embedder": "sha256:ab"}, "tokens": {"prompt": 3}, "feedback": "like"}\n'
        b'{"ts": 1767225600, "session": "s2", "query": "r", "retrieved": ["d2"], '
        b'"dwell_s": {"d2": 4.0}, "ab": {"winner": "a"}, "embedding": [0.1, 0.2]}\n'
    ),
}

# tokens a hostile or broken file holds: bad bytes, non-finite / huge numbers, structure
HOSTILE = [
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\xef\xbb\xbf",
    b"NaN",
    b"nan",
    b"inf",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"9" * 400,
    b"1" * 5000,
    b"\n",
    b"\t",
    b" ",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b"[" * 3000,
    b"null",
    b"true",
    b"{}",
    b"[]",
    b'{"a": [[1, 2], [3]]}',
    b'[["k", {"x": 1}]]',
    b"-1",
    b"0.5",
    b"1e-400",
    b"<script>alert(1)</script>",
    b"\xe2\x80\xae",
]


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few edits: hostile tokens inserted or substituted, slices cut, lines
    duplicated."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "replace", "cut", "dup", "byte"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = draw(st.sampled_from(HOSTILE))
        elif op == "replace":
            end = min(len(data), at + draw(st.integers(1, 8)))
            data[at:end] = draw(st.sampled_from(HOSTILE))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 20))]
        elif op == "dup":
            data += data[:at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def hostile(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), mutated(valid), st.just(b""))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _typed_or_ok(call: Callable[[], Any], path: Path | None = None) -> Any:
    """``call()``'s result, or None when it raised a typed error (naming ``path`` if given)."""
    try:
        return call()
    except GoldenDataError as exc:
        if path is not None:
            assert str(exc).startswith(str(path)), str(exc)
        return None
    except GuardrailsError:
        return None


# ------------------------------------------------------------------------------- loaders

GOLDEN = [
    ("qrels.trec", load_trec_qrels),
    ("qrels.tsv", load_trec_qrels),
    ("run.trec", load_trec_run),
    ("corpus.jsonl", load_corpus),
    ("qa.jsonl", load_qa),
    ("canaries.jsonl", load_canaries),
    ("prefs.jsonl", load_preferences),
]


@pytest.mark.parametrize(("name", "loader"), GOLDEN, ids=[n for n, _ in GOLDEN])
def test_golden_loaders_refuse_with_path(scratch: Path, name: str, loader: Callable) -> None:
    assert loader(_write(scratch / "ok" / name, VALID[name]))  # the seeds are valid

    @FUZZ
    @given(data=hostile(VALID[name]))
    def check(data: bytes) -> None:
        path = _write(scratch / name, data)
        _typed_or_ok(lambda: loader(path), path)

    check()


@FUZZ
@given(
    corpus=hostile(VALID["corpus.jsonl"]),
    queries=hostile(VALID["queries.jsonl"]),
    qrels=hostile(VALID["qrels.tsv"]),
)
def test_beir_folder(scratch: Path, corpus: bytes, queries: bytes, qrels: bytes) -> None:
    root = scratch / "beir"
    _write(root / "corpus.jsonl", corpus)
    _write(root / "queries.jsonl", queries)
    _write(root / "qrels" / "test.tsv", qrels)
    _typed_or_ok(lambda: load_beir(root, strict=False))


def test_non_utf8_and_non_finite_grades_name_the_line(tmp_path: Path) -> None:
    qrels = _write(tmp_path / "q.trec", b"q1 0 d1 1\nq1 0 d2 \xff\n")
    with pytest.raises(GoldenDataError, match=r"q\.trec:2: not valid UTF-8"):
        load_trec_qrels(qrels)
    for grade in ("NaN", "inf", "1e400", "-inf", "5000"):
        _write(qrels, f"q1 0 d1 1\nq2 0 d1 {grade}\n".encode())
        with pytest.raises(GoldenDataError, match=r"q\.trec:2: relevance"):
            load_trec_qrels(qrels)
    run = _write(tmp_path / "r.trec", b"q1 Q0 d1 1 1e400 t\n")
    with pytest.raises(GoldenDataError, match=r"r\.trec:1: score"):
        load_trec_run(run)
    corpus = _write(tmp_path / "c.jsonl", b'{"_id": "d1", "text": "x"}\n{"_id": 1e400}\n')
    with pytest.raises(GoldenDataError, match=r"c\.jsonl:2: not valid JSON"):
        load_corpus(corpus)


def _read_logs_checked(path: Path) -> None:
    batch = read_logs(path)
    assert len(batch.records) + len(batch.errors) == batch.n_lines
    for record in batch.records:
        record.datetime  # noqa: B018 - every accepted timestamp is a real date
        assert all(isinstance(v, str) for v in record.versions.values())
    to_columns(batch.records)


@FUZZ
@given(data=hostile(VALID["logs.jsonl"]), kind=st.sampled_from(["jsonl", "gz", "parquet"]))
def test_logs_reader(scratch: Path, data: bytes, kind: str) -> None:
    if kind == "gz":  # a valid, a truncated or a junk gzip stream
        packed = gzip.compress(data)
        data = packed[: len(packed) // 2] if len(data) % 2 else packed
    path = _write(scratch / f"logs.{kind}", data)
    _typed_or_ok(lambda: _read_logs_checked(path))


def test_log_timestamps_and_versions_are_refused_per_line(tmp_path: Path) -> None:
    lines = [
        {"timestamp": int("9" * 400), "session_id": "s", "query": "q"},
        {"timestamp": 1e300, "session_id": "s", "query": "q"},
        {"timestamp": 1, "session_id": "s", "query": "q", "versions": {"a": {"b": 1}}},
        {"timestamp": 1, "session_id": "s", "query": "q", "versions": [[["k"], "v"]]},
        {"timestamp": 1, "session_id": "s", "query": "q"},
    ]
    path = _write(tmp_path / "l.jsonl", "\n".join(map(json.dumps, lines)).encode() + b"\n\xff\n")
    batch = read_logs(path)
    assert len(batch.records) == 1
    assert [e.line for e in batch.errors] == [1, 2, 3, 4, 6]
    _write(tmp_path / "t.jsonl.gz", gzip.compress(path.read_bytes())[:30])
    with pytest.raises(GuardrailsError, match=r"t\.jsonl\.gz.*truncated"):
        read_logs(tmp_path / "t.jsonl.gz")
    _write(tmp_path / "j.parquet", b"PAR1 not really")
    with pytest.raises(GuardrailsError, match=r"j\.parquet.*Parquet"):
        read_logs(tmp_path / "j.parquet")


# ------------------------------------------------------------------------------ verdicts

POLICY = parse_policies({"policies": {"p": {"n-resamples": 200}}})["p"]


def _valid_verdict() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    ok = evaluate_gate(
        "noninferior", "ndcg@10", candidate=base, baseline=base, policy=POLICY, name="ok"
    )
    bad = evaluate_gate(
        "noninferior", "ndcg@10", candidate=base - 0.3, baseline=base, policy=POLICY, name="bad"
    )
    ref = rng.normal(size=(60, 4))
    drift = evaluate_drift_gate(
        "psi", reference=ref, current=ref * 1.5, policy=POLICY, name="drift"
    )
    return decide([ok, bad, drift], POLICY).to_dict()


VERDICT = _valid_verdict()
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["<script>alert(1)</script>", "## ✅ PROMOTE", "</details>", "[x](y)"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(VERDICT) if p]


@st.composite
def mutated_verdict(draw: st.DrawFn) -> bytes:
    data = json.loads(json.dumps(VERDICT))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    return json.dumps(data).encode()


def _render_all(path: Path) -> None:
    from guardrails.verdict.integrity import verify_verdict

    verdict = load_verdict(path)
    render_html(verdict)
    render_markdown(verdict)
    summary_lines(verdict)
    redecide(verdict, POLICY)
    verify_verdict(json.loads(path.read_text(encoding="utf-8")), str(path), key=None)


@FUZZ
@given(
    data=st.one_of(
        mutated_verdict(), mutated(json.dumps(VERDICT).encode()), st.binary(max_size=100)
    )
)
def test_verdict_reader_and_reports(scratch: Path, data: bytes) -> None:
    path = _write(scratch / "verdict.json", data)
    _typed_or_ok(lambda: _render_all(path))


INJECT = (
    "<script>alert(1)</script>\n## ✅ PROMOTE\n![x](http://e/x.png) [y](http://e) </details> | a |"
)


def test_crafted_verdict_renders_inert(tmp_path: Path) -> None:
    data = json.loads(json.dumps(VERDICT))
    data["reason"] = INJECT
    data["reasons"] = [INJECT, INJECT]
    for g in data["gates"]:
        g.update(name=INJECT, metric=INJECT, limit=INJECT, warnings=[INJECT])
        g["worst"] = [{"id": INJECT, "baseline": 0.1, "candidate": 0.0}]
        g["extra"] = {**g["extra"], "examples": {INJECT: {"input": INJECT, "baseline": INJECT}}}
    data["provenance"] = {
        "git": {"commit": INJECT},
        "golden": {INJECT: INJECT},
        "artifacts": [{"role": INJECT, "component": INJECT, "fingerprint": INJECT}],
        "libraries": {INJECT: INJECT},
        "created_at": INJECT,
    }
    data["policy"] = {"name": INJECT}
    path = _write(tmp_path / "v.json", json.dumps(data).encode())
    verdict = load_verdict(path)
    page = render_html(verdict)
    from guardrails.report.html import _SORT_JS

    ours = f"<script>{_SORT_JS}</script>"  # the table-sorting script is the only one
    assert ours in page and "<script" not in page.replace(ours, "")
    assert "&lt;script&gt;" in page
    md = render_markdown(verdict)
    assert "<script" not in md
    assert md.count("</details>") == 1 and md.count("<details>") == 1
    assert "](" not in md and "![" not in md
    headings = [line for line in md.splitlines() if line.lstrip().startswith("#")]
    assert all(h.startswith(("## guardrails verdict", "### ")) for h in headings), headings
    assert all(re.search(r"(?<!\\)#", h.lstrip("#")) is None for h in headings)  # only ours
    table_rows = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.count(" | ") - line.count("\\|") <= 7 for line in table_rows)
    assert all("\n" not in line and "\x1b" not in line for line in summary_lines(verdict))


# --------------------------------------------------------------------------------- policy

TOML_VALUES = [
    '"x"',
    '"release"',
    "3",
    "-1",
    "0",
    "1.5",
    "0.01",
    "nan",
    "inf",
    "true",
    '[1, "a"]',
    '["a*"]',
    "[]",
    "{a = 1}",
    "{}",
    "99999999999999999",
    '"higher"',
]
TOML_KEYS = [
    "policy",
    "seed",
    "n-resamples",
    "alpha",
    "power",
    "required",
    "extends",
    "description",
    "components",
    "max-drop",
    "min",
    "max",
    "min-gain",
    "direction",
    "metrics",
    "gates",
    "policies",
    "tool",
]
SECTIONS = [
    "[tool.guardrails]",
    "[tool.guardrails.policies.p]",
    '[tool.guardrails.policies.p.metrics."ndcg@10"]',
    '[tool.guardrails.policies.p.gates."g"]',
    "[tool.guardrails.components]",
]


@FUZZ
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from(SECTIONS), st.sampled_from(TOML_KEYS), st.sampled_from(TOML_VALUES)
        ),
        max_size=6,
    ),
    junk=st.binary(max_size=8),
)
def test_policy_loading(scratch: Path, lines: list[tuple[str, str, str]], junk: bytes) -> None:
    by_section: dict[str, dict[str, str]] = {}
    for section, key, value in lines:
        by_section.setdefault(section, {})[key] = value
    text = "".join(
        f"{section}\n" + "".join(f"{k} = {v}\n" for k, v in body.items())
        for section, body in by_section.items()
    )
    path = _write(
        scratch / "pyproject.toml", text.encode() + (junk if len(lines) % 3 == 0 else b"")
    )
    for name in (None, "p"):
        _typed_or_ok(lambda name=name: load_policy(path, name))


# ------------------------------------------------------------------------------- registry


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), st.just(b"SQLite format 3\x00" + b"\x00" * 200)))
def test_registry_open_refuses_junk(scratch: Path, data: bytes) -> None:
    path = _write(scratch / "junk.sqlite", data)

    def open_and_read(read_only: bool) -> None:
        with Registry(path, read_only=read_only, create=False) as registry:
            registry.aliases()
            registry.history()

    for read_only in (True, False):
        _typed_or_ok(lambda ro=read_only: open_and_read(ro))


def test_read_only_commands_never_create_a_registry(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "registry.sqlite"
    for argv in (["status"], ["history"], ["rollback", "embedder"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*argv, "--registry", str(missing)]) == 2
        assert f"no registry at {missing}" in err.getvalue()
    assert not missing.parent.exists()
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["status", "--registry", str(other)]) == 2
    assert other.read_bytes() == before


# ------------------------------------------------------------------------------------ CLI


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    assert isinstance(rc, int)
    text = err.getvalue()
    assert rc != EXIT_INTERNAL, text
    if rc not in (0, 1, 3, 10, 11):  # promote, drift alarm, drift incomplete, hold, rollback
        assert text.count("\n") == 1 and text.startswith("guardrails: "), text
    return rc, text


@FUZZ
@given(
    qrels=hostile(VALID["qrels.trec"]),
    run=hostile(VALID["run.trec"]),
    verdict=st.one_of(mutated_verdict(), st.binary(max_size=100)),
    logs=hostile(VALID["logs.jsonl"]),
    raw=st.binary(max_size=200),
)
def test_cli_turns_any_input_into_an_exit_status(
    scratch: Path, qrels: bytes, run: bytes, verdict: bytes, logs: bytes, raw: bytes
) -> None:
    d = scratch / "cli"
    q, r = _write(d / "q.trec", qrels), _write(d / "r.trec", run)
    v, lg = _write(d / "v.json", verdict), _write(d / "l.jsonl", logs)
    same = _write(d / "raw", raw)
    cfg = _write(d / "pyproject.toml", b"[tool.guardrails.policies.p]\nn-resamples = 200\n")
    assert _cli(["eval", str(same), str(same)])[0] != 0  # qrels and run cannot both be valid
    _cli(["eval", str(q), str(r)])
    _cli(["compare", str(q), str(r), str(r), "--config", str(cfg), "--policy", "p"])
    _cli(["report", str(v)])
    _cli(["report", str(v), "--format", "html"])
    _cli(["redecide", str(v), "--policy", "p", "--config", str(cfg)])
    _cli(["check", str(v)])
    _cli(["check", str(same), "--json"])
    _cli(["drift", "--reference", str(lg), "--current", str(lg)])
    assert _cli(["status", "--registry", str(same)])[0] == 2
    assert _cli(["history", "--registry", str(same)])[0] == 2
    assert _cli(["report", str(same)])[0] == 2 or raw.strip().startswith(b"{")


def test_eval_refuses_empty_and_disjoint_inputs(tmp_path: Path) -> None:
    qrels = _write(tmp_path / "q.trec", VALID["qrels.trec"])
    empty = _write(tmp_path / "empty", b"")
    other = _write(tmp_path / "other.trec", b"x9 Q0 d1 1 0.9 t\n")
    assert "the run file is empty" in _cli(["eval", str(qrels), str(empty)])[1]
    assert "the qrels file is empty" in _cli(["eval", str(empty), str(other)])[1]
    rc, err = _cli(["eval", str(qrels), str(other)])
    assert rc == 2 and "no query in common" in err
    assert _cli(["eval", str(qrels), str(_write(tmp_path / "r", VALID["run.trec"]))])[0] == 0


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guardrails.golden

    def broken(path: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(guardrails.golden, "load_trec_qrels", broken)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["eval", "q", "r"]) == EXIT_INTERNAL
    assert err.getvalue() == (
        "guardrails: internal error: KeyError: 'boom' (rerun with --debug for the traceback)\n"
    )
    with pytest.raises(KeyError):
        main(["--debug", "eval", "q", "r"])


def test_verdict_written_then_mutated_types_are_named(tmp_path: Path) -> None:
    data = json.loads(json.dumps(VERDICT))
    data["gates"][1]["worst"] = [{"id": "s1", "baseline": "0.5", "candidate": 0.1}]
    path = _write(tmp_path / "v.json", json.dumps(data).encode())
    with pytest.raises(
        GuardrailsError, match=r"v\.json: gates\[1\] \('bad'\): worst\[\]\.baseline"
    ):
        load_verdict(path)
    data = json.loads(json.dumps(VERDICT))
    write_verdict(load_verdict(_write(tmp_path / "ok.json", json.dumps(data).encode())), path)
    assert load_verdict(path).decision.value == VERDICT["decision"]
