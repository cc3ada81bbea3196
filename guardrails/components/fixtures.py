"""The stack's fixtures, built from ``[tool.guardrails.stack]`` (registered by the plugin at
configure time). Every one can be overridden by a conftest fixture of the same name, as the
bundled demo's ``suites/conftest.py`` does: golden sets and knowledge base from the domains,
embedders and retrievers from ``embedder`` / ``index``, generators from ``generator``; a
``candidate`` sub-table builds the candidate, its absence makes the run A/A."""

from __future__ import annotations

from typing import Any

import pytest

from guardrails.errors import PolicyError
from guardrails.plugin import STATE
from guardrails.stack import StackConfig


def _configured(config: pytest.Config, component: str, role: str) -> Any:
    from guardrails.stack import build_component

    spec = config.stash[STATE].stack.components.get(component)
    if spec is None:
        raise PolicyError(
            f"no [tool.guardrails.stack.{component}] factory is configured, and no conftest "
            f"fixture provides {role}_{component}"
        )
    return build_component(spec, role)


def _candidate(config: pytest.Config, component: str, production: Any) -> Any:
    """The configured candidate, or ``production`` when there is no candidate table (A/A)."""
    spec = config.stash[STATE].stack.components.get(component)
    if spec is None or spec.candidate is None:
        return production
    return _configured(config, component, "candidate")


# The stack's fixtures (a conftest fixture of the same name takes precedence, as the demo's do).


@pytest.fixture(scope="session")
def retrieval_golden(guardrails_stack: StackConfig) -> dict[str, Any]:
    """One golden retrieval set per configured domain, each over every domain's corpus."""
    from guardrails.golden import load_beir_domains

    if not guardrails_stack.domains:
        raise PolicyError("retrieval_golden: [tool.guardrails.stack.domains] declares none")
    folders = {name: d.golden for name, d in guardrails_stack.domains.items()}
    return load_beir_domains(None, folders)


@pytest.fixture(scope="session")
def knowledge_base(retrieval_golden: dict[str, Any]) -> dict[str, str]:
    """``{doc_id: text}`` of every document the indexes hold (all domains' corpora)."""
    first = next(iter(retrieval_golden.values()))
    return {doc_id: doc.full_text for doc_id, doc in first.corpus.items()}


@pytest.fixture(scope="session")
def production_embedder(pytestconfig: pytest.Config) -> Any:
    """The embedder ``[tool.guardrails.stack.embedder]`` builds."""
    return _configured(pytestconfig, "embedder", "production")


@pytest.fixture(scope="session")
def candidate_embedder(pytestconfig: pytest.Config, production_embedder: Any) -> Any:
    """The embedder built with ``[...embedder.candidate]`` overrides; production if none."""
    return _candidate(pytestconfig, "embedder", production_embedder)


def _retriever(stack: StackConfig, embedder: Any, texts: dict[str, str]) -> Any:
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import build_retriever

    config = IndexConfig(kind=stack.index_kind)
    return build_retriever(embedder, texts, stack.artifacts / "indexes", config=config)


@pytest.fixture(scope="session")
def production_retriever(
    guardrails_stack: StackConfig, production_embedder: Any, knowledge_base: dict[str, str]
) -> Any:
    """The production embedder over an index of ``[tool.guardrails.stack.index] kind``."""
    return _retriever(guardrails_stack, production_embedder, knowledge_base)


@pytest.fixture(scope="session")
def candidate_retriever(
    guardrails_stack: StackConfig,
    candidate_embedder: Any,
    production_embedder: Any,
    production_retriever: Any,
    knowledge_base: dict[str, str],
) -> Any:
    """The candidate embedder over its own index; production's when the embedders are equal."""
    if candidate_embedder.fingerprint == production_embedder.fingerprint:
        return production_retriever
    return _retriever(guardrails_stack, candidate_embedder, knowledge_base)


@pytest.fixture(scope="session")
def retrieval_runs(
    retrieval_golden: dict[str, Any], production_retriever: Any, candidate_retriever: Any
) -> dict[str, tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]]:
    """``{domain: (production run, candidate run)}`` over each domain's golden queries."""
    runs = {}
    for domain, golden in retrieval_golden.items():
        qids = golden.query_ids
        production = production_retriever.search_run(qids, golden.texts(qids), 100)
        candidate = (
            production
            if candidate_retriever is production_retriever
            else candidate_retriever.search_run(qids, golden.texts(qids), 100)
        )
        runs[domain] = (production, candidate)
    return runs


@pytest.fixture(scope="session")
def production_generator(pytestconfig: pytest.Config) -> Any:
    """The generator ``[tool.guardrails.stack.generator]`` builds (a conftest fixture of the
    same name takes precedence)."""
    return _configured(pytestconfig, "generator", "production")


@pytest.fixture(scope="session")
def candidate_generator(pytestconfig: pytest.Config, production_generator: Any) -> Any:
    """The candidate: the generator options updated by ``[...generator.candidate]``;
    production itself when there is no candidate table (an A/A run)."""
    return _candidate(pytestconfig, "generator", production_generator)
