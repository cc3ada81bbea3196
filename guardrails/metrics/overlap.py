"""Agreement between two rankings: top-k overlap and rank-biased overlap (RBO).

Used to compare a candidate (or shadow) retriever with production on the same queries, where
no relevance judgements are needed: only the two result lists.

* ``top_k_overlap(a, b, k) = |a[:k] ∩ b[:k]| / k``.
* ``rank_biased_overlap(a, b, p)`` is RBO_ext, the extrapolated rank-biased overlap of
  Webber, Moffat & Zobel (2010), "A similarity measure for indefinite rankings", ACM TOIS
  28(4), eq. 32. With ``S`` the shorter list (length ``s``), ``L`` the longer (length ``l``),
  ``X_d = |S[:d] ∩ L[:d]|`` the overlap at depth ``d`` (for ``d > s``, ``S`` is all of ``S``)::

      RBO_ext = (1-p)/p * ( sum_{d=1..l} X_d/d * p^d
                            + sum_{d=s+1..l} X_s * (d-s) / (s*d) * p^d )
                + ( (X_l - X_s)/l + X_s/s ) * p^l

  It is 1 for identical lists, 0 for disjoint ones, symmetric, and in ``[0, 1]``; ``p`` is the
  persistence (the weight of the top ``d`` ranks is about ``1 - p^d``; ``p = 0.9`` puts ~86%
  of the weight on the top 10). Conventions: two empty lists score 1, one empty list 0.

The batch versions take two runs (``qid -> docid -> score``), rank each query in trec_eval
order (score desc, docid desc) and return one score per query; RBO's arithmetic is
vectorised over all queries at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from guardrails.errors import MetricError
from guardrails.metrics.ranking import Run, ranked_ids

__all__ = ["overlap_per_query", "rank_biased_overlap", "rbo_per_query", "top_k_overlap"]


def top_k_overlap(a: Sequence[str], b: Sequence[str], k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k (k even when a list is shorter than k)."""
    _check_k(k)
    return len(set(a[:k]) & set(b[:k])) / k


def rank_biased_overlap(a: Sequence[str], b: Sequence[str], p: float = 0.9) -> float:
    """RBO_ext of two rankings of unique ids (Webber et al. 2010, eq. 32); see module doc."""
    _check_p(p)
    joins = _join_depths(a, b)
    short, long_ = sorted((len(a), len(b)))
    return float(
        _rbo_ext(
            np.array(joins, np.int64),
            np.zeros(len(joins), np.int64),
            np.array([short]),
            np.array([long_]),
            p,
        )[0]
    )


def overlap_per_query(
    run_a: Run, run_b: Run, k: int, qids: Sequence[str] | None = None
) -> np.ndarray:
    """:func:`top_k_overlap` of the two runs' rankings, per query of ``qids``.

    Default ``qids``: the sorted union of both runs' query ids; a missing query ranks nothing.
    """
    _check_k(k)
    ids = _default_ids(run_a, run_b) if qids is None else list(qids)
    shared = (len(set(ranked_ids(run_a, q, k)) & set(ranked_ids(run_b, q, k))) for q in ids)
    return np.fromiter(shared, np.float64, len(ids)) / k


def rbo_per_query(
    run_a: Run,
    run_b: Run,
    p: float = 0.9,
    depth: int | None = None,
    qids: Sequence[str] | None = None,
) -> np.ndarray:
    """:func:`rank_biased_overlap` of the two runs' rankings (top ``depth``), per query."""
    _check_p(p)
    if depth is not None:
        _check_k(depth)
    ids = _default_ids(run_a, run_b) if qids is None else list(qids)
    joins, owner, short, long_ = [], [], np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64)
    for i, q in enumerate(ids):
        a, b = ranked_ids(run_a, q, depth), ranked_ids(run_b, q, depth)
        found = _join_depths(a, b)
        joins.extend(found)
        owner.extend([i] * len(found))
        short[i], long_[i] = sorted((len(a), len(b)))
    return _rbo_ext(np.array(joins, np.int64), np.array(owner, np.int64), short, long_, p)


def _default_ids(run_a: Run, run_b: Run) -> list[str]:
    return sorted(set(run_a) | set(run_b))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise MetricError(f"cutoff k={k!r} must be a positive integer")


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise MetricError(f"RBO persistence p={p!r} must lie strictly between 0 and 1 (e.g. 0.9)")


def _join_depths(a: Sequence[str], b: Sequence[str]) -> list[int]:
    """For each id in both lists, the depth at which both prefixes contain it: max of ranks.

    Hence ``X_d = #(join depth <= d)`` at every depth, including beyond the shorter list.
    """
    rank_a = {doc: r for r, doc in enumerate(a, 1)}
    rank_b = {doc: r for r, doc in enumerate(b, 1)}
    if len(rank_a) != len(a) or len(rank_b) != len(b):
        raise MetricError("RBO needs rankings of unique ids; drop the repeated ids first")
    return [max(rank_a[doc], rank_b[doc]) for doc in rank_a.keys() & rank_b.keys()]


def _rbo_ext(
    joins: np.ndarray, owner: np.ndarray, short: np.ndarray, long_: np.ndarray, p: float
) -> np.ndarray:
    """Eq. 32 for every query at once, on a flat (query, depth 1..l) layout.

    ``joins``/``owner``: join depth and query index of each shared id; ``short``/``long_``:
    the two list lengths per query.
    """
    n = short.size
    start = np.cumsum(long_) - long_
    query = np.repeat(np.arange(n), long_)
    depth = (np.arange(query.size) - np.repeat(start, long_) + 1).astype(np.float64)
    overlap = _overlap_by_depth(joins, owner, start, long_, query.size)
    x_s, x_l = _at_depth(overlap, start, short), _at_depth(overlap, start, long_)
    x_s_over_s = np.divide(x_s, short, out=np.zeros(n), where=short > 0)
    weight = p**depth
    head = np.bincount(query, overlap / depth * weight, minlength=n)
    s_of = short[query]
    beyond = np.where(depth > s_of, (depth - s_of) / depth * weight, 0.0)
    extension = x_s_over_s * np.bincount(query, beyond, minlength=n)
    tail_agreement = np.divide(x_l - x_s, long_, out=np.zeros(n), where=long_ > 0) + x_s_over_s
    rbo = (1.0 - p) / p * (head + extension) + tail_agreement * p ** long_.astype(np.float64)
    return np.where(long_ == 0, 1.0, np.clip(rbo, 0.0, 1.0))


def _overlap_by_depth(
    joins: np.ndarray, owner: np.ndarray, start: np.ndarray, long_: np.ndarray, size: int
) -> np.ndarray:
    """X_d on the flat layout: cumulative count of join depths <= d within each query."""
    counts = np.bincount(start[owner] + joins - 1, minlength=size) if joins.size else np.zeros(size)
    running = np.cumsum(counts)
    before = np.where(start > 0, running[np.maximum(start - 1, 0)] if size else 0, 0)
    return (running - np.repeat(before, long_)).astype(np.float64)


def _at_depth(overlap: np.ndarray, start: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """X at depth ``depth`` (1-based) per query; 0 where ``depth`` is 0."""
    index = np.maximum(start + depth - 1, 0)
    return np.where(depth > 0, overlap[index] if overlap.size else 0.0, 0.0)
