"""Reranker under test: a local sentence-transformers ``CrossEncoder`` + an optional LoRA adapter.

A cross-encoder reads the query and a document together and outputs one relevance logit::

    s(q, d) = w · h_[CLS]([CLS] q [SEP] d [SEP]) + b,       P(relevant | q, d) = σ(s(q, d))

(Nogueira & Cho, 2019, "Passage Re-ranking with BERT", arXiv:1901.04085). :class:`Reranker`
returns the raw logit ``s`` (σ is monotone, so rankings are equal, and logits do not saturate).

:meth:`Reranker.load` reads a cross-encoder folder from a LOCAL path and applies a peft LoRA folder
(``adapter_config.json`` + ``adapter_model.safetensors``) through sentence-transformers' own adapter
support (``CrossEncoder.load_adapter``, the ``PeftAdapterMixin`` that forwards to the underlying
``AutoModelForSequenceClassification``). Its :attr:`Reranker.fingerprint` identifies every score::

    fingerprint = H(weights folder, adapter folder | "none", {max_length, score: "logit"})

No pretrained cross-encoder exists offline: :func:`build_cross_encoder_from_minilm` makes one from
the all-MiniLM-L6-v2 transformer weights with a new (seeded, untrained) one-logit head; the
training module fine-tunes it. Nothing here imports torch or sentence-transformers at import time.

With a :class:`~guardrails.components.memo.ResultCache` (``cache=``), logits are stored under
``("rerank", fingerprint, H(query, document))`` and only pairs it does not hold are scored;
:meth:`Reranker.timed_rerank` measures latency, so it neither reads nor writes the cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.artifacts import (
    fingerprint_dir_cached,
    fingerprint_json,
    fingerprint_parts,
)
from guardrails.components.adapter import check_adapter_dir as _check_adapter_dir
from guardrails.components.device import resolve_device
from guardrails.components.memo import ResultCache, input_key
from guardrails.components.ml_stack import check_ml_stack
from guardrails.errors import ComponentError

__all__ = ["Reranker", "build_cross_encoder_from_minilm", "reranker_fingerprint", "top_k_docs"]

# Documentation and our training record are not identity: the weights beside them are.
_NOT_IDENTITY = ("README.md", "training_record.json")

Run = Mapping[str, Mapping[str, float]]


def _dir_fingerprint(path: Path) -> str:
    """Identity of a cross-encoder or adapter folder: its files minus docs and our record."""
    return fingerprint_dir_cached(path, exclude=_NOT_IDENTITY)


def reranker_fingerprint(
    path: str | Path, adapter: str | Path | None = None, *, max_length: int = 256
) -> str:
    """The fingerprint :meth:`Reranker.load` would give, computed without loading the model."""
    model_dir = Path(path)
    _check_model_dir(model_dir)
    adapter_fp = "none"
    if adapter is not None:
        _check_adapter_dir(Path(adapter))
        adapter_fp = _dir_fingerprint(Path(adapter))
    config = fingerprint_json({"max_length": max_length, "score": "logit"})
    return fingerprint_parts(_dir_fingerprint(model_dir), adapter_fp, config)


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ComponentError(f"reranker path={str(path)!r} does not exist; pass a local folder")
    if not (path / "config.json").is_file():
        raise ComponentError(
            f"reranker path={str(path)!r} has no config.json: not a cross-encoder folder (save "
            "one with CrossEncoder.save(path) or build_cross_encoder_from_minilm(path))"
        )


def top_k_docs(scores: Mapping[str, float], k: int) -> list[str]:
    """The ``k`` best doc ids of one query, by score descending, ties by doc id (deterministic)."""
    return sorted(scores, key=lambda d: (-scores[d], d))[:k]


class Reranker:
    """A loaded cross-encoder (build it with :meth:`Reranker.load`); scores are logits s(q, d).

    ``cache`` (optional) stores logits by fingerprint and exact (query, document) text.
    """

    def __init__(
        self,
        model: Any,
        fingerprint: str,
        *,
        batch_size: int,
        max_length: int,
        cache: ResultCache | None = None,
    ) -> None:
        self.model = model
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = cache

    @classmethod
    def load(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        device: str = "auto",
        cache: ResultCache | None = None,
    ) -> Reranker:
        """Load the cross-encoder at ``path`` (+ LoRA ``adapter``), offline.

        ``cache`` keeps logits on disk (see the module docstring). Raises
        :class:`ComponentError` naming the path when a folder is missing, is not a
        cross-encoder / peft folder, or the adapter does not fit the model.
        """
        fingerprint = reranker_fingerprint(path, adapter, max_length=max_length)
        model = load_cross_encoder(Path(path), device=device, max_length=max_length)
        if adapter is not None:
            _apply_adapter(model, Path(adapter))
        model.eval()
        return cls(model, fingerprint, batch_size=batch_size, max_length=max_length, cache=cache)

    def score(self, query: str, doc_texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Logits ``s(query, d)`` for each of ``doc_texts``, ``float32`` of shape ``(n,)``."""
        return self.score_pairs([(query, d) for d in doc_texts], progress=progress)

    def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        progress: bool = False,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Logits for ``(query, document)`` pairs, in input order, batched.

        With a cache (and ``use_cache``), only distinct pairs it does not hold are scored, and
        stored; ``use_cache=False`` neither reads nor writes it (latency measurements).
        """
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        cache = self.cache if use_cache else None
        if cache is None:
            return self._predict([(q, d) for q, d in pairs], progress)
        keys = [input_key(q, d) for q, d in pairs]
        found = cache.get_many("rerank", self.fingerprint, keys)
        todo = {k: (q, d) for k, (q, d) in zip(keys, pairs, strict=True) if k not in found}
        if todo:
            scores = self._predict(list(todo.values()), progress)
            fresh = {k: float(v) for k, v in zip(todo, scores, strict=True)}
            cache.put_many("rerank", self.fingerprint, fresh)
            found.update(fresh)
        return np.asarray([found[k] for k in keys], dtype=np.float32).reshape(len(keys))

    def _predict(self, pairs: list[tuple[str, str]], progress: bool) -> np.ndarray:
        import torch

        from guardrails.report.progress import chunks

        step = self.batch_size * 16  # chunks of 16 batches: progress is logged per chunk
        iterator = chunks(pairs, step, "reranker score", progress=progress, unit="chunk")
        parts = [
            np.asarray(
                self.model.predict(
                    [list(p) for p in chunk],
                    batch_size=self.batch_size,
                    activation_fn=torch.nn.Identity(),
                    show_progress_bar=False,
                    convert_to_numpy=True,
                ),
                dtype=np.float32,
            ).reshape(len(chunk))
            for chunk in iterator
        ]
        return np.concatenate(parts).reshape(len(pairs))

    def rerank_run(
        self,
        run: Run,
        queries: Mapping[str, str],
        docs: Mapping[str, str],
        *,
        top_k: int = 20,
        progress: bool = True,
        use_cache: bool = True,
    ) -> dict[str, dict[str, float]]:
        """Rescore each query's top ``top_k`` documents of ``run``: ``{qid: {doc: logit}}``.

        Only those ``top_k`` documents are in the result (the first-stage tail is dropped). All
        pairs of all queries are scored in one batched call, with a progress bar if asked;
        ``use_cache`` as in :meth:`score_pairs`.
        """
        plan = _plan(run, queries, docs, top_k)
        pairs = [(queries[qid], docs[doc]) for qid, doc in plan]
        scores = self.score_pairs(
            pairs, progress=progress and len(pairs) > self.batch_size, use_cache=use_cache
        )
        out: dict[str, dict[str, float]] = {qid: {} for qid in run}
        for (qid, doc), value in zip(plan, scores, strict=True):
            out[qid][doc] = float(value)
        return out

    def timed_rerank(
        self, run: Run, queries: Mapping[str, str], docs: Mapping[str, str], *, top_k: int = 20
    ) -> tuple[dict[str, dict[str, float]], list[float]]:
        """Like :meth:`rerank_run`, one query at a time, plus per-query latency in seconds.

        Every pair is really scored: the cache is bypassed (a hit would time a lookup).
        """
        out: dict[str, dict[str, float]] = {}
        latencies = []
        for qid in run:
            start = time.perf_counter()
            one = {qid: run[qid]}
            out.update(
                self.rerank_run(one, queries, docs, top_k=top_k, progress=False, use_cache=False)
            )
            latencies.append(time.perf_counter() - start)
        return out, latencies

    def __repr__(self) -> str:
        return f"Reranker(fingerprint={self.fingerprint!r}, max_length={self.max_length})"


def _plan(
    run: Run, queries: Mapping[str, str], docs: Mapping[str, str], top_k: int
) -> list[tuple[str, str]]:
    """The ``(qid, doc_id)`` pairs to score; every query and document must have a text."""
    if top_k <= 0:
        raise ComponentError(f"rerank top_k={top_k} must be > 0")
    plan = []
    for qid, scores in run.items():
        if qid not in queries:
            raise ComponentError(f"rerank: query {qid!r} of the run has no text in `queries`")
        for doc in top_k_docs(scores, top_k):
            if doc not in docs:
                raise ComponentError(
                    f"rerank: document {doc!r} (query {qid!r}) has no text "
                    "in `docs`; pass the whole knowledge base"
                )
            plan.append((qid, doc))
    return plan


def load_cross_encoder(path: Path, *, device: str = "auto", max_length: int = 256) -> Any:
    """A ``CrossEncoder`` from a local folder, offline, truncating pairs to ``max_length``."""
    check_ml_stack()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    _check_model_dir(path)
    try:
        model = CrossEncoder(str(path), device=resolve_device(device), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ComponentError(f"cannot load reranker path={str(path)!r}: {exc}") from exc
    if model.num_labels != 1:
        raise ComponentError(
            f"reranker path={str(path)!r} has num_labels={model.num_labels}; "
            "a reranker needs one relevance logit (num_labels=1)"
        )
    model.max_seq_length = max_length
    return model


def _apply_adapter(model: Any, adapter_dir: Path) -> None:
    """Apply a LoRA folder via sentence-transformers' PeftAdapterMixin (``load_adapter``)."""
    try:
        model.load_adapter(str(adapter_dir))
    except Exception as exc:  # peft, safetensors and torch each raise their own types
        raise ComponentError(
            f"cannot apply adapter path={str(adapter_dir)!r} to the reranker: {exc}; check that "
            "it was trained on this base model (target modules and hidden size must match)"
        ) from exc


def build_cross_encoder_from_minilm(
    out_dir: str | Path, *, base: str | Path | None = None, seed: int = 0
) -> Path:
    """Save a one-logit cross-encoder built from MiniLM's transformer weights into ``out_dir``.

    The sentence-transformers folder's root holds a plain BERT checkpoint; loaded as
    ``AutoModelForSequenceClassification(num_labels=1)`` it keeps every encoder weight and gets
    a new classifier head ``(w, b)``, initialised from ``seed``. Untrained: fine-tune it before use.
    ``base`` defaults to :func:`guardrails.components.embedder.minilm_path`.
    """
    check_ml_stack()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guardrails.components.embedder import minilm_path

    source, out = Path(base) if base is not None else minilm_path(), Path(out_dir)
    if not (source / "config.json").is_file():
        raise ComponentError(f"base path={str(source)!r} has no config.json (a BERT checkpoint)")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=1)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(out))
    load_cross_encoder(out).save(str(out))  # adds the sentence-transformers cross-encoder config
    return out
