"""Text metrics vs their references: rouge-score, sacrebleu, the official SQuAD v2 script."""

from __future__ import annotations

import collections
import json
import re
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guardrails.errors import MetricError
from guardrails.metrics import text
from guardrails.metrics.text import evaluate_text, exact_match, lcs_length, token_f1

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
sacrebleu = pytest.importorskip("sacrebleu")

SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad_v2_sample"
ROUGE_TYPES = {"rouge1": "rouge1", "rouge2": "rouge2", "rouge_l": "rougeL"}
ALL = ["rouge1", "rouge2", "rouge_l", "bleu", "chrf", "exact_match", "token_f1"]

# Inflections (stemmer), articles (SQuAD), punctuation, digits, unicode (lowercasing to ASCII:
# Kelvin sign, dotted I), the \x00 our tokenizer uses as a separator.
_WORD_LINE = (
    "the a an The cat cats Cat running run ran runs was has its dog dogs quickly quick houses "
    "generalization generalize relational rational 1990s x2 42 naïve café İstanbul \u212a "
    "don't it's well-known e.g. , . ! ? ; — “ ” ( ) \x00 \t"
)
WORDS = _WORD_LINE.split(" ")
word_text = st.lists(st.sampled_from(WORDS), max_size=25).map(" ".join)
any_text = st.one_of(word_text, st.text(max_size=40))
sample = st.tuples(any_text, st.lists(any_text, min_size=1, max_size=3))
samples = st.lists(sample, min_size=1, max_size=6)
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rouge_oracle(pred: str, refs: list[str], name: str) -> float:
    scorer = rouge_scorer.RougeScorer([ROUGE_TYPES[name]], use_stemmer=True)
    return float(scorer.score_multi(refs, pred)[ROUGE_TYPES[name]].fmeasure)


def _sacrebleu_oracle(pred: str, refs: list[str], name: str) -> float:
    score = sacrebleu.sentence_bleu if name == "bleu" else sacrebleu.sentence_chrf
    return float(score(pred, refs).score) / 100.0


# Minimal copy of the official SQuAD v2.0 evaluation script ("evaluate-v2.0.py",
# https://worksheets.codalab.org/rest/bundles/0x6b567e1cf2e041ec80d7098f031c5c9e/contents/blob/):
# normalize_answer, get_tokens, compute_exact, compute_f1, and the gold-answer filter of
# get_raw_scores.
def _squad_normalize(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return " ".join(remove_articles(remove_punc(s.lower())).split())


def _squad_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = _squad_normalize(a_gold).split() if a_gold else []
    pred_toks = _squad_normalize(a_pred).split() if a_pred else []
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def _squad_oracle(pred: str, refs: list[str], name: str) -> float:
    gold_answers = [a for a in refs if _squad_normalize(a)] or [""]
    if name == "exact_match":
        return max(int(_squad_normalize(a) == _squad_normalize(pred)) for a in gold_answers)
    return max(_squad_f1(a, pred) for a in gold_answers)


def _oracle(pred: str, refs: list[str], name: str) -> float:
    if name in ROUGE_TYPES:
        return _rouge_oracle(pred, refs, name)
    if name in ("bleu", "chrf"):
        return _sacrebleu_oracle(pred, refs, name)
    return _squad_oracle(pred, refs, name)


def _assert_matches_oracles(preds: list[str], refs: list[Any], names: list[str]) -> None:
    ours = evaluate_text(preds, refs, names)
    refs = [[r] if isinstance(r, str) else r for r in refs]
    for name in names:
        expected = np.array([_oracle(p, r, name) for p, r in zip(preds, refs, strict=True)])
        tol = 1e-12 if name in ROUGE_TYPES else 1e-9
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=tol, err_msg=name)
        assert ours[name].dtype == np.float64


# ---------------------------------------------------------------- oracles on generated inputs


@FAST
@given(samples)
def test_rouge_equals_rouge_score(batch: list[tuple[str, list[str]]]) -> None:
    preds, refs = [p for p, _ in batch], [r for _, r in batch]
    _assert_matches_oracles(preds, refs, ["rouge1", "rouge2", "rouge_l"])


@FAST
@given(samples)
def test_bleu_chrf_equal_sacrebleu(batch: list[tuple[str, list[str]]]) -> None:
    preds, refs = [p for p, _ in batch], [r for _, r in batch]
    _assert_matches_oracles(preds, refs, ["bleu", "chrf"])


@FAST
@given(samples)
def test_exact_match_token_f1_equal_squad_script(batch: list[tuple[str, list[str]]]) -> None:
    preds, refs = [p for p, _ in batch], [r for _, r in batch]
    _assert_matches_oracles(preds, refs, ["exact_match", "token_f1"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 150), st.integers(0, 150)), min_size=1, max_size=8))
def test_rouge_l_long_texts_equal_rouge_score(lengths: list[tuple[int, int]]) -> None:
    """Texts beyond 64 tokens take the big-int path; mixed lengths share numpy lanes."""
    rng = np.random.default_rng(sum(a * 151 + b for a, b in lengths))
    vocab = ["alpha", "beta", "gamma", "running", "runs", "the", "delta"]
    preds = [" ".join(rng.choice(vocab, size=a)) for a, _ in lengths]
    refs = [" ".join(rng.choice(vocab, size=b)) for _, b in lengths]
    _assert_matches_oracles(preds, refs, ["rouge_l", "rouge2"])


def test_many_pairs_span_several_lane_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_CUBE", 64 * 64 * 7)  # force chunks of a few rows
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(12)] + ["walking", "walked", "walks"]
    preds = [" ".join(rng.choice(vocab, size=rng.integers(0, 80))) for _ in range(120)]
    refs = [" ".join(rng.choice(vocab, size=rng.integers(0, 80))) for _ in range(120)]
    _assert_matches_oracles(preds, refs, ["rouge1", "rouge2", "rouge_l"])


def test_vocabulary_reset_between_calls_keeps_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_MAX_WORDS", 3)
    preds, refs = ["the cats were running home", "b c"], [["cat runs home"], ["a b c d"]]
    first = evaluate_text(preds, refs, ["rouge_l", "rouge2"])
    second = evaluate_text(["zeta eta theta iota", *preds], [["eta"], *refs], ["rouge_l", "rouge2"])
    for name in first:
        np.testing.assert_array_equal(second[name][1:], first[name])
    _assert_matches_oracles(preds, [list(r) for r in refs], ["rouge_l", "rouge2"])


def test_rouge_tokens_reproduce_rouge_score_tokenizer() -> None:
    tokenizer = rouge_scorer.tokenizers.DefaultTokenizer(use_stemmer=True)
    for s in [
        "The Cats were RUNNING, généralement!",
        "İstanbul \u212a 1990s x\x00y",
        "",
        "a-b_c",
        "it was his",
    ]:
        assert list(text.rouge_tokens(s)) == tokenizer.tokenize(s)


# ---------------------------------------------------------------- hand-computed cases


def test_hand_computed_values() -> None:
    out = evaluate_text(
        ["the cat sat", "Paris!", "", "paris paris"],
        [["a cat sat down"], ["paris"], [""], "Paris"],
        ["em", "f1", "rouge_l", "rouge1"],
    )
    np.testing.assert_array_equal(out["exact_match"], [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(out["token_f1"], [0.8, 1.0, 1.0, 2 / 3])
    # "the cat sat" vs "a cat sat down": LCS 2 ("cat sat"), P = 2/3, R = 2/4, F = 4/7.
    np.testing.assert_allclose(out["rouge_l"], [4 / 7, 1.0, 0.0, 2 / 3])
    np.testing.assert_allclose(out["rouge1"], out["rouge_l"])


def test_single_sample_helpers() -> None:
    assert exact_match("The Cat!", ["dog", "cat"]) == 1.0
    assert token_f1("", ["the", "Paris"]) == 0.0  # "the" normalises to "" and is ignored
    assert token_f1("", ["the", "a"]) == 1.0  # all empty: the gold answer is ""
    assert token_f1("blue green", ["green red"]) == 0.5


def test_bleu_chrf_are_on_unit_scale() -> None:
    out = evaluate_text(["the quick brown fox jumps"], [["the quick brown fox jumps"]], ALL)
    for name in ALL:
        assert out[name][0] == pytest.approx(1.0)


# ---------------------------------------------------------------- properties


@FAST
@given(word_text)
def test_rouge_l_of_text_with_itself_is_one(s: str) -> None:
    assume(text.rouge_tokens(s))
    out = evaluate_text([s], [s], ["rouge_l", "rouge1"])
    assert out["rouge_l"][0] == 1.0 and out["rouge1"][0] == 1.0


@FAST
@given(samples)
def test_scores_are_in_unit_interval(batch: list[tuple[str, list[str]]]) -> None:
    out = evaluate_text([p for p, _ in batch], [r for _, r in batch], ALL)
    for name, values in out.items():
        assert values.shape == (len(batch),), name
        assert np.all((values >= 0.0) & (values <= 1.0)), name


@FAST
@given(any_text, any_text)
def test_rouge_is_symmetric(a: str, b: str) -> None:
    forward = evaluate_text([a], [b], ["rouge1", "rouge2", "rouge_l"])
    backward = evaluate_text([b], [a], ["rouge1", "rouge2", "rouge_l"])
    for name in forward:
        np.testing.assert_allclose(forward[name], backward[name], rtol=1e-15, atol=0)


@FAST
@given(any_text, st.lists(any_text, min_size=1, max_size=4))
def test_multi_reference_is_max_of_single(pred: str, refs: list[str]) -> None:
    names = ["rouge1", "rouge2", "rouge_l", "exact_match", "token_f1"]
    multi = evaluate_text([pred], [refs], names)
    single = evaluate_text([pred] * len(refs), refs, names)
    for name in names:
        if name in ("exact_match", "token_f1") and any(not text.normalize_answer(r) for r in refs):
            continue  # SQuAD ignores references that normalise to "" (unless all do)
        assert multi[name][0] == single[name].max(), name


def _lcs_table(a: list[int], b: list[int]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev, row = row, [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
    return row[-1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=140), st.lists(st.integers(0, 5), max_size=140))
def test_lcs_length_equals_dynamic_programme(a: list[int], b: list[int]) -> None:
    assert lcs_length(a, b) == _lcs_table(a, b) == lcs_length(b, a)


# ---------------------------------------------------------------- errors and the API


def test_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(MetricError, match=r"len\(predictions\)=2 != len\(references\)=1"):
        evaluate_text(["a", "b"], ["a"], ["bleu"])


def test_sample_without_reference_is_refused() -> None:
    with pytest.raises(MetricError, match="sample 1: no reference"):
        evaluate_text(["a", "b"], [["a"], []], ["rouge_l"])


@pytest.mark.parametrize(
    ("name", "message"), [("ndcg@10", "ranking metric"), ("rogue_l", "did you")]
)
def test_non_text_or_unknown_metric_is_refused(name: str, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        evaluate_text(["a"], ["a"], [name])


def test_names_are_canonical_and_empty_input_gives_empty_arrays() -> None:
    out = evaluate_text([], [], ["rougeL", "ROUGE-1", "em", "f1", "chrf"])
    assert sorted(out) == ["chrf", "exact_match", "rouge1", "rouge_l", "token_f1"]
    assert all(v.shape == (0,) and v.dtype == np.float64 for v in out.values())


def test_import_pulls_no_heavy_or_oracle_module() -> None:
    code = (
        "import sys, guardrails.metrics.text\n"
        "bad = {'nltk', 'sacrebleu', 'rouge_score', 'torch'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---------------------------------------------------------------- real data: SQuAD v2 dev


def _squad_answerable() -> list[list[str]]:
    path = SQUAD / "small.json"
    if not path.exists():
        pytest.skip(f"public data absent: {path}")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        [a["text"] for a in qa["answers"]]
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
        if not qa.get("is_impossible") and qa["answers"]
    ]


def test_squad_answers_match_oracles() -> None:
    answers = _squad_answerable()
    preds = [a[0] for a in answers]
    perturbed = [f"the {' '.join(reversed(a[0].split()))} indeed" for a in answers]
    _assert_matches_oracles(preds + perturbed, answers + answers, ALL)
    assert evaluate_text(preds, answers, ["em"])["exact_match"].min() == 1.0
