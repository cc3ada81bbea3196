"""Ranking metrics: oracle tests against pytrec_eval (trec_eval) and ranx, and properties.

pytrec_eval quirk worked around here: with negative judgements, evaluating the plain
``ndcg`` measure more than once in a process can hang (seen with pytrec-eval-terrier 0.5.11);
the other measures are unaffected. Plain ``ndcg`` is therefore checked against pytrec_eval's
``ndcg`` on non-negative judgements only, and against ``ndcg_cut_1000`` (identical when no
more than 1000 documents are judged or retrieved) otherwise.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guardrails.errors import MetricError
from guardrails.metrics import ranking
from guardrails.metrics.ranking import evaluate_ranking, per_query_ids, ranked_ids

pytrec_eval = pytest.importorskip("pytrec_eval")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dbpedia_entity_sample"

# ours -> pytrec_eval measure (plain ndcg: see module docstring)
TREC = {
    "ndcg@1": "ndcg_cut_1",
    "ndcg@3": "ndcg_cut_3",
    "ndcg@10": "ndcg_cut_10",
    "ndcg": "ndcg_cut_1000",
    "mrr": "recip_rank",
    "recall@3": "recall_3",
    "recall@10": "recall_10",
    "recall": "set_recall",
    "precision@1": "P_1",
    "precision@5": "P_5",
    "precision": "set_P",
    "map@3": "map_cut_3",
    "map@10": "map_cut_10",
    "map": "map",
    "hit_rate@1": "success_1",
    "hit_rate@3": "success_3",
    "hit_rate": "success_1000",
}

# Mixed case and prefixes so that docid-descending tie-breaking is exercised byte-wise.
DOC_IDS = ["a", "B", "b", "aa", "d10", "d9", "Z", "z1", "x", "doc-3", "doc_3", "0", "q", "m"]


def _trec(qrels, run, measures, level=1):
    return pytrec_eval.RelevanceEvaluator(qrels, set(measures), relevance_level=level).evaluate(run)


def _assert_matches_trec(qrels, run, level=1, mapping=TREC, qids=None, tol=1e-9):
    ids = per_query_ids(qrels, level) if qids is None else qids
    ours = evaluate_ranking(qrels, run, list(mapping), qids=qids, relevance_level=level)
    ref = _trec(qrels, run, mapping.values(), level)
    for name, measure in mapping.items():
        expected = np.array([ref.get(q, {}).get(measure, 0.0) for q in ids])
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=tol, err_msg=name)


@st.composite
def judged_runs(draw, negative=True, ties=True):
    """Random qrels (grades -1..3 incl. 0) and a run with ties, missing queries, extra docs."""
    n = draw(st.integers(1, 6))
    low = -1 if negative else 0
    qrels, run = {}, {}
    for i in range(n):
        judged = draw(st.lists(st.sampled_from(DOC_IDS), max_size=8, unique=True))
        qrels[f"q{i}"] = {d: draw(st.integers(low, 3)) for d in judged}
        if draw(st.booleans()) or i == 0:
            docs = draw(st.lists(st.sampled_from(DOC_IDS), max_size=12, unique=True))
            score = st.integers(0, 3).map(float) if ties else st.floats(-5, 5, allow_nan=False)
            run[f"q{i}"] = {d: draw(score) for d in docs}
    if draw(st.booleans()):
        run["not-judged"] = {"a": 1.0}
    return qrels, run


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(judged_runs(), st.sampled_from([1, 2]))
def test_every_metric_matches_trec_eval(data, level):
    qrels, run = data
    _assert_matches_trec(qrels, run, level)


@FAST
@given(judged_runs(negative=False), st.sampled_from([1, 2]))
def test_plain_ndcg_matches_trec_eval_ndcg(data, level):
    qrels, run = data
    _assert_matches_trec(qrels, run, level, mapping={"ndcg": "ndcg"})


@FAST
@given(judged_runs(ties=False))
def test_every_metric_matches_trec_eval_without_ties(data):
    _assert_matches_trec(*data)


@FAST
@given(judged_runs(), st.integers(1, 6))
def test_mrr_at_k_is_recip_rank_of_the_run_cut_at_k(data, k):
    """Oracle for mrr@k: trec_eval's recip_rank on each ranking truncated to its top k."""
    qrels, run = data
    cut = {q: {d: docs[d] for d in _trec_order(docs)[:k]} for q, docs in run.items()}
    ours = evaluate_ranking(qrels, run, [f"mrr@{k}"])[f"mrr@{k}"]
    ref = _trec(qrels, cut, ["recip_rank"])
    expected = [ref.get(q, {}).get("recip_rank", 0.0) for q in per_query_ids(qrels)]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def _trec_order(docs):
    """Independent statement of trec_eval's order: float32 score desc, then docid desc."""
    return sorted(docs, key=lambda d: (-np.float32(docs[d]), [-ord(c) for c in d] + [1]))


@FAST
@given(judged_runs())
def test_ranked_ids_follow_trec_eval_order(data):
    _, run = data
    for q, docs in run.items():
        assert ranked_ids(run, q) == _trec_order(docs)
        assert ranked_ids(run, q, 3) == _trec_order(docs)[:3]


def test_ties_are_broken_by_docid_descending_like_trec_eval():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "B": 1.0, "0": 1.0}}  # order: b, a, B, 0
    assert evaluate_ranking(qrels, run, ["mrr"])["mrr"][0] == 0.5
    assert _trec(qrels, run, ["recip_rank"])["q"]["recip_rank"] == 0.5


def test_negative_judgements_have_zero_gain_hand_computed():
    """Ranking b(-1), x(unjudged), a(2), c(0), d(1): DCG = 2/log2(4) + 1/log2(6).

    IDCG = 2 + 1/log2(3). pytrec_eval's ``ndcg`` gives 0.5271341073823443 on a fresh process.
    """
    qrels = {"q": {"a": 2, "b": -1, "c": 0, "d": 1}}
    run = {"q": {"b": 3.0, "x": 2.5, "a": 2.0, "c": 1.0, "d": 0.5}}
    expected = (2 / math.log2(4) + 1 / math.log2(6)) / (2 + 1 / math.log2(3))
    got = evaluate_ranking(qrels, run, ["ndcg", "map", "mrr", "precision@3"])
    assert got["ndcg"][0] == pytest.approx(expected, abs=1e-12)
    assert got["ndcg"][0] == pytest.approx(0.5271341073823443, abs=1e-12)
    assert got["map"][0] == pytest.approx((1 / 3 + 2 / 5) / 2)
    assert got["mrr"][0] == pytest.approx(1 / 3)
    assert got["precision@3"][0] == pytest.approx(1 / 3)


def test_missing_query_scores_zero_and_default_qids_need_a_relevant_doc():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {"c": 0}, "q4": {"d": -1}}
    run = {"q1": {"a": 1.0}}
    assert per_query_ids(qrels) == ["q1", "q2"]
    assert per_query_ids(qrels, relevance_level=2) == ["q2"]
    got = evaluate_ranking(qrels, run, ["ndcg@10", "recall@5", "map"])
    for values in got.values():
        np.testing.assert_array_equal(values, [1.0, 0.0])
    explicit = evaluate_ranking(qrels, run, ["mrr"], qids=["q3", "q1", "nowhere"])
    np.testing.assert_array_equal(explicit["mrr"], [0.0, 1.0, 0.0])


def test_precision_divides_by_k_even_when_fewer_retrieved():
    got = evaluate_ranking({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["precision@10", "precision"])
    assert got["precision@10"][0] == pytest.approx(0.1)
    assert got["precision"][0] == 1.0


def test_keys_are_canonical_names_and_dtype_float64():
    got = evaluate_ranking({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["NDCG@10", "recip_rank", "P@5"])
    assert set(got) == {"ndcg@10", "mrr", "precision@5"}
    assert all(v.dtype == np.float64 and v.shape == (1,) for v in got.values())


@pytest.mark.parametrize(
    ("metrics", "level", "match"),
    [
        (["ndgc@10"], 1, "did you mean"),
        (["rouge_l"], 1, "not a ranking one"),
        (["ndcg@10"], 0, "relevance_level=0"),
    ],
)
def test_bad_inputs_raise_metric_error(metrics, level, match):
    with pytest.raises(MetricError, match=match):
        evaluate_ranking({"q": {"a": 1}}, {"q": {"a": 1.0}}, metrics, relevance_level=level)


def test_nan_score_raises_metric_error_naming_the_query():
    with pytest.raises(MetricError, match="'q'"):
        evaluate_ranking({"q": {"a": 1}}, {"q": {"a": math.nan, "b": 1.0}}, ["ndcg"])


@pytest.mark.parametrize("padding", [0.0, 1e9])
def test_padded_and_per_query_paths_agree_with_trec_eval(monkeypatch, padding):
    """Force each of the two rank-counting strategies on ragged, tied, deep-and-shallow runs."""
    monkeypatch.setattr(ranking, "_MAX_PADDING", padding)
    qrels, run = _generated(60, seed=3)
    run["q0"] = {f"d{j}": float(j % 7) for j in range(400)}  # one deep query
    _assert_matches_trec(qrels, run, 1)
    _assert_matches_trec(qrels, run, 2)


def _generated(n, seed, ties=True):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for i in range(n):
        judged = rng.choice(40, size=rng.integers(1, 8), replace=False)
        qrels[f"q{i}"] = {f"d{j}": int(rng.integers(-1, 3)) for j in judged}
        if rng.random() < 0.9:
            docs = rng.choice(40, size=rng.integers(0, 30), replace=False)
            scores = rng.integers(0, 5, docs.size) if ties else rng.random(docs.size)
            run[f"q{i}"] = {f"d{j}": float(s) for j, s in zip(docs, scores, strict=True)}
    return qrels, run


def test_matches_ranx_where_definitions_agree():
    """ranx breaks ties differently, so scores are distinct; its ndcg uses linear gains."""
    ranx = pytest.importorskip("ranx")
    qrels, run = _generated(200, seed=7, ties=False)
    ids = per_query_ids(qrels)
    qrels = {q: qrels[q] for q in ids}
    run = {q: run.get(q, {}) for q in ids}
    names = ["ndcg@5", "ndcg", "mrr@3", "mrr", "recall@10", "precision@5", "map@10", "map"]
    names += ["hit_rate@3"]
    ranx_run = ranx.Run({q: docs for q, docs in run.items() if docs})
    ranx.evaluate(ranx.Qrels(qrels), ranx_run, names, return_mean=False, make_comparable=True)
    ours = evaluate_ranking(qrels, run, names)
    for name in names:
        expected = [float(ranx_run.scores[name].get(q, 0.0)) for q in ids]
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=1e-9, err_msg=name)


# --- properties -----------------------------------------------------------------------


@FAST
@given(judged_runs())
def test_ndcg_lies_in_unit_interval(data):
    qrels, run = data
    for values in evaluate_ranking(qrels, run, ["ndcg", "ndcg@3", "ndcg@1"]).values():
        assert np.all((values >= 0) & (values <= 1 + 1e-12))


@st.composite
def graded_docs(draw):
    docs = draw(st.lists(st.sampled_from(DOC_IDS), min_size=2, max_size=10, unique=True))
    grades = draw(st.lists(st.integers(1, 4), min_size=len(docs), max_size=len(docs)))
    return dict(zip(docs, grades, strict=True))


@FAST
@given(graded_docs(), st.sampled_from(["ndcg", "ndcg@3", "ndcg@10"]))
def test_ideal_ranking_scores_one_and_its_reverse_scores_less(judged, metric):
    ideal = sorted(judged, key=judged.get, reverse=True)
    qrels = {"q": judged}
    best = {"q": {d: float(len(ideal) - i) for i, d in enumerate(ideal)}}
    worst = {"q": {d: float(i) for i, d in enumerate(ideal)}}
    assert evaluate_ranking(qrels, best, [metric])[metric][0] == pytest.approx(1.0, abs=1e-12)
    assume(len(set(judged.values())) >= 2)  # reversal changes the order of gains
    reversed_score = evaluate_ranking(qrels, worst, [metric])[metric][0]
    assert reversed_score < 1.0 - 1e-12


@FAST
@given(judged_runs(), st.integers(1, 12))
def test_recall_is_monotone_in_k(data, k):
    qrels, run = data
    got = evaluate_ranking(qrels, run, [f"recall@{k}", f"recall@{k + 1}", "recall"])
    assert np.all(got[f"recall@{k}"] <= got[f"recall@{k + 1}"] + 1e-15)
    assert np.all(got[f"recall@{k + 1}"] <= got["recall"] + 1e-15)


def test_importing_ranking_pulls_no_heavy_or_oracle_library():
    code = (
        "import sys, guardrails.metrics.ranking, guardrails.metrics.overlap;"
        "print([m for m in ('torch','pytrec_eval','ranx','pandas') if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


# --- real data ------------------------------------------------------------------------


def _read_beir(folder):
    def jsonl(name):
        with open(folder / name, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as fh:
        next(fh)  # header: query-id corpus-id score
        for line in fh:
            qid, docid, grade = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[docid] = int(grade)
    return jsonl("corpus.jsonl"), jsonl("queries.jsonl"), qrels


def _tokens(text):
    return set("".join(c if c.isalnum() else " " for c in text.lower()).split())


def test_dbpedia_entity_token_overlap_run_matches_trec_eval():
    """A BM25-free, deterministic run: score = |query tokens ∩ title tokens| (many ties)."""
    if not DATA.is_dir():
        pytest.skip(f"public data not found at {DATA}")
    corpus, queries, qrels = _read_beir(DATA)
    titles = [(doc["_id"], _tokens(doc.get("title", ""))) for doc in corpus]
    run = {}
    for query in queries:
        words = _tokens(query["text"])
        scored = {d: float(len(words & t)) for d, t in titles}
        run[query["_id"]] = {d: scored[d] for d in ranked_ids({"q": scored}, "q", 100)}
    mapping = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "mrr": "recip_rank"}
    mapping["map"] = "map"
    assert len(per_query_ids(qrels)) >= 30
    _assert_matches_trec(qrels, run, 1, mapping=mapping, tol=1e-6)
    _assert_matches_trec(qrels, run, 2, mapping=mapping, tol=1e-6)


@pytest.mark.parametrize(("ours", "trec"), sorted(TREC.items()))
def test_trec_eval_measure_names_parse_to_the_metric_they_are_checked_against(ours, trec):
    from guardrails.metrics import parse_metric

    if trec.endswith("_1000"):  # the full ranking: ours has no cutoff, pytrec_eval needs one
        ours = f"{ours}@1000"
    assert parse_metric(trec).name == ours
