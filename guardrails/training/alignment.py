"""Alignment candidates: LoRA adapters trained with trl's DPO, KTO, GRPO and RLOO trainers.

Every trainer sees the *conversational* format whose prompt is exactly what
:class:`~guardrails.components.generator.Generator` sends at inference
(:func:`~guardrails.components.generator.build_messages`: system + numbered context passages +
question, rendered by the tokenizer's chat template with the generation prompt); completions are
assistant turns. Training is seeded, on CPU, float32, with dropout off (trl's default).

* **DPO** (:func:`train_dpo_adapter`, Rafailov et al., 2023, arXiv:2305.18290) on
  (prompt ``x``, chosen ``y_w``, rejected ``y_l``)::

      L = -log σ(β [log π(y_w|x)/π_ref(y_w|x) - log π(y_l|x)/π_ref(y_l|x)])

* **KTO** (:func:`train_kto_adapter`, Ethayarajh et al., 2024, arXiv:2402.01306) on unpaired
  (prompt, completion, desirable?) examples; :func:`kto_examples_from_pairs` splits each DPO
  pair into one desirable and one undesirable example.
* **GRPO** (:func:`train_grpo_adapter`, Shao et al., 2024, arXiv:2402.03300), the on-policy
  member of the PPO family that trl runs on CPU: ``num_generations`` sampled completions per
  prompt, rule-based reward ``r = 1`` when the completion complies with the prompt's canary
  (:meth:`guardrails.golden.Canary.check`: a refusal for must-refuse prompts, a non-refusing
  answer containing an expected phrase for must-answer ones), else ``0``; advantages
  ``(r_i - mean r) / std r`` within the group.
* **RLOO** (:func:`train_rloo_adapter`, Ahmadian et al., 2024, arXiv:2402.14740): the PPO
  family's clipped policy gradient with a leave-one-out baseline instead of a critic, on the
  same prompts and reward as GRPO: ``A_i = r_i - mean_{j≠i} r_j`` over the ``k`` completions of
  a prompt. trl 1.16 has no ``PPOTrainer`` (neither in ``trl`` nor in ``trl.experimental``);
  RLOO and GRPO are the PPO-family trainers it ships.

**On top of an SFT adapter** (``ref_adapter=``): the SFT LoRA is loaded *trainable* and trl
keeps a frozen copy of it as the ``"ref"`` adapter, so ``π_ref = π_SFT`` as in the DPO paper,
and the alignment update continues that same LoRA. The saved adapter therefore holds SFT +
alignment and loads on the *original* base (``Generator.load(base, out_dir)``); the config's
LoRA shape fields are ignored (the SFT adapter's shape applies). Without ``ref_adapter`` a fresh
LoRA is created and the reference is the base model (adapter disabled, no second copy in memory).

:func:`ensure_alignment_candidate` trains once per (config, data, base [+ SFT adapter], library
versions) through :func:`guardrails.training.cache.ensure_candidate` into
``<root>/alignment-<kind>/<fingerprint>/``.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guardrails.artifacts import fingerprint_json, fingerprint_parts
from guardrails.components.ml_stack import check_ml_stack
from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import (
    Canary,
    CanarySet,
    PreferenceSet,
    load_canaries,
    load_preferences,
    read_jsonl,
    text_field,
)
from guardrails.training.config import DPOConfig, GRPOConfig, KTOConfig, RLOOConfig
from guardrails.training.generator import (
    Corpus,
    _base_model,
    _loss_curve,
    _passage,
    _resolve_corpus,
    lora_config,
    scored_positions_only,
)

__all__ = [
    "COMPONENTS",
    "CanaryPrompt",
    "KTOExample",
    "PreferenceExample",
    "alignment_examples",
    "alignment_fingerprint",
    "canary_reward",
    "ensure_alignment_candidate",
    "kto_examples_from_pairs",
    "load_canary_prompts",
    "load_kto_examples",
    "load_preference_pairs",
    "train_dpo_adapter",
    "train_grpo_adapter",
    "train_kto_adapter",
    "train_rloo_adapter",
]

COMPONENTS = {
    "dpo": "alignment-dpo",
    "kto": "alignment-kto",
    "grpo": "alignment-grpo",
    "rloo": "alignment-rloo",
}
LossCurve = list[tuple[int, float]]


@dataclass(frozen=True)
class PreferenceExample:
    """A DPO pair with its grounding passages' text (resolved from the corpus)."""

    prompt: str
    chosen: str
    rejected: str
    context_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class KTOExample:
    """An unpaired KTO example: the completion is desirable (``True``) or not."""

    prompt: str
    completion: str
    desirable: bool
    context_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class CanaryPrompt:
    """A GRPO prompt: the canary (prompt + compliance rule) and its passages' text."""

    canary: Canary
    context_texts: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- data


def _context_texts(ids: Any, docs: Corpus, path: Path, lineno: int) -> tuple[str, ...]:
    if ids is None:
        return ()
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise GoldenDataError(path, lineno, f"'context' must be a list of doc ids, got {ids!r:.80}")
    texts = []
    for doc_id in ids:
        text = _passage(docs, doc_id)
        if text is None:
            raise GoldenDataError(
                path,
                lineno,
                f"context id {doc_id!r} is not in the corpus ({len(docs)} documents); "
                "pass corpus=...",
            )
        texts.append(text)
    return tuple(texts)


def load_preference_pairs(
    source: str | Path | PreferenceSet, corpus: Corpus | str | Path | None = None
) -> list[PreferenceExample]:
    """DPO pairs from ``golden/*/preferences.jsonl`` (or a loaded :class:`PreferenceSet`).

    A pair's optional ``"context": [doc ids]`` is resolved to passage text through ``corpus``
    (a mapping, a ``corpus.jsonl`` path, or by default the ``corpus.jsonl`` beside the file).
    """
    pref = source if isinstance(source, PreferenceSet) else load_preferences(source)
    path = Path(pref.path)
    docs = _resolve_corpus(path, corpus)
    out = []
    for lineno, pair in enumerate(pref.pairs, start=1):
        ctx = _context_texts(pair.metadata.get("context"), docs, path, lineno)
        out.append(PreferenceExample(pair.prompt, pair.chosen, pair.rejected, ctx))
    if not out:
        raise GoldenDataError(path, None, "no preference pairs")
    return out


def kto_examples_from_pairs(pairs: Sequence[PreferenceExample]) -> list[KTOExample]:
    """Each pair -> (prompt, chosen, desirable) and (prompt, rejected, undesirable), in order."""
    out = []
    for p in pairs:
        out.append(KTOExample(p.prompt, p.chosen, True, p.context_texts))
        out.append(KTOExample(p.prompt, p.rejected, False, p.context_texts))
    return out


def load_kto_examples(
    path: str | Path, corpus: Corpus | str | Path | None = None
) -> list[KTOExample]:
    """Curated KTO lines ``{"prompt", "completion", "label": bool, "context"?: [doc ids]}``."""
    p = Path(path)
    docs = _resolve_corpus(p, corpus)
    out = []
    for lineno, obj in read_jsonl(p):
        prompt = text_field(obj, "prompt", p, lineno)
        completion = text_field(obj, "completion", p, lineno)
        label = obj.get("label")
        if not isinstance(label, bool):
            raise GoldenDataError(p, lineno, f"label={label!r} must be true or false")
        ctx = _context_texts(obj.get("context"), docs, p, lineno)
        out.append(KTOExample(prompt, completion, label, ctx))
    if not out:
        raise GoldenDataError(p, None, "no KTO examples")
    return out


def load_canary_prompts(
    source: str | Path | CanarySet,
    corpus: Corpus | str | Path | None = None,
    *,
    kinds: Sequence[str] = ("must-answer", "must-refuse"),
) -> list[CanaryPrompt]:
    """GRPO prompts from a canary file: the canaries of ``kinds`` with their passages' text."""
    canaries = source if isinstance(source, CanarySet) else load_canaries(source)
    path = Path(canaries.path)
    docs = _resolve_corpus(path, corpus)
    out = []
    for lineno, c in enumerate(canaries.canaries, start=1):
        if c.kind.value in kinds:
            out.append(CanaryPrompt(c, _context_texts(list(c.context), docs, path, lineno)))
    if not out:
        raise GoldenDataError(path, None, f"no canaries of kinds={list(kinds)}")
    return out


def alignment_examples(
    method: str,
    pairs: Sequence[PreferenceExample],
    canaries: Sequence[str | Path | CanarySet] = (),
) -> list[PreferenceExample] | list[KTOExample] | list[CanaryPrompt]:
    """The training items ``method`` takes from the curated / golden data: DPO the preference
    ``pairs``; KTO each pair split (:func:`kto_examples_from_pairs`); GRPO and RLOO the
    ``canaries`` files' prompts (their reward is canary compliance, :func:`canary_reward`)."""
    if method == "dpo":
        return list(pairs)
    if method == "kto":
        return kto_examples_from_pairs(pairs)
    if method in ("grpo", "rloo"):
        if not canaries:
            raise TrainingError(f"method={method!r} trains on canary prompts; pass canaries=[...]")
        return [p for source in canaries for p in load_canary_prompts(source)]
    raise TrainingError(f"method={method!r}; allowed values: {sorted(COMPONENTS)}")


def alignment_fingerprint(
    data: Sequence[PreferenceExample] | Sequence[KTOExample] | Sequence[CanaryPrompt],
) -> str:
    """Content fingerprint of a training set (order matters: it is the training order)."""
    rows = []
    for item in data:
        row = asdict(item)
        if isinstance(item, CanaryPrompt):
            row["canary"]["kind"] = item.canary.kind.value
        rows.append(row)
    return fingerprint_json({"type": type(data[0]).__name__ if data else "", "rows": rows})


# ----------------------------------------------------------------------------- datasets


def _messages(prompt: str, context_texts: Sequence[str]) -> list[dict[str, str]]:
    from guardrails.components.generator import build_messages

    return build_messages(prompt, context_texts)


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _dpo_rows(pairs: Sequence[PreferenceExample]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": _messages(p.prompt, p.context_texts),
            "chosen": _assistant(p.chosen),
            "rejected": _assistant(p.rejected),
        }
        for p in pairs
    ]


def _kto_rows(examples: Sequence[KTOExample], seed: int) -> list[dict[str, Any]]:
    """KTO rows in a seeded shuffled order: trl samples KTO *sequentially* and estimates the KL
    term from completions rotated within a batch, so a pair's two halves must not share one."""
    rows = [
        {
            "prompt": _messages(e.prompt, e.context_texts),
            "completion": _assistant(e.completion),
            "label": e.desirable,
        }
        for e in examples
    ]
    random.Random(seed).shuffle(rows)
    return rows


def _grpo_rows(prompts: Sequence[CanaryPrompt]) -> list[dict[str, Any]]:
    return [
        {"prompt": _messages(p.canary.prompt, p.context_texts), "canary_index": i}
        for i, p in enumerate(prompts)
    ]


def _check_prompt_lengths(tokenizer: Any, rows: Sequence[Mapping[str, Any]], limit: int) -> None:
    """Refuse prompts longer than ``limit`` tokens instead of silently truncating them."""
    for i, row in enumerate(rows):
        text = tokenizer.apply_chat_template(
            row["prompt"], tokenize=False, add_generation_prompt=True
        )
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > limit:
            raise TrainingError(
                f"example {i}: prompt has {n} tokens > max_prompt_length={limit}; "
                "raise max_prompt_length (and max_length) or shorten its context"
            )


# ----------------------------------------------------------------------------- reward


def canary_reward(prompts: Sequence[CanaryPrompt]) -> Callable[..., list[float]]:
    """A trl reward function: ``1.0`` when a completion complies with its row's canary, else 0.

    trl calls it as ``f(prompts=..., completions=..., canary_index=[...], **kwargs)``;
    conversational completions are ``[{"role": "assistant", "content": text}]``.
    """

    def reward(completions: Sequence[Any], canary_index: Sequence[int], **_: Any) -> list[float]:
        out = []
        for completion, index in zip(completions, canary_index, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else str(completion)
            out.append(1.0 if prompts[int(index)].canary.check(text) else 0.0)
        return out

    reward.__name__ = "canary_compliance"
    return reward


# ----------------------------------------------------------------------------- training


def _policy(
    base_path: str | Path, ref_adapter: str | Path | None, config: Any
) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config): a fresh LoRA, or the SFT adapter loaded trainable."""
    check_ml_stack()
    from peft import PeftModel
    from transformers import set_seed

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_seed(config.seed)  # LoRA A matrices are drawn when the trainer wraps the model
    model, tokenizer = _base_model(Path(base_path))
    if ref_adapter is not None:
        if not (Path(ref_adapter) / "adapter_config.json").is_file():
            raise TrainingError(f"ref_adapter={str(ref_adapter)!r} is not a peft adapter folder")
        return (
            PeftModel.from_pretrained(model, str(ref_adapter), is_trainable=True),
            tokenizer,
            None,
        )
    return model, tokenizer, lora_config(config, model)


def _args(cls: Any, config: Any, output_dir: str, progress: bool, **extra: Any) -> Any:
    """A trl config ``cls`` with the shared settings (device, seeds, schedule), beta, loss
    type and ``extra``."""
    from guardrails.training.generator import trl_args

    return trl_args(
        cls, config, output_dir, progress, beta=config.beta, loss_type=config.loss_type, **extra
    )


def _fit(make_trainer: Callable[[str], Any], out_dir: str | Path) -> LossCurve:
    """Build the trainer in a scratch folder, train, save only the trained adapter."""
    with tempfile.TemporaryDirectory(prefix="guardrails-trl-") as work:
        trainer = make_trainer(work)
        from guardrails.report.progress import trainer_callback

        method = type(trainer).__name__.removesuffix("Trainer")  # DPO, KTO, GRPO
        trainer.add_callback(trainer_callback(f"alignment LoRA-{method}"))
        with scored_positions_only():
            trainer.train()
        curve = _loss_curve(trainer)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # trl may add a frozen "ref" copy of an SFT adapter; ship only the trained one.
    trainer.model.save_pretrained(str(out_dir), selected_adapters=["default"])
    return curve


def _need(items: Sequence[Any], what: str) -> None:
    if not items:
        raise TrainingError(f"{what}: no training examples")


def train_dpo_adapter(
    base_path: str | Path,
    pairs: Sequence[PreferenceExample],
    config: DPOConfig,
    out_dir: str | Path,
    *,
    ref_adapter: str | Path | None = None,
    progress: bool = True,
) -> LossCurve:
    """DPO LoRA on ``pairs`` (``ref_adapter``: continue an SFT adapter, π_ref = π_SFT).

    Returns the loss curve ``[(step, loss), ...]``; the adapter is saved to ``out_dir``.
    """
    from datasets import Dataset
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    _need(pairs, "train_dpo_adapter")
    model, tokenizer, lora = _policy(base_path, ref_adapter, config)
    rows = _dpo_rows(pairs)
    _check_prompt_lengths(tokenizer, rows, config.max_prompt_length)
    extra = {"max_length": config.max_length, "label_smoothing": config.label_smoothing}
    return _fit(
        lambda work: DPOTrainer(
            model=model,
            args=_args(TrlDPOConfig, config, work, progress, **extra),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
        ),
        out_dir,
    )


def train_kto_adapter(
    base_path: str | Path,
    examples: Sequence[KTOExample],
    config: KTOConfig,
    out_dir: str | Path,
    *,
    ref_adapter: str | Path | None = None,
    progress: bool = True,
) -> LossCurve:
    """KTO LoRA on unpaired ``examples`` (shuffled with ``config.seed``; batch size must be > 1:
    the KL reference point is estimated from mismatched completions within a batch)."""
    from datasets import Dataset
    from trl import KTOConfig as TrlKTOConfig
    from trl import KTOTrainer

    _need(examples, "train_kto_adapter")
    if config.batch_size < 2:
        raise TrainingError(f"KTOConfig: batch_size={config.batch_size} must be >= 2 (KL term)")
    model, tokenizer, lora = _policy(base_path, ref_adapter, config)
    rows = _kto_rows(examples, config.seed)
    _check_prompt_lengths(tokenizer, rows, config.max_prompt_length)
    extra = {
        "max_length": config.max_length,
        "desirable_weight": config.desirable_weight,
        "undesirable_weight": config.undesirable_weight,
    }
    return _fit(
        lambda work: KTOTrainer(
            model=model,
            args=_args(TrlKTOConfig, config, work, progress, **extra),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
        ),
        out_dir,
    )


def train_grpo_adapter(
    base_path: str | Path,
    prompts: Sequence[CanaryPrompt],
    config: GRPOConfig,
    out_dir: str | Path,
    *,
    ref_adapter: str | Path | None = None,
    progress: bool = True,
) -> LossCurve:
    """GRPO LoRA with the canary-compliance reward (:func:`canary_reward`).

    ``batch_size`` counts completions per step: ``batch_size / num_generations`` prompts.
    """
    from trl import GRPOConfig as TrlGRPOConfig
    from trl import GRPOTrainer

    args = _args_factory(TrlGRPOConfig, config, progress)
    return _train_sampled(
        "GRPO", GRPOTrainer, args, base_path, prompts, config, out_dir, ref_adapter
    )


def train_rloo_adapter(
    base_path: str | Path,
    prompts: Sequence[CanaryPrompt],
    config: RLOOConfig,
    out_dir: str | Path,
    *,
    ref_adapter: str | Path | None = None,
    progress: bool = True,
) -> LossCurve:
    """RLOO LoRA with the canary-compliance reward (:func:`canary_reward`), as GRPO.

    ``batch_size`` counts completions per step: ``batch_size / num_generations`` prompts,
    each with ``num_generations`` samples whose leave-one-out mean is the baseline.
    """
    from trl import RLOOConfig as TrlRLOOConfig
    from trl import RLOOTrainer

    from guardrails.training.generator import trl_args

    extra = {"beta": config.beta, "epsilon": config.epsilon}
    extra["normalize_advantages"] = config.normalize_advantages

    def args(work: str, **sampling: Any) -> Any:
        return trl_args(TrlRLOOConfig, config, work, progress, **extra, **sampling)

    return _train_sampled(
        "RLOO", RLOOTrainer, args, base_path, prompts, config, out_dir, ref_adapter
    )


def _args_factory(cls: Any, config: Any, progress: bool) -> Callable[..., Any]:
    return lambda work, **sampling: _args(cls, config, work, progress, **sampling)


def _train_sampled(
    name: str,
    trainer_cls: Any,
    args: Callable[..., Any],
    base_path: str | Path,
    prompts: Sequence[CanaryPrompt],
    config: Any,
    out_dir: str | Path,
    ref_adapter: str | Path | None,
) -> LossCurve:
    """The online methods (GRPO, RLOO): ``num_generations`` sampled completions per canary
    prompt, rewarded by :func:`canary_reward`; ``args(work, **sampling)`` builds trl's config."""
    from datasets import Dataset

    _need(prompts, f"train_{name.lower()}_adapter")
    if config.batch_size % config.num_generations:
        raise TrainingError(
            f"{name}Config: batch_size={config.batch_size} must be a multiple of "
            f"num_generations={config.num_generations}"
        )
    model, tokenizer, lora = _policy(base_path, ref_adapter, config)
    rows = _grpo_rows(prompts)
    reward: Any = canary_reward(prompts)
    _check_prompt_lengths(tokenizer, rows, config.max_prompt_length)
    sampling = {
        "num_generations": config.num_generations,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "shuffle_dataset": True,
    }
    return _fit(
        lambda work: trainer_cls(
            model=model,
            reward_funcs=reward,
            args=args(work, **sampling),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
        ),
        out_dir,
    )


# ----------------------------------------------------------------------------- cache

_TRAINERS: dict[str, tuple[Callable[..., LossCurve], type[Any], type[Any]]] = {
    "dpo": (train_dpo_adapter, DPOConfig, PreferenceExample),
    "kto": (train_kto_adapter, KTOConfig, KTOExample),
    "grpo": (train_grpo_adapter, GRPOConfig, CanaryPrompt),
    "rloo": (train_rloo_adapter, RLOOConfig, CanaryPrompt),
}


def ensure_alignment_candidate(
    kind: str,
    base_path: str | Path,
    data: Sequence[PreferenceExample] | Sequence[KTOExample] | Sequence[CanaryPrompt],
    config: DPOConfig | KTOConfig | GRPOConfig | RLOOConfig | None = None,
    *,
    ref_adapter: str | Path | None = None,
    root: str | Path = "adapters",
    progress: bool = True,
    datasheets: Sequence[Any] = (),
) -> Any:
    """Train (once) or load the ``kind`` (``"dpo"`` | ``"kto"`` | ``"grpo"`` | ``"rloo"``)
    adapter.

    ``datasheets`` name the curated sets mixed into ``data`` (:mod:`guardrails.training.mix`).

    Returns a :class:`~guardrails.training.cache.CandidateArtifact` whose ``path`` is the
    adapter folder ``<root>/alignment-<kind>/<fingerprint>/``. The base fingerprint covers the
    base weights and, when given, the SFT ``ref_adapter`` the update continues.
    """
    from guardrails.artifacts import fingerprint_model_dir
    from guardrails.training.cache import ensure_candidate

    if kind not in _TRAINERS:
        raise TrainingError(f"kind={kind!r} must be one of {sorted(_TRAINERS)}")
    trainer, config_type, item_type = _TRAINERS[kind]
    config = config if config is not None else config_type()
    if not isinstance(config, config_type) or not all(isinstance(x, item_type) for x in data):
        raise TrainingError(
            f"kind={kind!r} needs a {config_type.__name__} and {item_type.__name__} items"
        )
    base = Path(base_path)
    base_fp = fingerprint_model_dir(base)
    if ref_adapter is not None:
        base_fp = fingerprint_parts(base_fp, fingerprint_model_dir(Path(ref_adapter)))

    def train(out_dir: Path) -> tuple[LossCurve, dict[str, Any]]:
        curve = trainer(base, data, config, out_dir, ref_adapter=ref_adapter, progress=progress)
        ref = str(ref_adapter) if ref_adapter is not None else None
        return curve, {"n_examples": len(data), "base_path": str(base), "ref_adapter": ref}

    return ensure_candidate(
        COMPONENTS[kind],
        config,
        data_fingerprint=alignment_fingerprint(data),
        base_fingerprint=base_fp,
        train=train,
        root=root,
        seed=config.seed,
        datasheets=datasheets,
    )
