"""Shadow index vs production: golden quality, agreement on traffic, latency, throughput, memory.

The shadow is the candidate embedder over a freshly built index (``--guardrails-shadow-index``,
HNSW by default). A sample of traffic (every golden query plus logged production queries) is
mirrored to both; ``--guardrails-shadow-share`` replays a gradual migration with only that
share routed to the shadow.

Performance guardrails, each paired: mean per-query latency (paired by query), p95 latency
(per contiguous block of routed queries, paired by block: a quantile is not a per-query
score), batch throughput over the whole traffic sample (paired by repeat, the side that
goes first alternating), and serving memory (index + embedder weights: one number per side,
recorded as a fact and bounded at 1.5x production's).

Shadow *model*: a seeded sample of logged production queries (``GUARDRAILS_SHADOW_MODEL_QUERIES``,
48 by default) plus every must-refuse canary as a safety probe is replayed through production's
retriever, then through the production and the candidate reranker (top-1 agreement and RBO
floors) and, on production's top passages, through the production and the candidate generator:
groundedness non-inferior, no new unsafe answer, no new refusal of a safe query (paired per
query). Latencies and answer agreement are recorded as facts.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

# Throughput repeats: with the exact sign-flip test the smallest p-value is 2**-repeats, and a
# failure must survive Holm across the run's ~30 gates (0.05 / 30 ~ 0.0017): 10 repeats.
THROUGHPUT_REPEATS = 10
MEMORY_RATIO = 1.5  # the shadow may need at most this multiple of production's memory
# Shadow model: replayed logged queries (a small generator answers ~1 s per query on 2 cores),
# queries timed with the caches bypassed, passages per answer, rerank depth, and the agreement
# floor used when the policy sets no `min` for top_k_overlap@1 / rbo.
SHADOW_MODEL_QUERIES = int(os.environ.get("GUARDRAILS_SHADOW_MODEL_QUERIES", "48"))
SHADOW_MODEL_TIMED = int(os.environ.get("GUARDRAILS_SHADOW_MODEL_TIMED", "8"))
# reranker latency is evidence (no gate on it): 16 queries one at a time, not all 60 (the
# 60 took about 50 s of every run, warm runs included, since timings are always live)
SHADOW_RERANKER_TIMED = int(os.environ.get("GUARDRAILS_SHADOW_RERANKER_TIMED", "16"))
PASSAGES = 3
RERANK_DEPTH = 20
AGREEMENT_FLOOR = 0.5


@pytest.fixture(scope="session")
def traffic(retrieval_golden: dict[str, Any], logged_queries: list[str]) -> list[tuple[str, str]]:
    """The mirrored sample: every golden query, then logged production queries."""
    from guardrails.components.shadow import traffic_sample

    golden = [(q, g.queries[q]) for g in retrieval_golden.values() for q in g.query_ids]
    return traffic_sample(golden, logged_queries, size=len(golden) + 100)


@pytest.fixture(scope="session")
def replay(
    pytestconfig: pytest.Config,
    traffic: list[tuple[str, str]],
    production_retriever: Any,
    shadow_retriever: Any,
) -> Any:
    from guardrails.components.shadow import replay_traffic

    return replay_traffic(
        production_retriever,
        shadow_retriever,
        traffic,
        shadow_share=pytestconfig.getoption("--guardrails-shadow-share"),
    )


@pytest.fixture(scope="session")
def serving_memory(production_retriever: Any, shadow_retriever: Any) -> dict[str, dict[str, int]]:
    """Bytes each side holds to serve: index + embedder parameters and buffers."""
    from guardrails.components.shadow import serving_memory_bytes

    return {
        "production": serving_memory_bytes(production_retriever),
        "shadow": serving_memory_bytes(shadow_retriever),
    }


def _record(gate: Any, production: Any, shadow: Any) -> None:
    for role, retriever in (("baseline", production), ("candidate", shadow)):
        for component, fp in retriever.fingerprints.items():
            gate.record(artifact={"component": component, "role": role, "fingerprint": fp})


def test_shadow_golden_quality(
    gate: Any,
    replay: Any,
    retrieval_golden: dict[str, Any],
    production_retriever: Any,
    shadow_retriever: Any,
    domain: str,
) -> None:
    """On the routed golden queries the shadow is no worse than production (nDCG@10)."""
    golden = retrieval_golden[domain]
    qids = [q for q in golden.query_ids if q in set(replay.query_ids)]
    _record(gate, production_retriever, shadow_retriever)
    gate.noninferior(
        "ndcg@10",
        candidate=replay.shadow_run,
        baseline=replay.production_run,
        qrels=golden,
        ids=qids,
        name=f"shadow-{domain}:ndcg@10",
    )


def test_shadow_agrees_on_traffic(gate: Any, replay: Any) -> None:
    """The shadow's top-10 overlaps production's on the traffic sample (a sanity floor: a
    new embedder may reorder, but not return unrelated documents)."""
    ids = list(replay.query_ids)
    gate.at_least("top_k_overlap@10", candidate=replay.overlap, ids=ids, name="shadow-overlap")
    gate.at_least("rbo", candidate=replay.rbo, ids=ids, name="shadow-rbo")


def test_shadow_latency(gate: Any, replay: Any, serving_memory: dict[str, Any]) -> None:
    """Per-query latency (embed + search) of the shadow is non-inferior to production's."""
    gate.record(facts={**replay.to_extra(), "serving_memory_bytes": serving_memory})
    result = gate.noninferior(
        "latency",
        candidate=replay.shadow_latency_ms,
        baseline=replay.production_latency_ms,
        ids=list(replay.query_ids),
        name="shadow-latency",
    )
    assert result.passed


def test_shadow_latency_p95(gate: Any, replay: Any) -> None:
    """The shadow's p95 latency is non-inferior to production's: per-block p95 of the routed
    queries in replay order, paired by block (batch means of a quantile)."""
    blocks = replay.block_p95()
    gate.record(facts={"latency_p95_blocks": {"n": len(blocks.sizes), "sizes": blocks.sizes}})
    result = gate.noninferior(
        "latency_p95",
        candidate=blocks.shadow,
        baseline=blocks.production,
        ids=list(blocks.ids),
        name="shadow-latency-p95",
    )
    assert result.passed


def test_shadow_throughput(
    gate: Any, traffic: list[tuple[str, str]], production_retriever: Any, shadow_retriever: Any
) -> None:
    """Batch throughput (queries/s, embed + search) of the shadow is non-inferior to
    production's over the whole traffic sample, paired by repeat."""
    from guardrails.components.shadow import measure_throughput

    tp = measure_throughput(
        production_retriever,
        shadow_retriever,
        [text for _, text in traffic],
        repeats=THROUGHPUT_REPEATS,
    )
    gate.record(facts={"throughput": tp.summary()})
    result = gate.noninferior(
        "throughput",
        candidate=tp.shadow_qps,
        baseline=tp.production_qps,
        ids=tp.ids,
        name="shadow-throughput",
    )
    assert result.passed


def test_shadow_index_memory(gate: Any, serving_memory: dict[str, Any]) -> None:
    """The shadow's serving memory (index + embedder weights) is at most 1.5x production's.

    One number per side, so a bound rather than a statistical gate; the numbers are recorded
    as facts (and in the ``shadow-latency`` gate's facts, since facts reach the verdict only
    on a gate)."""
    production, shadow = serving_memory["production"], serving_memory["shadow"]
    limit = MEMORY_RATIO * production["total"]
    gate.record(facts={"serving_memory_bytes": serving_memory, "limit_bytes": limit})
    assert shadow["total"] <= limit, (
        f"shadow needs {shadow['total']} bytes to serve (index {shadow['index']}, model "
        f"{shadow['model']}); production {production['total']} (index {production['index']}, "
        f"model {production['model']}), limit {MEMORY_RATIO:g}x = {limit:.0f}"
    )


# ------------------------------------------------------------------------ shadow model


def _must_refuse(canaries: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c.id, c.prompt) for cs in canaries.values() for c in cs.of_kind("must-refuse")]


@pytest.fixture(scope="session")
def model_traffic(logged_queries: list[str], canaries: dict[str, Any]) -> list[tuple[str, str]]:
    """Logged production queries (seeded sample) + the must-refuse canaries as probes."""
    from guardrails.components.shadow_model import shadow_model_sample

    return shadow_model_sample(
        logged_queries, size=SHADOW_MODEL_QUERIES, probes=_must_refuse(canaries)
    )


@pytest.fixture(scope="session")
def model_first_stage(
    production_retriever: Any, model_traffic: list[tuple[str, str]], knowledge_base: dict
) -> tuple[dict, dict]:
    """Production retriever's run and ranked doc ids per replayed query (both sides' input)."""
    from guardrails.components.shadow_model import production_contexts

    return production_contexts(
        production_retriever, model_traffic, knowledge_base, depth=RERANK_DEPTH
    )


@pytest.fixture(scope="session")
def reranker_shadow(
    production_reranker: Any,
    candidate_reranker: Any,
    model_traffic: list[tuple[str, str]],
    model_first_stage: tuple[dict, dict],
    knowledge_base: dict,
) -> Any:
    from guardrails.components.shadow_model import replay_rerankers

    return replay_rerankers(
        production_reranker,
        candidate_reranker,
        model_traffic,
        model_first_stage[0],
        knowledge_base,
        top_k=RERANK_DEPTH,
        latency_queries=SHADOW_RERANKER_TIMED,
    )


@pytest.fixture(scope="session")
def generator_shadow(
    production_generator: Any,
    candidate_generator: Any,
    model_traffic: list[tuple[str, str]],
    model_first_stage: tuple[dict, dict],
    knowledge_base: dict,
    canaries: dict[str, Any],
) -> Any:
    from guardrails.components.shadow_model import replay_generators

    ranked = model_first_stage[1]
    contexts = {q: [knowledge_base[d] for d in docs[:PASSAGES]] for q, docs in ranked.items()}
    return replay_generators(
        production_generator,
        candidate_generator,
        model_traffic,
        contexts,
        must_refuse={i for i, _ in _must_refuse(canaries)},
        latency_queries=SHADOW_MODEL_TIMED,
    )


def _floor(gate: Any, metric: str) -> float | None:
    """The policy's floor for ``metric``, else :data:`AGREEMENT_FLOOR`."""
    return None if gate.policy.threshold(metric).min is not None else AGREEMENT_FLOOR


def _components(gate: Any, component: str, production: Any, candidate: Any) -> None:
    for role, part in (("baseline", production), ("candidate", candidate)):
        gate.record(
            artifact={"component": component, "role": role, "fingerprint": part.fingerprint}
        )


def test_shadow_model_reranker_agreement(
    gate: Any, reranker_shadow: Any, production_reranker: Any, candidate_reranker: Any
) -> None:
    """On replayed production queries the candidate reranker's top-1 and reranked list agree
    with production's above a floor (a sanity floor: it may reorder, not scramble)."""
    _components(gate, "reranker", production_reranker, candidate_reranker)
    gate.record(facts={"shadow_model_reranker": reranker_shadow.to_extra()})
    ids = list(reranker_shadow.query_ids)
    for metric, scores in (("top_k_overlap@1", reranker_shadow.top1), ("rbo", reranker_shadow.rbo)):
        gate.at_least(
            metric,
            candidate=scores,
            ids=ids,
            minimum=_floor(gate, metric),
            name=f"reranker-shadow:{metric}",
        )


def test_shadow_model_groundedness(
    gate: Any, generator_shadow: Any, production_generator: Any, candidate_generator: Any
) -> None:
    """The candidate's answers to safe replayed queries are as grounded in production's
    retrieved passages as production's answers (paired per query; refusals count 1.0)."""
    g = generator_shadow
    _components(gate, "generator", production_generator, candidate_generator)
    gate.record(facts={"shadow_model_generator": g.to_extra()}, examples=g.examples(g.safe))
    gate.noninferior(
        "groundedness",
        candidate=g.candidate_groundedness[g.safe],
        baseline=g.production_groundedness[g.safe],
        ids=g.safe_ids(),
        name="generation-shadow:groundedness",
    )


def test_shadow_model_unsafe_answers(
    gate: Any, generator_shadow: Any, production_generator: Any, candidate_generator: Any
) -> None:
    """No new unsafe answer on the replay (complied with a must-refuse probe, or leaked a
    card number / SSN / email nobody supplied); binary, paired, exact McNemar."""
    g = generator_shadow
    _components(gate, "generator", production_generator, candidate_generator)
    examples = g.examples()
    for qid, rules in g.unsafe_reasons.items():
        examples[qid].update(rules)
    gate.record(examples=examples)
    gate.noninferior(
        "unsafe_rate",
        candidate=g.candidate_unsafe,
        baseline=g.production_unsafe,
        ids=list(g.query_ids),
        name="generation-shadow:unsafe_rate",
    )


def test_shadow_model_refusals(
    gate: Any, generator_shadow: Any, production_generator: Any, candidate_generator: Any
) -> None:
    """No safe replayed production query is newly refused by the candidate (over-refusal)."""
    g = generator_shadow
    _components(gate, "generator", production_generator, candidate_generator)
    gate.record(examples=g.examples(g.safe))
    gate.noninferior(
        "refusal_rate",
        candidate=g.candidate_refused[g.safe],
        baseline=g.production_refused[g.safe],
        ids=g.safe_ids(),
        name="generation-shadow:refusal_rate",
    )
