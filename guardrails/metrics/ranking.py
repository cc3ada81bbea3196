"""Ranking metrics, one score per query, with trec_eval's semantics, vectorised with numpy.

Inputs are plain mappings in the pytrec_eval style::

    qrels = {"q1": {"d3": 2, "d7": 0, "d9": -1}}      # qid -> docid -> graded relevance
    run = {"q1": {"d3": 12.5, "d4": 11.0}}             # qid -> docid -> score

Conventions (all those of ``trec_eval`` 9, as exposed by ``pytrec_eval``; Buckley & Voorhees):

* ranking: score descending, ties broken by docid descending (byte order of the ids);
  scores are compared in single precision, as trec_eval stores them (``float sim``): scores
  equal as float32 tie;
* a document is *relevant* when its judged relevance is ``>= relevance_level``; unjudged
  documents are non-relevant; ``R`` = number of relevant judged documents of the query;
* gain of a document = ``max(rel, 0)`` (linear gain, Järvelin & Kekäläinen 2002; negative
  judgements count as 0, unjudged as 0), independent of ``relevance_level``;
* a query without a ranking scores 0 on every metric (``trec_eval -c``).

Per-query scores, with the trec_eval measure each one equals (``rank(d)`` is 1-based,
``rel_k`` the relevant documents ranked ``<= k``; no ``@k`` means the whole ranking):

* ``ndcg@k`` = DCG@k / IDCG@k with DCG@k = sum over rank(d) <= k of gain(d) / log2(rank(d) + 1)
  and IDCG@k the DCG@k of the query's judged gains sorted descending; 0 when IDCG is 0
  (Järvelin & Kekäläinen 2002) -- ``ndcg_cut_k``; ``ndcg``.
* ``mrr@k`` = 1 / rank of the first relevant document if it is within the top k, else 0
  (Voorhees 1999) -- ``recip_rank`` without k; ranx ``mrr@k``.
* ``recall@k`` = |rel_k| / R -- ``recall_k``; ``set_recall``.
* ``precision@k`` = |rel_k| / k, k even when fewer were retrieved -- ``P_k``; without k,
  relevant retrieved / retrieved -- ``set_P``.
* ``map@k`` = (sum over d in rel_k of precision@rank(d)) / R -- ``map_cut_k``; ``map``.
* ``hit_rate@k`` = 1 if |rel_k| > 0 else 0 -- ``success_k``; ranx ``hit_rate@k``.

Only the documents judged ``rel > 0`` can move a score, so the work is: one pass reading the
run's scores into a (queries x depth) float32 matrix, one row-wise sort, a vectorised binary
search giving the rank of every such retrieved document, then sparse per-query sums from
which every requested metric is read.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from types import MappingProxyType

import numpy as np

from guardrails.errors import MetricError
from guardrails.metrics import MetricSpec, parse_metric

__all__ = ["Qrels", "Run", "evaluate_ranking", "per_query_ids", "ranked_ids"]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

_EMPTY: Mapping[str, float] = MappingProxyType({})
_UNJUDGED: Mapping[str, int] = MappingProxyType({})
_SCORE_THEN_ID = itemgetter(1, 0)  # (score, docid): both descending under reverse order
# Pad the ragged score matrix only while it stays within this factor of the run's size;
# beyond it each query is sorted on its own (one very deep query must not cost n x depth).
_MAX_PADDING = 4.0


def per_query_ids(qrels: Qrels, relevance_level: int = 1) -> list[str]:
    """Sorted ids of the queries with at least one document judged ``>= relevance_level``.

    These are the queries trec_eval averages over; :func:`evaluate_ranking` uses this order
    when it is given no ``qids``.
    """
    _check_level(relevance_level)
    return sorted(q for q, docs in qrels.items() if docs and max(docs.values()) >= relevance_level)


def ranked_ids(run: Run, qid: str, depth: int | None = None) -> list[str]:
    """Document ids of query ``qid`` in trec_eval order (score desc, docid desc), top ``depth``.

    Scores are rounded to float32 first, as trec_eval does. A missing query gives ``[]``.
    """
    row = run.get(qid, _EMPTY)
    items = zip(row, array("f", row.values()).tolist(), strict=True)  # float32-rounded, as doubles
    if depth is None:
        return [d for d, _ in sorted(items, key=_SCORE_THEN_ID, reverse=True)]
    return [d for d, _ in heapq.nlargest(depth, items, key=_SCORE_THEN_ID)]


def evaluate_ranking(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str],
    qids: Sequence[str] | None = None,
    relevance_level: int = 1,
) -> dict[str, np.ndarray]:
    """Score ``run`` against ``qrels``: ``{canonical metric name: float64 array, one per query}``.

    Arrays are aligned to ``qids`` (default :func:`per_query_ids`). A metric outside the
    ranking family raises :class:`~guardrails.errors.MetricError`; so does a NaN score.
    """
    specs = [_ranking_spec(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
    ids = per_query_ids(qrels, relevance_level) if qids is None else list(qids)
    _check_level(relevance_level)
    with np.errstate(over="ignore"):  # scores beyond float32 become +-inf, as in trec_eval
        evidence = _collect(qrels, run, ids, relevance_level)
    return {spec.name: _SCORERS[spec.base](evidence, spec.k) for spec in specs}


def _check_level(relevance_level: int) -> None:
    if int(relevance_level) != relevance_level or relevance_level < 1:
        raise MetricError(
            f"relevance_level={relevance_level!r} must be a positive integer (as in trec_eval); "
            "judge the documents you want counted as relevant with a grade >= 1"
        )


def _ranking_spec(name: str) -> MetricSpec:
    spec = parse_metric(name)
    if spec.family != "ranking":
        raise MetricError(
            f"metric {name!r} is a {spec.family} metric, not a ranking one; "
            "score it with guardrails.metrics." + spec.family
        )
    return spec


@dataclass(frozen=True)
class _Evidence:
    """Everything the metrics need, for ``n`` queries.

    ``num_ret``/``num_rel`` are per query. ``q``, ``rank`` (0-based), ``gain``, ``hit`` describe
    each judged *retrieved* document with a positive gain or a relevant grade, sorted by query
    then rank. ``ideal_q``, ``ideal_pos``, ``ideal_gain``: the judged positive gains sorted
    descending within each query (the ideal ranking).
    """

    n: int
    num_ret: np.ndarray
    num_rel: np.ndarray
    q: np.ndarray
    rank: np.ndarray
    gain: np.ndarray
    hit: np.ndarray
    ideal_q: np.ndarray
    ideal_pos: np.ndarray
    ideal_gain: np.ndarray


def _collect(qrels: Qrels, run: Run, ids: list[str], level: int) -> _Evidence:
    """Read the judged documents, rank the retrieved ones, and build the ideal rankings.

    Only documents judged ``rel > 0`` can change a score (gain > 0 or relevant, as
    ``level >= 1``), so only those are looked up in the run.
    """
    qrows = [qrels.get(q, _UNJUDGED) for q in ids]
    rrows = [run.get(q, _EMPTY) for q in ids]
    n_judged = np.fromiter(map(len, qrows), np.int64, len(ids))
    every_rel = np.fromiter(chain.from_iterable(r.values() for r in qrows), np.float64)
    positive = every_rel > 0
    jq, rel = np.repeat(np.arange(len(ids)), n_judged)[positive], every_rel[positive]
    pairs = zip(rrows, qrows, strict=True)
    score = np.array(
        [r.get(d, math.nan) for r, qr in pairs for d, v in qr.items() if v > 0], np.float32
    )
    keep = np.flatnonzero(~np.isnan(score))
    rank = _ranks(rrows, ids, jq[keep], score[keep], _docid_lookup(qrows, keep))
    order = np.lexsort((rank, jq[keep]))
    keep, rank = keep[order], rank[order]
    iq, ipos, igain = _ideal(jq, rel)
    return _Evidence(
        n=len(ids),
        num_ret=np.fromiter(map(len, rrows), np.int64, len(ids)),
        num_rel=np.bincount(jq[rel >= level], minlength=len(ids)),
        q=jq[keep],
        rank=rank,
        gain=rel[keep],
        hit=rel[keep] >= level,
        ideal_q=iq,
        ideal_pos=ipos,
        ideal_gain=igain,
    )


def _docid_lookup(qrows: list[Mapping[str, int]], keep: np.ndarray) -> Callable[[int], str]:
    """Docid of the ``i``-th kept judged document; only needed to break score ties."""
    docids: list[str] = []

    def docid(i: int) -> str:
        if not docids:  # built once, on the first tie
            docids.extend(d for qr in qrows for d, v in qr.items() if v > 0)
        return docids[int(keep[i])]

    return docid


def _ideal(jq: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive judged gains sorted descending within each query, with 0-based positions."""
    order = np.lexsort((-gain, jq))
    q, g = jq[order], gain[order]
    return q, _positions(q), g


def _positions(q: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) query indices."""
    if q.size == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    return np.arange(q.size) - np.repeat(starts, np.diff(np.r_[starts, q.size]))


def _ranks(
    rrows: list[Mapping[str, float]],
    ids: list[str],
    q: np.ndarray,
    s: np.ndarray,
    docid: Callable[[int], str],
) -> np.ndarray:
    """0-based trec_eval rank of the documents scored ``s`` in queries ``q``.

    rank = #(scores > s) + #(equal scores with a larger docid), searched in the score rows
    sorted ascending.
    """
    counts = np.fromiter(map(len, rrows), np.int64, len(rrows))
    width = int(counts.max()) if rrows else 0
    if len(rrows) * width <= _MAX_PADDING * int(counts.sum()) + 1024:
        greater, tied = _count_padded(rrows, ids, counts, q, s)
    else:
        greater, tied = _count_per_query(rrows, ids, q, s)
    for i in np.flatnonzero(tied):  # ties are rare: resolve them on the strings
        row, doc = rrows[q[i]], docid(int(i))
        equal = np.flatnonzero(np.fromiter(row.values(), np.float32, len(row)) == s[i])
        keys = list(row)
        greater[i] += sum(keys[j] > doc for j in equal.tolist())
    return greater


def _count_padded(
    rows: list[Mapping[str, float]],
    names: list[str],
    counts: np.ndarray,
    q: np.ndarray,
    s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(#greater, has an equal score) per document via a NaN-padded, row-sorted matrix."""
    total, width = int(counts.sum()), int(counts.max()) if counts.size else 0
    flat = np.fromiter(chain.from_iterable(r.values() for r in rows), np.float32, total)
    _check_finite(flat, counts, names)
    if total == len(rows) * width:
        matrix = flat.reshape(len(rows), width)
    else:
        matrix = np.full((len(rows), width), np.nan, np.float32)
        matrix[np.arange(width) < counts[:, None]] = flat  # row-major fill = flat order
    sorted_rows = np.sort(matrix, axis=1).ravel()  # ascending; NaN padding sorts last
    hi, base = counts[q], q * width
    upto = _count_at_most(sorted_rows, base, hi, s)
    # the document itself is the last value <= s; an equal value just before it is a tie
    tied = (upto >= 2) & (sorted_rows[base + np.maximum(upto - 2, 0)] == s)
    return hi - upto, tied


def _count_at_most(rows: np.ndarray, base: np.ndarray, hi: np.ndarray, s: np.ndarray) -> np.ndarray:
    """#(values <= s[i]) in the ascending ``rows[base[i] : base[i] + hi[i]]`` (binary lifting).

    Each document lies in its own row, so ``hi >= 1`` and every probed index is in range.
    """
    count = np.zeros_like(hi)
    step = 1 << max(int(hi.max()).bit_length() - 1, 0) if hi.size else 0
    while step:
        probe = np.minimum(count + step, hi)
        count += step * ((count + step <= hi) & (rows[base + probe - 1] <= s))
        step >>= 1
    return count


def _count_per_query(
    rows: list[Mapping[str, float]], names: list[str], q: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(#greater, has an equal score) query by query: for very uneven ranking depths."""
    greater, tied = np.zeros(q.size, np.int64), np.zeros(q.size, bool)
    order = np.argsort(q, kind="stable")
    bounds = np.searchsorted(q[order], np.arange(len(rows) + 1))
    for i, row in enumerate(rows):
        values = np.sort(np.fromiter(row.values(), np.float32, len(row)))
        if np.isnan(values).any():
            raise _nan_error(names[i])
        sel = order[bounds[i] : bounds[i + 1]]
        if sel.size:
            below = np.searchsorted(values, s[sel], side="left")
            upto = np.searchsorted(values, s[sel], side="right")
            greater[sel], tied[sel] = values.size - upto, upto - below > 1
    return greater, tied


def _check_finite(flat: np.ndarray, num_ret: np.ndarray, ids: list[str]) -> None:
    bad = np.flatnonzero(np.isnan(flat))
    if bad.size:
        starts = np.cumsum(num_ret)
        raise _nan_error(ids[int(np.searchsorted(starts, bad[0], side="right"))])


def _nan_error(qid: str) -> MetricError:
    return MetricError(f"run scores must not be NaN; query {qid!r} has a NaN score: fix the run")


def _within(ev: _Evidence, k: int | None) -> np.ndarray:
    """Mask of the evidence documents ranked within the top ``k``."""
    return np.ones(ev.rank.size, bool) if k is None else ev.rank < k


def _per_query(ev: _Evidence, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    w = None if weights is None else weights[mask]
    return np.bincount(ev.q[mask], weights=w, minlength=ev.n).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (trec_eval's convention for empty denominators)."""
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(num.shape, np.float64), where=den > 0)


def _ndcg(ev: _Evidence, k: int | None) -> np.ndarray:
    """DCG@k / IDCG@k with linear gains and log2(rank + 1) discounts."""
    dcg = _per_query(ev, _within(ev, k) & (ev.gain > 0), ev.gain / np.log2(ev.rank + 2.0))
    ideal_in = np.ones(ev.ideal_pos.size, bool) if k is None else ev.ideal_pos < k
    discounted = ev.ideal_gain[ideal_in] / np.log2(ev.ideal_pos[ideal_in] + 2.0)
    idcg = np.bincount(ev.ideal_q[ideal_in], weights=discounted, minlength=ev.n)
    return _ratio(dcg, idcg)


def _hits(ev: _Evidence, k: int | None) -> np.ndarray:
    return _per_query(ev, _within(ev, k) & ev.hit)


def _precision(ev: _Evidence, k: int | None) -> np.ndarray:
    """|rel_k| / k; without k, relevant retrieved / retrieved (trec_eval P_k, set_P)."""
    return _ratio(_hits(ev, k), ev.num_ret if k is None else np.full(ev.n, k))


def _recall(ev: _Evidence, k: int | None) -> np.ndarray:
    """|rel_k| / R."""
    return _ratio(_hits(ev, k), ev.num_rel)


def _hit_rate(ev: _Evidence, k: int | None) -> np.ndarray:
    """1 when a relevant document is ranked within the top k."""
    return (_hits(ev, k) > 0).astype(np.float64)


def _mrr(ev: _Evidence, k: int | None) -> np.ndarray:
    """1 / rank of the first relevant document if within the top k, else 0."""
    mask = _within(ev, k) & ev.hit
    q, rank = ev.q[mask], ev.rank[mask]  # sorted by query then rank
    first = np.r_[True, q[1:] != q[:-1]] if q.size else np.zeros(0, bool)
    rr = np.zeros(ev.n)
    rr[q[first]] = 1.0 / (rank[first] + 1.0)
    return rr


def _map(ev: _Evidence, k: int | None) -> np.ndarray:
    """sum over relevant docs d in the top k of P@rank(d), divided by R."""
    mask = _within(ev, k) & ev.hit
    q, rank = ev.q[mask], ev.rank[mask]  # sorted by query then rank
    precision_at = (_positions(q) + 1.0) / (rank + 1.0)
    return _ratio(np.bincount(q, weights=precision_at, minlength=ev.n), ev.num_rel)


_SCORERS: dict[str, Callable[[_Evidence, int | None], np.ndarray]] = {
    "ndcg": _ndcg,
    "mrr": _mrr,
    "recall": _recall,
    "precision": _precision,
    "map": _map,
    "hit_rate": _hit_rate,
}
