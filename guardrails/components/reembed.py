"""Keep an index in step with its corpus: incremental re-embed, batch re-embed.

An index stores, per document, the content hash of the text it embedded (the manifest's
``doc_hashes``), and the fingerprint of the embedder that embedded it. Against a new corpus
``C = {doc_id: text}`` and an index holding ``I = {doc_id: hash}``, :func:`plan_reembed` sorts
every document into exactly one category::

    new       = C \\ I                                  embed and add
    changed   = {d in C ∩ I : sha256(C[d]) != I[d]}     embed, replace
    deleted   = I \\ C                                  remove
    unchanged = {d in C ∩ I : sha256(C[d]) == I[d]}     keep the stored vector
    refresh   = top-N of the most-retrieved documents ∩ unchanged   re-read, replace

:func:`apply_reembed` embeds only ``new ∪ changed ∪ refresh`` (through the embedding cache, so a
text is never embedded twice), then updates a flat or IVF index in place (remove + add by id)
and rebuilds an HNSW index, whose graph cannot drop nodes, from the vectors it already holds.
Incremental updates are only valid within one embedding space: an embedder with another
fingerprint is refused (:class:`~guardrails.errors.FingerprintMismatch`), as the seed says,
"always store the model version with the embeddings"; a new embedder means a full re-embed
into a new index, :func:`batch_reembed`, then a shadow comparison and an alias switch.

IVF caveat: in-place updates keep the coarse centroids trained on the old corpus; after large
changes rebuild with :func:`batch_reembed` so the cells follow the data again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.components.embedder import Embedder, EmbeddingCache, content_hash
from guardrails.components.index import IndexConfig, VectorIndex
from guardrails.components.stack import corpus_fingerprint
from guardrails.errors import ComponentError

__all__ = [
    "ReembedMode",
    "ReembedPlan",
    "ReembedReport",
    "apply_reembed",
    "batch_reembed",
    "most_retrieved",
    "plan_reembed",
]

_SHOWN = 10  # ids listed per category in a plan summary
Encode = Callable[[list[str]], np.ndarray]
"""Texts -> ``(n, dim)`` float32 vectors in input order: where cache misses are embedded."""


@dataclass(frozen=True)
class ReembedPlan:
    """What an incremental re-embed will do; every id list is sorted."""

    new: tuple[str, ...]
    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]
    refresh: tuple[str, ...] = ()
    corpus_fingerprint: str = ""
    embedder_fingerprint: str = ""

    @property
    def to_embed(self) -> tuple[str, ...]:
        """Documents whose vectors are (re)computed: ``new ∪ changed ∪ refresh``, sorted."""
        return tuple(sorted((*self.new, *self.changed, *self.refresh)))

    @property
    def to_remove(self) -> tuple[str, ...]:
        """Documents whose stored vectors go: ``deleted ∪ changed ∪ refresh``, sorted."""
        return tuple(sorted((*self.deleted, *self.changed, *self.refresh)))

    @property
    def is_empty(self) -> bool:
        """True when the index already reflects the corpus and nothing is to be refreshed."""
        return not (self.new or self.changed or self.deleted or self.refresh)

    def counts(self) -> dict[str, int]:
        """``{category: number of documents}``."""
        names = ("new", "changed", "deleted", "unchanged", "refresh")
        return {name: len(getattr(self, name)) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists, counts, fingerprints)."""
        return {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()},
            "counts": self.counts(),
        }

    def summary(self) -> list[str]:
        """Human-readable lines: the counts, then up to 10 ids of each non-empty category."""
        head = " ".join(f"{name}={n}" for name, n in self.counts().items())
        lines = [f"plan: {head}"]
        for name in ("new", "changed", "deleted", "refresh"):
            ids = getattr(self, name)
            if ids:
                more = f" (+{len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else ""
                lines.append(f"  {name}: {', '.join(ids[:_SHOWN])}{more}")
        return lines


class ReembedMode(str, Enum):
    """How :func:`apply_reembed` changed the index."""

    IN_PLACE = "in-place"  # flat / IVF: stale vectors removed, fresh ones added by id
    REBUILT = "rebuilt"  # HNSW: a new index over stored + fresh vectors
    UNCHANGED = "unchanged"  # empty plan: only the corpus fingerprint may be updated


@dataclass(frozen=True)
class ReembedReport:
    """What :func:`apply_reembed` did. ``index`` is the index to use from now on.

    ``mode`` says whether the given index was updated in place or replaced by a rebuilt one.
    ``encoded`` documents went through the embedder; ``embedded`` of them missed the cache
    and ran through the model.
    """

    new: int
    changed: int
    deleted: int
    unchanged: int
    refreshed: int
    encoded: int
    embedded: int
    seconds: float
    mode: ReembedMode
    previous_fingerprint: str
    index_fingerprint: str
    index: VectorIndex = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, without the index object."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "index"}
        return {**out, "mode": self.mode.value}

    def summary(self) -> str:
        """One line: what was embedded, how long it took, how the index changed."""
        return (
            f"re-embedded {self.encoded} documents ({self.embedded} by the model, the rest "
            f"from the cache) in {self.seconds:.2f} s; index {self.mode.value}; fingerprint "
            f"{self.previous_fingerprint} -> {self.index_fingerprint}"
        )


# ------------------------------------------------------------------------------- planning


def _hit_id(hit: Any) -> str:
    """Doc id of one retrieved entry: ``{"doc_id": ...}``, an object with ``.doc_id``,
    a ``[doc_id, score]`` pair, or a bare id."""
    if isinstance(hit, Mapping):
        return str(hit["doc_id"])
    if hasattr(hit, "doc_id"):
        return str(hit.doc_id)
    if isinstance(hit, list | tuple):
        return str(hit[0])
    return str(hit)


def most_retrieved(records: Iterable[Any], n: int) -> list[str]:
    """The ``n`` doc ids retrieved most often over ``records`` (objects with ``.retrieved``).

    Counts one per appearance in a record's ``retrieved`` list; ties are broken by doc id so
    the answer is deterministic. Works on :class:`guardrails.monitoring.logs.LogRecord` and on any
    object whose ``retrieved`` holds ``{"doc_id", "score"}`` dicts.
    """
    if n <= 0:
        return []
    counts = Counter(_hit_id(hit) for record in records for hit in record.retrieved)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [doc_id for doc_id, _ in ranked[:n]]


def plan_reembed(
    index: VectorIndex,
    corpus: Mapping[str, str],
    *,
    hot_ids: Sequence[str] = (),
    refresh_hot: int = 0,
) -> ReembedPlan:
    """Diff ``corpus`` (``{doc_id: text}``) against the index by content hash.

    ``refresh`` holds those of the first ``refresh_hot`` entries of ``hot_ids`` (doc ids
    ordered by retrieval count, e.g. :func:`most_retrieved`) that are otherwise unchanged;
    hot documents that are new, changed or deleted are already handled by their category.
    """
    if not corpus:
        raise ComponentError("the corpus is empty; refusing to plan the removal of every document")
    stored = index.doc_hashes
    hashes = {str(d): content_hash(t) for d, t in corpus.items()}
    common = hashes.keys() & stored.keys()
    changed = {d for d in common if hashes[d] != stored[d]}
    unchanged = common - changed
    hot = dict.fromkeys(hot_ids[: max(refresh_hot, 0)])
    return ReembedPlan(
        new=tuple(sorted(hashes.keys() - stored.keys())),
        changed=tuple(sorted(changed)),
        deleted=tuple(sorted(stored.keys() - hashes.keys())),
        unchanged=tuple(sorted(unchanged)),
        refresh=tuple(sorted(d for d in hot if d in unchanged)),
        corpus_fingerprint=corpus_fingerprint(corpus),
        embedder_fingerprint=index.embedder_fingerprint,
    )


# ------------------------------------------------------------------------------- applying


def _check_plan(index: VectorIndex, plan: ReembedPlan, corpus: Mapping[str, str]) -> None:
    """Refuse a plan made for another index or corpus (it would corrupt the id map)."""
    held = set(plan.changed) | set(plan.deleted) | set(plan.unchanged)
    if held != set(index.doc_hashes) or plan.corpus_fingerprint != corpus_fingerprint(corpus):
        raise ComponentError(
            "the re-embed plan does not match this index and corpus (it was made for another "
            "index or corpus, or one of them changed since); run plan_reembed(index, corpus) "
            "again"
        )


def _embed(
    embedder: Embedder,
    texts: list[str],
    cache: EmbeddingCache | None,
    progress: bool,
    encode: Encode | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors of ``texts`` via the cache, and how many distinct texts the model embedded."""
    hashes = list(dict.fromkeys(content_hash(t) for t in texts))
    cached = cache.get_many(embedder.fingerprint, hashes) if cache is not None else {}
    if encode is None:
        vectors = embedder.encode_documents(texts, cache, progress=progress)
    else:
        vectors = embedder.encode_documents(texts, cache, progress=progress, encode=encode)
    return vectors, len(hashes) - len(cached)


def _update_in_place(
    index: VectorIndex, plan: ReembedPlan, vectors: np.ndarray, hashes: dict[str, str]
) -> VectorIndex:
    """Flat / IVF: remove stale vectors by id, add fresh ones; the manifest follows."""
    if plan.to_remove:
        index.remove(list(plan.to_remove), corpus_fingerprint=plan.corpus_fingerprint)
    if plan.to_embed:
        index.add(vectors, list(plan.to_embed), hashes, corpus_fingerprint=plan.corpus_fingerprint)
    index.corpus_fingerprint = plan.corpus_fingerprint
    return index


def _kept_vectors(
    index: VectorIndex, ids: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None
) -> dict[str, np.ndarray]:
    """Vectors of unchanged documents: from the cache (the exact encoder output a fresh build
    would use), else reconstructed from the index. Nothing is embedded."""
    hashes = {d: index.doc_hashes[d] for d in ids}
    cached = (
        cache.get_many(embedder.fingerprint, list(hashes.values())) if cache is not None else {}
    )
    return {d: cached[h] if h in cached else index.reconstruct(d) for d, h in hashes.items()}


def _rebuild(
    index: VectorIndex,
    plan: ReembedPlan,
    vectors: np.ndarray,
    hashes: dict[str, str],
    embedder: Embedder,
    cache: EmbeddingCache | None,
) -> VectorIndex:
    """HNSW: a new index over kept + fresh vectors, in sorted doc-id order like a fresh build."""
    refresh = set(plan.refresh)
    kept = [d for d in plan.unchanged if d not in refresh]
    rows = _kept_vectors(index, kept, embedder, cache)
    rows.update(zip(plan.to_embed, vectors, strict=True))
    doc_ids = sorted(rows)
    all_hashes = {**{d: index.doc_hashes[d] for d in kept}, **hashes}
    return VectorIndex.build(
        np.stack([rows[d] for d in doc_ids]),
        doc_ids,
        config=index.config,
        embedder_fingerprint=index.embedder_fingerprint,
        corpus_fingerprint=plan.corpus_fingerprint,
        doc_hashes=all_hashes,
    )


def apply_reembed(
    index: VectorIndex,
    plan: ReembedPlan,
    embedder: Embedder,
    corpus: Mapping[str, str],
    *,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    encode: Encode | None = None,
) -> ReembedReport:
    """Carry out ``plan``: embed only ``plan.to_embed``, then update or rebuild the index.

    Raises :class:`FingerprintMismatch` when ``embedder`` is not the index's embedder, and
    :class:`ComponentError` when the plan was made for another index. ``cache`` defaults to
    the embedder's own. ``encode`` embeds the texts the cache misses elsewhere (e.g. on Ray,
    :func:`guardrails.monitoring.scaleout.encoder`, with this embedder's model); ``embedder``
    still names the embedding space. Use ``report.index`` afterwards (a new object when
    rebuilt).
    """
    index.check_embedder(embedder.fingerprint)
    _check_plan(index, plan, corpus)
    start = time.perf_counter()
    previous = index.fingerprint
    cache = cache if cache is not None else embedder.cache
    texts = [corpus[d] for d in plan.to_embed]
    vectors, embedded = _embed(embedder, texts, cache, progress, encode)
    hashes = {d: content_hash(t) for d, t in zip(plan.to_embed, texts, strict=True)}
    if plan.is_empty:
        index.corpus_fingerprint = plan.corpus_fingerprint
        mode, result = ReembedMode.UNCHANGED, index
    elif index.supports_remove:
        mode, result = ReembedMode.IN_PLACE, _update_in_place(index, plan, vectors, hashes)
    else:
        mode = ReembedMode.REBUILT
        result = _rebuild(index, plan, vectors, hashes, embedder, cache)
    counts = plan.counts()
    return ReembedReport(
        new=counts["new"],
        changed=counts["changed"],
        deleted=counts["deleted"],
        unchanged=counts["unchanged"],
        refreshed=counts["refresh"],
        encoded=len(texts),
        embedded=embedded,
        seconds=time.perf_counter() - start,
        mode=mode,
        previous_fingerprint=previous,
        index_fingerprint=result.fingerprint,
        index=result,
    )


# ---------------------------------------------------------------------------- batch mode


def batch_reembed(
    embedder: Embedder,
    corpus: Mapping[str, str],
    out_dir: str | Path,
    *,
    config: IndexConfig,
    cache: EmbeddingCache | None = None,
    batch_size: int = 1024,
    progress: bool = True,
    encode: Encode | None = None,
) -> VectorIndex:
    """Embed a whole corpus into a new index saved (atomically) at ``out_dir``.

    The offline path for a new embedder or a full refresh: documents stream through the
    embedder ``batch_size`` at a time in sorted doc-id order (each batch cached as it
    completes, so an interrupted run resumes where it stopped), under one progress bar.
    The result equals :func:`guardrails.components.stack.ensure_index` of the same inputs.
    ``encode`` embeds the cache misses elsewhere (as in :func:`apply_reembed`), in one call
    for the whole corpus.
    """
    from tqdm.auto import tqdm

    if not corpus:
        raise ComponentError("the corpus is empty; nothing to embed")
    if batch_size < 1:
        raise ComponentError(f"batch_size={batch_size} must be >= 1")
    cache = cache if cache is not None else embedder.cache
    doc_ids = sorted(corpus)
    parts = []
    # with ``encode`` the whole corpus goes in one call: Ray streams it in its own batches, and
    # its actors load the model once per call, not once per batch
    step = batch_size if encode is None else len(doc_ids)
    with tqdm(total=len(doc_ids), desc="re-embed", unit="doc", disable=not progress) as bar:
        for start in range(0, len(doc_ids), step):
            batch = [corpus[d] for d in doc_ids[start : start + step]]
            if encode is None:
                parts.append(embedder.encode_documents(batch, cache, progress=False))
            else:
                parts.append(embedder.encode_documents(batch, cache, progress=False, encode=encode))
            bar.update(len(batch))
    index = VectorIndex.build(
        np.concatenate(parts),
        doc_ids,
        config=config,
        embedder_fingerprint=embedder.fingerprint,
        corpus_fingerprint=corpus_fingerprint(corpus),
        doc_hashes={d: content_hash(corpus[d]) for d in doc_ids},
    )
    index.save(out_dir)
    return index
