"""The deployment under test as configuration: ``[tool.guardrails.stack]`` -> :class:`StackConfig`.

A team declares its product areas, one table per domain, any names (the suites read them
from here, so no suite names a domain), and the components it serves itself, each built by a
factory that returns an object satisfying the component's Protocol
(:mod:`guardrails.components.protocols`)::

    [tool.guardrails.stack]
    artifacts = "adapters"            # candidates, indexes, caches land here
    registry = "adapters/registry.sqlite"   # default: <artifacts>/registry.sqlite

    [tool.guardrails.stack.logs]       # production logs: drift_windows, trigger_decision, curated
    reference = "logs/2026-11-w1.jsonl.gz"  # JSONL / .gz / .parquet (guardrails.monitoring.logs)
    current = "logs/2026-11-w2.jsonl.gz"

    [tool.guardrails.stack.mlflow]     # optional: MLflow aliases follow promote / rollback
    tracking-uri = "sqlite:///mlflow.db"    # registry-uri defaults to it
    models = {embedder = "rag-embedder", generator = "rag-generator"}
    production-alias = "production"   # default; e.g. "champion"
    previous-alias = "previous"       # default; e.g. "challenger"

    [tool.guardrails.stack.scaleout]   # optional: `guardrails drift` / `reembed` on Ray Data
    backend = "ray"                   # "in-process" (default) or "ray"
    address = "ray://head:10001"      # absent: a local Ray on this machine; "auto": a running one
    block-rows = 65536                # rows per drift block (histograms are merged on the driver)
    batch-size = 256                  # texts per re-embed batch
    concurrency = 1                   # re-embed actors, each with its own embedder
    num-cpus = 2                      # local Ray only: CPUs it may use (absent: all)

    [tool.guardrails.stack.domains.billing]
    golden = "golden/billing"         # BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv
    role = "established"              # in production: candidates must not forget it
    qa = "golden/billing/qa.jsonl"    # optional; default <golden>/qa.jsonl
    canaries = "golden/billing/canaries.jsonl"        # optional; default <golden>/canaries.jsonl
    preferences = "golden/billing/preferences.jsonl"  # optional; default <golden>/preferences.jsonl

    [tool.guardrails.stack.domains.devices]
    golden = "golden/devices"
    role = "new"                      # just launched: candidates are trained for it

    [tool.guardrails.stack.embedder]   # production_embedder / candidate_embedder, retrievers
    factory = "guardrails.components.embedder:Embedder.load"
    path = "models/e5-small"
    [tool.guardrails.stack.embedder.candidate]
    adapter = "adapters/retriever/e5-lora"
    [tool.guardrails.stack.index]
    kind = "flat"                     # flat, hnsw or ivf

    [tool.guardrails.stack.reranker]   # production_reranker / candidate_reranker
    factory = "guardrails.components.reranker:Reranker.load"
    path = "models/my-cross-encoder"

    [tool.guardrails.stack.generator]  # the production_generator / candidate_generator fixtures
    factory = "guardrails.components.remote:OpenAICompatibleGenerator"
    url = "http://serving.internal:8000/v1"   # every other key is a keyword argument
    model = "help-centre-v7"
    [tool.guardrails.stack.generator.candidate]  # overrides for the candidate (absent: A/A)
    model = "help-centre-v8-rc1"

    [tool.guardrails.training.retriever]   # how candidates train: method + hyper-parameters
    method = "ia3"                    # lora | ia3 | loha | lokr (docs/training.md)
    learning-rate = 3e-3
    [tool.guardrails.training.alignment]
    method = "rloo"                   # dpo | kto | grpo | rloo

``role`` is ``established`` (default: judged by non-inferiority, so forgetting shows) or ``new``
(a candidate trained for it must show a gain). Relative paths are relative to the pyproject's
folder. Every mistake raises :class:`~guardrails.errors.PolicyError` naming the key.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrails.errors import PolicyError, TrainingError

if TYPE_CHECKING:  # a light module, imported when a training table is parsed
    from guardrails.training.config import ComponentTraining, TrainingConfig

__all__ = [
    "ROLES",
    "ComponentSpec",
    "DomainConfig",
    "MlflowConfig",
    "ScaleoutConfig",
    "StackConfig",
    "build_component",
    "load_stack",
    "parse_stack",
    "parse_training",
]

ROLES = ("established", "new")
# component name -> the Protocol (guardrails.components.protocols) its factory must satisfy
PROTOCOLS = {"embedder": "TextEmbedder", "reranker": "TextReranker", "generator": "TextGenerator"}
INDEX_KINDS = ("flat", "hnsw", "ivf")
_STACK_KEYS = {
    "artifacts",
    "registry",
    "logs",
    "domains",
    "index",
    "mlflow",
    "scaleout",
    *PROTOCOLS,
}
BACKENDS = ("in-process", "ray")
_SCALEOUT_KEYS = {"backend", "address", "block-rows", "batch-size", "concurrency", "num-cpus"}
_MLFLOW_KEYS = {"tracking-uri", "registry-uri", "models", "production-alias", "previous-alias"}
_LOG_KEYS = {"reference", "current"}
_DOMAIN_KEYS = {"golden", "role", "qa", "canaries", "preferences"}
_DEFAULT_FILES = {
    "qa": "qa.jsonl",
    "canaries": "canaries.jsonl",
    "preferences": "preferences.jsonl",
}


@dataclass(frozen=True)
class DomainConfig:
    """One product area: its golden folder, its role and its QA / canary / preference files."""

    name: str
    golden: Path
    qa: Path
    canaries: Path
    preferences: Path
    role: str = "established"

    @property
    def is_new(self) -> bool:
        return self.role == "new"


@dataclass(frozen=True)
class ComponentSpec:
    """A component built by ``factory`` ("package.module:callable") with ``options`` as keyword
    arguments; the candidate with ``options`` updated by ``candidate`` (none: A/A)."""

    component: str
    factory: str
    options: Mapping[str, Any] = field(default_factory=dict)
    candidate: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MlflowConfig:
    """``[tool.guardrails.stack.mlflow]``: the MLflow registry that follows promote / rollback
    (:mod:`guardrails.integrations.mlflow`); ``models`` maps a component to a registered model."""

    tracking_uri: str
    models: Mapping[str, str]
    registry_uri: str | None = None
    production_alias: str = "production"
    previous_alias: str = "previous"


@dataclass(frozen=True)
class ScaleoutConfig:
    """Where ``guardrails drift`` and ``guardrails reembed`` run
    (:mod:`guardrails.monitoring.scaleout`): in-process (default) or on Ray Data, at
    ``address`` (``None``: a local Ray started on this machine; ``"auto"``: the running cluster
    this machine belongs to; ``"ray://host:10001"``: a remote cluster through Ray Client)."""

    backend: str = "in-process"
    address: str | None = None
    block_rows: int = 65536
    """Rows per drift block: each block's histograms and sums are merged on the driver."""
    batch_size: int = 256
    """Texts per re-embed batch sent to an actor."""
    concurrency: int = 1
    """Re-embed actors, each building its own embedder once."""
    num_cpus: int | None = None
    """CPUs a local Ray may use (``None``: all); ignored when connecting to an address."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise PolicyError(
                f"scaleout backend={self.backend!r}; allowed values: {list(BACKENDS)}"
            )
        for name in ("block_rows", "batch_size", "concurrency", "num_cpus"):
            value = getattr(self, name)
            if value is None and name == "num_cpus":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                key = name.replace("_", "-")
                raise PolicyError(f"scaleout {key}={value!r} must be an integer >= 1")
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise PolicyError(
                f"scaleout address={self.address!r}: give 'auto' or 'ray://host:10001', or omit "
                "it for a local Ray"
            )

    @property
    def on_ray(self) -> bool:
        return self.backend == "ray"


@dataclass(frozen=True)
class StackConfig:
    """The ``[tool.guardrails.stack]`` section: where artifacts land, the domains in order, and
    the components built from factories."""

    root: Path
    artifacts: Path
    domains: Mapping[str, DomainConfig] = field(default_factory=dict)
    components: Mapping[str, ComponentSpec] = field(default_factory=dict)
    index_kind: str = "flat"
    registry: Path | None = None
    """The registry's SQLite file (``None``: ``<artifacts>/registry.sqlite``)."""
    logs: tuple[Path, Path] | None = None
    """``(reference, current)`` production log windows, when configured."""
    mlflow: MlflowConfig | None = None
    """The MLflow registry mirrored after each switch, when configured."""
    scaleout: ScaleoutConfig = field(default_factory=ScaleoutConfig)
    """Where drift and re-embed run (default in-process)."""
    training: Mapping[str, ComponentTraining] = field(default_factory=dict)
    """``[tool.guardrails.training.<component>]``: method and hyper-parameters per component
    (every component has one; absent tables give the defaults)."""

    def training_for(self, component: str) -> ComponentTraining:
        """How ``component``'s candidate is trained (its table, or the defaults)."""
        if component in self.training:
            return self.training[component]
        from guardrails.training.config import component_training

        try:
            return component_training(component, None)
        except TrainingError as exc:
            raise PolicyError(f"[tool.guardrails.training] {exc}") from None

    def training_config(self, component: str) -> TrainingConfig:
        """The config ``component``'s trainer takes (``"generator-cpt"``: the CPT stage's)."""
        if component == "generator-cpt":
            from guardrails.training.config import GeneratorCPTConfig

            return self.training_for("generator").cpt or GeneratorCPTConfig()
        return self.training_for(component).config

    def training_method(self, component: str) -> str:
        """The method ``component`` trains with (``lora``, ``ia3``, ``sft``, ``cpt+sft``, ...)."""
        return self.training_for(component).method

    @property
    def registry_path(self) -> Path:
        return self.registry if self.registry is not None else self.artifacts / "registry.sqlite"

    def names(self, role: str | None = None) -> tuple[str, ...]:
        """Domain names in configuration order, all or those with ``role``."""
        return tuple(n for n, d in self.domains.items() if role is None or d.role == role)


def parse_stack(
    table: Mapping[str, Any],
    root: Path,
    source: str = "pyproject.toml",
    training: Mapping[str, Any] | None = None,
) -> StackConfig:
    """Validate a ``[tool.guardrails.stack]`` table (and the ``[tool.guardrails.training]``
    table, ``training``); paths resolve against ``root``."""
    where = "[tool.guardrails.stack]"
    _check(table, _STACK_KEYS, where, source)
    raw = table.get("domains", {})
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{source}: {where} domains must be a table of named domains")
    domains = {name: _domain(name, body, root, source) for name, body in raw.items()}
    artifacts = table.get("artifacts", "adapters")
    if not isinstance(artifacts, str) or not artifacts:
        raise PolicyError(f"{source}: {where} artifacts={artifacts!r} must be a folder path")
    components = {c: _component(c, table[c], source) for c in PROTOCOLS if c in table}
    registry = table.get("registry")
    if registry is not None and (not isinstance(registry, str) or not registry):
        raise PolicyError(f"{source}: {where} registry={registry!r} must be a file path")
    return StackConfig(
        root,
        root / artifacts,
        domains,
        components,
        _index_kind(table, source),
        None if registry is None else root / registry,
        _logs(table, root, source),
        _mlflow(table, source),
        _scaleout(table, source),
        parse_training(training or {}, source),
    )


def _scaleout(table: Mapping[str, Any], source: str) -> ScaleoutConfig:
    body = _subtable(table, "scaleout", _SCALEOUT_KEYS, source)
    if body is None:
        return ScaleoutConfig()
    try:
        return ScaleoutConfig(**{_kwarg(k): v for k, v in body.items()})
    except PolicyError as exc:  # name the table the key is in
        raise PolicyError(
            f"{source}: [tool.guardrails.stack.scaleout] {str(exc).removeprefix('scaleout ')}"
        ) from None


def parse_training(table: Mapping[str, Any], source: str) -> dict[str, ComponentTraining]:
    """Validate ``[tool.guardrails.training]``: one table per component (retriever, reranker,
    generator, alignment) whose ``method`` and hyper-parameters override the defaults."""
    from guardrails.training.config import TRAINING_METHODS, component_training

    if not isinstance(table, Mapping):
        raise PolicyError(f"{source}: [tool.guardrails.training] must be a table of components")
    _check(table, set(TRAINING_METHODS), "[tool.guardrails.training]", source)
    out = {}
    for component, body in table.items():
        where = f"[tool.guardrails.training.{component}]"
        if not isinstance(body, Mapping):
            raise PolicyError(f"{source}: {where} must be a table (method and hyper-parameters)")
        try:
            out[component] = component_training(component, body)
        except TrainingError as exc:
            raise PolicyError(f"{source}: {where} {exc}") from None
    return out


def _mlflow(table: Mapping[str, Any], source: str) -> MlflowConfig | None:
    where = "[tool.guardrails.stack.mlflow]"
    body = _subtable(table, "mlflow", _MLFLOW_KEYS, source)
    if body is None:
        return None
    uris = {k: body.get(k) for k in ("tracking-uri", "registry-uri")}
    for key, value in uris.items():
        if (value is not None or key == "tracking-uri") and (
            not isinstance(value, str) or not value
        ):
            raise PolicyError(
                f"{source}: {where} {key}={value!r}: give an MLflow URI, e.g. 'sqlite:///mlflow.db'"
            )
    models = body.get("models")
    if (
        not isinstance(models, Mapping)
        or not models
        or not all(isinstance(v, str) and v for v in models.values())
    ):
        raise PolicyError(
            f"{source}: {where} models={models!r}: give a table component -> registered model "
            'name, e.g. models = {embedder = "rag-embedder"}'
        )
    aliases = [_mlflow_alias(body, k, d, source) for k, d in _MLFLOW_ALIASES]
    if aliases[0] == aliases[1]:
        raise PolicyError(
            f"{source}: {where} production-alias and previous-alias are both {aliases[0]!r}"
        )
    return MlflowConfig(
        str(uris["tracking-uri"]), dict(models), uris["registry-uri"], aliases[0], aliases[1]
    )


_MLFLOW_ALIASES = (("production-alias", "production"), ("previous-alias", "previous"))


def _mlflow_alias(body: Mapping[str, Any], key: str, default: str, source: str) -> str:
    """MLflow's alias rule: letters, digits, '_' and '-'; not 'latest' nor 'v<digits>'."""
    value = body.get(key, default)
    ok = isinstance(value, str) and bool(re.fullmatch(r"[\w-]+", value))
    if not ok or value.lower() == "latest" or re.fullmatch(r"[vV]\d+", str(value)):
        raise PolicyError(
            f"{source}: [tool.guardrails.stack.mlflow] {key}={value!r} is not a valid MLflow "
            "alias: use letters, digits, '_' or '-', not 'latest' nor 'v<number>'"
        )
    return str(value)


def _subtable(
    table: Mapping[str, Any], key: str, allowed: set[str], source: str
) -> Mapping[str, Any] | None:
    """The optional ``[tool.guardrails.stack.<key>]`` table, its keys checked (None if absent)."""
    body = table.get(key)
    if body is None:
        return None
    where = f"[tool.guardrails.stack.{key}]"
    if not isinstance(body, Mapping):
        raise PolicyError(f"{source}: {where} must be a table with keys {sorted(allowed)}")
    _check(body, allowed, where, source)
    return body


def _logs(table: Mapping[str, Any], root: Path, source: str) -> tuple[Path, Path] | None:
    where = "[tool.guardrails.stack.logs]"
    logs = _subtable(table, "logs", _LOG_KEYS, source)
    if logs is None:
        return None
    paths = []
    for key in ("reference", "current"):
        value = logs.get(key)
        if not isinstance(value, str) or not value:
            raise PolicyError(
                f"{source}: {where} {key}={value!r}: give the log file of the {key} window"
            )
        paths.append(root / value)
    return paths[0], paths[1]


def _index_kind(table: Mapping[str, Any], source: str) -> str:
    where = "[tool.guardrails.stack.index]"
    index = table.get("index", {})
    if not isinstance(index, Mapping):
        raise PolicyError(f"{source}: {where} must be a table")
    _check(index, {"kind"}, where, source)
    kind = index.get("kind", "flat")
    if kind not in INDEX_KINDS:
        raise PolicyError(f"{source}: {where} kind={kind!r}; allowed values: {list(INDEX_KINDS)}")
    return str(kind)


def build_component(spec: ComponentSpec, role: str = "production") -> Any:
    """Call ``spec.factory`` with the options of ``role`` (``production`` or ``candidate``) and
    check the result against the component's Protocol; :class:`PolicyError` names the factory."""
    from guardrails.components import protocols

    options = dict(spec.options)
    if role == "candidate":
        options.update(spec.candidate or {})
    module, _, attr = spec.factory.partition(":")
    try:
        factory: Any = importlib.import_module(module)
        for part in attr.split("."):  # "package.module:Class.method" is allowed
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise PolicyError(
            f"{spec.component} factory={spec.factory!r} cannot be imported: {exc}"
        ) from None
    try:
        built = factory(**options)
    except TypeError as exc:
        raise PolicyError(
            f"{spec.component} factory={spec.factory!r} refused options {sorted(options)}: {exc}"
        ) from None
    protocol = getattr(protocols, PROTOCOLS[spec.component])
    if not isinstance(built, protocol):
        raise PolicyError(
            f"{spec.component} factory={spec.factory!r} built a {type(built).__name__}, which is "
            f"not a {protocol.__name__} (see guardrails.components.protocols)"
        )
    return built


def _component(name: str, body: Any, source: str) -> ComponentSpec:
    where = f"[tool.guardrails.stack.{name}]"
    if not isinstance(body, Mapping):
        raise PolicyError(f"{source}: {where} must be a table")
    factory = body.get("factory")
    if not isinstance(factory, str) or ":" not in factory:
        raise PolicyError(f"{source}: {where} factory={factory!r}: give 'package.module:callable'")
    candidate = body.get("candidate")
    if candidate is not None and not isinstance(candidate, Mapping):
        raise PolicyError(f"{source}: {where} candidate must be a table of option overrides")
    options = {_kwarg(k): v for k, v in body.items() if k not in ("factory", "candidate")}
    overrides = None if candidate is None else {_kwarg(k): v for k, v in candidate.items()}
    return ComponentSpec(name, factory, options, overrides)


def _kwarg(key: str) -> str:
    return key.replace("-", "_")


def load_stack(pyproject: str | Path | None) -> StackConfig:
    """The stack section of ``pyproject`` (no domains when the file or the section is absent)."""
    from guardrails.policy import read_guardrails_table

    path = Path(pyproject) if pyproject is not None else None
    root = path.parent if path is not None else Path.cwd()
    guardrails = read_guardrails_table(path)
    table = guardrails.get("stack", {})
    if not isinstance(table, Mapping):
        raise PolicyError(f"{path}: [tool.guardrails.stack] must be a table")
    return parse_stack(table, root, str(path), guardrails.get("training", {}))


def _domain(name: str, body: Any, root: Path, source: str) -> DomainConfig:
    where = f"[tool.guardrails.stack.domains.{name}]"
    if not isinstance(body, Mapping):
        raise PolicyError(f"{source}: {where} must be a table")
    _check(body, _DOMAIN_KEYS, where, source)
    golden = body.get("golden")
    if not isinstance(golden, str) or not golden:
        raise PolicyError(f"{source}: {where} golden={golden!r}: give the BEIR folder's path")
    role = body.get("role", "established")
    if role not in ROLES:
        raise PolicyError(f"{source}: {where} role={role!r}; allowed values: {list(ROLES)}")
    folder = root / golden
    files = {}
    for key, default in _DEFAULT_FILES.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise PolicyError(f"{source}: {where} {key}={value!r} must be a file path")
        files[key] = root / value if value else folder / default
    return DomainConfig(name, folder, role=role, **files)


def _check(table: Mapping[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PolicyError(
            f"{source}: {where} unknown key(s) {unknown}; allowed keys: {sorted(allowed)}"
        )
