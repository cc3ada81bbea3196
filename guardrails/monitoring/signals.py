"""Production logs -> signals per time window (latency, behaviour, feedback, complaints, quality).

:func:`compute_signals` sorts records by time, cuts tumbling windows aligned to multiples of
``window`` since the epoch (one window over everything when ``window`` is None; empty windows
in between are kept, with NaN statistics) and returns one frozen :class:`WindowSignals` each.
Definitions (n = interactions in the window; a rate with an empty denominator is NaN):

* latency p50/p95/p99 per stage: linear-interpolated percentiles (``numpy.percentile``) of the
  logged values; a missing ``total`` is the sum of the four stages when all four are logged;
* throughput = n / window seconds (a partly covered first or last window reads low); with one
  window over everything, n / (last - first timestamp);
* retrieval hit rate (clicked) = #{a clicked doc is in the shown top-k} / #{shown list non-empty};
  hit rate (relevant, with ``qrels``) = #{a doc with grade > 0 in the top-k} / #{judged queries};
  the shown list is the reranked list when logged, else the retrieved one;
* CTR = #{≥ 1 click} / n; dwell = mean over clicked documents' dwell seconds;
* repeat-query rate = #{an earlier query of the same session within ``repeat_within`` is a near
  duplicate} / n, near duplicate meaning token Jaccard |A∩B| / |A∪B| ≥ 0.6 on lower-cased word
  tokens, or cosine ≥ 0.9 of the two query embeddings when both are logged;
* like / dislike / flag rate = #{feedback} / n; hallucination / unsafe rate = #{flag_reason} / n;
* groundedness of an answer (needs ``doc_texts``) = |{answer content tokens, with repeats, that
  occur in the shown top-k passages}| / |{answer content tokens}|, content tokens being
  lower-cased word tokens that are not English stop words (a unigram form of the token-overlap
  faithfulness checks in RAGAS, Es et al. 2023); the window value is the mean over answers;
* complaint topics: complaints are clustered once over all the records (k-means on sentence
  embeddings when an ``embedder`` is given, else on TF-IDF; k by silhouette) so windows share
  topic ids; :func:`rising_topics` compares two windows with an exact conditional test.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from guardrails.artifacts import fingerprint_json
from guardrails.errors import MetricError
from guardrails.monitoring.logs import LATENCY_STAGES, Feedback, LogBatch, LogRecord, to_columns

__all__ = [
    "ComplaintTopics",
    "Distribution",
    "Percentiles",
    "RisingTopic",
    "TopicCount",
    "WindowSignals",
    "compute_signals",
    "content_tokens",
    "fit_complaint_topics",
    "groundedness",
    "percentiles",
    "rate",
    "repeat_flags",
    "rising_topics",
    "signal_summary",
    "token_jaccard",
    "topic_tokens",
]

QUANTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
_WORD = re.compile(r"\w+")
_STOPWORDS_TEXT = (
    "a an the and or but if then else of to in on at by for with from as is are was were be "
    "been being it its this that these those i you he she we they me my your our their his her "
    "do does did done have has had not no so can could will would should may might must just "
    "than too very also up down out over into about after before again more most some any all "
    "there here what which who whom when where why how s t don"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# Words every chat complaint uses: they say nothing about its topic.
COMPLAINT_STOPWORDS = frozenset(
    ("assistant", "bot", "chat", "answer", "answers", "answered", "help", "helpful", "told")
)


def topic_tokens(text: str) -> list[str]:
    """Complaint-clustering tokens: content tokens minus chat words, plural -s stripped."""
    tokens = [t for t in content_tokens(text) if t not in COMPLAINT_STOPWORDS]
    return [
        t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t for t in tokens
    ]


# ----------------------------------------------------------------------------- helpers


def percentiles(values: Iterable[float], qs: Sequence[float] = (50.0, 95.0, 99.0)) -> np.ndarray:
    """Linear-interpolated percentiles of the finite values (NaN ignored); all NaN when empty."""
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.full(len(qs), np.nan)
    return np.percentile(x, qs)


def rate(mask: Iterable[bool] | np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of True among the valid entries; NaN when none is valid."""
    m = np.asarray(mask, dtype=bool)
    if valid is not None:
        m = m[np.asarray(valid, dtype=bool)]
    return float(m.mean()) if m.size else math.nan


def content_tokens(text: str) -> list[str]:
    """Lower-cased word tokens without English stop words (repeats kept)."""
    return [t for t in _WORD.findall(text.lower()) if t not in STOPWORDS]


def token_jaccard(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| of the lower-cased word-token sets (1.0 for two empty texts)."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def groundedness(answer: str, passages: Iterable[str]) -> float:
    """Share of the answer's content tokens found in the passages; NaN without content tokens."""
    tokens = content_tokens(answer)
    support = {t for p in passages for t in content_tokens(p)}
    return sum(t in support for t in tokens) / len(tokens) if tokens else math.nan


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Percentiles:
    n: int
    mean: float
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Distribution:
    """Summary of a sample; ``histogram`` counts use ``edges`` shared by all windows."""

    n: int
    mean: float
    std: float
    quantiles: Mapping[str, float]
    histogram: tuple[int, ...]
    edges: tuple[float, ...]


@dataclass(frozen=True)
class TopicCount:
    topic_id: int
    label: str
    count: int
    representatives: tuple[str, ...]


@dataclass(frozen=True)
class WindowSignals:
    """The signals of one window ``[start, end)`` (see the module docstring for definitions)."""

    start: float
    end: float
    n_queries: int
    n_sessions: int
    throughput_qps: float
    latency_ms: Mapping[str, Percentiles]
    memory_mean_mb: float
    memory_max_mb: float
    hit_rate_clicked: float
    hit_rate_relevant: float
    embedding_norms: Distribution | None
    rerank_scores: Distribution | None
    ctr: float
    mean_dwell_s: float
    mean_scroll_depth: float
    repeat_query_rate: float
    like_rate: float
    dislike_rate: float
    flag_rate: float
    hallucination_rate: float
    unsafe_rate: float
    groundedness: float
    error_rate: float
    complaint_rate: float
    complaint_topics: tuple[TopicCount, ...]
    topic_model: str
    domain_share: Mapping[str, float]
    ab_b_win_rate: float


@dataclass(frozen=True)
class RisingTopic:
    topic_id: int
    label: str
    reference_count: int
    current_count: int
    reference_rate: float
    current_rate: float
    ratio: float
    p_value: float
    representatives: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- complaint topics


class ComplaintTopics:
    """k-means topics of complaint texts: fit once, then :meth:`assign` any text to a topic."""

    def __init__(
        self,
        vectorizer: Any,
        kmeans: Any,
        embedder: Any,
        labels: Sequence[str],
        representatives: Sequence[tuple[str, ...]],
        fingerprint: str,
    ) -> None:
        self.vectorizer, self.kmeans, self.embedder = vectorizer, kmeans, embedder
        self.labels = tuple(labels)
        self.representatives = tuple(representatives)
        self.fingerprint = fingerprint

    def features(self, texts: Sequence[str]) -> Any:
        if self.embedder is None:
            return self.vectorizer.transform(texts)
        encode = getattr(self.embedder, "encode_queries", None) or self.embedder.encode
        vectors = np.asarray(encode(list(texts)), dtype=np.float64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def assign(self, texts: Sequence[str]) -> np.ndarray:
        """Topic id of each text."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        if self.kmeans is None:
            return np.zeros(len(texts), dtype=np.int64)
        return np.asarray(self.kmeans.predict(self.features(texts)), dtype=np.int64)


def fit_complaint_topics(
    texts: Sequence[str],
    *,
    embedder: Any = None,
    n_topics: int | None = None,
    max_topics: int = 12,
    seed: int = 0,
) -> ComplaintTopics:
    """Cluster complaint texts; ``n_topics`` None picks k in 2..max_topics by cosine silhouette.

    TF-IDF features use :func:`topic_tokens`; with an ``embedder``, k-means runs on the
    L2-normalised sentence embeddings instead (spherical k-means).
    Labels are the three highest mean TF-IDF terms of a cluster; representatives are up to
    three distinct texts closest to its centroid.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(texts)
    vectorizer = TfidfVectorizer(
        tokenizer=topic_tokens, token_pattern=None, lowercase=False, sublinear_tf=True
    )
    if len(set(texts)) < 3:
        return _single_topic(texts, vectorizer)
    tfidf = vectorizer.fit_transform(texts)
    model = ComplaintTopics(vectorizer, None, embedder, (), (), "")
    features = model.features(texts)
    kmeans = _best_kmeans(features, n_topics, max_topics, len(set(texts)), seed)
    ids = kmeans.labels_
    labels = [_label(tfidf, ids == i, vectorizer) for i in range(kmeans.n_clusters)]
    reps = [
        _representatives(texts, features, ids, kmeans.cluster_centers_[i], i)
        for i in range(kmeans.n_clusters)
    ]
    fp = fingerprint_json(
        {"texts": sorted(texts), "k": kmeans.n_clusters, "seed": seed, "embedder": repr(embedder)}
    )
    return ComplaintTopics(vectorizer, kmeans, embedder, labels, reps, fp)


def _single_topic(texts: Sequence[str], vectorizer: Any) -> ComplaintTopics:
    label = " / ".join(content_tokens(texts[0])[:3]) if texts else "none"
    return ComplaintTopics(
        vectorizer,
        None,
        None,
        [label],
        [tuple(dict.fromkeys(texts))[:3]],
        fingerprint_json({"texts": sorted(texts)}),
    )


def _best_kmeans(features: Any, n_topics: int | None, max_topics: int, n_unique: int, seed: int):
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    def fit(k: int) -> Any:
        return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(features)

    if n_topics is not None:
        return fit(min(n_topics, n_unique))
    best, best_score = None, -2.0
    for k in range(2, min(max_topics, n_unique - 1) + 1):
        km = fit(k)
        score = silhouette_score(
            features,
            km.labels_,
            metric="cosine",
            sample_size=min(2000, features.shape[0]),
            random_state=seed,
        )
        if score > best_score:
            best, best_score = km, score
    return best if best is not None else fit(min(2, n_unique))


def _label(tfidf: Any, members: np.ndarray, vectorizer: Any) -> str:
    weights = np.asarray(tfidf[members].mean(axis=0)).ravel()
    terms = vectorizer.get_feature_names_out()
    return " / ".join(terms[i] for i in np.argsort(-weights, kind="stable")[:3])


def _representatives(texts, features, ids: np.ndarray, centre: np.ndarray, topic: int):
    members = np.flatnonzero(ids == topic)
    rows = features[members]
    scores = np.asarray(rows @ centre).ravel()
    ordered = [texts[members[j]] for j in np.argsort(-scores, kind="stable")]
    return tuple(dict.fromkeys(ordered))[:3]


def rising_topics(
    reference: WindowSignals | Sequence[WindowSignals],
    current: WindowSignals | Sequence[WindowSignals],
    *,
    alpha: float = 0.01,
    min_ratio: float = 1.5,
) -> list[RisingTopic]:
    """Complaint topics whose per-query rate rose from ``reference`` to ``current``.

    Under H0 (equal per-query rates) a topic's current count given the total is
    Binomial(c_ref + c_cur, n_cur / (n_ref + n_cur)); the one-sided exact p-value is
    Bonferroni-adjusted over the topics. A topic rises when p_adj < ``alpha`` and the rate ratio
    ((c_cur + 0.5) / n_cur) / ((c_ref + 0.5) / n_ref) ≥ ``min_ratio``. Sorted by p-value.
    Both sides must come from one topic model (one :func:`compute_signals` call, or ``topics=``).
    """
    from scipy.stats import binomtest

    ref, cur = _as_windows(reference), _as_windows(current)
    models = {w.topic_model for w in (*ref, *cur) if w.topic_model}
    if len(models) > 1:
        raise MetricError(
            "rising_topics: windows come from different complaint-topic models; "
            "fit one with fit_complaint_topics() and pass topics= to both"
        )
    n_ref, n_cur = sum(w.n_queries for w in ref), sum(w.n_queries for w in cur)
    c_ref, c_cur = _topic_counts(ref), _topic_counts(cur)
    labels = _topic_labels((*ref, *cur))
    reps = {t.topic_id: t.representatives for w in (*ref, *cur) for t in w.complaint_topics}
    out = []
    for topic in sorted(labels):
        a, b = c_ref.get(topic, 0), c_cur.get(topic, 0)
        if n_ref == 0 or n_cur == 0 or a + b == 0:
            continue
        p = binomtest(b, a + b, n_cur / (n_ref + n_cur), alternative="greater").pvalue
        p_adj = min(1.0, p * len(labels))
        ratio = ((b + 0.5) / n_cur) / ((a + 0.5) / n_ref)
        p_adj = float(p_adj)
        if p_adj < alpha and ratio >= min_ratio:
            out.append(
                RisingTopic(
                    topic, labels[topic], a, b, a / n_ref, b / n_cur, ratio, p_adj, reps[topic]
                )
            )
    return sorted(out, key=lambda t: (t.p_value, t.topic_id))


def _as_windows(w: WindowSignals | Sequence[WindowSignals]) -> tuple[WindowSignals, ...]:
    return (w,) if isinstance(w, WindowSignals) else tuple(w)


def _topic_counts(windows: Sequence[WindowSignals]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for w in windows:
        for t in w.complaint_topics:
            counts[t.topic_id] = counts.get(t.topic_id, 0) + t.count
    return counts


def _topic_labels(windows: Sequence[WindowSignals]) -> dict[int, str]:
    return {t.topic_id: t.label for w in windows for t in w.complaint_topics}


# ----------------------------------------------------------------------------- per record


def repeat_flags(
    records: Sequence[LogRecord],
    within: timedelta = timedelta(minutes=5),
    *,
    jaccard: float = 0.6,
    cosine: float = 0.9,
) -> np.ndarray:
    """True where an earlier query of the same session, at most ``within`` before, is a near
    duplicate (token Jaccard ≥ ``jaccard``, or embedding cosine ≥ ``cosine``)."""
    order = sorted(range(len(records)), key=lambda i: records[i].timestamp)
    sessions: dict[str, list[int]] = {}
    for i in order:
        sessions.setdefault(records[i].session_id, []).append(i)
    tokens = [set(_WORD.findall(r.query.lower())) for r in records]
    flags = np.zeros(len(records), dtype=bool)
    for members in sessions.values():
        for pos, j in enumerate(members):
            flags[j] = any(
                _near(records[i], records[j], tokens[i], tokens[j], jaccard, cosine)
                for i in members[:pos]
                if records[j].timestamp - records[i].timestamp <= within.total_seconds()
            )
    return flags


def _near(a: LogRecord, b: LogRecord, ta: set[str], tb: set[str], jac: float, cos: float) -> bool:
    union = ta | tb
    if union and len(ta & tb) / len(union) >= jac:
        return True
    if a.query_embedding is None or b.query_embedding is None:
        return False
    u, v = np.asarray(a.query_embedding), np.asarray(b.query_embedding)
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    return denom > 0 and float(u @ v) / denom >= cos


def _per_record(records: Sequence[LogRecord], qrels, doc_texts, k: int) -> dict[str, np.ndarray]:
    clicked_hit, relevant_hit, grounded = [], [], []
    doc_tokens: dict[str, frozenset[str]] = {}
    for r in records:
        top = [h.doc_id for h in r.shown[:k]]
        clicked_hit.append(any(d in top for d in r.clicked) if top else math.nan)
        judged = qrels.get(r.query_id) if qrels is not None and r.query_id else None
        relevant_hit.append(
            math.nan if judged is None else float(any(judged.get(d, 0) > 0 for d in top))
        )
        grounded.append(_grounded(r.answer, top, doc_texts, doc_tokens))
    return {
        "clicked_hit": np.array(clicked_hit, dtype=float),
        "relevant_hit": np.array(relevant_hit, dtype=float),
        "groundedness": np.array(grounded, dtype=float),
    }


def _grounded(answer, top, doc_texts, cache: dict[str, frozenset[str]]) -> float:
    if not answer or doc_texts is None:
        return math.nan
    present = [d for d in top if d in doc_texts]
    if not present:
        return math.nan
    for d in present:
        if d not in cache:
            cache[d] = frozenset(content_tokens(doc_texts[d]))
    tokens = content_tokens(answer)
    support = frozenset().union(*(cache[d] for d in present))
    return sum(t in support for t in tokens) / len(tokens) if tokens else math.nan


def _flat(records: Sequence[LogRecord], values_of) -> tuple[np.ndarray, np.ndarray]:
    """(values, owner record index) of a per-record list-valued field, owners ascending."""
    values, owners = [], []
    for i, r in enumerate(records):
        vs = values_of(r)
        values.extend(vs)
        owners.extend([i] * len(vs))
    return np.array(values, dtype=float), np.array(owners, dtype=np.int64)


def _total_latency(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    stages = sum(cols[f"latency_{s}"] for s in LATENCY_STAGES if s != "total")
    return np.where(np.isnan(cols["latency_total"]), stages, cols["latency_total"])


def _distribution(x: np.ndarray, edges: np.ndarray | None) -> Distribution | None:
    x = x[np.isfinite(x)]
    if edges is None or x.size == 0:
        return None
    qs = percentiles(x, QUANTILES)
    counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    return Distribution(
        int(x.size),
        float(x.mean()),
        float(x.std()),
        {f"p{int(q):02d}": float(v) for q, v in zip(QUANTILES, qs, strict=True)},
        tuple(int(c) for c in counts),
        tuple(float(e) for e in edges),
    )


def _edges(x: np.ndarray, bins: int) -> np.ndarray | None:
    x = x[np.isfinite(x)]
    return np.histogram_bin_edges(x, bins=bins) if x.size else None


def _latency(cols: Mapping[str, np.ndarray], sl: slice) -> dict[str, Percentiles]:
    out = {}
    for stage in LATENCY_STAGES:
        x = cols[f"latency_{stage}"][sl]
        x = x[np.isfinite(x)]
        p50, p95, p99 = percentiles(x)
        out[stage] = Percentiles(
            int(x.size), float(x.mean()) if x.size else math.nan, float(p50), float(p95), float(p99)
        )
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _nanmax(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else math.nan


def _windows(times: np.ndarray, window: timedelta | None) -> tuple[np.ndarray, np.ndarray]:
    """Window start times and, per window, the [lo, hi) record bounds (times sorted)."""
    if window is None:
        return np.array([times[0]]), np.array([0, times.size])
    w = window.total_seconds()
    if w <= 0:
        raise MetricError(f"window={window!r} must be positive")
    first, last = math.floor(times[0] / w), math.floor(times[-1] / w)
    starts = np.arange(first, last + 1, dtype=float) * w
    inner = np.searchsorted(times, starts[1:], side="left")
    return starts, np.concatenate([[0], inner, [times.size]]).astype(np.int64)


def compute_signals(
    records: Sequence[LogRecord] | LogBatch,
    window: timedelta | None = None,
    *,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    doc_texts: Mapping[str, str] | None = None,
    embedder: Any = None,
    topics: ComplaintTopics | None = None,
    k: int = 10,
    repeat_within: timedelta = timedelta(minutes=5),
    bins: int = 20,
    seed: int = 0,
) -> list[WindowSignals]:
    """Signals per window over ``records`` (see the module docstring for every definition).

    ``qrels`` ({query_id: {doc_id: grade}}) enables the relevant hit rate, ``doc_texts``
    ({doc_id: text}) groundedness, ``embedder`` embedding-based complaint topics; ``topics``
    reuses a fitted topic model (so two calls can be compared with :func:`rising_topics`).
    """
    recs = sorted(
        records.records if isinstance(records, LogBatch) else records, key=lambda r: r.timestamp
    )
    if not recs:
        return []
    cols = to_columns(recs)
    cols["latency_total"] = _total_latency(cols)
    derived = _per_record(recs, qrels, doc_texts, k)
    derived["repeat"] = repeat_flags(recs, repeat_within).astype(float)
    complaints = [r.complaint for r in recs if r.complaint]
    model = topics or (
        fit_complaint_topics(complaints, embedder=embedder, seed=seed) if complaints else None
    )
    topic_ids = np.full(len(recs), -1, dtype=np.int64)
    if model is not None and complaints:
        topic_ids[cols["has_complaint"]] = model.assign(complaints)
    scores = _flat(recs, lambda r: [h.score for h in r.reranked or ()])
    dwell = _flat(recs, lambda r: list(r.dwell_s.values()))
    norms = (
        np.linalg.norm(cols["query_embedding"], axis=1)
        if "query_embedding" in cols
        else np.full(len(recs), np.nan)
    )
    edges = {"scores": _edges(scores[0], bins), "norms": _edges(norms, bins)}
    starts, bounds = _windows(cols["timestamp"], window)
    ctx = _Context(recs, cols, derived, topic_ids, model, scores, dwell, norms, edges)
    if window is None:
        first, last = float(cols["timestamp"][0]), float(cols["timestamp"][-1])
        return [ctx.window(first, last, last - first, slice(0, len(recs)))]
    w = window.total_seconds()
    return [
        ctx.window(float(s), float(s) + w, w, slice(int(bounds[i]), int(bounds[i + 1])))
        for i, s in enumerate(starts)
    ]


@dataclass(frozen=True)
class _Context:
    recs: Sequence[LogRecord]
    cols: Mapping[str, np.ndarray]
    derived: Mapping[str, np.ndarray]
    topic_ids: np.ndarray
    model: ComplaintTopics | None
    scores: tuple[np.ndarray, np.ndarray]
    dwell: tuple[np.ndarray, np.ndarray]
    norms: np.ndarray
    edges: Mapping[str, np.ndarray | None]

    def owned(self, flat: tuple[np.ndarray, np.ndarray], sl: slice) -> np.ndarray:
        lo, hi = np.searchsorted(flat[1], [sl.start, sl.stop], side="left")
        return flat[0][lo:hi]

    def window(self, start: float, end: float, span: float, sl: slice) -> WindowSignals:
        c, d, n = self.cols, self.derived, sl.stop - sl.start
        feedback, reasons = c["feedback"][sl], c["flag_reason"][sl]
        return WindowSignals(
            start=start,
            end=end,
            n_queries=n,
            n_sessions=len(set(c["session_id"][sl])),
            throughput_qps=n / span if span > 0 else math.nan,
            latency_ms=_latency(c, sl),
            memory_mean_mb=_nanmean(c["memory_mb"][sl]),
            memory_max_mb=_nanmax(c["memory_mb"][sl]),
            hit_rate_clicked=_nanmean(d["clicked_hit"][sl]),
            hit_rate_relevant=_nanmean(d["relevant_hit"][sl]),
            embedding_norms=_distribution(self.norms[sl], self.edges["norms"]),
            rerank_scores=_distribution(self.owned(self.scores, sl), self.edges["scores"]),
            ctr=rate(c["n_clicked"][sl] > 0),
            mean_dwell_s=_nanmean(self.owned(self.dwell, sl)),
            mean_scroll_depth=_nanmean(c["scroll_depth"][sl]),
            repeat_query_rate=_nanmean(d["repeat"][sl]),
            like_rate=rate(feedback == Feedback.LIKE.value),
            dislike_rate=rate(feedback == Feedback.DISLIKE.value),
            flag_rate=rate(feedback == Feedback.FLAG.value),
            hallucination_rate=rate(reasons == "hallucination"),
            unsafe_rate=rate(reasons == "unsafe"),
            groundedness=_nanmean(d["groundedness"][sl]),
            error_rate=rate(c["has_error"][sl]),
            complaint_rate=rate(c["has_complaint"][sl]),
            complaint_topics=self.topics(sl),
            topic_model=self.model.fingerprint if self.model is not None else "",
            domain_share=_shares(c["domain"][sl]),
            ab_b_win_rate=_b_wins(self.recs[sl]),
        )

    def topics(self, sl: slice) -> tuple[TopicCount, ...]:
        if self.model is None:
            return ()
        counts = np.bincount(
            self.topic_ids[sl][self.topic_ids[sl] >= 0], minlength=len(self.model.labels)
        )
        return tuple(
            TopicCount(i, self.model.labels[i], int(counts[i]), self.model.representatives[i])
            for i in range(len(self.model.labels))
        )


# The rates a report compares side by side (same unit: a share of the window's queries).
SUMMARY_RATES = (
    "ctr",
    "repeat_query_rate",
    "like_rate",
    "dislike_rate",
    "flag_rate",
    "hallucination_rate",
    "unsafe_rate",
    "complaint_rate",
    "error_rate",
    "hit_rate_clicked",
)
SUMMARY_SCALARS = ("throughput_qps", "memory_mean_mb", "memory_max_mb", "mean_dwell_s")


def signal_summary(w: WindowSignals) -> dict[str, Any]:
    """The key signals of one window as JSON-able data (NaN as None) for a run's record and
    its reports: counts, throughput, memory, latency p50/p95/p99 per logged stage, the rates of
    :data:`SUMMARY_RATES` and the complaint topics (count and per-query rate)."""
    n = max(w.n_queries, 1)
    return {
        "start": w.start,
        "end": w.end,
        "n_queries": w.n_queries,
        "n_sessions": w.n_sessions,
        **{name: _json_float(getattr(w, name)) for name in (*SUMMARY_SCALARS, *SUMMARY_RATES)},
        "latency_ms": {
            stage: {"n": p.n, **{q: _json_float(getattr(p, q)) for q in ("p50", "p95", "p99")}}
            for stage, p in w.latency_ms.items()
            if p.n > 0
        },
        "complaint_topics": [
            {"label": t.label, "count": t.count, "rate": t.count / n} for t in w.complaint_topics
        ],
    }


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _shares(domains: np.ndarray) -> dict[str, float]:
    if domains.size == 0:
        return {}
    names, counts = np.unique([d or "unknown" for d in domains], return_counts=True)
    return {str(n): float(c) / domains.size for n, c in zip(names, counts, strict=True)}


def _b_wins(records: Sequence[LogRecord]) -> float:
    winners = [r.ab["winner"] for r in records if r.ab]
    decided = [w for w in winners if w in ("a", "b")]
    return sum(w == "b" for w in decided) / len(decided) if decided else math.nan
