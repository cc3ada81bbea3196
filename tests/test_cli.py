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
    assert code == 11  # rollback: a 0.01 drop is significant against a 0.001 margin
    assert json.loads((tmp_path / "v2.json").read_text())["decision"] == "rollback"
    assert "decision: ROLLBACK" in capsys.readouterr().out


def test_missing_verdict_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "verdict file not found" in capsys.readouterr().err


def _component_verdict(tmp_path: Path) -> Path:
    """Overall rollback: the generator regressed, the embedder and the reranker passed."""
    policy = parse_policies(
        {
            "components": {
                "embedder": ["retrieval*"],
                "reranker": ["reranker*"],
                "generator": ["generation*"],
            },
            "policies": {"p": {"n-resamples": 1000, "metrics": {"ndcg@10": {"max-drop": 0.05}}}},
        }
    )["p"]
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 100)
    gates = [
        evaluate_gate(
            "noninferior", "ndcg@10", candidate=base + shift, baseline=base, policy=policy, name=n
        )
        for n, shift in (("retrieval", 0.0), ("reranker", 0.0), ("generation", -0.2))
    ]
    artifacts = [
        {"component": c, "role": role, "fingerprint": f"sha256:{c}-{i}"}
        for c in ("embedder", "reranker", "generator")
        for role, i in (("baseline", 0), ("candidate", 1))
    ]
    verdict = decide(gates, policy, provenance={"artifacts": artifacts})
    return write_verdict(verdict, tmp_path / "verdict.json")


def _registry_with_production(db: Path) -> None:
    from guardrails.registry import Registry

    with Registry(db) as reg:
        for c in ("embedder", "reranker", "generator"):
            for i in (0, 1):
                reg.register("adapter", c, f"{c}-{i}", f"sha256:{c}-{i}")
            reg.set_alias(c, "production", f"sha256:{c}-0")


def _production(db: Path) -> dict[str, str]:
    from guardrails.registry import Registry

    with Registry(db) as reg:
        return {a.component: a.fingerprint for a in reg.aliases() if a.alias == "production"}


def test_promote_per_component(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, db = _component_verdict(tmp_path), tmp_path / "registry.sqlite"
    _registry_with_production(db)
    assert main(["promote", str(path), "--registry", str(db)]) == 2
    err = capsys.readouterr().err
    assert "decision='rollback'" in err and "['embedder', 'reranker']" in err
    assert "--promotable" in err
    assert main(["promote", str(path), "--registry", str(db), "--component", "generator"]) == 2
    assert "component='generator' has decision='rollback'" in capsys.readouterr().err
    assert main(["promote", str(path), "--registry", str(db), "--component", "reranker"]) == 0
    assert "promoted reranker: reranker-0 -> reranker-1" in capsys.readouterr().out
    assert _production(db) == {
        "embedder": "sha256:embedder-0",
        "generator": "sha256:generator-0",
        "reranker": "sha256:reranker-1",
    }


def test_promote_promotable_components(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, db = _component_verdict(tmp_path), tmp_path / "registry.sqlite"
    _registry_with_production(db)
    assert main(["promote", str(path), "--registry", str(db), "--promotable"]) == 0
    out = capsys.readouterr().out
    assert "promoted embedder:" in out and "promoted reranker:" in out
    assert "generator" not in out
    assert _production(db)["generator"] == "sha256:generator-0"
    assert main(["promote", str(path), "--registry", str(db), "--promotable"]) == 2
    assert "stale verdict" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main(["promote", str(path), "--promotable", "--component", "embedder"])


def test_redecide_and_report_show_components(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _component_verdict(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.guardrails.components]\nembedder = ["retrieval*"]\ngenerator = ["generation*"]\n'
        "[tool.guardrails.policies.p]\nn-resamples = 1000\n"
        '[tool.guardrails.policies.p.metrics."ndcg@10"]\nmax-drop = 0.05\n'
    )
    config = str(tmp_path / "pyproject.toml")
    assert main(["redecide", str(path), "--policy", "p", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "decision: ROLLBACK" in out and "decision per component:" in out
    assert (
        "  embedder: PROMOTE — all 2 gates of component 'embedder' passed (1 its own, 1 shared)"
        in (
            out  # the reranker gate is shared under this policy
        )
    )
    assert "  generator: ROLLBACK — gate generation failed" in out
    assert "reranker:" not in out.split("decision per component:")[1]
    assert main(["report", str(path), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "### Decision per component" in text
    assert "| embedder | ✅ **PROMOTE** | all 1 gates of component 'embedder' passed" in text
    assert "| generator | ❌ **ROLLBACK** | gate generation failed" in text
    assert text.index("### Decision per component") < text.index("| gate | metric |")


def test_eval_accepts_trec_eval_names_and_answers_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = _random_case(3)
    _write_qrels(qrels, tmp_path / "qrels.txt")
    write_trec_run(run, tmp_path / "run.txt")
    names = ["P_5", "ndcg_cut_10", "recip_rank", "recall_100", "map_cut_10", "p@5"]
    args = ["eval", str(tmp_path / "qrels.txt"), str(tmp_path / "run.txt"), "--json"]
    assert main([*args, *(a for n in names for a in ("-m", n))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["mean"]) == sorted(names)  # keyed by the names given, none renamed
    measures = {"P_5", "ndcg_cut_10", "recip_rank", "recall_100", "map_cut_10"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    for name in measures:
        want = np.mean([ref[q][name] for q in ref])
        assert out["mean"][name] == pytest.approx(want, abs=1e-9), name
    assert out["mean"]["p@5"] == out["mean"]["P_5"]


# ------------------------------------------------------------------------------ compare


def _dbpedia_runs(folder: Path, out: Path) -> dict[str, Path]:
    """Three real runs over the public DBpedia-Entity sample, as TREC files:
    ``title`` (query/title token overlap), ``tfidf`` (TF-IDF cosine over title and text, a
    clearly better retriever) and ``reversed`` (title's top 100 in reverse, clearly worse)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    beir = load_beir(folder)
    ids = sorted(beir.corpus)
    qids = sorted(beir.queries)
    tokens = {d: set(beir.corpus[d].title.lower().split()) for d in ids}
    title = {}
    for q in qids:
        words = set(beir.queries[q].lower().split())
        scores = {d: float(len(words & tokens[d])) for d in ids}
        title[q] = dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:100])
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(beir.corpus[d].full_text for d in ids)
    docs = vectorizer.transform([beir.corpus[d].full_text for d in ids])
    sims = (vectorizer.transform([beir.queries[q] for q in qids]) @ docs.T).toarray()
    tfidf = {
        q: {ids[j]: float(sims[i, j]) for j in np.argsort(-sims[i])[:100]}
        for i, q in enumerate(qids)
    }
    reversed_ = {q: {d: float(r) for r, d in enumerate(docs_)} for q, docs_ in title.items()}
    paths = {}
    for name, run in (("title", title), ("tfidf", tfidf), ("reversed", reversed_)):
        paths[name] = out / f"{name}.run"
        write_trec_run(run, paths[name])
    return paths


def test_compare_real_runs_promotes_better_rolls_back_worse(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("sklearn")
    folder = shared_data / "dbpedia_entity_sample"
    runs = _dbpedia_runs(folder, tmp_path)
    qrels = str(folder / "qrels" / "test.tsv")
    config = ["--config", str(tmp_path / "absent.toml")]  # the built-in default policy
    outcomes = {}
    for name, base, cand in (
        ("better", "title", "tfidf"),
        ("worse", "title", "reversed"),
        ("same", "title", "title"),
    ):
        verdict = tmp_path / f"{name}.json"
        args = [qrels, str(runs[base]), str(runs[cand]), "--verdict", str(verdict), *config]
        outcomes[name] = main(["compare", *args])
        data = json.loads(verdict.read_text())
        print(name, [(g["name"], round(g["delta"], 4), g["status"]) for g in data["gates"]])
        assert [g["name"] for g in data["gates"]] == ["compare:ndcg@10", "compare:recall@100"]
    printed = capsys.readouterr().out
    assert outcomes == {"better": 0, "worse": 11, "same": 0}, printed
    superior = main(
        [
            "compare",
            qrels,
            str(runs["title"]),
            str(runs["tfidf"]),
            "--kind",
            "superior",
            "-m",
            "ndcg_cut_10",
            *config,
        ]
    )
    assert superior == 0


def test_compare_exit_statuses_hold_and_bad_input(tmp_path: Path, capsys) -> None:
    qrels, run = _random_case(1, n_q=12)
    _write_qrels(qrels, tmp_path / "qrels.txt")
    write_trec_run(run, tmp_path / "base.run")
    rng = np.random.default_rng(7)
    noisy = {q: {d: float(rng.normal()) for d in docs} for q, docs in run.items()}
    write_trec_run(noisy, tmp_path / "cand.run")
    args = [str(tmp_path / "qrels.txt"), str(tmp_path / "base.run"), str(tmp_path / "cand.run")]
    config = ["--config", str(tmp_path / "absent.toml")]
    assert main(["compare", *args, *config]) == 10  # 12 queries of noise: cannot tell: hold
    assert main(["compare", *args, "-m", "ndgc@10", *config]) == 2
    assert "did you mean 'ndcg@10'" in capsys.readouterr().err
    assert main(["compare", args[0], args[1], str(tmp_path / "missing.run"), *config]) == 2
