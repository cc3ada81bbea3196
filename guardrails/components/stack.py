"""Compose components: a retriever (embedder + FAISS index) built or loaded by fingerprint.

An index is identified by what went into it: the embedder fingerprint, the corpus content
and the index configuration. :func:`ensure_index` loads the index folder with that identity
or builds it (embedding only documents the on-disk cache lacks) and saves it atomically, so
a second run of a suite embeds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guardrails.artifacts import fingerprint_json

__all__ = [
    "Retriever",
    "build_retriever",
    "corpus_fingerprint",
    "ensure_index",
    "index_folder",
    "index_key",
    "served_index_config",
]


def corpus_fingerprint(texts: Mapping[str, str]) -> str:
    """Fingerprint of a corpus as ``{doc_id: text}`` (order-independent)."""
    return fingerprint_json(dict(texts))


def index_key(embedder_fingerprint: str, corpus_fp: str, config: Any) -> str:
    """Folder name of the index built from this embedder, corpus and configuration."""
    fp = fingerprint_json(
        {"embedder": embedder_fingerprint, "corpus": corpus_fp, "config": asdict(config)}
    )
    return fp.split(":", 1)[1][:16]


def index_folder(
    embedder: Any, texts: Mapping[str, str], directory: str | Path, config: Any = None
) -> Path:
    """Where :func:`ensure_index` keeps the index of ``texts`` built by ``embedder``."""
    from guardrails.components.index import IndexConfig

    config = config or IndexConfig()
    return Path(directory) / index_key(embedder.fingerprint, corpus_fingerprint(texts), config)


def ensure_index(
    embedder: Any,
    texts: Mapping[str, str],
    directory: str | Path,
    *,
    config: Any = None,
    cache: Any = None,
    progress: bool = True,
) -> Any:
    """Load or build the index of ``texts`` (``{doc_id: text}``) under ``directory``."""
    from guardrails.components.embedder import content_hash
    from guardrails.components.index import IndexConfig, VectorIndex

    config = config or IndexConfig()
    corpus_fp = corpus_fingerprint(texts)
    folder = index_folder(embedder, texts, directory, config)
    if (folder / "manifest.json").is_file():
        return VectorIndex.load(folder)
    doc_ids = sorted(texts)
    vectors = embedder.encode_documents([texts[d] for d in doc_ids], cache, progress=progress)
    from guardrails.report.progress import timed

    with timed(f"index build ({config.kind})", quiet=not progress, vectors=len(doc_ids)):
        index = VectorIndex.build(
            vectors,
            doc_ids,
            config=config,
            embedder_fingerprint=embedder.fingerprint,
            corpus_fingerprint=corpus_fp,
            doc_hashes={d: content_hash(texts[d]) for d in doc_ids},
        )
        index.save(folder)
    return index


def build_retriever(
    embedder: Any,
    texts: Mapping[str, str],
    directory: str | Path,
    *,
    config: Any = None,
    cache: Any = None,
) -> Retriever:
    """A :class:`Retriever` over the (loaded or built) index of ``texts``."""
    index = ensure_index(embedder, texts, directory, config=config, cache=cache)
    return Retriever(embedder, index, index_folder(embedder, texts, directory, config))


def served_index_config(registry: Any, default: Any = None, alias: str = "production") -> Any:
    """The :class:`~guardrails.components.index.IndexConfig` of the index the registry's
    ``production`` alias names, so production is rebuilt (or loaded) as the index type that is
    actually served after a promote; ``default`` (flat) when there is none or its record
    predates the stored configuration. ``alias="previous"``: the one a promote replaced (what a
    monitoring run compares production with)."""
    from guardrails.components.index import IndexConfig

    default = default or IndexConfig()
    served = registry.resolve("index", alias) if registry is not None else None
    config = served.metadata.get("config") if served is not None else None
    if not isinstance(config, Mapping):
        return default
    return IndexConfig(**config)


@dataclass
class Retriever:
    """Embedder + index; the index refuses queries embedded by another embedder."""

    embedder: Any
    index: Any
    index_path: Path | None = None

    def search_run(
        self, query_ids: Sequence[str], texts: Sequence[str], k: int = 100
    ) -> dict[str, dict[str, float]]:
        """``{qid: {doc_id: score}}`` for the queries, top ``k`` each."""
        vectors = self.embedder.encode_queries(list(texts))
        return self.index.search_run(
            list(query_ids), vectors, k, embedder_fingerprint=self.embedder.fingerprint
        )

    def timed_search(
        self, query_ids: Sequence[str], texts: Sequence[str], k: int = 100
    ) -> tuple[dict[str, dict[str, float]], list[float]]:
        """Like :meth:`search_run`, plus per-query latency in seconds (embed + search)."""
        run: dict[str, dict[str, float]] = {}
        latencies = []
        for qid, text in zip(query_ids, texts, strict=True):
            start = time.perf_counter()
            run.update(self.search_run([qid], [text], k))
            latencies.append(time.perf_counter() - start)
        return run, latencies

    @property
    def fingerprints(self) -> dict[str, str]:
        return {"embedder": self.embedder.fingerprint, "index": self.index.fingerprint}

    def register(
        self,
        registry: Any,
        *,
        embedder_source: Mapping[str, Any] | None = None,
        alias: str,
        branch: str | None = None,
    ) -> None:
        """Register embedder and index in ``registry`` and point ``alias`` at them; a candidate
        or shadow joins the retrain ``branch`` (lineage), production never does.

        ``embedder_source`` is ``{"base": path, "adapter": path or None}`` (kept as metadata,
        relative to the registry's root, so the registry can load what it names from a moved
        checkout); ``None`` when the embedder is already registered (the index alone is). The
        index's metadata keeps its configuration, so the production index is rebuilt as the
        type that is served (:func:`served_index_config`). The production alias is only
        bootstrapped here, when none exists; later switches go through promote / rollback.
        Candidates point ``candidate`` (embedder) and ``shadow`` (index) at themselves.
        """
        items: list[tuple[str, Any, str, str | None, dict[str, Any]]] = []
        if embedder_source is not None:
            source = {
                k: registry.portable(v) if k in ("base", "adapter") and v else v
                for k, v in embedder_source.items()
            }
            path = embedder_source.get("adapter") or embedder_source["base"]
            items.append(("embedder", path, self.embedder.fingerprint, None, source))
        index_meta = {"embedder": self.embedder.fingerprint, "config": asdict(self.index.config)}
        items.append(
            (
                "index",
                self.index_path,
                self.index.fingerprint,
                self.embedder.fingerprint,
                index_meta,
            )
        )
        for component, where, fp, parent, meta in items:
            name = "shadow" if component == "index" and alias != "production" else alias
            registry.register_as(
                component,
                str(where),
                fp,
                name,
                parent=parent,
                metadata=meta,
                branch=None if alias == "production" else branch,
            )
