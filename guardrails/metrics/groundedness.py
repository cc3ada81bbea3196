"""Groundedness: is an answer supported by the context it was generated from?

Token-overlap support (:func:`groundedness`, vectorised as :func:`groundedness_scores`)::

    tokens(s)   = lower-cased [a-z0-9]+ words of s that are not stop words, cut to a
                  5-character prefix (a cheap stemmer: "refunds" / "refunded" -> "refun")
    support_n(s, C) = |{i : (t_i .. t_i+n-1) is an n-gram of tokens(C)}| / (m - n + 1)
    support(s, C)   = mean of support_1 .. support_N over the orders the sentence has
    groundedness(a, C) = min over the sentences s of a of support(s, C)

with ``t_1..t_m = tokens(s)`` and ``N`` = ``max_n`` (default 2: unigrams and bigrams of content
tokens, so a claim that re-uses the context's words in a new combination scores lower than
one quoted from it). The minimum over sentences makes one unsupported sentence (an invented
fee, a made-up step) sink the answer, the way a reader judges it. An answer with no content
token (empty, or only stop words) claims nothing and scores 1.0. A refusal shares few words
with its context and scores low; a caller that judges refusals apart scores them 1.0 and gates
the refusal rate (the shadow model replay does).

Embedding support (:func:`embedding_groundedness`): each answer sentence's best cosine
similarity to a sentence of its context (``max_j cos(e(s), e(c_j))``), min over the answer's
sentences, with any embedder that has ``encode(texts) -> unit-norm rows``
(all-MiniLM-L6-v2 from :func:`guardrails.components.embedder.minilm_path` offline).

Agreement with labels is measured in ``benchmarks/bench_groundedness.py`` on claims built
from SQuAD 2.0 (supported: question + gold answer against its own paragraph; unsupported:
the same claim against another paragraph, and question + plausible answer of an unanswerable
question against its own paragraph); the threshold is chosen on one half and measured on the
other. Measured (seed 13, 260 / 324 held-out pairs): token overlap tells a supported claim from
the same claim against another paragraph of its article with balanced accuracy 0.935 / 0.935
(Cohen's kappa 0.87 / 0.87); MiniLM cosine 0.77 / 0.79 (kappa 0.55 / 0.58). Neither beats
chance (0.50 / 0.52) on SQuAD 2.0's adversarial plausible answers, which are spans of the
paragraph answering a question it does not: that needs an entailment model, which is not
available offline here. Both scores are in [0, 1] (cosine clipped at 0), higher = better
supported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from guardrails.errors import MetricError

__all__ = [
    "content_tokens",
    "embedding_groundedness",
    "groundedness",
    "groundedness_scores",
    "split_sentences",
]

_WORD = re.compile(r"[a-z0-9]+")
# sentence ends: . ! ? followed by space, or a line break (not "3.5", not "e.g. x")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_PREFIX = 5
_STOP_WORDS = (
    "a an the and or but if then so of to in on at by for with from as into onto over under "
    "about after before between through during is are was were be been being am do does did "
    "done have has had having it its this that these those there here he she they them his "
    "her their our we you your i me my mine us not no yes can could will would shall should "
    "may might must also only just than too very more most some any all each both such what "
    "which who whom whose when where why how"
)
_STOP = frozenset(_STOP_WORDS.split())


def split_sentences(text: str) -> list[str]:
    """The non-empty sentences of ``text`` (split after ``.!?`` + space + capital/digit, or at
    line breaks)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def content_tokens(text: str) -> list[str]:
    """Lower-cased word tokens minus stop words, cut to a 5-character prefix, in order."""
    return [w[:_PREFIX] for w in _WORD.findall(text.lower()) if w not in _STOP]


def _grams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _context_grams(context: str | Sequence[str], max_n: int) -> list[set[tuple[str, ...]]]:
    """n-gram sets of the context, per order 1..max_n; passages never join across a border."""
    passages = [context] if isinstance(context, str) else list(context)
    out: list[set[tuple[str, ...]]] = [set() for _ in range(max_n)]
    for passage in passages:
        tokens = content_tokens(passage)
        for n in range(1, max_n + 1):
            out[n - 1].update(_grams(tokens, n))
    return out


def _sentence_support(tokens: list[str], grams: list[set[tuple[str, ...]]]) -> float:
    shares = []
    for n, known in enumerate(grams, start=1):
        mine = _grams(tokens, n)
        if mine:
            shares.append(sum(g in known for g in mine) / len(mine))
    return float(np.mean(shares)) if shares else 1.0


def _check_n(max_n: int) -> None:
    if not isinstance(max_n, int) or max_n < 1:
        raise MetricError(f"groundedness max_n={max_n!r}; use an integer >= 1 (2: uni+bigrams)")


def groundedness(answer: str, context: str | Sequence[str], *, max_n: int = 2) -> float:
    """Token-overlap support of ``answer`` by ``context`` (one text or its passages), in [0, 1];
    see the module docstring for the formula."""
    _check_n(max_n)
    grams = _context_grams(context, max_n)
    sentences = [content_tokens(s) for s in split_sentences(answer)]
    scores = [_sentence_support(tokens, grams) for tokens in sentences if tokens]
    return min(scores) if scores else 1.0


def groundedness_scores(
    answers: Sequence[str], contexts: Sequence[str | Sequence[str]], *, max_n: int = 2
) -> np.ndarray:
    """:func:`groundedness` of each answer against its own context row: float64 ``(n,)``."""
    _check_rows(answers, contexts)
    return np.array(
        [groundedness(a, c, max_n=max_n) for a, c in zip(answers, contexts, strict=True)]
    )


def _check_rows(answers: Sequence[str], contexts: Sequence[Any]) -> None:
    if isinstance(answers, str):
        raise MetricError("groundedness: answers must be a list of strings, not one string")
    if len(answers) != len(contexts):
        raise MetricError(
            f"groundedness: {len(answers)} answers but {len(contexts)} contexts; "
            "pass one context (text or passages) per answer"
        )


def _context_sentences(context: str | Sequence[str]) -> list[str]:
    passages = [context] if isinstance(context, str) else list(context)
    return [s for p in passages for s in split_sentences(p)]


def embedding_groundedness(
    answers: Sequence[str], contexts: Sequence[str | Sequence[str]], embedder: Any
) -> np.ndarray:
    """Per answer: min over its sentences of the best cosine to a context sentence, in [0, 1].

    ``embedder.encode(texts)`` must return unit-norm rows (an :class:`Embedder` does). Each
    distinct sentence is embedded once, in one call. An answer without sentences scores 1.0 (claims
    nothing); a context without sentences gives 0.0 (supports nothing).
    """
    _check_rows(answers, contexts)
    a_sents = [split_sentences(a) for a in answers]
    c_sents = [_context_sentences(c) for c in contexts]
    unique = list(dict.fromkeys(s for rows in (a_sents, c_sents) for row in rows for s in row))
    where = {s: i for i, s in enumerate(unique)}
    vectors = np.asarray(embedder.encode(unique), dtype=np.float64) if unique else np.zeros((0, 1))
    out = np.ones(len(answers))
    for i, (mine, theirs) in enumerate(zip(a_sents, c_sents, strict=True)):
        if not mine:
            continue
        if not theirs:
            out[i] = 0.0
            continue
        sims = vectors[[where[s] for s in mine]] @ vectors[[where[s] for s in theirs]].T
        out[i] = float(np.clip(sims.max(axis=1).min(), 0.0, 1.0))
    return out
