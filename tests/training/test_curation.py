"""Curation: exact counts on hand-written logs (worked out in the comments), properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.monitoring.logs import Feedback, Hit, LogRecord
from guardrails.training.curation import (
    Row,
    TopicFilter,
    balance,
    curate,
    dpo_pairs,
    kto_examples,
    logged_query_vectors,
    near_duplicates,
    normalize_text,
    prepare,
    reranker_examples,
    reranker_labels,
    retriever_triplets,
    sft_pairs,
    write_dataset,
)

T = 1772323200.0


def rec(
    i,
    query,
    shown,
    clicked=(),
    skipped=(),
    dwell=None,
    feedback=None,
    answer=None,
    ab=None,
    domain="payments",
    error=None,
):
    hits = tuple(Hit(d, s) for d, s in shown)
    return LogRecord(
        T + i,
        f"s{i}",
        query,
        domain=domain,
        retrieved=hits,
        reranked=hits,
        clicked=tuple(clicked),
        skipped=tuple(skipped),
        dwell_s=dwell or {},
        feedback=feedback,
        answer=answer,
        ab=ab,
        error=error,
    )


SHOWN = (("d1", 3.0), ("d2", 2.0), ("d3", 1.0), ("d4", 0.5))
LOGS = [
    # skipped d1, d2 above the click on d3 -> 2 triplets; labels d3=2 (dwell 40), d1=0, d2=0
    rec(0, "payout  late", SHOWN, ["d3"], ["d1", "d2"], {"d3": 40.0}, Feedback.LIKE, "Two days."),
    # d1 clicked (dwell 5 -> 1), d4 clicked (no dwell -> 1), d2 skipped: above d4 only
    # -> triplets (d4, d2); a skip below every click gives no triplet for d1
    rec(1, "Payout late", SHOWN, ["d1", "d4"], ["d2"], {"d1": 5.0}, Feedback.DISLIKE, "No idea."),
    # no clicks: no triplets, no labels; an A/B where b wins
    rec(2, "fee for refunds", SHOWN, ab={"a": "Free.", "b": "It costs $1.", "winner": "b"}),
    # exact duplicate of record 0 after NFKC + whitespace + case (the full-width "ｐ")
    rec(3, "ｐayout late", SHOWN, ["d3"], ["d1", "d2"], {"d3": 41.0}, Feedback.LIKE, "Two days."),
    # flagged answer for the same prompt as record 0 -> pairs with the 2nd liked answer
    rec(4, "payout late", SHOWN, [], [], None, Feedback.FLAG, "It was sent to the moon."),
    # an A/B tie is dropped; an errored answer is never a training answer
    rec(
        5,
        "thermostat offline",
        SHOWN,
        ["d2"],
        ["d1"],
        None,
        Feedback.LIKE,
        "Restart.",
        {"a": "x", "b": "y", "winner": "tie"},
        domain="devices",
        error="Timeout",
    ),
]


def test_retriever_triplets_click_over_skip_above() -> None:
    rows = retriever_triplets(LOGS)
    got = [(r.data["query"], r.data["positive"], r.data["negative"]) for r in rows]
    assert got == [
        ("payout  late", "d3", "d1"),
        ("payout  late", "d3", "d2"),
        ("Payout late", "d4", "d2"),
        ("ｐayout late", "d3", "d1"),
        ("ｐayout late", "d3", "d2"),
        ("thermostat offline", "d2", "d1"),
    ]


class FakeRetriever:
    def search_run(self, ids, texts, k=10):
        return {i: {"d1": 0.9, "d9": 0.8, "d3": 0.7} for i in ids}


def test_hard_negatives_are_top_unclicked_index_results() -> None:
    rows = retriever_triplets(LOGS[:2], retriever=FakeRetriever())
    # record 0: clicked d3; skips d1, d2; hard negative d1 already there -> 2 triplets.
    # record 1: clicked d1, d4; top unclicked from the index is d9 -> d1: [d9], d4: [d2, d9]
    got = [(r.data["positive"], r.data["negative"]) for r in rows]
    assert got == [("d3", "d1"), ("d3", "d2"), ("d1", "d9"), ("d4", "d2"), ("d4", "d9")]


def test_reranker_labels_graded_from_click_and_dwell() -> None:
    got = [(r.data["query"][:6], r.data["doc_id"], r.data["label"]) for r in reranker_labels(LOGS)]
    assert got == [
        ("payout", "d3", 2),
        ("payout", "d1", 0),
        ("payout", "d2", 0),
        ("Payout", "d1", 1),
        ("Payout", "d4", 1),
        ("Payout", "d2", 0),
        ("ｐayout", "d3", 2),
        ("ｐayout", "d1", 0),
        ("ｐayout", "d2", 0),
        ("thermo", "d2", 1),
        ("thermo", "d1", 0),
    ]


def test_reranker_top_and_failing_by_score() -> None:
    rows = reranker_examples(LOGS, n=2)
    got = [(r.data["kind"], r.data["doc_id"], r.data["score"]) for r in rows]
    # clicked: d3@1.0 (x2), d1@3.0, d4@0.5, d2@2.0; skipped: d1@3.0 (x3), d2@2.0 (x3)
    assert got == [
        ("top", "d1", 3.0),
        ("top", "d2", 2.0),
        ("failing", "d1", 3.0),
        ("failing", "d1", 3.0),
    ]


def test_sft_dpo_kto_sets() -> None:
    sft = [r.data for r in sft_pairs(LOGS)]
    assert [s["prompt"] for s in sft] == ["payout  late", "ｐayout late"]  # record 5 errored
    assert sft[0]["context"] == ["d1", "d2", "d3"] and sft[0]["answer"] == "Two days."
    dpo = [dict(r.data) for r in dpo_pairs(LOGS)]
    # every pair carries the passages its answers were generated from (the top shown docs)
    assert [d.pop("context") for d in dpo] == [["d1", "d2", "d3"]] * 3
    # A/B: b wins (the tie is dropped); key "payout late": liked [0, 3], disliked [1, 4]
    assert dpo == [
        {"prompt": "fee for refunds", "chosen": "It costs $1.", "rejected": "Free."},
        {"prompt": "payout  late", "chosen": "Two days.", "rejected": "No idea."},
        {"prompt": "ｐayout late", "chosen": "Two days.", "rejected": "It was sent to the moon."},
    ]
    assert all(r.data["context"] == ["d1", "d2", "d3"] for r in kto_examples(LOGS))
    kto = [(r.data["completion"], r.data["label"]) for r in kto_examples(LOGS)]
    assert kto == [
        ("Two days.", True),
        ("No idea.", False),
        ("Two days.", True),
        ("It was sent to the moon.", False),
    ]


def test_curate_counts_datasheet_and_files(tmp_path: Path) -> None:
    sets = curate(LOGS, sources=["prod.jsonl"])
    triplets = sets["retriever_triplets"]
    # 6 in; NFKC + whitespace + case make record 3's two triplets exact copies of record 0's;
    # near dups are looked for within one (positive, negative): each pair is alone -> 4 kept;
    # balance by topic: payments 3, devices 1 -> 1 each
    assert triplets.datasheet.steps == (
        ("normalise", 6, 6),
        ("exact_duplicates", 6, 4),
        ("near_duplicates", 4, 4),
        ("balance_topics", 4, 2),
    )
    assert triplets.datasheet.counts_by_topic == {"devices": 1, "payments": 1}
    kto = sets["kto"]
    # 4 in, record 3's row duplicates record 0's; classes true 1 / false 2 -> 1 each
    assert kto.datasheet.steps == (
        ("normalise", 4, 4),
        ("exact_duplicates", 4, 3),
        ("near_duplicates", 3, 3),
        ("balance_classes", 3, 2),
    )
    path = write_dataset(triplets, tmp_path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2 and set(lines[0]) == {"query", "positive", "negative"}
    sheet = json.loads((tmp_path / "retriever_triplets.datasheet.json").read_text())
    assert sheet["fingerprint"].startswith("sha256:") and sheet["sources"] == ["prod.jsonl"]
    assert sheet["window"][0].startswith("2026-03-01T00:00")
    assert (
        triplets.datasheet.fingerprint == curate(LOGS)["retriever_triplets"].datasheet.fingerprint
    )


def test_near_duplicates_and_topic_filter() -> None:
    texts = [
        "how do I reset my password",
        "how do I reset my password please",
        "how I reset my password",
        "payout is late",
    ]
    # J(0,1) = 6/7 >= 0.8 -> dropped; J(0,2) = 5/6 -> dropped; 3 shares nothing
    assert near_duplicates(texts) == [0, 3]
    rows = [Row({"q": t}, t, topic=topic) for t, topic in zip(texts, "abab", strict=True)]
    kept = prepare("x", rows, topic_filter=TopicFilter(topics=frozenset({"a"})))
    assert kept.datasheet.steps[-1] == ("off_topic", 2, 1)
    assert normalize_text("  Ａ\u00a0b \n c ") == "A b c"


texts = st.lists(st.text(alphabet="ab cd", max_size=12), max_size=25)


@settings(max_examples=60, deadline=None)
@given(texts, st.sampled_from([0.5, 0.8, 1.0]))
def test_near_duplicates_idempotent_and_pairwise_distinct(items, threshold) -> None:
    from guardrails.training.curation import _jaccard, _tokens

    keep = near_duplicates(items, threshold)
    kept = [items[i] for i in keep]
    assert near_duplicates(kept, threshold) == list(range(len(kept)))
    for i, a in enumerate(kept):
        for b in kept[:i]:
            assert _jaccard(_tokens(a), _tokens(b)) < threshold
    for j, t in enumerate(items):  # every dropped text has a kept near duplicate before it
        if j not in keep:
            assert any(_jaccard(_tokens(t), _tokens(items[i])) >= threshold for i in keep if i < j)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("xyz"), max_size=40), st.integers(0, 5))
def test_balance_equalises_groups(labels, seed) -> None:
    rows = [Row({"i": i}, str(i), cls=c) for i, c in enumerate(labels)]
    out = balance(rows, lambda r: r.cls, seed)
    counts = {c: sum(r.cls == c for r in out) for c in set(labels)}
    if len(set(labels)) >= 2:
        assert len(set(counts.values())) == 1
        assert set(counts.values()) == {min(labels.count(c) for c in set(labels))}
    else:
        assert out == rows
    ids = [r.data["i"] for r in out]
    assert ids == sorted(ids) and set(ids) <= set(range(len(labels)))
    assert out == balance(rows, lambda r: r.cls, seed)


def test_decontamination_drops_held_out_queries_and_counts_them() -> None:
    from guardrails.training.curation import Row, decontaminate, prepare

    rows = [
        Row({"query": q}, q)
        for q in [
            "my payout never arrived",
            "My payout never arrived!",
            "payout arrived never my",
            "how do I add a team member",
            "thermostat shows E4",
        ]
    ]
    kept = decontaminate(rows, ["my payout never arrived"])
    assert [r.text for r in kept] == ["how do I add a team member", "thermostat shows E4"]
    ds = prepare("t", rows, exclude_texts=["thermostat shows e4"])
    step = dict((s[0], (s[1], s[2])) for s in ds.datasheet.steps)["decontaminate"]
    assert step == (5, 4)


class _Words:
    """Bag-of-words vectors over a fixed vocabulary; counts what it is asked to encode."""

    fingerprint = "words:v1"
    VOCAB = ("payout", "late", "refund", "card", "fee", "banana", "bread", "recipe")

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        self.encoded += list(texts)
        return np.array([[float(w in t.lower().split()) for w in self.VOCAB] for t in texts])


def test_nearest_anchor_filter_drops_off_topic_and_describes_itself_stably() -> None:
    words = _Words()
    anchors = {"d1": "payout late", "d2": "refund card fee"}
    topic_filter = TopicFilter.from_anchors(words, anchors, topics=["payments"], min_cosine=0.25)
    texts = ["payout late", "banana bread recipe", "card fee", "payout late", "refund"]
    rows = [Row({"q": t}, t, topic="payments") for t in texts]
    rows.append(Row({"q": "x"}, "late card refund", topic="devices"))  # not a configured topic
    kept = prepare("x", rows, topic_filter=topic_filter)
    assert [r.text for r in kept.rows] == ["payout late", "card fee", "refund"]
    assert ("off_topic", 5, 3) in kept.datasheet.steps  # after the exact duplicate went
    # every distinct text is encoded once (anchors, then the rows)
    assert sorted(words.encoded) == sorted({*anchors.values(), *texts})
    described = kept.datasheet.params["topic_filter"]
    assert described == TopicFilter.from_anchors(_Words(), anchors, topics=["payments"]).describe()
    assert described["embedder"] == "words:v1" and described["topics"] == ["payments"]
    assert "0x" not in json.dumps(described)  # no object address: the datasheet is stable


def test_logged_query_vectors_are_used_only_when_they_match_the_embedder() -> None:
    words = _Words()
    texts = ["payout late", "refund card", "card fee"]
    vectors = words.encode_queries(texts)
    records = [
        LogRecord(T + i, f"s{i}", t, query_embedding=tuple(v))
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]
    logged = logged_query_vectors(records, words)
    assert sorted(logged) == sorted(texts)
    other = [
        LogRecord(r.timestamp, r.session_id, r.query, query_embedding=tuple(v[::-1]))
        for r, v in zip(records, vectors, strict=True)
    ]
    assert logged_query_vectors(other, words) == {}  # another embedder's space: not mixed in
    assert logged_query_vectors([LogRecord(T, "s", "q")], words) == {}
