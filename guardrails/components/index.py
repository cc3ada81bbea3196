"""FAISS vector index with document ids, a manifest, and an embedder-fingerprint guard.

:class:`VectorIndex` pairs a FAISS index with the facts needed to trust its answers: which
embedder produced the vectors (its fingerprint), which corpus (content hash per document), how
the index was built, and when. Searching with vectors from another embedder is refused with
:class:`~guardrails.errors.FingerprintMismatch`, because cosine scores between two embedding
spaces are meaningless yet look perfectly normal.

Scores are similarities, higher is better: the inner product ``<q, d>`` for ``metric="ip"``
(cosine when ``normalize``), and the negated squared distance ``-||q - d||_2^2`` for
``metric="l2"``. Kinds (Johnson, Douze & Jégou 2019, "Billion-scale similarity search with
GPUs"; Malkov & Yashunin 2018, HNSW):

- ``flat``: exact search, ``IndexIDMap2(IndexFlat)``; add and remove by id.
- ``ivf``: ``IndexIVFFlat`` with ``nlist`` k-means cells, ``nprobe`` visited per query; native
  int64 ids with a hash-table direct map, so add, remove and reconstruct by id work.
- ``hnsw``: ``IndexIDMap2(IndexHNSWFlat)``; graph links cannot be deleted, so no remove
  (rebuild from :meth:`VectorIndex.reconstruct`-ed vectors instead).

On disk an index is a folder holding ``index.faiss`` and ``manifest.json``, replaced as a whole.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.artifacts import (
    atomic_folder,
    fingerprint_bytes,
    fingerprint_json,
    fingerprint_parts,
)
from guardrails.errors import ComponentError, FingerprintMismatch

__all__ = ["SCHEMA_VERSION", "IndexConfig", "VectorIndex"]

SCHEMA_VERSION = 1
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
_KINDS = ("flat", "hnsw", "ivf")
_METRICS = ("ip", "l2")
_NLIST_CAP = 4096


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index. ``ivf_nlist=None`` means ``min(4·sqrt(n), 4096, n)`` at build."""

    kind: str = "flat"
    metric: str = "ip"
    normalize: bool = True
    hnsw_m: int = 32
    ef_search: int = 64
    ivf_nlist: int | None = None
    nprobe: int = 8

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ComponentError(f"index kind={self.kind!r} is not one of {_KINDS}")
        if self.metric not in _METRICS:
            raise ComponentError(f"index metric={self.metric!r} is not one of {_METRICS}")
        for name in ("hnsw_m", "ef_search", "nprobe"):
            if getattr(self, name) < 1:
                raise ComponentError(f"index {name}={getattr(self, name)} must be >= 1")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise ComponentError(f"index ivf_nlist={self.ivf_nlist} must be >= 1")

    def resolved(self, n: int) -> IndexConfig:
        """This config for ``n`` vectors: ``ivf_nlist`` fixed, knobs of other kinds at default.

        Knobs the kind does not use are reset so that they cannot make two equal indexes
        look different (in the manifest, the fingerprint or a config comparison).
        """
        base = IndexConfig(kind=self.kind, metric=self.metric, normalize=self.normalize)
        if self.kind == "hnsw":
            return replace(base, hnsw_m=self.hnsw_m, ef_search=self.ef_search)
        if self.kind == "flat":
            return base
        nlist = self.ivf_nlist or min(_NLIST_CAP, max(1, round(4 * math.sqrt(n))))
        return replace(base, ivf_nlist=max(1, min(nlist, n)), nprobe=self.nprobe)


def _faiss() -> Any:
    """The faiss module, imported on first use (typed ``Any``: its stubs are incomplete)."""
    import faiss

    return faiss


def _as_matrix(vectors: Any, dim: int | None = None) -> np.ndarray:
    """Finite float32 C-contiguous ``(n, dim)`` copy of ``vectors``."""
    x = np.array(vectors, dtype=np.float32, copy=True, ndmin=2, order="C")
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise ComponentError(f"vectors must have shape {want}, got shape={x.shape}")
    if not np.isfinite(x).all():
        raise ComponentError("vectors contain NaN or infinite values; check the embedder output")
    return x


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _check_ids(doc_ids: Sequence[str], n: int, doc_hashes: Mapping[str, str]) -> list[str]:
    ids = [str(d) for d in doc_ids]
    if len(ids) != n:
        raise ComponentError(f"got {n} vectors but len(doc_ids)={len(ids)}")
    if len(set(ids)) != len(ids):
        dup = next(d for d in ids if ids.count(d) > 1)
        raise ComponentError(f"doc_ids must be unique; doc_id={dup!r} repeats")
    missing = [d for d in ids if d not in doc_hashes]
    if missing:
        raise ComponentError(f"doc_hashes lacks {len(missing)} doc ids, e.g. {missing[0]!r}")
    return ids


def _new_faiss_index(config: IndexConfig, dim: int, train: np.ndarray) -> Any:
    faiss = _faiss()
    metric = faiss.METRIC_INNER_PRODUCT if config.metric == "ip" else faiss.METRIC_L2
    if config.kind == "flat":
        flat = faiss.IndexFlatIP(dim) if config.metric == "ip" else faiss.IndexFlatL2(dim)
        return faiss.IndexIDMap2(flat)
    if config.kind == "hnsw":
        return faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, config.hnsw_m, metric))
    quantizer = faiss.IndexFlatIP(dim) if config.metric == "ip" else faiss.IndexFlatL2(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, int(config.ivf_nlist or 1), metric)
    ivf.train(train)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    return ivf  # the faiss wrapper keeps a reference to the quantizer


def _canonical(index: Any, config: IndexConfig) -> Any:
    """The index as written to disk: IVF without its id hash table.

    The hash table (id -> list position) serialises in unordered-map order, so equal indexes
    would give different bytes; it is rebuilt from the inverted lists on load instead.
    """
    faiss = _faiss()
    if config.kind != "ivf":
        return index
    clone = faiss.clone_index(index)
    clone.set_direct_map_type(faiss.DirectMap.NoMap)
    return clone


def _apply_search_params(index: Any, config: IndexConfig) -> None:
    """Query-time knobs from the config; they win over whatever a file read from disk holds."""
    faiss = _faiss()
    if config.kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = config.ef_search
    elif config.kind == "ivf":
        index.nprobe = config.nprobe


class VectorIndex:
    """A FAISS index, its document-id map and its manifest. Build with :meth:`build`."""

    def __init__(
        self,
        index: Any,
        config: IndexConfig,
        *,
        dim: int,
        embedder_fingerprint: str,
        corpus_fingerprint: str,
        ids: Mapping[str, int],
        doc_hashes: Mapping[str, str],
        next_id: int,
        created_at: str,
    ) -> None:
        self._index = index
        self.config = config
        self.dim = dim
        self.embedder_fingerprint = embedder_fingerprint
        self.corpus_fingerprint = corpus_fingerprint
        self._ids = dict(ids)
        self._docs = {i: d for d, i in self._ids.items()}
        self.doc_hashes = dict(doc_hashes)
        self._next_id = next_id
        self.created_at = created_at
        _apply_search_params(index, config)

    @classmethod
    def build(
        cls,
        vectors: Any,
        doc_ids: Sequence[str],
        *,
        config: IndexConfig,
        embedder_fingerprint: str,
        corpus_fingerprint: str,
        doc_hashes: Mapping[str, str],
    ) -> VectorIndex:
        """Index ``vectors`` (row i is document ``doc_ids[i]``) as described by ``config``."""
        x = _as_matrix(vectors)
        if x.shape[0] == 0:
            raise ComponentError("cannot build an index from 0 vectors")
        ids = _check_ids(doc_ids, x.shape[0], doc_hashes)
        config = config.resolved(x.shape[0])
        if config.normalize:
            x = _l2_normalize(x)
        started = time.perf_counter()
        index = _new_faiss_index(config, x.shape[1], x)
        index.add_with_ids(x, np.arange(len(ids), dtype=np.int64))
        logging.getLogger("guardrails").info(
            "index %s: built over %d vectors (dim %d) in %.1f s",
            config.kind,
            x.shape[0],
            x.shape[1],
            time.perf_counter() - started,
        )
        return cls(
            index,
            config,
            dim=x.shape[1],
            embedder_fingerprint=embedder_fingerprint,
            corpus_fingerprint=corpus_fingerprint,
            ids={d: i for i, d in enumerate(ids)},
            doc_hashes={d: doc_hashes[d] for d in ids},
            next_id=len(ids),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def doc_ids(self) -> list[str]:
        """Document ids in the index, in insertion order."""
        return sorted(self._ids, key=self._ids.__getitem__)

    @property
    def supports_remove(self) -> bool:
        """False for HNSW, whose graph cannot drop nodes."""
        return self.config.kind != "hnsw"

    def check_embedder(self, embedder_fingerprint: str) -> None:
        """Raise :class:`FingerprintMismatch` unless the vectors come from the index's embedder."""
        if embedder_fingerprint != self.embedder_fingerprint:
            raise FingerprintMismatch(
                f"index was built with embedder fingerprint={self.embedder_fingerprint} but the "
                f"vectors come from embedder fingerprint={embedder_fingerprint}; rebuild the index "
                "with this embedder or use the matching one"
            )

    def search(
        self, query_vectors: Any, k: int, *, embedder_fingerprint: str
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` documents per query: scores ``(q, k)`` float32 and ranked doc ids.

        Where fewer than ``k`` documents are found (small index, IVF cells left unprobed), the
        id list is shorter and the trailing scores are ``-inf``.
        """
        self.check_embedder(embedder_fingerprint)
        if k < 1:
            raise ComponentError(f"search k={k} must be >= 1")
        q = self._prepare(query_vectors)
        raw, labels = self._index.search(q, k)
        scores = -raw if self.config.metric == "l2" else raw
        scores = np.where(labels >= 0, scores, -np.inf).astype(np.float32)
        ranked = [[self._docs[int(i)] for i in row if i >= 0] for row in labels]
        return scores, ranked

    def search_run(
        self, query_ids: Sequence[str], query_vectors: Any, k: int, embedder_fingerprint: str
    ) -> dict[str, dict[str, float]]:
        """``{query_id: {doc_id: score}}``, the Run shape the ranking metrics consume."""
        scores, ranked = self.search(query_vectors, k, embedder_fingerprint=embedder_fingerprint)
        if len(query_ids) != len(ranked):
            raise ComponentError(f"got {len(ranked)} query vectors but {len(query_ids)} query ids")
        return {
            str(qid): {doc: float(s) for doc, s in zip(docs, row, strict=False)}
            for qid, docs, row in zip(query_ids, ranked, scores, strict=True)
        }

    def reconstruct(self, doc_id: str) -> np.ndarray:
        """The stored vector of ``doc_id`` (normalised if the index normalises), for rebuilds."""
        if doc_id not in self._ids:
            raise ComponentError(f"doc_id={doc_id!r} is not in the index")
        return np.asarray(self._index.reconstruct(self._ids[doc_id]), dtype=np.float32)

    def _prepare(self, vectors: Any) -> np.ndarray:
        x = _as_matrix(vectors, self.dim)
        return _l2_normalize(x) if self.config.normalize else x

    # -- updates ---------------------------------------------------------------------------

    def add(
        self,
        vectors: Any,
        doc_ids: Sequence[str],
        doc_hashes: Mapping[str, str],
        *,
        embedder_fingerprint: str | None = None,
        corpus_fingerprint: str | None = None,
    ) -> None:
        """Add new documents; ids already present are refused (remove them first).

        ``corpus_fingerprint`` describes the corpus after the change; when omitted it becomes
        the fingerprint of the ``doc_id -> content hash`` map.
        """
        if embedder_fingerprint is not None:
            self.check_embedder(embedder_fingerprint)
        x = self._prepare(vectors)
        ids = _check_ids(doc_ids, x.shape[0], doc_hashes)
        present = [d for d in ids if d in self._ids]
        if present:
            raise ComponentError(f"doc_id={present[0]!r} is already indexed; remove it first")
        labels = np.arange(self._next_id, self._next_id + len(ids), dtype=np.int64)
        self._index.add_with_ids(x, labels)
        for doc, label in zip(ids, labels.tolist(), strict=True):
            self._ids[doc], self._docs[label] = label, doc
            self.doc_hashes[doc] = doc_hashes[doc]
        self._next_id += len(ids)
        self._corpus_changed(corpus_fingerprint)

    def remove(self, doc_ids: Sequence[str], *, corpus_fingerprint: str | None = None) -> None:
        """Remove documents by id (flat and IVF only); unknown ids are refused."""
        if not self.supports_remove:
            raise ComponentError(
                f"a {self.config.kind} index cannot remove vectors; rebuild it without them "
                "(VectorIndex.build over reconstruct(doc_id) of the documents to keep)"
            )
        unknown = [d for d in doc_ids if d not in self._ids]
        if unknown:
            raise ComponentError(f"doc_id={unknown[0]!r} is not in the index; nothing removed")
        labels = np.array([self._ids[d] for d in dict.fromkeys(doc_ids)], dtype=np.int64)
        self._index.remove_ids(labels)
        for doc in dict.fromkeys(doc_ids):
            del self._docs[self._ids.pop(doc)], self.doc_hashes[doc]
        self._corpus_changed(corpus_fingerprint)

    def _corpus_changed(self, corpus_fingerprint: str | None) -> None:
        self.corpus_fingerprint = corpus_fingerprint or fingerprint_json(self.doc_hashes)

    # -- identity and persistence ----------------------------------------------------------

    def _index_bytes(self) -> bytes:
        faiss = _faiss()
        return faiss.serialize_index(_canonical(self._index, self.config)).tobytes()

    def memory_bytes(self) -> int:
        """Size of the serialised FAISS index in bytes (vectors + structure, no id strings)."""
        return len(self._index_bytes())

    @property
    def fingerprint(self) -> str:
        """Identity of the contents: manifest (without ``created_at``) + index bytes."""
        content = {k: v for k, v in self.manifest().items() if k != "created_at"}
        return fingerprint_parts(fingerprint_json(content), fingerprint_bytes(self._index_bytes()))

    def manifest(self) -> dict[str, Any]:
        """The JSON-able manifest written beside ``index.faiss``."""
        faiss = _faiss()
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.config.kind,
            "metric": self.config.metric,
            "normalize": self.config.normalize,
            "params": _params(self.config),
            "dim": self.dim,
            "embedder_fingerprint": self.embedder_fingerprint,
            "corpus_fingerprint": self.corpus_fingerprint,
            "doc_ids": dict(self._ids),
            "next_id": self._next_id,
            "doc_hashes": dict(self.doc_hashes),
            "created_at": self.created_at,
            "faiss_version": faiss.__version__,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/{index.faiss, manifest.json}``, replacing any previous index whole.

        Everything is written into a temporary sibling folder first and swapped in by renames,
        so a crash mid-write leaves the previous index untouched.
        """
        faiss = _faiss()
        target = Path(directory)
        with atomic_folder(target) as tmp:
            faiss.write_index(_canonical(self._index, self.config), str(tmp / INDEX_FILE))
            _write_json(tmp / MANIFEST_FILE, self.manifest())
        return target

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        """Read a folder written by :meth:`save`; a broken manifest names the file and key."""
        faiss = _faiss()
        folder = Path(directory)
        manifest = _read_manifest(folder / MANIFEST_FILE)
        try:
            index = faiss.read_index(str(folder / INDEX_FILE))
        except RuntimeError as exc:
            raise ComponentError(f"{folder / INDEX_FILE}: unreadable FAISS index ({exc})") from exc
        config = _config_of(folder / MANIFEST_FILE, manifest)
        _check_consistent(folder / MANIFEST_FILE, manifest, index)
        if config.kind == "ivf":
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(
            index,
            config,
            dim=manifest["dim"],
            embedder_fingerprint=manifest["embedder_fingerprint"],
            corpus_fingerprint=manifest["corpus_fingerprint"],
            ids=manifest["doc_ids"],
            doc_hashes=manifest["doc_hashes"],
            next_id=manifest["next_id"],
            created_at=manifest["created_at"],
        )

    def __repr__(self) -> str:
        return (
            f"VectorIndex(kind={self.config.kind!r}, metric={self.config.metric!r}, "
            f"n={len(self)}, dim={self.dim})"
        )


def _params(config: IndexConfig) -> dict[str, Any]:
    fields = asdict(config)
    keep = {"flat": (), "hnsw": ("hnsw_m", "ef_search"), "ivf": ("ivf_nlist", "nprobe")}
    return {name: fields[name] for name in keep[config.kind]}


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, sort_keys=True, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


# manifest key -> accepted JSON types
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "kind": (str,),
    "metric": (str,),
    "normalize": (bool,),
    "params": (dict,),
    "dim": (int,),
    "embedder_fingerprint": (str,),
    "corpus_fingerprint": (str,),
    "doc_ids": (dict,),
    "next_id": (int,),
    "doc_hashes": (dict,),
    "created_at": (str,),
    "faiss_version": (str,),
}


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ComponentError(f"{path}: manifest is missing; is {path.parent} an index folder?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComponentError(
            f"{path}: manifest is not valid JSON ({exc}); rebuild the index"
        ) from exc
    if not isinstance(manifest, dict):
        raise ComponentError(f"{path}: manifest must be a JSON object")
    for key, types in _MANIFEST_TYPES.items():
        _check_key(path, manifest, key, types)
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise ComponentError(
            f"{path}: key 'schema_version'={manifest['schema_version']} is not supported "
            f"(expected {SCHEMA_VERSION}); rebuild the index"
        )
    return manifest


def _check_key(path: Path, manifest: dict[str, Any], key: str, types: tuple[type, ...]) -> None:
    if key not in manifest:
        raise ComponentError(f"{path}: key {key!r} is missing; rebuild the index")
    value = manifest[key]
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        want = "/".join(t.__name__ for t in types)
        raise ComponentError(f"{path}: key {key!r}={value!r} must be of type {want}")


def _kind_and_metric(index: Any) -> tuple[str, str]:
    """What a FAISS index read from disk actually is: (kind, metric)."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    kinds = ((faiss.IndexIVFFlat, "ivf"), (faiss.IndexHNSWFlat, "hnsw"), (faiss.IndexFlat, "flat"))
    kind = next((name for cls, name in kinds if isinstance(inner, cls)), type(inner).__name__)
    metric = "ip" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"
    return kind, metric


def _check_consistent(path: Path, manifest: dict[str, Any], index: Any) -> None:
    """The manifest must describe the index file beside it."""
    ids, hashes = manifest["doc_ids"], manifest["doc_hashes"]
    labels = list(ids.values())
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in labels):
        raise ComponentError(f"{path}: key 'doc_ids' must map each doc id to an int id >= 0")
    kind, metric = _kind_and_metric(index)
    problems = [
        ("kind", kind != manifest["kind"], f"{INDEX_FILE} holds a {kind} index"),
        ("metric", metric != manifest["metric"], f"{INDEX_FILE} uses metric {metric}"),
        ("dim", index.d != manifest["dim"], f"index has d={index.d}"),
        ("next_id", bool(labels) and manifest["next_id"] <= max(labels), "an int id >= next_id"),
        ("doc_ids", index.ntotal != len(ids), f"index holds ntotal={index.ntotal} vectors"),
        ("doc_ids", len(set(ids.values())) != len(ids), "two documents share an int id"),
        ("doc_hashes", set(hashes) != set(ids), "its documents differ from 'doc_ids'"),
    ]
    for key, broken, why in problems:
        if broken:
            raise ComponentError(f"{path}: key {key!r} does not match the index ({why})")


def _config_of(path: Path, manifest: dict[str, Any]) -> IndexConfig:
    """The :class:`IndexConfig` a manifest records; bad values name their key."""
    for key, allowed in (("kind", _KINDS), ("metric", _METRICS)):
        if manifest[key] not in allowed:
            raise ComponentError(f"{path}: key {key!r}={manifest[key]!r} is not one of {allowed}")
    try:
        return IndexConfig(
            kind=manifest["kind"],
            metric=manifest["metric"],
            normalize=manifest["normalize"],
            **manifest["params"],
        )
    except (TypeError, ComponentError) as exc:
        raise ComponentError(f"{path}: key 'params' is invalid ({exc})") from exc
