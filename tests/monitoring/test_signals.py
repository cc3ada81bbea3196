"""Signals: exact values on hand-written logs (computed by hand below), windows, properties."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.errors import MetricError
from guardrails.monitoring.logs import Feedback, Hit, LogRecord
from guardrails.monitoring.signals import (
    compute_signals,
    content_tokens,
    fit_complaint_topics,
    groundedness,
    percentiles,
    rate,
    repeat_flags,
    rising_topics,
    token_jaccard,
)

T = 1772323200.0  # a multiple of 300 and 3600: windows start here
QRELS = {"q1": {"d2": 2, "d3": 0}, "q2": {"d7": 1}}
DOCS = {
    "d1": "Open settings to reset a password.",
    "d2": "Reset the password from the settings page.",
    "d3": "Moon rocks.",
    "d4": "x",
    "d5": "Payouts take two days.",
}


def hand_logs() -> list[LogRecord]:
    return [
        LogRecord(
            T, "A", "reset my password", query_id="q1", domain="payments",
            retrieved=(Hit("d1", 0.9), Hit("d2", 0.8), Hit("d3", 0.7)),
            reranked=(Hit("d2", 3.0), Hit("d1", 1.0), Hit("d3", -1.0)),
            answer="Reset the password from settings.",
            latency_ms={"embed": 10, "search": 5, "rerank": 20, "generate": 65},  # total 100
            memory_mb=1000, clicked=("d2",), dwell_s={"d2": 30.0}, scroll_depth=0.5,
            feedback=Feedback.LIKE,
        ),
        LogRecord(
            T + 60, "A", "reset my password please", query_id="q1", domain="payments",
            retrieved=(Hit("d3", 0.5), Hit("d4", 0.4)),
            reranked=(Hit("d3", 0.0), Hit("d4", -2.0)),
            answer="Call the moon office.", latency_ms={"total": 200}, memory_mb=3000,
            scroll_depth=1.0, feedback=Feedback.DISLIKE, complaint="answer made no sense",
        ),
        LogRecord(
            T + 120, "B", "payout late", query_id="q2", domain="devices",
            retrieved=(Hit("d5", 0.5),), answer="Payouts arrive in two days.",
            latency_ms={"total": 300}, clicked=("d9",), dwell_s={"d9": 10.0},
            feedback=Feedback.FLAG, flag_reason="hallucination",
        ),
        LogRecord(
            T + 500, "A", "reset my password", query_id="q1", domain="payments",
            latency_ms={"total": 400}, error="boom", feedback=Feedback.FLAG,
            flag_reason="unsafe", ab={"a": "x", "b": "y", "winner": "b"},
        ),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one_window():
    (w,) = compute_signals(hand_logs(), qrels=QRELS, doc_texts=DOCS)
    return w


def test_latency_percentiles_by_hand(one_window) -> None:
    total = one_window.latency_ms["total"]  # [100, 200, 300, 400]; r1's total = sum of stages
    assert (total.n, total.mean, total.p50) == (4, 250.0, 250.0)
    assert total.p95 == pytest.approx(385.0)  # 300 + 0.85 * 100 (linear, index 2.85)
    assert total.p99 == pytest.approx(397.0)
    assert one_window.latency_ms["embed"].n == 1 and one_window.latency_ms["embed"].p99 == 10.0


def test_volume_and_memory_by_hand(one_window) -> None:
    w = one_window
    assert (w.n_queries, w.n_sessions) == (4, 2)
    assert w.throughput_qps == pytest.approx(4 / 500)
    assert (w.memory_mean_mb, w.memory_max_mb) == (2000.0, 3000.0)
    assert w.domain_share == {"payments": 0.75, "devices": 0.25}


def test_behaviour_by_hand(one_window) -> None:
    w = one_window
    assert w.ctr == 0.5  # r1, r3 clicked
    assert w.hit_rate_clicked == pytest.approx(1 / 3)  # r3 clicked d9, not shown; r4 no list
    assert w.hit_rate_relevant == 0.25  # only r1 has a grade > 0 doc in its top-k
    assert w.mean_dwell_s == 20.0 and w.mean_scroll_depth == 0.75
    assert w.repeat_query_rate == 0.25  # r2 (J = 3/4, 60 s); r4 is 440 s after r2


def test_feedback_and_quality_by_hand(one_window) -> None:
    w = one_window
    assert (w.like_rate, w.dislike_rate, w.flag_rate) == (0.25, 0.25, 0.5)
    assert (w.hallucination_rate, w.unsafe_rate) == (0.25, 0.25)
    assert (w.error_rate, w.complaint_rate, w.ab_b_win_rate) == (0.25, 0.25, 1.0)
    # r1: reset/password/settings all in d2 -> 1; r2: call/moon/office vs d3 -> 1/3;
    # r3: payouts/arrive/two/days vs d5 -> 3/4; r4 has no answer.
    assert w.groundedness == pytest.approx((1 + 1 / 3 + 0.75) / 3)


def test_score_distribution_by_hand(one_window) -> None:
    scores = one_window.rerank_scores  # r1 [3, 1, -1], r2 [0, -2]
    assert scores.n == 5 and scores.mean == pytest.approx(0.2)
    assert scores.quantiles["p50"] == 0.0 and sum(scores.histogram) == 5
    assert scores.edges[0] == -2.0 and scores.edges[-1] == 3.0
    assert one_window.embedding_norms is None


def test_tumbling_windows_keep_empty_ones() -> None:
    logs = [*hand_logs(), LogRecord(T + 1000, "C", "late one", latency_ms={"total": 5})]
    windows = compute_signals(logs, timedelta(minutes=5))
    assert [w.start - T for w in windows] == [0, 300, 600, 900]
    assert [w.n_queries for w in windows] == [3, 1, 0, 1]
    assert windows[0].throughput_qps == pytest.approx(3 / 300)
    assert math.isnan(windows[2].ctr) and math.isnan(windows[2].latency_ms["total"].p95)
    assert windows[0].latency_ms["total"].p50 == 200.0


def test_repeat_by_embedding_cosine_and_session_rules() -> None:
    def rec(t, session, query, emb=None):
        return LogRecord(T + t, session, query, query_embedding=emb)

    logs = [
        rec(0, "A", "how to reset", (1.0, 0.0)),
        rec(10, "A", "password help", (0.96, 0.28)),  # cosine 0.96, Jaccard 0
        rec(20, "A", "payout late", (0.0, 1.0)),  # cosine 0.28 with the second
        rec(30, "B", "payout late"),  # other session
        rec(40 + 301, "B", "payout late"),  # 301 s after its latest twin
        rec(40, "B", "payout late!!"),  # same tokens, 10 s later
    ]
    assert repeat_flags(logs).tolist() == [False, True, False, False, False, True]


def test_rising_complaint_topics() -> None:
    payout = ["payout is late again", "my payout never arrived", "payout still missing"]
    slow = ["the app is slow", "so slow today"]

    def logs(start, n, complaints):
        out = [LogRecord(start + i, f"s{i}", "q") for i in range(n)]
        for i, text in enumerate(complaints):
            out[i] = LogRecord(start + i, f"s{i}", "q", complaint=text)
        return out

    ref = logs(T, 100, [payout[0], payout[1], slow[0], slow[1]])
    cur = logs(T + 1000, 100, [payout[i % 3] for i in range(20)] + slow)
    topics = fit_complaint_topics(payout + slow, n_topics=2)
    (r,), (c,) = compute_signals(ref, topics=topics), compute_signals(cur, topics=topics)
    rising = rising_topics(r, c)
    assert len(rising) == 1 and "payout" in rising[0].label
    assert (rising[0].reference_count, rising[0].current_count) == (2, 20)
    assert rising[0].current_rate == 0.2 and rising[0].p_value < 0.01
    assert rising_topics(c, r) == []
    (other,) = compute_signals(cur, topics=fit_complaint_topics(payout + slow + ["x y z"] * 3))
    with pytest.raises(MetricError, match="different complaint-topic models"):
        rising_topics(r, other)


def test_empty_input_gives_no_windows() -> None:
    assert compute_signals([]) == []


# ----------------------------------------------------------------------------- properties

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=50), st.lists(st.floats(0, 100), min_size=1))
def test_percentiles_match_numpy_and_ignore_nan(xs, qs) -> None:
    got = percentiles([*xs, math.nan], qs)
    np.testing.assert_allclose(got, np.percentile(xs, qs))
    assert np.all(got >= min(xs) - 1e-9) and np.all(got <= max(xs) + 1e-9)
    ordered = percentiles(xs, sorted(qs))
    assert np.all(np.diff(ordered) >= -1e-6 * (1 + np.abs(ordered[:-1])))


def test_percentiles_of_nothing_are_nan() -> None:
    assert np.isnan(percentiles([], (50, 99))).all()
    assert np.isnan(percentiles([math.nan], (50,))).all()


@given(st.lists(st.booleans(), max_size=60))
def test_rate_properties(mask) -> None:
    r = rate(mask)
    if not mask:
        assert math.isnan(r)
        return
    assert r == sum(mask) / len(mask)
    assert r + rate([not m for m in mask]) == pytest.approx(1.0)
    valid = [i % 2 == 0 for i in range(len(mask))]
    assert rate(mask, np.array(valid)) == pytest.approx(
        sum(m for m, v in zip(mask, valid, strict=True) if v) / sum(valid)
    )


words = st.lists(st.sampled_from(["pay", "out", "late", "card", "fee", "wifi", "x1"]), max_size=8)


@given(words, words)
def test_token_jaccard_properties(a, b) -> None:
    sa, sb = " ".join(a), " ".join(b)
    j = token_jaccard(sa, sb)
    assert 0.0 <= j <= 1.0 and j == token_jaccard(sb, sa) and token_jaccard(sa, sa) == 1.0
    if set(a) | set(b):
        assert j == pytest.approx(len(set(a) & set(b)) / len(set(a) | set(b)))


@given(words, words)
def test_groundedness_properties(passage, extra) -> None:
    text = " ".join(passage)
    g = groundedness(text, [text])
    assert math.isnan(g) if not content_tokens(text) else g == 1.0
    mixed = groundedness(" ".join(passage + extra), [text])
    assert math.isnan(mixed) or 0.0 <= mixed <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 50_000), min_size=1, max_size=40), st.integers(60, 7200))
def test_windows_partition_the_records(offsets, seconds) -> None:
    logs = [LogRecord(T + o, f"s{i}", "q") for i, o in enumerate(offsets)]
    windows = compute_signals(logs, timedelta(seconds=seconds))
    assert sum(w.n_queries for w in windows) == len(logs)
    assert all(w.start % seconds == 0 and w.end - w.start == seconds for w in windows)
    for w in windows:
        inside = [r for r in logs if w.start <= r.timestamp < w.end]
        assert len(inside) == w.n_queries
