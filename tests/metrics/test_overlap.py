"""Top-k overlap and rank-biased overlap: hand values, a naive eq. 32 reference, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.errors import MetricError
from guardrails.metrics.overlap import (
    overlap_per_query,
    rank_biased_overlap,
    rbo_per_query,
    top_k_overlap,
)

IDS = [f"d{i}" for i in range(25)]
rankings = st.lists(st.sampled_from(IDS), max_size=15, unique=True)
persistence = st.floats(0.05, 0.99)
SETTINGS = settings(max_examples=200, deadline=None)


def naive_rbo_ext(a, b, p):
    """Webber, Moffat & Zobel (2010) eq. 32, literally, with X_d from set intersections."""
    if not a and not b:
        return 1.0
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l = len(short), len(long_)  # noqa: E741
    if s == 0:
        return 0.0

    def x(d):
        return len(set(short[:d]) & set(long_[:d]))

    head = sum(x(d) / d * p**d for d in range(1, l + 1))
    extension = sum(x(s) * (d - s) / (s * d) * p**d for d in range(s + 1, l + 1))
    return (1 - p) / p * (head + extension) + ((x(l) - x(s)) / l + x(s) / s) * p**l


def test_hand_computed_values_equal_lengths():
    """A_d = 0, 1, 1, 3/4, 3/5: RBO = (1/9)(.81 + .729 + .75*.9^4 + .6*.9^5) + .6*.9^5.

    0.619335 is also what the ``rbo`` package (0.1.3, ``rbo_ext``) returns.
    """
    assert rank_biased_overlap(list("abcde"), list("bacfg"), 0.9) == pytest.approx(0.619335)


def test_hand_computed_values_uneven_lengths():
    """S = bxa, L = abcdefg: X_d = 0, 1, 2, 2, 2, 2, 2; s = 3, l = 7 (rbo 0.1.3: 0.585)."""
    p = 0.9
    head = 1 / 2 * p**2 + 2 / 3 * p**3 + sum(2 / d * p**d for d in range(4, 8))
    extension = sum(2 * (d - 3) / (3 * d) * p**d for d in range(4, 8))
    expected = (1 - p) / p * (head + extension) + (2 / 3) * p**7
    assert expected == pytest.approx(0.585)
    assert rank_biased_overlap(list("abcdefg"), list("bxa"), p) == pytest.approx(expected)
    assert rank_biased_overlap(list("bxa"), list("abcdefg"), p) == pytest.approx(expected)


def test_identity_disjoint_and_empty_conventions():
    assert rank_biased_overlap(IDS, IDS, 0.9) == pytest.approx(1.0)
    assert rank_biased_overlap(IDS[:5], IDS[5:12], 0.9) == 0.0
    assert rank_biased_overlap([], [], 0.9) == 1.0
    assert rank_biased_overlap(["a"], [], 0.9) == 0.0


@SETTINGS
@given(rankings, rankings, persistence)
def test_rbo_equals_naive_eq32(a, b, p):
    assert rank_biased_overlap(a, b, p) == pytest.approx(naive_rbo_ext(a, b, p), abs=1e-12)


@SETTINGS
@given(rankings, rankings, persistence)
def test_rbo_is_symmetric_and_bounded(a, b, p):
    value = rank_biased_overlap(a, b, p)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(rank_biased_overlap(b, a, p), abs=1e-12)


@SETTINGS
@given(rankings.filter(bool), persistence)
def test_rbo_of_a_ranking_with_itself_is_one(a, p):
    assert rank_biased_overlap(a, list(a), p) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(rankings.filter(lambda r: len(r) >= 2), persistence)
def test_swapping_the_top_pair_lowers_rbo(a, p):
    swapped = [a[1], a[0], *a[2:]]
    assert rank_biased_overlap(a, swapped, p) < 1.0


@SETTINGS
@given(rankings, rankings, st.integers(1, 20))
def test_top_k_overlap_bounds_symmetry_identity(a, b, k):
    value = top_k_overlap(a, b, k)
    assert 0.0 <= value <= 1.0
    assert value == top_k_overlap(b, a, k)
    assert top_k_overlap(a, a, k) == min(len(a), k) / k


def test_top_k_overlap_hand_value():
    assert top_k_overlap(list("abcd"), list("dbxy"), 2) == 0.5  # {a,b} ∩ {d,b}
    assert top_k_overlap(list("abcd"), list("dbxy"), 4) == 0.5
    assert top_k_overlap(list("a"), list("a"), 3) == pytest.approx(1 / 3)


def _as_run(ranking):
    """A run row ranking ``ranking`` in order (distinct, descending scores)."""
    return {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(rankings, rankings), min_size=1, max_size=6), persistence)
def test_batch_versions_equal_the_scalar_ones(pairs, p):
    run_a = {f"q{i}": _as_run(a) for i, (a, _) in enumerate(pairs)}
    run_b = {f"q{i}": _as_run(b) for i, (_, b) in enumerate(pairs)}
    qids = sorted(run_a)
    expected_rbo = [rank_biased_overlap(a, b, p) for a, b in (_pair(pairs, q) for q in qids)]
    np.testing.assert_allclose(rbo_per_query(run_a, run_b, p), expected_rbo, atol=1e-12)
    expected_top = [top_k_overlap(a, b, 3) for a, b in (_pair(pairs, q) for q in qids)]
    np.testing.assert_allclose(overlap_per_query(run_a, run_b, 3), expected_top, atol=1e-15)
    cut = [rank_biased_overlap(a[:4], b[:4], p) for a, b in (_pair(pairs, q) for q in qids)]
    np.testing.assert_allclose(rbo_per_query(run_a, run_b, p, depth=4), cut, atol=1e-12)


def _pair(pairs, qid):
    return pairs[int(qid[1:])]


def test_batch_default_qids_missing_queries_and_tie_order():
    run_a = {"q2": {"a": 1.0, "b": 1.0, "c": 0.5}, "q1": {"x": 1.0}}
    run_b = {"q2": {"b": 3.0, "a": 2.0}, "q3": {"y": 1.0}}
    # q1 and q3 exist in one run only; ties in q2 of run_a rank b before a (docid desc)
    np.testing.assert_allclose(overlap_per_query(run_a, run_b, 1), [0.0, 1.0, 0.0])
    rbo = rbo_per_query(run_a, run_b, 0.9)
    assert rbo[0] == 0.0 and rbo[2] == 0.0
    assert rbo[1] == pytest.approx(rank_biased_overlap(["b", "a", "c"], ["b", "a"], 0.9))
    np.testing.assert_allclose(rbo_per_query({}, {}, qids=["q"]), [1.0])
    assert overlap_per_query(run_a, run_b, 2, qids=["q2"]).tolist() == [1.0]


@pytest.mark.parametrize(
    "call",
    [
        lambda: rank_biased_overlap(["a"], ["a"], 1.0),
        lambda: rank_biased_overlap(["a"], ["a"], 0.0),
        lambda: rank_biased_overlap(["a", "a"], ["a"], 0.9),
        lambda: top_k_overlap(["a"], ["a"], 0),
        lambda: rbo_per_query({}, {}, depth=0),
    ],
)
def test_bad_arguments_raise_metric_error(call):
    with pytest.raises(MetricError):
        call()
