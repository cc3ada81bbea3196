"""The ``guardrails`` command line: eval (vs pytrec_eval), report, redecide, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from guardrails.cli import main
from guardrails.gates import evaluate_gate
from guardrails.golden import load_beir, write_trec_run
from guardrails.policy import parse_policies
from guardrails.verdict import decide, write_verdict


def _write_qrels(qrels: dict, path: Path) -> None:
    path.write_text(
        "".join(f"{q} 0 {d} {r}\n" for q, docs in qrels.items() for d, r in docs.items())
    )


def _random_case(seed: int, n_q: int = 40, n_docs: int = 60) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_q):
        docs = rng.choice(n_docs, 8, replace=False)
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(0, 3)) for d in docs}
        qrels[f"q{q}"][f"d{docs[0]}"] = 2
        if q % 7 != 3:
            retrieved = rng.choice(n_docs, 30, replace=False)
            run[f"q{q}"] = {f"d{d}": float(np.round(rng.normal(), 2)) for d in retrieved}
    return qrels, run


def test_eval_json_matches_pytrec_eval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = _random_case(0)
    _write_qrels(qrels, tmp_path / "qrels.txt")
    write_trec_run(run, tmp_path / "run.txt")
    code = main(
        [
            "eval",
            str(tmp_path / "qrels.txt"),
            str(tmp_path / "run.txt"),
            "-m",
            "ndcg@10",
            "-m",
            "mrr",
            "-m",
            "recall@20",
            "-m",
            "map",
            "--per-query",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recip_rank", "recall_20", "map"})
    # pytrec_eval reads the run's scores as written (6 decimals), as we do from the file
    expected = ref.evaluate(
        {q: {d: float(f"{s:.6f}") for d, s in docs.items()} for q, docs in run.items()}
    )
    assert out["num_queries"] == len(expected)
    for ours, theirs in (
        ("ndcg@10", "ndcg_cut_10"),
        ("mrr", "recip_rank"),
        ("recall@20", "recall_20"),
        ("map", "map"),
    ):
        for qid, values in expected.items():
            assert out["per_query"][ours][qid] == pytest.approx(values[theirs], abs=1e-6)


def test_eval_on_public_beir_qrels_matches_pytrec_eval(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture
) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    beir = load_beir(shared_data / "dbpedia_entity_sample")
    rng = np.random.default_rng(1)
    doc_ids = sorted(beir.corpus)
    run = {}
    for qid in beir.query_ids:
        words = set(beir.queries[qid].lower().split())
        scores = {
            d: len(words & set(beir.corpus[d].title.lower().split())) + rng.random()
            for d in rng.choice(doc_ids, 300, replace=False)
        }
        scores.update({d: 5 + rng.random() for d in list(beir.qrels[qid])[:3]})
        run[qid] = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:100])
    write_trec_run(run, tmp_path / "run.txt")
    qrels_file = shared_data / "dbpedia_entity_sample" / "qrels" / "test.tsv"
    assert (
        main(
            [
                "eval",
                str(qrels_file),
                str(tmp_path / "run.txt"),
                "-m",
                "ndcg@10",
                "-m",
                "recall@100",
                "-m",
                "mrr",
                "-m",
                "map",
                "--per-query",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    rounded = {q: {d: float(f"{s:.6f}") for d, s in docs.items()} for q, docs in run.items()}
    expected = pytrec_eval.RelevanceEvaluator(
        {q: dict(v) for q, v in beir.qrels.items()},
        {"ndcg_cut_10", "recall_100", "recip_rank", "map"},
    ).evaluate(rounded)
    for ours, theirs in (
        ("ndcg@10", "ndcg_cut_10"),
        ("recall@100", "recall_100"),
        ("mrr", "recip_rank"),
        ("map", "map"),
    ):
        for qid, values in expected.items():
            assert out["per_query"][ours][qid] == pytest.approx(values[theirs], abs=1e-6)


def test_eval_text_output_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    qrels, run = _random_case(2)
    _write_qrels(qrels, tmp_path / "qrels.txt")
    write_trec_run(run, tmp_path / "run.txt")
    assert (
        main(["eval", str(tmp_path / "qrels.txt"), str(tmp_path / "run.txt"), "-m", "ndcg@5"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ndcg@5\tall\t") and lines[-1].startswith("num_q\tall\t")
    (tmp_path / "bad.txt").write_text("q1 Q0 d1 1 notanumber run\n")
    assert main(["eval", str(tmp_path / "qrels.txt"), str(tmp_path / "bad.txt")]) == 2
    assert "bad.txt:1: score 'notanumber' is not a number" in capsys.readouterr().err


def _verdict_file(tmp_path: Path) -> Path:
    policy = parse_policies(
        {"policies": {"p": {"n-resamples": 1000, "metrics": {"ndcg@10": {"max-drop": 0.05}}}}}
    )["p"]
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 100)
    gate = evaluate_gate(
        "noninferior",
        "ndcg@10",
        candidate=base - 0.01,
        baseline=base,
        policy=policy,
        name="retrieval",
    )
    return write_verdict(decide([gate], policy), tmp_path / "verdict.json")


def test_report_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _verdict_file(tmp_path)
    assert main(["report", str(path), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "## guardrails verdict: **PROMOTE**" in text
    assert "| retrieval | ndcg@10 |" in text and "provenance" in text


def test_redecide_with_stricter_policy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _verdict_file(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        "[tool.guardrails.policies.strict]\nn-resamples = 1000\n"
        '[tool.guardrails.policies.strict.metrics."ndcg@10"]\nmax-drop = 0.001\n'
    )
    code = main(
        [
            "redecide",
            str(path),
            "--policy",
            "strict",
            "--config",
            str(tmp_path / "pyproject.toml"),
            "--exit-code",
            "-o",
            str(tmp_path / "v2.json"),
        ]
    )
    assert code == 4  # rollback: a 0.01 drop is significant against a 0.001 margin
    assert json.loads((tmp_path / "v2.json").read_text())["decision"] == "rollback"
    assert "decision: ROLLBACK" in capsys.readouterr().out


def test_missing_verdict_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "verdict file not found" in capsys.readouterr().err
