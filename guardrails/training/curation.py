"""Production logs -> training sets for each component, cleaned, balanced, with a datasheet.

Builders (one row per example, in the formats the trainers read):

* :func:`retriever_triplets` ``{"query", "positive", "negative"}`` (doc ids, like
  ``golden/*/train.jsonl``): each clicked document is a positive; each document shown ABOVE it
  and skipped is a negative (Joachims, 2002, "click > skip above"); with a ``retriever``, the
  top-ranked document it returns that the user did not click is one more (hard) negative.
* :func:`reranker_labels` ``{"query", "doc_id", "label"}``: graded from behaviour, clicked with
  dwell >= ``dwell_s`` (30 s) -> 2, clicked -> 1, skipped -> 0; unexamined documents unlabelled.
* :func:`reranker_examples` ``{"query", "doc_id", "score", "rank", "label", "kind"}``: ``top`` =
  the highest-scored clicked documents, ``failing`` = the highest-scored skipped ones (the
  reranker was confident and wrong).
* :func:`sft_pairs` ``{"prompt", "answer", "context"}`` (context = shown doc ids): liked answers.
* :func:`dpo_pairs` ``{"prompt", "chosen", "rejected", "context"}``: A/B outcomes (ties
  dropped), and per normalised prompt the i-th liked answer against the i-th disliked or
  flagged one.
* :func:`kto_examples` ``{"prompt", "completion", "label", "context"}``: every answer with
  feedback.

Preparation (:func:`prepare`), each step counted in the datasheet: ``normalise`` (NFKC,
whitespace), ``exact_duplicates`` (same case-folded key), ``near_duplicates`` (token Jaccard >=
0.8 within a group, exact all-pairs with prefix filtering, Bayardo et al., 2007; or embedding
cosine >= 0.95 when an embedder is given), ``off_topic`` (a topic filter), ``balance`` (every
topic, then every class, down-sampled to the smallest, seeded). :func:`write_dataset` writes
``<name>.jsonl`` and ``<name>.datasheet.json`` atomically; :mod:`guardrails.training.mix`
reads them into the trainers.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.artifacts import fingerprint_json
from guardrails.monitoring.logs import Feedback, LogRecord

__all__ = [
    "CuratedDataset",
    "Datasheet",
    "Row",
    "TopicFilter",
    "balance",
    "curate",
    "dpo_pairs",
    "kto_examples",
    "logged_query_vectors",
    "near_duplicates",
    "normalize_text",
    "prepare",
    "reranker_examples",
    "reranker_labels",
    "retriever_triplets",
    "sft_pairs",
    "text_key",
    "write_dataset",
]

_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """Unicode NFKC, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_key(text: str) -> str:
    """Comparison key: normalised and case-folded."""
    return normalize_text(text).casefold()


@dataclass(frozen=True)
class Row:
    """One example: ``data`` is written; ``text`` / ``group`` drive near-dup removal,
    ``topic`` and ``cls`` the balancing; ``timestamp`` the datasheet's window."""

    data: Mapping[str, Any]
    text: str
    group: str = ""
    topic: str = "unknown"
    cls: str = ""
    timestamp: float = math.nan


# ----------------------------------------------------------------------------- builders


def _topic(r: LogRecord) -> str:
    return r.domain or "unknown"


def retriever_triplets(records: Iterable[LogRecord], retriever: Any = None) -> list[Row]:
    """Click > skip-above triplets, plus one hard negative per positive from ``retriever``."""
    rows = []
    records = list(records)
    hard = _hard_negatives(records, retriever) if retriever is not None else {}
    for i, r in enumerate(records):
        rank = {h.doc_id: k for k, h in enumerate(r.shown)}
        clicked = set(r.clicked)
        for pos in r.clicked:
            negatives = [d for d in r.skipped if rank.get(d, math.inf) < rank.get(pos, -1)]
            negatives += [d for d in hard.get(i, ()) if d not in clicked and d not in negatives]
            for neg in negatives:
                data = {"query": r.query, "positive": pos, "negative": neg}
                rows.append(Row(data, r.query, f"{pos}|{neg}", _topic(r), "triplet", r.timestamp))
    return rows


def _hard_negatives(records: Sequence[LogRecord], retriever: Any) -> dict[int, tuple[str, ...]]:
    """Per clicked record: the top-ranked unclicked document of ``retriever`` (at most one)."""
    idx = [i for i, r in enumerate(records) if r.clicked]
    if not idx:
        return {}
    run = retriever.search_run([str(i) for i in idx], [records[i].query for i in idx], k=10)
    out: dict[int, tuple[str, ...]] = {}
    for i in idx:
        ranked = sorted(run.get(str(i), {}).items(), key=lambda kv: -kv[1])
        top = next((d for d, _ in ranked if d not in records[i].clicked), None)
        out[i] = (top,) if top else ()
    return out


def reranker_labels(records: Iterable[LogRecord], dwell_s: float = 30.0) -> list[Row]:
    """Graded labels: click + dwell >= ``dwell_s`` -> 2, click -> 1, skipped -> 0."""
    rows = []
    for r in records:
        for doc in r.clicked:
            label = 2 if r.dwell_s.get(doc, 0.0) >= dwell_s else 1
            rows.append(_label_row(r, doc, label))
        rows += [_label_row(r, doc, 0) for doc in r.skipped if doc not in r.clicked]
    return rows


def _label_row(r: LogRecord, doc: str, label: int) -> Row:
    data = {"query": r.query, "doc_id": doc, "label": label}
    return Row(data, r.query, f"{doc}|{label}", _topic(r), str(label), r.timestamp)


def reranker_examples(records: Iterable[LogRecord], n: int = 100) -> list[Row]:
    """The ``n`` highest-scored clicked (``top``) and skipped (``failing``) documents."""
    top: list[Row] = []
    failing: list[Row] = []
    for r in records:
        for k, h in enumerate(r.reranked or ()):
            if math.isnan(h.score) or (h.doc_id not in r.clicked and h.doc_id not in r.skipped):
                continue
            kind = "top" if h.doc_id in r.clicked else "failing"
            data = {"query": r.query, "doc_id": h.doc_id, "score": h.score, "rank": k + 1}
            row = Row(
                {**data, "label": int(kind == "top"), "kind": kind},
                r.query,
                f"{h.doc_id}|{kind}",
                _topic(r),
                kind,
                r.timestamp,
            )
            (top if kind == "top" else failing).append(row)
    by_score = lambda row: (-row.data["score"], row.data["query"], row.data["doc_id"])  # noqa: E731
    return sorted(top, key=by_score)[:n] + sorted(failing, key=by_score)[:n]


def _answered(r: LogRecord) -> bool:
    return bool(r.answer) and not r.error


def sft_pairs(records: Iterable[LogRecord], context_k: int = 3) -> list[Row]:
    """Liked answers as ``{"prompt", "answer", "context": [top shown doc ids]}``."""
    rows = []
    for r in records:
        if r.feedback is Feedback.LIKE and _answered(r):
            context = _context(r, context_k)
            data = {"prompt": r.query, "answer": r.answer, "context": context}
            rows.append(Row(data, r.query, text_key(r.answer or ""), _topic(r), "sft", r.timestamp))
    return rows


def dpo_pairs(records: Iterable[LogRecord]) -> list[Row]:
    """A/B winners over losers, then liked vs disliked answers of one normalised prompt."""
    records = list(records)
    rows = []
    for r in records:
        if r.ab and r.ab.get("winner") in ("a", "b") and r.ab.get("a") and r.ab.get("b"):
            win, lose = (r.ab["a"], r.ab["b"]) if r.ab["winner"] == "a" else (r.ab["b"], r.ab["a"])
            rows.append(_pair_row(r, win, lose))
    liked: dict[str, list[LogRecord]] = {}
    disliked: dict[str, list[LogRecord]] = {}
    for r in records:
        if _answered(r) and r.feedback is not None:
            side = liked if r.feedback is Feedback.LIKE else disliked
            side.setdefault(text_key(r.query), []).append(r)
    for key in sorted(liked.keys() & disliked.keys()):
        for good, bad in zip(liked[key], disliked[key], strict=False):
            if text_key(good.answer or "") != text_key(bad.answer or ""):
                rows.append(_pair_row(good, good.answer or "", bad.answer or ""))
    return rows


def _context(r: LogRecord, k: int = 3) -> list[str]:
    """The top ``k`` shown doc ids: the passages the answer was generated from."""
    return [h.doc_id for h in r.shown[:k]]


def _pair_row(r: LogRecord, chosen: str, rejected: str) -> Row:
    data = {"prompt": r.query, "chosen": chosen, "rejected": rejected, "context": _context(r)}
    group = f"{text_key(chosen)}|{text_key(rejected)}"
    return Row(data, r.query, group, _topic(r), "pair", r.timestamp)


def kto_examples(records: Iterable[LogRecord]) -> list[Row]:
    """Unpaired feedback: like -> ``label`` True, dislike / flag -> False."""
    rows = []
    for r in records:
        if _answered(r) and r.feedback is not None:
            label = r.feedback is Feedback.LIKE
            data = {
                "prompt": r.query,
                "completion": r.answer,
                "label": label,
                "context": _context(r),
            }
            group = f"{text_key(r.answer or '')}|{label}"
            rows.append(Row(data, r.query, group, _topic(r), str(label).lower(), r.timestamp))
    return rows


# ----------------------------------------------------------------------------- cleaning


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text_key(text)))


def near_duplicates(texts: Sequence[str], threshold: float = 0.8) -> list[int]:
    """Indices to keep: greedy, first wins; a text is dropped when its token Jaccard with a
    KEPT text is >= ``threshold``. Exact all-pairs with prefix filtering: two sets with
    ``J >= t`` share a token among the first ``|x| - ceil(t |x|) + 1`` of each in a global
    (rare-first) order, so only those tokens are indexed. Kept texts are pairwise below ``t``,
    hence applying it again keeps everything (idempotent)."""
    sets = [_tokens(t) for t in texts]
    freq: dict[str, int] = {}
    for s in sets:
        for tok in s:
            freq[tok] = freq.get(tok, 0) + 1
    index: dict[str, list[int]] = {}
    keep: list[int] = []
    for i, s in enumerate(sets):
        prefix = sorted(s, key=lambda t: (freq[t], t))[: len(s) - math.ceil(threshold * len(s)) + 1]
        candidates = {j for tok in prefix for j in index.get(tok, ())}
        if any(_jaccard(s, sets[j]) >= threshold for j in candidates) or (
            not s and any(not sets[j] for j in keep)
        ):
            continue
        keep.append(i)
        for tok in prefix:
            index.setdefault(tok, []).append(i)
    return keep


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _near_by_embedding(texts: Sequence[str], embedder: Any, threshold: float) -> list[int]:
    """Greedy keep-first on cosine of the embedder's (normalised) vectors."""
    x = _unit(embedder.encode(list(texts)))
    keep: list[int] = []
    for i in range(len(texts)):
        if not keep or float(np.max(x[keep] @ x[i])) < threshold:
            keep.append(i)
    return keep


@dataclass(frozen=True)
class TopicFilter:
    """Keep rows whose topic is in ``topics`` (when given) and, with an ``embedder`` and
    ``centroids`` ({name: vector}), whose text has cosine >= ``min_cosine`` to some centroid.

    :meth:`from_anchors` builds it from on-topic anchors (the production index's document
    vectors in the stack's ``curated`` fixture). ``anchors`` (a fingerprint of the anchors) and
    the embedder's ``fingerprint`` identify the filter in the datasheet."""

    topics: frozenset[str] | None = None
    embedder: Any = None
    centroids: Mapping[str, Any] = field(default_factory=dict)
    min_cosine: float = 0.25
    anchors: str = ""

    @classmethod
    def from_anchors(
        cls,
        embedder: Any,
        anchors: Mapping[str, Any],
        *,
        topics: Iterable[str] | None = None,
        min_cosine: float = 0.25,
        known: Mapping[str, Any] | None = None,
    ) -> TopicFilter:
        """A nearest-anchor filter: a row is on-topic when its text has cosine >=
        ``min_cosine`` to some anchor. ``anchors`` maps a name to a vector (e.g. the production
        index's document vectors) or to a text (encoded here); ``topics`` restricts the rows'
        topics (e.g. the configured domains); ``known`` gives vectors of texts already embedded
        by the same embedder (e.g. the logged query vectors, see :func:`logged_query_vectors`)."""
        memo = _MemoEncoder(embedder, known or {})
        names = sorted(anchors)
        texts = [n for n in names if isinstance(anchors[n], str)]
        vectors = dict(zip(texts, memo.encode([anchors[n] for n in texts]), strict=True))
        centroids = {n: vectors[n] if n in vectors else np.asarray(anchors[n]) for n in names}
        fp = fingerprint_json(
            {
                n: a if isinstance(a, str) else np.round(np.asarray(a, dtype=float), 4).tolist()
                for n, a in anchors.items()
            }
        )
        allowed = frozenset(topics) if topics is not None else None
        return cls(allowed, memo, centroids, min_cosine, fp)

    def describe(self) -> dict[str, Any]:
        """A stable description for the datasheet (no object reprs, no vectors)."""
        return {
            "topics": sorted(self.topics) if self.topics is not None else None,
            "embedder": str(getattr(self.embedder, "fingerprint", type(self.embedder).__name__))
            if self.embedder is not None
            else None,
            "centroids": len(self.centroids),
            "anchors": self.anchors,
            "min_cosine": self.min_cosine,
        }

    def keep(self, rows: Sequence[Row]) -> list[Row]:
        rows = [r for r in rows if self.topics is None or r.topic in self.topics]
        if self.embedder is None or not self.centroids or not rows:
            return list(rows)
        c = _unit([self.centroids[k] for k in sorted(self.centroids)])
        texts = sorted({r.text for r in rows})  # many rows share a query: encode it once
        best = dict(zip(texts, (_unit(self.embedder.encode(texts)) @ c.T).max(axis=1), strict=True))
        return [r for r in rows if best[r.text] >= self.min_cosine]


def _unit(vectors: Any) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class _MemoEncoder:
    """An embedder that encodes each distinct text once (the filter runs once per dataset,
    over mostly the same queries), as a query when the embedder tells queries apart."""

    def __init__(self, embedder: Any, known: Mapping[str, Any]) -> None:
        self.embedder = embedder
        self.fingerprint = getattr(embedder, "fingerprint", type(embedder).__name__)
        self._vectors = {t: np.asarray(v, dtype=np.float64) for t, v in known.items()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._vectors})
        if todo:
            encode = getattr(self.embedder, "encode_queries", None) or self.embedder.encode
            self._vectors.update(zip(todo, np.asarray(encode(todo), dtype=np.float64), strict=True))
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 1))


def logged_query_vectors(
    records: Iterable[LogRecord], embedder: Any, *, sample: int = 8, min_cosine: float = 0.999
) -> dict[str, np.ndarray]:
    """``{normalised query: logged vector}`` when the logs were embedded by ``embedder``
    (checked on ``sample`` distinct queries re-encoded here: every cosine >= ``min_cosine``),
    else ``{}`` (the logs come from another embedder: their vectors must not be mixed in)."""
    logged: dict[str, np.ndarray] = {}
    for r in records:
        if r.query_embedding is not None:
            logged.setdefault(normalize_text(r.query), np.asarray(r.query_embedding))
    probe = sorted(logged)[:sample]
    if not probe:
        return {}
    encode = getattr(embedder, "encode_queries", None) or embedder.encode
    fresh = np.asarray(encode(probe), dtype=np.float64)
    if fresh.shape[1] != len(logged[probe[0]]):
        return {}
    agree = (_unit(fresh) * _unit([logged[t] for t in probe])).sum(axis=1)
    return logged if bool((agree >= min_cosine).all()) else {}


def balance(rows: Sequence[Row], key: Callable[[Row], str], seed: int = 0) -> list[Row]:
    """Down-sample every ``key`` group to the smallest group's size (seeded); order kept."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(key(r), []).append(i)
    if len(groups) < 2:
        return list(rows)
    size = min(len(v) for v in groups.values())
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for k in sorted(groups) for i in rng.permutation(groups[k])[:size])
    return [rows[i] for i in chosen]


# ----------------------------------------------------------------------------- datasheet


@dataclass(frozen=True)
class Datasheet:
    """What went in and out of each step, and where the data came from."""

    name: str
    format: tuple[str, ...]
    steps: tuple[tuple[str, int, int], ...]
    n_out: int
    fingerprint: str
    sources: tuple[str, ...]
    window: tuple[str | None, str | None]
    params: Mapping[str, Any]
    counts_by_topic: Mapping[str, int]
    counts_by_class: Mapping[str, int]


@dataclass(frozen=True)
class CuratedDataset:
    name: str
    rows: tuple[Row, ...]
    datasheet: Datasheet

    @property
    def records(self) -> list[dict[str, Any]]:
        return [dict(r.data) for r in self.rows]


def _normalised(row: Row) -> Row:
    data = {k: normalize_text(v) if isinstance(v, str) else v for k, v in row.data.items()}
    return Row(data, normalize_text(row.text), row.group, row.topic, row.cls, row.timestamp)


def _exact_key(row: Row) -> str:
    return json.dumps(
        {k: text_key(v) if isinstance(v, str) else v for k, v in row.data.items()}, sort_keys=True
    )


def prepare(
    name: str,
    rows: Sequence[Row],
    *,
    near_threshold: float = 0.8,
    embedder: Any = None,
    cosine_threshold: float = 0.95,
    topic_filter: TopicFilter | None = None,
    balance_topics: bool = False,
    balance_classes: bool = False,
    seed: int = 0,
    sources: Sequence[str] = (),
    exclude_texts: Sequence[str] = (),
) -> CuratedDataset:
    """Run the preparation steps in order, counting rows in and out of each.

    ``exclude_texts`` are held-out evaluation texts (golden queries, QA questions): rows whose
    text equals or near-duplicates one of them are dropped first (decontamination), so a
    candidate is never trained on the cases that judge it.
    """
    steps: list[tuple[str, int, int]] = []

    def step(label: str, fn: Callable[[list[Row]], list[Row]], current: list[Row]) -> list[Row]:
        out = fn(current)
        steps.append((label, len(current), len(out)))
        return out

    out = step("normalise", lambda rs: [_normalised(r) for r in rs], list(rows))
    if exclude_texts:
        out = step(
            "decontaminate", lambda rs: decontaminate(rs, exclude_texts, near_threshold), out
        )
    out = step("exact_duplicates", _dedup_exact, out)
    out = step(
        "near_duplicates",
        lambda rs: _dedup_near(rs, near_threshold, embedder, cosine_threshold),
        out,
    )
    if topic_filter is not None:
        out = step("off_topic", topic_filter.keep, out)
    if balance_topics:
        out = step("balance_topics", lambda rs: balance(rs, lambda r: r.topic, seed), out)
    if balance_classes:
        out = step("balance_classes", lambda rs: balance(rs, lambda r: r.cls, seed), out)
    params = {
        "near_threshold": near_threshold,
        "embedder": bool(embedder),
        "seed": seed,
        "cosine_threshold": cosine_threshold,
        "topic_filter": topic_filter.describe() if topic_filter is not None else None,
    }
    return CuratedDataset(name, tuple(out), _datasheet(name, out, steps, sources, params))


def decontaminate(
    rows: Sequence[Row], held_out: Sequence[str], threshold: float = 0.8
) -> list[Row]:
    """Rows whose ``text`` is not a (near-)duplicate of any held-out text (token Jaccard
    below ``threshold``); candidates are found through an inverted index on tokens."""
    held = [_tokens(t) for t in held_out]
    exact = {text_key(t) for t in held_out}
    postings: dict[str, list[int]] = {}
    for i, toks in enumerate(held):
        for tok in toks:
            postings.setdefault(tok, []).append(i)
    out = []
    for row in rows:
        toks = _tokens(row.text)
        near = {i for tok in toks for i in postings.get(tok, ())}
        if text_key(row.text) in exact or any(_jaccard(toks, held[i]) >= threshold for i in near):
            continue
        out.append(row)
    return out


def _dedup_exact(rows: list[Row]) -> list[Row]:
    seen: set[str] = set()
    out = []
    for r in rows:
        key = _exact_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _dedup_near(rows: list[Row], threshold: float, embedder: Any, cos: float) -> list[Row]:
    """Near duplicates are looked for within a group (same positive, same label...)."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.group, []).append(i)
    keep: list[int] = []
    for members in groups.values():
        texts = [rows[i].text for i in members]
        kept = (
            _near_by_embedding(texts, embedder, cos)
            if embedder is not None
            else near_duplicates(texts, threshold)
        )
        keep += [members[k] for k in kept]
    return [rows[i] for i in sorted(keep)]


def _iso(t: float) -> str | None:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat() if math.isfinite(t) else None


def _datasheet(name, rows, steps, sources, params) -> Datasheet:
    times = [r.timestamp for r in rows if math.isfinite(r.timestamp)]
    fields_ = tuple(sorted({k for r in rows for k in r.data}))
    by_topic: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for r in rows:
        by_topic[r.topic] = by_topic.get(r.topic, 0) + 1
        by_class[r.cls] = by_class.get(r.cls, 0) + 1
    return Datasheet(
        name,
        fields_,
        tuple(steps),
        len(rows),
        fingerprint_json([dict(r.data) for r in rows]),
        tuple(str(s) for s in sources),
        (_iso(min(times)) if times else None, _iso(max(times)) if times else None),
        params,
        dict(sorted(by_topic.items())),
        dict(sorted(by_class.items())),
    )


def curate(
    records: Sequence[LogRecord],
    *,
    retriever: Any = None,
    embedder: Any = None,
    topic_filter: TopicFilter | None = None,
    seed: int = 0,
    sources: Sequence[str] = (),
    exclude_texts: Sequence[str] = (),
) -> dict[str, CuratedDataset]:
    """Every dataset from ``records``: triplets and SFT balanced by topic, reranker labels and
    KTO by class, DPO and reranker examples deduplicated only."""
    common = {
        "embedder": embedder,
        "topic_filter": topic_filter,
        "seed": seed,
        "sources": sources,
        "exclude_texts": exclude_texts,
    }
    plan = {
        "retriever_triplets": (retriever_triplets(records, retriever), True, False),
        "reranker_labels": (reranker_labels(records), False, True),
        "reranker_examples": (reranker_examples(records), False, False),
        "sft": (sft_pairs(records), True, False),
        "dpo": (dpo_pairs(records), False, False),
        "kto": (kto_examples(records), False, True),
    }
    return {
        name: prepare(name, rows, balance_topics=bt, balance_classes=bc, **common)
        for name, (rows, bt, bc) in plan.items()
    }


def write_dataset(dataset: CuratedDataset, out_dir: str | Path) -> Path:
    """Write ``<name>.jsonl`` and ``<name>.datasheet.json`` (each atomically); return the
    JSONL path."""
    from guardrails.artifacts import atomic_write_text

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in dataset.records)
    path = folder / f"{dataset.name}.jsonl"
    atomic_write_text(path, lines)
    sheet = json.dumps(asdict(dataset.datasheet), indent=2, sort_keys=True)
    atomic_write_text(folder / f"{dataset.name}.datasheet.json", sheet + "\n")
    return path
