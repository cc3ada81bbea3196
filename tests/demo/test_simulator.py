"""Simulator: deterministic for a seed, realistic behaviour, each event visible in the signals."""

from __future__ import annotations

import itertools
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from guardrails.demo.simulator import (
    COMPLAINT_TEMPLATES,
    ComplaintSurge,
    EmbeddingShift,
    LatencyRegression,
    NewDomainLaunch,
    SimulationConfig,
    simulate,
    write_simulated_logs,
)
from guardrails.monitoring.logs import read_logs
from guardrails.monitoring.signals import compute_signals, rising_topics, token_jaccard

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
DAY = timedelta(hours=12)
pytestmark = pytest.mark.skipif(not (GOLDEN / "payments").is_dir(), reason="demo golden absent")


class TinyEmbedder:
    """Hashing bag-of-words embedder (dim 16): deterministic, no model."""

    def encode(self, texts):
        out = np.zeros((len(texts), 16))
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(16)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def config(**kw) -> SimulationConfig:
    base = {"seed": 3, "hours": 24.0, "sessions_per_hour": 30.0}
    return SimulationConfig(**{**base, **kw})


EVENTS = (
    NewDomainLaunch("devices", DAY, final_share=0.4, ramp_hours=2.0),
    LatencyRegression("rerank", 3.0, DAY),
    ComplaintSurge("payouts", 0.1, DAY),
    EmbeddingShift(DAY, angle=0.5, norm_scale=1.2),
)


@pytest.fixture(scope="module")
def records():
    return simulate(config(events=EVENTS), GOLDEN, embedder=TinyEmbedder())


@pytest.fixture(scope="module")
def halves(records):
    before, after = compute_signals(records, DAY)  # windows [0, 12h), [12h, 24h)
    return before, after


def test_deterministic_for_a_seed() -> None:
    small = config(hours=3.0, events=EVENTS[:2])
    assert simulate(small, GOLDEN) == simulate(small, GOLDEN)
    assert simulate(small, GOLDEN) != simulate(config(hours=3.0, seed=4), GOLDEN)


def test_new_domain_launch(records, halves) -> None:
    start = config().start
    devices = [r for r in records if r.domain == "devices"]
    assert devices and min(r.timestamp for r in devices) >= start + DAY.total_seconds()
    before, after = halves
    assert "devices" not in before.domain_share
    assert 0.25 < after.domain_share["devices"] < 0.45
    assert {r.versions["index"] for r in records if r.domain == "devices"}.isdisjoint(
        {r.versions["index"] for r in records if r.timestamp < start + 3600}
    )


def test_latency_regression(halves) -> None:
    before, after = halves
    assert after.latency_ms["rerank"].p95 > 2.5 * before.latency_ms["rerank"].p95
    assert after.latency_ms["total"].p95 > before.latency_ms["total"].p95
    ratio = after.latency_ms["search"].p50 / before.latency_ms["search"].p50
    assert 0.85 < ratio < 1.15  # the other stages did not move


def test_complaint_surge_raises_its_topic(halves) -> None:
    # TF-IDF topics are lexical: the surge may split by template, but every rising topic
    # must be about payouts and together they must hold most of the surge.
    assert all("payout" in t for t in COMPLAINT_TEMPLATES["payouts"])
    rising = rising_topics(*halves)
    assert rising
    for topic in rising:
        assert all("payout" in text for text in topic.representatives)
    after = halves[1]
    surge = 0.1 * after.n_queries
    assert sum(t.current_count - t.reference_count for t in rising) > 0.6 * surge


def test_embedding_shift(records, halves) -> None:
    before, after = halves
    assert before.embedding_norms.mean == pytest.approx(1.0, abs=1e-6)
    assert after.embedding_norms.mean == pytest.approx(1.2, abs=1e-6)
    same = TinyEmbedder().encode([r.query for r in records if r.domain == "devices"][:50])
    logged = np.array([r.query_embedding for r in records if r.domain == "devices"][:50])
    cosines = np.sum(same * logged, axis=1) / np.linalg.norm(logged, axis=1)
    assert 0.5 < cosines.mean() < 0.99  # rotated, not replaced
    start = config().start + DAY.total_seconds()
    assert len({r.versions["embedder"] for r in records if r.timestamp >= start}) == 1
    assert {r.versions["embedder"] for r in records if r.timestamp >= start}.isdisjoint(
        {r.versions["embedder"] for r in records if r.timestamp < start}
    )


def test_realistic_behaviour(records, halves) -> None:
    clicks_at = np.zeros(10)
    for r in records:
        ids = [h.doc_id for h in r.shown]
        for d in r.clicked:
            clicks_at[ids.index(d)] += 1
        if r.clicked:  # skips lie above the last click, and are never clicked
            last = max(ids.index(d) for d in r.clicked)
            assert set(r.skipped) <= set(ids[:last]) - set(r.clicked)
        assert list(r.shown) == sorted(r.shown, key=lambda h: -h.score)
    assert clicks_at[0] > 2 * clicks_at[4] > 0  # position bias
    before, _ = halves
    assert 0.5 < before.ctr < 0.95 and 0.05 < before.repeat_query_rate < 0.4
    assert before.like_rate > before.dislike_rate > 0 and 0 < before.hallucination_rate < 0.1
    ab = [r.ab for r in records if r.ab]
    assert 0.05 < len(ab) / len(records) < 0.15
    assert {a["winner"] for a in ab} == {"a", "b", "tie"}


def test_repeats_are_near_duplicates_in_one_session(records) -> None:
    by_session: dict[str, list] = {}
    for r in records:
        by_session.setdefault(r.session_id, []).append(r)
    pairs = [
        (a.query, b.query)
        for rs in by_session.values()
        for a, b in itertools.pairwise(rs)
        if a.query_id == b.query_id and a.query_id and b.timestamp - a.timestamp < 90
    ]
    assert pairs and np.mean([token_jaccard(a, b) >= 0.6 for a, b in pairs]) > 0.8


def test_write_simulated_logs(tmp_path: Path) -> None:
    cfg = config(hours=6.0, events=(NewDomainLaunch("devices", timedelta(hours=3)),))
    ref_path, cur_path = write_simulated_logs(tmp_path, cfg, GOLDEN)
    ref, cur = read_logs(ref_path), read_logs(cur_path)
    assert ref.errors == () and cur.errors == () and len(ref) and len(cur)
    assert max(r.timestamp for r in ref.records) < min(r.timestamp for r in cur.records)
    assert {r.domain for r in ref.records} == {"payments"}
    assert len(ref) + len(cur) == len(simulate(cfg, GOLDEN))


def test_bad_events_are_refused() -> None:
    with pytest.raises(ValueError, match="topic='nope'"):
        simulate(config(events=(ComplaintSurge("nope", 0.1, DAY),)), GOLDEN)
    with pytest.raises(ValueError, match="component='gpu'"):
        simulate(config(events=(LatencyRegression("gpu", 2.0, DAY),)), GOLDEN)
