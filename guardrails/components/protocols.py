"""What a component must offer the suites, as Protocols: a team's own serving stack (an HTTP
endpoint, vLLM, an OpenAI-compatible server) plugs in by implementing one, and is named in
``[tool.guardrails.stack.<component>] factory = "package.module:callable"``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["TextEmbedder", "TextGenerator", "TextReranker"]


@runtime_checkable
class TextGenerator(Protocol):
    """A generator the generation and canary suites can judge.

    ``fingerprint`` names what answers (model, adapter, prompt, decoding): equal fingerprints
    mean equal answers, so results may be cached and a verdict can say what it judged.
    ``generate`` answers each question from its context passages, in input order.
    """

    @property
    def fingerprint(self) -> str: ...

    def generate(
        self,
        prompts: Sequence[str],
        *,
        contexts: Sequence[Sequence[str]] | None = None,
        **options: Any,
    ) -> list[str]: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """An embedder the retrieval and shadow suites can index with and query.

    ``encode_documents`` / ``encode_queries`` return float32 arrays ``(n, dim)`` (unit-norm rows
    for the inner-product indexes); ``cache`` is an optional
    :class:`~guardrails.components.embedder.EmbeddingCache` keyed by ``fingerprint``.
    """

    @property
    def fingerprint(self) -> str: ...

    def encode_queries(self, texts: Sequence[str], **options: Any) -> np.ndarray: ...

    def encode_documents(
        self, texts: Sequence[str], cache: Any = None, **options: Any
    ) -> np.ndarray: ...


@runtime_checkable
class TextReranker(Protocol):
    """A reranker the reranker suite can judge: re-scores each query's retrieved documents.

    ``rerank_run`` takes a run ``{query_id: {doc_id: score}}``, the query texts and the
    document texts, and returns a run of the ``top_k`` best documents per query by its own
    scores (a cross-encoder, a hosted rerank endpoint, ...).
    """

    @property
    def fingerprint(self) -> str: ...

    def rerank_run(
        self,
        run: Mapping[str, Mapping[str, float]],
        queries: Mapping[str, str],
        docs: Mapping[str, str],
        *,
        top_k: int = ...,
    ) -> dict[str, dict[str, float]]: ...
