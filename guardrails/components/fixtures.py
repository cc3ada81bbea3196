"""The stack's fixtures, built from ``[tool.guardrails.stack]`` (registered by the plugin at
configure time). Every one can be overridden by a conftest fixture of the same name, as the
bundled demo's ``suites/conftest.py`` does: golden sets, QA sets, canaries and knowledge base
from the domains; embedders and retrievers from ``embedder`` / ``index``; rerankers from
``reranker``; generators from ``generator``; the registry from ``registry``; log windows,
retrain triggers (and the registry branch a fired trigger opens), logged queries and curated
training sets from ``logs``. A ``candidate`` sub-table builds the candidate, its absence makes
the run A/A."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guardrails.errors import PolicyError
from guardrails.plugin import STATE
from guardrails.stack import StackConfig


def _spec(config: pytest.Config, component: str, role: str) -> Any:
    spec = config.stash[STATE].stack.components.get(component)
    if spec is None:
        raise PolicyError(
            f"no [tool.guardrails.stack.{component}] factory is configured, and no conftest "
            f"fixture provides {role}_{component}"
        )
    return spec


def _configured(config: pytest.Config, component: str, role: str) -> Any:
    from guardrails.stack import build_component

    return build_component(_spec(config, component, role), role)


def _recipe(spec: Any, role: str) -> dict[str, Any]:
    """What the registry keeps to rebuild a configured component: its factory and options."""
    options = dict(spec.options)
    if role == "candidate":
        options.update(spec.candidate or {})
    return {"factory": spec.factory, "options": options}


def monitoring(config: pytest.Config) -> bool:
    """``--guardrails-monitor``: judge the registry's production against its ``previous``."""
    return bool(config.getoption("--guardrails-monitor", default=False))


def _monitored(registry: Any, component: str, alias: str) -> Any:
    """A monitoring run's side: ``previous`` as production, ``production`` as the candidate,
    each rebuilt from its recorded factory and options (a component never promoted has no
    ``previous``: it is judged against itself, an A/A)."""
    from guardrails.errors import RegistryError
    from guardrails.stack import ComponentSpec, build_component

    artifact = registry.resolve(component, alias)
    if artifact is None or "factory" not in artifact.metadata:
        raise RegistryError(
            f"{registry.path}: --guardrails-monitor needs {component} {alias} with a recorded "
            f"factory ({'none' if artifact is None else 'it has none'}); monitoring judges a "
            "promoted production against the production it replaced"
        )
    options = dict(artifact.metadata.get("options") or {})
    built = build_component(
        ComponentSpec(component, str(artifact.metadata["factory"]), options), "production"
    )
    if built.fingerprint != artifact.fingerprint:
        raise RegistryError(
            f"{registry.path}: {component} {alias} is {artifact.fingerprint}, but its recorded "
            f"factory now builds {built.fingerprint}"
        )
    return built


def _production(config: pytest.Config, registry: Any, component: str) -> Any:
    """What the registry's ``production`` alias names, rebuilt from its recorded factory and
    options; on a fresh registry, the configured component, registered as production.

    After a promote the configuration's production options are only the bootstrap: the
    served component is the promoted one, and changing it goes through a verdict.
    """
    from guardrails.errors import RegistryError
    from guardrails.stack import ComponentSpec, build_component

    if monitoring(config) and registry.resolve(component, "previous") is not None:
        return _monitored(registry, component, "previous")
    spec = _spec(config, component, "production")
    served = registry.resolve(component, "production")
    if served is None or "factory" not in served.metadata:
        built = build_component(spec, "production")
        source = config.stash[STATE].config_path or guardrails_root(config)
        registry.register_as(
            component, source, built.fingerprint, "production", metadata=_recipe(spec, "production")
        )
        served = registry.resolve(component, "production")
        if served is not None and served.fingerprint == built.fingerprint:
            return built
    assert served is not None
    if "factory" not in served.metadata:
        raise RegistryError(
            f"{registry.path}: production {component} {served.fingerprint} has no recorded "
            "factory, so the configured stack cannot rebuild it; promote a configured candidate "
            "or register production with its factory and options"
        )
    options = dict(served.metadata.get("options") or {})
    recorded = ComponentSpec(component, str(served.metadata["factory"]), options)
    built = build_component(recorded, "production")
    if built.fingerprint != served.fingerprint:
        raise RegistryError(
            f"{registry.path}: production {component} is {served.fingerprint}, but its recorded "
            f"factory {recorded.factory} with options {sorted(options)} now builds "
            f"{built.fingerprint}: what would be judged is not what is served; register and "
            "promote the new build, or restore the artifact"
        )
    return built


def guardrails_root(config: pytest.Config) -> Path:
    return Path(config.stash[STATE].stack.root)


def _candidate(config: pytest.Config, registry: Any, component: str, production: Any) -> Any:
    """The configured candidate, registered with production as its parent; ``production``
    itself when there is no candidate table (A/A). A monitoring run's candidate is the
    registry's production (judged against the previous one)."""
    if monitoring(config):  # never promoted (no previous): production judged against itself
        if registry.resolve(component, "previous") is None:
            return production
        return _monitored(registry, component, "production")
    spec = config.stash[STATE].stack.components.get(component)
    if spec is None or spec.candidate is None:
        return production
    from guardrails.stack import build_component

    built = build_component(spec, "candidate")
    if built.fingerprint != production.fingerprint:
        source = config.stash[STATE].config_path or guardrails_root(config)
        registry.register_as(
            component,
            source,
            built.fingerprint,
            "candidate",
            parent=production.fingerprint,
            metadata=_recipe(spec, "candidate"),
        )
    return built


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
def production_embedder(pytestconfig: pytest.Config, registry: Any) -> Any:
    """The embedder the registry's ``production`` alias names (first run: the one
    ``[tool.guardrails.stack.embedder]`` builds, registered as production)."""
    return _production(pytestconfig, registry, "embedder")


@pytest.fixture(scope="session")
def candidate_embedder(pytestconfig: pytest.Config, registry: Any, production_embedder: Any) -> Any:
    """The embedder built with ``[...embedder.candidate]`` overrides (registered as the
    candidate, production its parent); production if none."""
    return _candidate(pytestconfig, registry, "embedder", production_embedder)


def _retriever(
    stack: StackConfig, embedder: Any, texts: dict[str, str], registry: Any, alias: str
) -> Any:
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import build_retriever, served_index_config

    config = served_index_config(registry, IndexConfig(kind=stack.index_kind))
    retriever = build_retriever(embedder, texts, stack.artifacts / "indexes", config=config)
    retriever.register(registry, alias=alias)
    return retriever


@pytest.fixture(scope="session")
def production_retriever(
    guardrails_stack: StackConfig,
    production_embedder: Any,
    knowledge_base: dict[str, str],
    registry: Any,
) -> Any:
    """The production embedder over the index type that is served: the registry's production
    index's configuration, else ``[tool.guardrails.stack.index] kind`` (registered)."""
    return _retriever(guardrails_stack, production_embedder, knowledge_base, registry, "production")


@pytest.fixture(scope="session")
def candidate_retriever(
    guardrails_stack: StackConfig,
    candidate_embedder: Any,
    production_embedder: Any,
    production_retriever: Any,
    knowledge_base: dict[str, str],
    registry: Any,
) -> Any:
    """The candidate embedder over its own index of production's type (the registry's
    ``shadow`` index); production's when the embedders are equal."""
    if candidate_embedder.fingerprint == production_embedder.fingerprint:
        return production_retriever
    return _retriever(guardrails_stack, candidate_embedder, knowledge_base, registry, "candidate")


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
def production_generator(pytestconfig: pytest.Config, registry: Any) -> Any:
    """The generator the registry's ``production`` alias names (first run: the one
    ``[tool.guardrails.stack.generator]`` builds, registered)."""
    return _production(pytestconfig, registry, "generator")


@pytest.fixture(scope="session")
def candidate_generator(
    pytestconfig: pytest.Config, registry: Any, production_generator: Any
) -> Any:
    """The candidate: the generator options updated by ``[...generator.candidate]``;
    production itself when there is no candidate table (an A/A run)."""
    return _candidate(pytestconfig, registry, "generator", production_generator)


@pytest.fixture(scope="session")
def production_reranker(pytestconfig: pytest.Config, registry: Any) -> Any:
    """The reranker the registry's ``production`` alias names (first run: the one
    ``[tool.guardrails.stack.reranker]`` builds, registered)."""
    return _production(pytestconfig, registry, "reranker")


@pytest.fixture(scope="session")
def candidate_reranker(pytestconfig: pytest.Config, registry: Any, production_reranker: Any) -> Any:
    """The reranker built with ``[...reranker.candidate]`` overrides; production if none."""
    return _candidate(pytestconfig, registry, "reranker", production_reranker)


@pytest.fixture(scope="session")
def qa_golden(guardrails_stack: StackConfig) -> dict[str, Any]:
    """``{domain: QASet}`` from each domain's ``qa`` file."""
    from guardrails.golden import load_qa

    return {n: load_qa(d.qa, name=f"{n}-qa") for n, d in guardrails_stack.domains.items()}


@pytest.fixture(scope="session")
def canaries(guardrails_stack: StackConfig) -> dict[str, Any]:
    """``{domain: CanarySet}`` from each domain's ``canaries`` file."""
    from guardrails.golden import load_canaries

    return {
        n: load_canaries(d.canaries, name=f"{n}-canaries")
        for n, d in guardrails_stack.domains.items()
    }


@pytest.fixture(scope="session")
def registry(pytestconfig: pytest.Config, guardrails_stack: StackConfig) -> Any:
    """The deployment's registry: ``--guardrails-registry``, else the stack's ``registry``."""
    from guardrails.registry import Registry

    option = pytestconfig.getoption("--guardrails-registry")
    path = Path(option) if option else guardrails_stack.registry_path
    with Registry(path, root=guardrails_stack.root) as reg:
        yield reg


@pytest.fixture(scope="session")
def production_logs(guardrails_stack: StackConfig) -> tuple[Path, Path]:
    """``(reference, current)`` log files of ``[tool.guardrails.stack.logs]``."""
    if guardrails_stack.logs is None:
        raise PolicyError(
            "no [tool.guardrails.stack.logs] reference / current is configured, and no "
            "conftest fixture provides production_logs"
        )
    return guardrails_stack.logs


@pytest.fixture(scope="session")
def drift_windows(production_logs: tuple[Path, Path]) -> tuple[Any, Any]:
    """The reference and current windows of the production logs."""
    from guardrails.monitoring.drift import load_window

    return load_window(production_logs[0]), load_window(production_logs[1])


@pytest.fixture(scope="session")
def trigger_decision(
    pytestconfig: pytest.Config, drift_windows: tuple[Any, Any], registry: Any
) -> Any:
    """Drift + signals of the two windows -> which components to retrain, and why
    (``[tool.guardrails.triggers]``); the schedule trigger's last retrain is the registry's
    last promote. The decision (findings, key signals per window, drift statistics) is
    recorded for the verdict, so the reports say why this run happened."""
    from guardrails.monitoring.drift import compare_windows
    from guardrails.monitoring.triggers import decide_triggers, load_trigger_policy, window_pair
    from guardrails.plugin import record_session_facts

    reference, current = drift_windows
    report = compare_windows(reference, current, projections=False)
    signals = window_pair(reference.batch.records, current.batch.records)
    policy = load_trigger_policy(pytestconfig.stash[STATE].config_path)
    decision = decide_triggers(
        *signals, report, policy=policy, last_retrain=registry.last_promoted()
    )
    record_session_facts(pytestconfig, {"triggers": decision.to_dict()})
    return decision


@pytest.fixture(scope="session")
def retrain_branch(trigger_decision: Any, registry: Any) -> str | None:
    """The registry branch the retrain trigger opened, ``retrain-<UTC date>-<signal>`` (reused
    by a re-run the same day), with its findings as evidence: this run's candidates are
    registered on it (their lineage). None when no trigger fired."""
    branch = trigger_decision.open_branch(registry)
    return None if branch is None else str(branch.name)


@pytest.fixture(scope="session")
def logged_queries(drift_windows: tuple[Any, Any]) -> list[str]:
    """Queries of the current production window (the shadow replays them)."""
    return list(drift_windows[1].queries)


@pytest.fixture(scope="session")
def curated(
    guardrails_stack: StackConfig,
    production_logs: tuple[Path, Path],
    drift_windows: tuple[Any, Any],
    retrieval_golden: dict[str, Any],
    qa_golden: dict[str, Any],
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    """Training sets curated from the current logs, written with datasheets to
    ``<artifacts>/datasets/`` (:mod:`guardrails.training.mix` feeds them to the trainers).

    Rows are decontaminated against every held-out golden query and QA question; the
    off-topic filter keeps rows of a configured domain whose query has cosine >=
    ``TOPIC_MIN_COSINE`` to its nearest knowledge-base document (production embedder; the
    document vectors are the production index's, the query vectors the logged ones when they
    match the production embedder; with no embedder configured, only the domain check runs).
    The datasheets' ``off_topic`` step counts what it drops."""
    from guardrails.training.curation import curate, write_dataset

    held_out = [q for g in retrieval_golden.values() for q in g.texts()]
    held_out += [e.question for s in qa_golden.values() for e in s.examples]
    records = drift_windows[1].batch.records
    topic_filter = _topic_filter(request, guardrails_stack, records)
    source = _relative(production_logs[1], guardrails_stack.root)
    datasets = curate(records, topic_filter=topic_filter, sources=[source], exclude_texts=held_out)
    for dataset in datasets.values():
        write_dataset(dataset, guardrails_stack.artifacts / "datasets")
    return datasets


# A logged query whose nearest knowledge-base document is below this cosine is off-topic: on
# the demo's logs (all on-topic) 6 of 1,217 distinct queries fall below 0.25, and none of six
# off-topic probes (weather, pizza, football, a poem, a joke, Everest) reaches it.
TOPIC_MIN_COSINE = 0.25


def _topic_filter(request: pytest.FixtureRequest, stack: StackConfig, records: Any) -> Any:
    from guardrails.training.curation import TopicFilter, logged_query_vectors

    try:
        retriever = request.getfixturevalue("production_retriever")
    except PolicyError:  # no embedder is configured: the rows' domain is all we can check
        return TopicFilter(topics=frozenset(stack.domains))
    embedder, index = retriever.embedder, retriever.index
    return TopicFilter.from_anchors(
        embedder,
        {doc_id: index.reconstruct(doc_id) for doc_id in index.doc_ids},
        topics=stack.domains,
        min_cosine=TOPIC_MIN_COSINE,
        known=logged_query_vectors(records, embedder),
    )


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the project root when under it (datasheets stay identical, and
    adapters trained on them cached, when the checkout moves)."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
