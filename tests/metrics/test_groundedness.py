"""Groundedness scores: known answers, invariants, and agreement with SQuAD-built labels."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.errors import MetricError
from guardrails.metrics.groundedness import (
    content_tokens,
    embedding_groundedness,
    groundedness,
    groundedness_scores,
    split_sentences,
)

CONTEXT = "Refunds take five business days. The payout fee is two percent per transfer."

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_groundedness.py"
_spec = importlib.util.spec_from_file_location("bench_groundedness", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up while the class is built
_spec.loader.exec_module(bench)


def test_sentence_quoted_from_the_context_is_fully_supported() -> None:
    assert groundedness("The payout fee is two percent per transfer.", CONTEXT) == 1.0


def test_known_value_unigrams_and_bigrams() -> None:
    # tokens: refun take five days; context bigrams lack (five, days): 4/4 and 2/3 -> 5/6
    assert groundedness("Refunds take five days.", CONTEXT) == pytest.approx((1 + 2 / 3) / 2)
    assert groundedness("Refunds take five days.", CONTEXT, max_n=1) == 1.0


def test_one_invented_sentence_sinks_the_answer() -> None:
    quoted = "Refunds take five business days."
    invented = "Call the moon office for a cashback voucher."
    assert groundedness(quoted, CONTEXT) == 1.0
    assert groundedness(f"{quoted} {invented}", CONTEXT) == groundedness(invented, CONTEXT)
    assert groundedness(invented, CONTEXT) == 0.0


def test_answer_without_content_claims_nothing() -> None:
    assert groundedness("", CONTEXT) == 1.0
    assert groundedness("It is what it is.", CONTEXT) == 1.0


def test_passages_do_not_join_across_their_border() -> None:
    joined = groundedness("alpha beta", "x alpha beta y")
    split = groundedness("alpha beta", ["x alpha", "beta y"])
    assert joined == 1.0 and split == pytest.approx(0.5)


def test_split_sentences_keeps_decimals_together() -> None:
    assert split_sentences("The fee is 2.5 percent. Next one!\nLast") == [
        "The fee is 2.5 percent.",
        "Next one!",
        "Last",
    ]


def test_content_tokens_drop_stop_words_and_stem_by_prefix() -> None:
    assert content_tokens("The refunds were refunded") == ["refun", "refun"]


def test_scores_check_rows_and_order() -> None:
    with pytest.raises(MetricError, match="2 answers but 1 contexts"):
        groundedness_scores(["a", "b"], [CONTEXT])
    with pytest.raises(MetricError, match="not one string"):
        groundedness_scores("abc", ["abc"])  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="max_n=0"):
        groundedness("a", "a", max_n=0)
    scores = groundedness_scores(["moon voucher", "payout fee"], [CONTEXT, CONTEXT])
    assert scores.tolist() == [0.0, 1.0]


VOCABULARY = "fee payout refund card days bank moon blue 2 7"
words = st.lists(st.sampled_from(VOCABULARY.split(" ")), max_size=12)


@settings(max_examples=60, deadline=None)
@given(answer=words, context=words)
def test_groundedness_is_in_unit_interval_and_a_superset_context_never_lowers_it(
    answer: list[str], context: list[str]
) -> None:
    a, c = " ".join(answer), " ".join(context)
    score = groundedness(a, c)
    assert 0.0 <= score <= 1.0
    assert groundedness(a, [c, a]) == 1.0  # the answer's own text supports it
    assert groundedness(a, [c, "extra words"]) >= score


class _BagOfWords:
    """A real (if simple) embedder: unit-norm hashed bag of content tokens."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64))
        for i, text in enumerate(texts):
            for token in content_tokens(text):
                out[i, sum(map(ord, token)) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def test_embedding_groundedness_best_context_sentence_min_over_answer() -> None:
    emb = _BagOfWords()
    quoted = "Refunds take five business days."
    scores = embedding_groundedness(
        [quoted, f"{quoted} Moon voucher.", "", quoted], [CONTEXT, CONTEXT, CONTEXT, ""], emb
    )
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] < 0.5
    assert scores[2] == 1.0 and scores[3] == 0.0


# ---- agreement with labels built from SQuAD 2.0 (benchmarks/bench_groundedness.py) ----------


@pytest.fixture(scope="module")
def squad_pairs(shared_data: Path) -> list:
    path = shared_data / "squad_v2_sample" / "small.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return bench.build_pairs(path)


def test_labelled_set_is_built_as_documented(squad_pairs: list) -> None:
    counts = {
        f: sum(p.family == f for p in squad_pairs) for f in bench.TASKS["claim vs both negatives"]
    }
    assert counts == {"supported": 293, "swapped": 291, "plausible": 333}
    swapped = [p for p in squad_pairs if p.family == "swapped"]
    assert all(p.label == 0 for p in swapped) and {p.half for p in swapped} == {0, 1}


@pytest.mark.parametrize("tune", [0, 1])
def test_token_groundedness_agrees_with_labels_on_the_held_out_half(
    squad_pairs: list, tune: int
) -> None:
    """Measured (seed 13): balanced accuracy 0.935 / 0.935, kappa 0.869 / 0.870 (tuned on
    half 0 / 1); floors are those minus a margin for a changed tokenizer or stop list."""
    scores = bench.token_scores(squad_pairs)
    result = bench.held_out(squad_pairs, scores, ("supported", "swapped"))[tune]
    assert result["balanced_accuracy"] >= 0.90
    assert result["kappa"] >= 0.80


def test_agreement_statistics_known_values() -> None:
    y = np.array([1, 1, 0, 0])
    stats = bench.agreement(np.array([0.9, 0.2, 0.1, 0.8]), y, 0.5)
    assert stats["accuracy"] == 0.5 and stats["balanced_accuracy"] == 0.5
    assert stats["kappa"] == pytest.approx(0.0)
    assert bench.choose_threshold(np.array([0.9, 0.7, 0.2, 0.1]), y) == pytest.approx(0.45)
