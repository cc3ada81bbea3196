"""Training configs: one frozen dataclass per component, CPU-sized defaults, always seeded.

A config is part of a candidate's identity: :func:`guardrails.training.cache.candidate_fingerprint`
hashes ``dataclasses.asdict(config)`` together with the data, base model and library versions, so
changing any field here trains a new adapter instead of reusing a stale one.

Every config shares the :class:`TrainingConfig` fields (seed, optimiser, length, LoRA shape):
``lora_r`` is the rank ``r`` of the update ``ΔW = (alpha / r) · B A`` with ``B ∈ R^{d×r}``,
``A ∈ R^{r×k}`` (Hu et al., 2021, "LoRA", arXiv:2106.09685); ``target_modules`` names the
linear layers that get one. ``max_steps > 0`` overrides ``epochs`` (the transformers rule).

``device`` (default ``auto``: CUDA when torch sees one) picks where to train; it is left out
of the fingerprint. Fields added after adapters were cached (``method``,
``feedforward_modules``) enter the fingerprint only when they differ from their default, so a
default config keeps the identity it had before the field existed.

``method`` of the retriever and reranker configs is the peft adapter type (``"lora"``,
``"ia3"``, ``"loha"``, ``"lokr"``; :mod:`guardrails.training.peft_methods`). Defaults fit a
2-core CPU in minutes. :class:`RetrieverTrainingConfig`'s defaults are tuned on the bundled
demo (see ``benchmarks/demo_retriever_adapter.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, cast

from guardrails.components.device import check_device
from guardrails.errors import ComponentError, TrainingError

__all__ = [
    "CONFIG_TYPES",
    "DEFAULT_METHODS",
    "TRAINING_METHODS",
    "ComponentTraining",
    "DPOConfig",
    "GRPOConfig",
    "GeneratorCPTConfig",
    "GeneratorSFTConfig",
    "KTOConfig",
    "RLOOConfig",
    "RerankerTrainingConfig",
    "RetrieverTrainingConfig",
    "TrainingConfig",
    "component_training",
    "config_from_dict",
    "default_config",
]

# Attention and MLP projections of BERT-family encoders (MiniLM) and of Llama-family decoders.
C = TypeVar("C", bound="TrainingConfig")

BERT_ATTENTION = ("query", "key", "value")
BERT_ALL_LINEAR = (
    "query",
    "key",
    "value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainingConfig:
    """Fields every trainer reads. ``max_steps > 0`` wins over ``epochs``."""

    seed: int = 13
    learning_rate: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    max_length: int = 256
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = BERT_ATTENTION
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    logging_steps: int = 5
    # the transformer layers (0-based) that get an adapter, () = every layer. With the top
    # layers only, the backward pass stops at the lowest adapted one (measured on SmolLM2-135M,
    # 8 x 256 tokens, 2 cores: LoRA on layers 20-29 of 30 took 6.0-6.2 s a step, on all
    # layers 9.5-11.0 s), but the adapter learns less: on the demo's SFT set the generation
    # gains fell from +0.11 / +0.14 to +0.04 / +0.02 ROUGE-L (devices / payments), so the
    # demo keeps every layer. Not part of the identity while it holds its default.
    lora_layers: tuple[int, ...] = field(default=(), metadata={"identity": "unless-default"})
    # where to train: auto (CUDA when present), cpu, cuda, cuda:N, mps. Not part of the
    # candidate's identity (see guardrails.training.cache): the same recipe on another device.
    device: str = field(default="auto", metadata={"identity": False})

    def __post_init__(self) -> None:
        try:
            check_device(self.device)
        except ComponentError as exc:
            raise TrainingError(f"{type(self).__name__}: {exc}") from None
        _check_positive(
            self,
            "learning_rate",
            "batch_size",
            "max_length",
            "lora_r",
            "lora_alpha",
            "gradient_accumulation_steps",
            "logging_steps",
        )
        if self.epochs <= 0 and self.max_steps <= 0:
            raise TrainingError(
                f"{type(self).__name__}: epochs={self.epochs} and max_steps={self.max_steps}; "
                "set epochs > 0 or max_steps > 0"
            )
        if not 0.0 <= self.lora_dropout < 1.0:
            raise TrainingError(
                f"{type(self).__name__}: lora_dropout={self.lora_dropout} must be in [0, 1)"
            )
        # Lists from a TOML/JSON config would make the dataclass unhashable; keep tuples.
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        for name in ("lora_layers", "feedforward_modules"):
            if hasattr(self, name):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        layers = self.lora_layers
        bad = [x for x in layers if isinstance(x, bool) or not isinstance(x, int) or x < 0]
        if bad or len(set(layers)) != len(layers):
            raise TrainingError(
                f"{type(self).__name__}: lora_layers={list(self.lora_layers)} must be distinct "
                "layer indices >= 0 (or empty for every layer)"
            )
        if hasattr(self, "method"):
            from guardrails.training.peft_methods import check_method

            check_method(type(self).__name__, self.method)

    def with_(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


def _check_positive(config: TrainingConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise TrainingError(f"{type(config).__name__}: {name}={value} must be > 0")


@dataclass(frozen=True)
class RetrieverTrainingConfig(TrainingConfig):
    """LoRA on a sentence-transformers bi-encoder, MultipleNegativesRankingLoss.

    Loss over a batch of ``B`` (anchor ``a_i``, positive ``p_i``, hard negative ``n_i``)::

        L = -1/B Σ_i log( exp(s·cos(a_i, p_i)) / Σ_j [exp(s·cos(a_i, p_j)) + exp(s·cos(a_i, n_j))] )

    with ``s = scale`` (Henderson et al., 2017, arXiv:1705.00652). ``use_hard_negatives=False``
    drops the negative column (in-batch negatives only). ``lora_layers`` restricts the adapter
    to those encoder layers (``()`` = all); the backward pass then stops at the lowest one.
    ``method`` is the peft adapter (``lora``, ``ia3``, ``loha``, ``lokr``); for ``ia3``,
    ``feedforward_modules`` (a subset of ``target_modules``) get their input rescaled instead of
    their output. Defaults tuned on the demo (LoRA).
    """

    learning_rate: float = 1e-3
    epochs: float = 2.0
    batch_size: int = 32
    max_length: int = 128
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] = BERT_ATTENTION
    lora_layers: tuple[int, ...] = ()
    scale: float = 20.0
    use_hard_negatives: bool = True
    no_duplicates_sampler: bool = True
    method: str = field(default="lora", metadata={"identity": "unless-default"})
    feedforward_modules: tuple[str, ...] = field(
        default=(), metadata={"identity": "unless-default"}
    )


@dataclass(frozen=True)
class RerankerTrainingConfig(TrainingConfig):
    """Cross-encoder on (query, document, relevance): full fine-tune or LoRA.

    ``loss="bce"`` is binary cross-entropy on ``relevance / max_relevance``; ``"mse"`` regresses
    the scaled label; ``"listwise"`` is the softmax cross-entropy of each relevant document
    against ``list_size - 1`` less relevant documents of the same query (the cross-encoder form
    of the multiple-negatives ranking loss; it optimises the order a reranker is judged on).
    ``batch_size`` counts (query, document) pairs either way. ``head_learning_rate`` (0 = same
    as ``learning_rate``) is the rate of the new classifier head and pooler, which start from
    random or from a non-ranking checkpoint. ``full_finetune=True`` trains every weight (the
    demo's production reranker); otherwise the peft adapter ``method`` (default LoRA).
    """

    learning_rate: float = 2e-5
    epochs: float = 2.0
    batch_size: int = 16
    max_length: int = 256
    target_modules: tuple[str, ...] = BERT_ATTENTION
    loss: str = "bce"
    list_size: int = 4
    head_learning_rate: float = 0.0
    full_finetune: bool = False
    max_relevance: int = 2
    negatives_per_query: int = 3
    method: str = field(default="lora", metadata={"identity": "unless-default"})
    feedforward_modules: tuple[str, ...] = field(
        default=(), metadata={"identity": "unless-default"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.list_size < 2:
            raise TrainingError(
                f"RerankerTrainingConfig: list_size={self.list_size} must be >= 2 "
                "(one relevant document and at least one less relevant)"
            )
        if self.head_learning_rate < 0:
            raise TrainingError(
                f"RerankerTrainingConfig: head_learning_rate={self.head_learning_rate} must "
                "be >= 0 (0 = learning_rate)"
            )


@dataclass(frozen=True)
class GeneratorSFTConfig(TrainingConfig):
    """LoRA supervised fine-tune of a causal LM on (prompt, answer) with trl's SFTTrainer.

    Loss is the token-level cross-entropy ``-1/T Σ_t log p(y_t | x, y_<t)`` over the answer
    tokens only when ``completion_only_loss`` (the prompt is context, not a target).
    """

    learning_rate: float = 3e-4
    epochs: float = 2.0
    batch_size: int = 8
    max_length: int = 288  # the longest demo prompt + answer is 267 SmolLM2 tokens
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    completion_only_loss: bool = True
    use_chat_template: bool = True


@dataclass(frozen=True)
class GeneratorCPTConfig(TrainingConfig):
    """LoRA continued pre-training on raw domain text: next-token loss on every token.

    Texts are packed into blocks of ``max_length`` tokens (``packing``) so no step is padding.
    """

    learning_rate: float = 1e-4
    epochs: float = 1.0
    batch_size: int = 4
    max_length: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    packing: bool = True


@dataclass(frozen=True)
class DPOConfig(TrainingConfig):
    """Direct Preference Optimisation (Rafailov et al., 2023, arXiv:2305.18290) with LoRA.

    ``L = -log σ(β [log π(y_w|x)/π_ref(y_w|x) - log π(y_l|x)/π_ref(y_l|x)])``;
    ``loss_type`` is trl's (``"sigmoid"`` = the formula above, ``"ipo"``, ``"hinge"``, ...).
    The reference model is the base with the adapter disabled (no second copy in memory).
    """

    # tuned on the demo (2 CPU cores): 20 LoRA steps move the held-out margin (+1.49 nats,
    # CI [+1.04, +1.94]); 5e-5 is too low a rate for so few steps
    learning_rate: float = 5e-4
    epochs: float = 1.0
    max_steps: int = 20
    batch_size: int = 2
    max_length: int = 384
    max_prompt_length: int = 320
    logging_steps: int = 2
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class KTOConfig(TrainingConfig):
    """Kahneman-Tversky Optimisation (Ethayarajh et al., 2024, arXiv:2402.01306) with LoRA.

    On unpaired (prompt, completion, label): desirable completions weigh ``desirable_weight``,
    undesirable ones ``undesirable_weight``; keep ``λ_D n_D / (λ_U n_U)`` in [1, 4/3].
    """

    learning_rate: float = 5e-5
    epochs: float = 1.0
    batch_size: int = 4
    max_length: int = 512
    max_prompt_length: int = 384
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    loss_type: str = "kto"


@dataclass(frozen=True)
class GRPOConfig(TrainingConfig):
    """Group Relative Policy Optimisation (Shao et al., 2024, arXiv:2402.03300) with LoRA.

    For each prompt, ``num_generations`` completions are sampled and rewarded (rule-based,
    e.g. canary compliance); advantages are ``(r_i - mean(r)) / std(r)`` within the group;
    ``beta`` weighs the KL penalty to the reference policy.
    """

    learning_rate: float = 1e-5
    epochs: float = 1.0
    max_steps: int = 20
    batch_size: int = 4
    max_length: int = 512
    max_prompt_length: int = 384
    max_completion_length: int = 48
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    num_generations: int = 4
    temperature: float = 0.9
    beta: float = 0.04
    loss_type: str = "grpo"


@dataclass(frozen=True)
class RLOOConfig(TrainingConfig):
    """REINFORCE Leave-One-Out (Ahmadian et al., 2024, arXiv:2402.14740) with LoRA: the PPO
    family's policy gradient with a critic-free baseline.

    For each prompt, ``num_generations`` (``k``) completions are sampled and rewarded; the
    advantage of completion ``i`` is its reward minus the mean reward of the *other* ``k - 1``::

        A_i = r_i - 1/(k-1) Σ_{j≠i} r_j

    and the loss is PPO's clipped surrogate ``-min(ρ A, clip(ρ, 1-ε, 1+ε) A)`` with
    ``ρ = π(y|x) / π_old(y|x)`` (``ε = epsilon``), plus ``beta`` × KL to the reference policy
    folded into the reward (trl's ``RLOOTrainer``). trl 1.16 ships no ``PPOTrainer`` (neither
    in ``trl`` nor in ``trl.experimental``); RLOO and GRPO are the PPO-family trainers it has.
    """

    learning_rate: float = 1e-5
    epochs: float = 1.0
    max_steps: int = 20
    batch_size: int = 4
    max_length: int = 512
    max_prompt_length: int = 384
    max_completion_length: int = 48
    target_modules: tuple[str, ...] = LLAMA_ATTENTION
    num_generations: int = 4
    temperature: float = 0.9
    beta: float = 0.05
    epsilon: float = 0.2
    normalize_advantages: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise TrainingError(
                f"RLOOConfig: num_generations={self.num_generations} must be >= 2 "
                "(the leave-one-out baseline needs another completion of the same prompt)"
            )


CONFIG_TYPES: dict[str, type[TrainingConfig]] = {
    "retriever": RetrieverTrainingConfig,
    "reranker": RerankerTrainingConfig,
    "generator-sft": GeneratorSFTConfig,
    "generator-cpt": GeneratorCPTConfig,
    "dpo": DPOConfig,
    "kto": KTOConfig,
    "grpo": GRPOConfig,
    "rloo": RLOOConfig,
}


def config_from_dict(
    kind: str, values: Mapping[str, Any], base: TrainingConfig | None = None
) -> TrainingConfig:
    """Build the ``kind`` config from a mapping (e.g. a TOML table); unknown keys are errors.

    Keys may be kebab-case (TOML) or snake_case. Each value must have its field's type (an
    integer is accepted for a float, a list for a tuple); ``base`` (default: the class's
    defaults) supplies the fields not given. Errors are :class:`TrainingError` naming
    ``key=value``.
    """
    if kind not in CONFIG_TYPES:
        raise TrainingError(
            f"unknown training config kind={kind!r}; expected one of {sorted(CONFIG_TYPES)}"
        )
    cls = CONFIG_TYPES[kind]
    if base is not None and not isinstance(base, cls):
        raise TrainingError(
            f"config_from_dict: base is a {type(base).__name__}, not a {cls.__name__}"
        )
    given = {str(k).replace("-", "_"): v for k, v in values.items()}  # TOML keys: kebab-case
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TrainingError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
    start = base if base is not None else cls()
    for name, value in given.items():
        _check_type(cls.__name__, name, value, getattr(start, name))
    return replace(start, **given)


def _check_type(owner: str, name: str, value: Any, default: Any) -> None:
    """``value`` must have the type of the field's current value (``default``)."""
    key = name.replace("_", "-")
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        want = "a number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif isinstance(default, tuple):
        item = type(default[0]) if default else None
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, item or (str, int)) and not isinstance(v, bool) for v in value
        )
        want = f"a list of {item.__name__ if item else 'names or numbers'}"
    else:
        ok, want = True, ""
    if not ok:
        raise TrainingError(f"{owner}: {key}={value!r}; allowed values: {want}")


# ------------------------------------------------------------- per-component configuration

# [tool.guardrails.training.<component>]: the trainer each ``method`` runs and its config kind.
TRAINING_METHODS: dict[str, dict[str, str]] = {
    "retriever": {m: "retriever" for m in ("lora", "ia3", "loha", "lokr")},
    "reranker": {m: "reranker" for m in ("lora", "ia3", "loha", "lokr")},
    "generator": {"sft": "generator-sft", "cpt+sft": "generator-sft"},
    "alignment": {"dpo": "dpo", "kto": "kto", "grpo": "grpo", "rloo": "rloo"},
}
# the method a component trains with when its table does not say (the demo's recipes)
DEFAULT_METHODS = {"retriever": "lora", "reranker": "lora", "generator": "sft", "alignment": "dpo"}


@dataclass(frozen=True)
class ComponentTraining:
    """How one component's candidate is trained: ``method``, its config and, for the
    generator's ``cpt+sft``, the CPT stage's config (``cpt``)."""

    component: str
    method: str
    config: TrainingConfig
    cpt: GeneratorCPTConfig | None = None


def default_config(component: str, kind: str) -> TrainingConfig:
    """The config a component's candidate trains with when nothing is configured (for the
    reranker, the demo's LoRA-on-production recipe, ``RERANKER_CANDIDATE_CONFIG``)."""
    if component == "reranker":
        from guardrails.training.reranker import RERANKER_CANDIDATE_CONFIG

        return RERANKER_CANDIDATE_CONFIG
    return CONFIG_TYPES[kind]()


def component_training(component: str, values: Mapping[str, Any] | None) -> ComponentTraining:
    """Parse ``[tool.guardrails.training.<component>]`` (``values``; ``None``: absent) over the
    component's defaults. ``method`` picks the trainer (retriever / reranker: the peft adapter
    type); every other key is a field of that method's config; the generator's ``cpt``
    sub-table holds the CPT stage's fields. :class:`TrainingError` names the key and value."""
    if component not in TRAINING_METHODS:
        raise TrainingError(
            f"unknown component {component!r}; allowed values: {sorted(TRAINING_METHODS)}"
        )
    body = dict(values or {})
    methods = TRAINING_METHODS[component]
    method = body.get("method", DEFAULT_METHODS[component])
    if method not in methods:
        raise TrainingError(f"method={method!r}; allowed values: {sorted(methods)}")
    cpt_values = body.pop("cpt", None)
    if cpt_values is not None and (component != "generator" or method != "cpt+sft"):
        raise TrainingError(
            f"a cpt table is read only with the generator's method = 'cpt+sft' (method={method!r})"
        )
    if cpt_values is not None and not isinstance(cpt_values, Mapping):
        raise TrainingError(f"cpt={cpt_values!r} must be a table of GeneratorCPTConfig fields")
    kind = methods[method]
    if component not in ("retriever", "reranker"):
        body.pop("method", None)  # the trainer, not a field of its config
    config = config_from_dict(kind, body, default_config(component, kind))
    cpt = None
    if method == "cpt+sft":
        cpt = cast(GeneratorCPTConfig, config_from_dict("generator-cpt", cpt_values or {}))
    return ComponentTraining(component, str(method), config, cpt)
