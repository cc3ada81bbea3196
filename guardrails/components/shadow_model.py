"""Shadow model: replay a sample of logged production queries through the production and the
candidate reranker and generator, and measure them paired (the shadow *index* replay, for the
models; see :mod:`guardrails.components.shadow`).

Both sides see the same inputs: production's retriever gives each query its candidates
(``depth`` documents for the rerankers, the top ``passages`` for the generators), so a
difference is the model's. Per replayed query:

* **reranker** (:func:`replay_rerankers`): top-1 agreement (``top_k_overlap@1`` of the two
  reranked lists), rank-biased overlap of the reranked lists, and each side's latency;
* **generator** (:func:`replay_generators`): answer agreement (token F1 of the candidate's
  answer against production's), groundedness of each answer in its context
  (:func:`guardrails.metrics.groundedness.groundedness`; a refusal claims nothing and scores
  1.0, the refusal rate judges it), refusal (:func:`guardrails.metrics.refusal.is_refusal`),
  unsafe (:func:`guardrails.metrics.unsafe.unsafe_answer`: complied with a must-refuse probe,
  or leaked a pattern) and latency.

Rankings and answers go through the components' own caches (a warm re-run scores and
generates nothing); latency is timed on the first ``latency_queries`` queries with the cache
bypassed (a hit would time a lookup), one query at a time, the side that goes first
alternating. The sample (:func:`shadow_model_sample`) is small by default (48 logged queries,
seeded): a small generator answers in about a second per query on two CPU cores.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from guardrails.errors import ComponentError

__all__ = [
    "GeneratorShadow",
    "RerankerShadow",
    "production_contexts",
    "replay_generators",
    "replay_rerankers",
    "shadow_model_sample",
]

Run = dict[str, dict[str, float]]


def shadow_model_sample(
    logged_queries: Sequence[str],
    *,
    size: int = 48,
    seed: int = 0,
    probes: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """``size`` distinct logged queries (seeded, ids ``log-<i>``), then the ``probes``
    ``(id, prompt)`` (e.g. must-refuse canaries) that every replay adds."""
    from guardrails.components.shadow import traffic_sample

    if size < 1:
        raise ComponentError(f"shadow model sample size={size!r}; it must be >= 1")
    logged = traffic_sample([], logged_queries, size=size, seed=seed)
    if not logged:
        raise ComponentError("no logged production query to replay; check the current log window")
    return logged + [(str(i), str(p)) for i, p in probes]


def _ids_texts(queries: Sequence[tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    ids = [q for q, _ in queries]
    if len(set(ids)) != len(ids):
        raise ComponentError("shadow model queries have duplicate ids; give each query its own")
    if not ids:
        raise ComponentError("shadow model replay needs at least one query")
    return ids, dict(queries)


def production_contexts(
    retriever: Any,
    queries: Sequence[tuple[str, str]],
    docs: Mapping[str, str],
    *,
    depth: int = 20,
) -> tuple[Run, dict[str, list[str]]]:
    """Production's first-stage run (top ``depth``) and each query's ranked doc ids."""
    from guardrails.components.reranker import top_k_docs

    ids, texts = _ids_texts(queries)
    run = retriever.search_run(ids, [texts[q] for q in ids], depth)
    ranked = {q: top_k_docs(run.get(q, {}), depth) for q in ids}
    missing = sorted({d for r in ranked.values() for d in r if d not in docs})
    if missing:
        raise ComponentError(f"retrieved documents {missing[:3]} have no text in `docs`")
    return run, ranked


def _alternating(
    n: int, production: Callable[[int], Any], candidate: Callable[[int], Any]
) -> tuple[list[float], list[float]]:
    """Seconds of ``production(i)`` and ``candidate(i)`` for i < n, the side that goes first
    alternating (machine load lands on both), after one untimed warm-up call each."""
    lat: tuple[list[float], list[float]] = ([], [])
    if n:
        production(0)
        candidate(0)
    for i in range(n):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            start = time.perf_counter()
            (production, candidate)[side](i)
            lat[side].append(time.perf_counter() - start)
    return lat


def _uncached(component: Any) -> Any:
    """A shallow copy without the result cache (same model): for timing."""
    if getattr(component, "cache", None) is None:
        return component
    clone = copy.copy(component)
    clone.cache = None
    return clone


@dataclass(frozen=True)
class RerankerShadow:
    """Paired reranker measurements on the replayed queries."""

    query_ids: tuple[str, ...]
    production_run: Run
    candidate_run: Run
    top1: np.ndarray
    rbo: np.ndarray
    production_latency_ms: np.ndarray
    candidate_latency_ms: np.ndarray
    latency_ids: tuple[str, ...]
    top_k: int

    def to_extra(self) -> dict[str, Any]:
        """JSON-able facts for a gate's ``extra``."""
        return {
            "n_queries": len(self.query_ids),
            "top_k": self.top_k,
            "top1_agreement": float(self.top1.mean()),
            "rbo": float(self.rbo.mean()),
            "latency_ms": _latency(self.production_latency_ms, self.candidate_latency_ms),
            "n_timed": len(self.latency_ids),
        }


def _latency(production: np.ndarray, candidate: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        side: {f"p{q}": float(np.percentile(lat, q)) for q in (50, 95)} if lat.size else {}
        for side, lat in (("production", production), ("candidate", candidate))
    }


def replay_rerankers(
    production: Any,
    candidate: Any,
    queries: Sequence[tuple[str, str]],
    first_stage: Run,
    docs: Mapping[str, str],
    *,
    top_k: int = 20,
    rbo_p: float = 0.9,
    latency_queries: int | None = None,
) -> RerankerShadow:
    """Rerank production's first stage with both rerankers (``TextReranker``-like).

    ``latency_queries`` (default: all) are timed one query at a time without the cache.
    """
    from guardrails.metrics.overlap import overlap_per_query, rbo_per_query

    ids, texts = _ids_texts(queries)
    run = {q: dict(first_stage.get(q, {})) for q in ids}
    prod = production.rerank_run(run, texts, docs, top_k=top_k)
    cand = prod if candidate is production else candidate.rerank_run(run, texts, docs, top_k=top_k)
    timed = ids[: len(ids) if latency_queries is None else max(0, latency_queries)]
    sides = [_uncached(production), _uncached(candidate)]

    def call(side: int) -> Callable[[int], Any]:
        return lambda i: sides[side].rerank_run({timed[i]: run[timed[i]]}, texts, docs, top_k=top_k)

    lat = _alternating(len(timed), call(0), call(1))
    return RerankerShadow(
        query_ids=tuple(ids),
        production_run=prod,
        candidate_run=cand,
        top1=overlap_per_query(prod, cand, 1, qids=ids),
        rbo=rbo_per_query(prod, cand, p=rbo_p, depth=top_k, qids=ids),
        production_latency_ms=np.asarray(lat[0]) * 1000.0,
        candidate_latency_ms=np.asarray(lat[1]) * 1000.0,
        latency_ids=tuple(timed),
        top_k=top_k,
    )


@dataclass(frozen=True)
class GeneratorShadow:
    """Paired generator measurements on the replayed queries (index-aligned arrays)."""

    query_ids: tuple[str, ...]
    questions: tuple[str, ...]
    contexts: tuple[tuple[str, ...], ...]
    must_refuse: np.ndarray
    production_answers: tuple[str, ...]
    candidate_answers: tuple[str, ...]
    answer_agreement: np.ndarray
    production_groundedness: np.ndarray
    candidate_groundedness: np.ndarray
    production_refused: np.ndarray
    candidate_refused: np.ndarray
    production_unsafe: np.ndarray
    candidate_unsafe: np.ndarray
    production_latency_ms: np.ndarray
    candidate_latency_ms: np.ndarray
    latency_ids: tuple[str, ...]
    unsafe_reasons: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def safe(self) -> np.ndarray:
        """Mask of the replayed queries that are not must-refuse probes."""
        return ~self.must_refuse

    def safe_ids(self) -> list[str]:
        return [q for q, s in zip(self.query_ids, self.safe, strict=True) if s]

    def examples(self, mask: np.ndarray | None = None) -> dict[str, dict[str, str]]:
        """``{id: {"input", "baseline", "candidate"}}`` for a gate's report."""
        keep = np.ones(len(self.query_ids), bool) if mask is None else mask
        return {
            q: {"input": text, "baseline": p, "candidate": c}
            for q, text, p, c, k in zip(
                self.query_ids,
                self.questions,
                self.production_answers,
                self.candidate_answers,
                keep,
                strict=True,
            )
            if k
        }

    def to_extra(self) -> dict[str, Any]:
        """JSON-able facts: sample sizes, means per side, latency percentiles."""
        safe = self.safe
        return {
            "n_queries": len(self.query_ids),
            "n_must_refuse": int(self.must_refuse.sum()),
            "answer_agreement_token_f1": float(self.answer_agreement.mean()),
            "groundedness": _sides(self.production_groundedness, self.candidate_groundedness, safe),
            "refusal_rate_safe": _sides(self.production_refused, self.candidate_refused, safe),
            "unsafe_rate": _sides(self.production_unsafe, self.candidate_unsafe, None),
            "latency_ms": _latency(self.production_latency_ms, self.candidate_latency_ms),
            "n_timed": len(self.latency_ids),
        }


def _sides(production: np.ndarray, candidate: np.ndarray, mask: Any) -> dict[str, float]:
    keep = np.ones(production.size, bool) if mask is None else mask
    if not keep.any():
        return {}
    return {
        "production": float(production[keep].mean()),
        "candidate": float(candidate[keep].mean()),
    }


def replay_generators(
    production: Any,
    candidate: Any,
    queries: Sequence[tuple[str, str]],
    contexts: Mapping[str, Sequence[str]],
    *,
    must_refuse: Collection[str] = (),
    latency_queries: int = 8,
    leak_patterns: Mapping[str, str] | None = None,
) -> GeneratorShadow:
    """Answer every query from its ``contexts[id]`` passages with both generators
    (``TextGenerator``-like) and score the answers; ``must_refuse`` names the probe ids."""
    from guardrails.metrics.text import token_f1
    from guardrails.metrics.unsafe import compile_leak_patterns

    ids, texts = _ids_texts(queries)
    questions = [texts[q] for q in ids]
    ctx = [list(contexts[q]) for q in ids]
    prod = list(production.generate(questions, contexts=ctx))
    cand = prod if candidate is production else list(candidate.generate(questions, contexts=ctx))
    refuse = np.array([q in set(must_refuse) for q in ids], dtype=bool)
    patterns = compile_leak_patterns(leak_patterns)
    scored = [_score_side(a, questions, ctx, refuse, patterns) for a in (prod, cand)]
    timed = ids[: max(0, latency_queries)]
    lat = _time_generators(production, candidate, questions[: len(timed)], ctx[: len(timed)])
    return GeneratorShadow(
        query_ids=tuple(ids),
        questions=tuple(questions),
        contexts=tuple(tuple(c) for c in ctx),
        must_refuse=refuse,
        production_answers=tuple(prod),
        candidate_answers=tuple(cand),
        answer_agreement=np.array([token_f1(c, [p]) for p, c in zip(prod, cand, strict=True)]),
        production_groundedness=scored[0][0],
        candidate_groundedness=scored[1][0],
        production_refused=scored[0][1],
        candidate_refused=scored[1][1],
        production_unsafe=_unsafe(scored[0][2]),
        candidate_unsafe=_unsafe(scored[1][2]),
        production_latency_ms=np.asarray(lat[0]) * 1000.0,
        candidate_latency_ms=np.asarray(lat[1]) * 1000.0,
        latency_ids=tuple(timed),
        unsafe_reasons=_unsafe_reasons(ids, scored[0][2], scored[1][2]),
    )


def _score_side(
    answers: list[str],
    questions: list[str],
    ctx: list[list[str]],
    refuse: np.ndarray,
    patterns: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """(groundedness, refused 0/1, unsafe verdicts) of one side's answers."""
    from guardrails.metrics.groundedness import groundedness_scores
    from guardrails.metrics.refusal import is_refusal
    from guardrails.metrics.unsafe import unsafe_answer

    refused = np.array([is_refusal(a, q) for a, q in zip(answers, questions, strict=True)])
    grounded = np.where(refused, 1.0, groundedness_scores(answers, ctx))
    verdicts = [
        unsafe_answer(a, q, must_refuse=bool(r), context=c, patterns=patterns)
        for a, q, r, c in zip(answers, questions, refuse, ctx, strict=True)
    ]
    return grounded, refused.astype(np.float64), verdicts


def _unsafe(verdicts: list[Any]) -> np.ndarray:
    return np.array([float(v.unsafe) for v in verdicts], dtype=np.float64)


def _unsafe_reasons(ids: list[str], prod: list[Any], cand: list[Any]) -> dict[str, dict[str, str]]:
    """``{id: {"baseline_rule", "candidate_rule"}}`` where either side's answer is unsafe."""
    return {
        q: {
            f"{role}_rule": f"{v.reason}: {v.evidence}" if v.unsafe else "safe"
            for role, v in (("baseline", p), ("candidate", c))
        }
        for q, p, c in zip(ids, prod, cand, strict=True)
        if p.unsafe or c.unsafe
    }


def _time_generators(
    production: Any, candidate: Any, questions: list[str], ctx: list[list[str]]
) -> tuple[list[float], list[float]]:
    sides = [_uncached(production), _uncached(candidate)]

    def call(side: int) -> Callable[[int], Any]:
        return lambda i: sides[side].generate([questions[i]], contexts=[ctx[i]])

    return _alternating(len(questions), call(0), call(1))
