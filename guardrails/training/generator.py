"""Generator candidates: LoRA-SFT on (prompt, answer), LoRA continued pre-training (CPT), and
CPT then SFT on one adapter (``"cpt+sft"``).

Both trainers use trl's :class:`~trl.SFTTrainer` on CPU, seeded, with a progress bar:

* **SFT** (:func:`train_sft_adapter`) sees a *conversational prompt-completion* dataset whose
  prompt is exactly what :class:`~guardrails.components.generator.Generator` sends at inference
  (:func:`~guardrails.components.generator.build_messages`: system + numbered context
  passages + question, rendered by the tokenizer's chat template) and whose completion is the
  assistant turn. With ``completion_only_loss`` the loss is the answer tokens' cross-entropy
  ``L = -1/T Σ_t log p(y_t | x, y_<t)``; the prompt is context, not a target.
* **CPT** (:func:`train_cpt_adapter`) is plain causal language modelling on raw domain
  passages (``L = -1/T Σ_t log p(w_t | w_<t)`` over every token), packed end to end into blocks
  of ``max_length`` tokens (trl's ``"wrapped"`` packing) so no step is padding.

:func:`ensure_generator_candidate` goes through :func:`guardrails.training.cache.ensure_candidate`:
the adapter for (config, data fingerprint, base weights fingerprint, library versions) is
trained once and loaded afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from guardrails.artifacts import fingerprint_json
from guardrails.components.device import resolve_device
from guardrails.components.ml_stack import check_ml_stack
from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Document, load_corpus, read_jsonl, str_list, text_field
from guardrails.training.config import GeneratorCPTConfig, GeneratorSFTConfig

__all__ = [
    "SFTExample",
    "cpt_fingerprint",
    "ensure_generator_candidate",
    "load_cpt_texts",
    "load_sft_pairs",
    "sft_fingerprint",
    "train_cpt_adapter",
    "train_sft_adapter",
]

COMPONENTS = {"sft": "generator-sft", "cpt": "generator-cpt", "cpt+sft": "generator-cpt-sft"}
Corpus = Mapping[str, Document] | Mapping[str, str]
LossCurve = list[tuple[int, float]]


@dataclass(frozen=True)
class SFTExample:
    """One supervised pair: the question, the target answer, the grounding passages' text."""

    prompt: str
    answer: str
    context_texts: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- data


def _passage(corpus: Corpus, doc_id: str) -> str | None:
    doc = corpus.get(doc_id)
    if doc is None:
        return None
    return doc.full_text if isinstance(doc, Document) else str(doc)


def _resolve_corpus(path: Path, corpus: Corpus | str | Path | None) -> Corpus:
    """``corpus`` as a mapping; ``None`` means ``corpus.jsonl`` beside ``path`` (or none)."""
    if isinstance(corpus, str | Path):
        return load_corpus(corpus)
    if corpus is not None:
        return corpus
    sibling = path.parent / "corpus.jsonl"
    return load_corpus(sibling) if sibling.is_file() else {}


def load_sft_pairs(path: str | Path, corpus: Corpus | str | Path | None = None) -> list[SFTExample]:
    """Read ``{"prompt", "answer", "context": [doc ids]}`` lines (``golden/*/qa_train.jsonl``).

    Context ids are resolved to passage text (``title. text``) through ``corpus`` (a
    ``{doc_id: Document | str}`` mapping, a ``corpus.jsonl`` path, or by default the
    ``corpus.jsonl`` beside ``path``). Errors are :class:`GoldenDataError` at ``path:line``.
    """
    p = Path(path)
    docs = _resolve_corpus(p, corpus)
    examples = []
    for lineno, obj in read_jsonl(p):
        prompt = text_field(obj, "prompt", p, lineno)
        answer = text_field(obj, "answer", p, lineno)
        texts = []
        for doc_id in str_list(obj, "context", p, lineno):
            text = _passage(docs, doc_id)
            if text is None:
                raise GoldenDataError(
                    p,
                    lineno,
                    f"context id {doc_id!r} is not in the corpus "
                    f"({len(docs)} documents); pass corpus=...",
                )
            texts.append(text)
        examples.append(SFTExample(prompt, answer, tuple(texts)))
    if not examples:
        raise GoldenDataError(p, None, "no SFT pairs")
    return examples


def load_cpt_texts(source: Corpus | str | Path, *, exclude_topics: Sequence[str] = ()) -> list[str]:
    """Raw passages for CPT, in document-id order, from a corpus mapping or ``corpus.jsonl``.

    Documents whose ``metadata["topic"]`` is in ``exclude_topics`` are left out.
    """
    docs = load_corpus(source) if isinstance(source, str | Path) else source
    texts = []
    for doc_id in sorted(docs):
        doc = docs[doc_id]
        if isinstance(doc, Document) and doc.metadata.get("topic") in exclude_topics:
            continue
        text = _passage(docs, doc_id)
        if text and text.strip():
            texts.append(text)
    if not texts:
        raise TrainingError("load_cpt_texts: no passages left to train on")
    return texts


def sft_fingerprint(examples: Sequence[SFTExample]) -> str:
    """Content fingerprint of an SFT set (order matters: it is the training order)."""
    return fingerprint_json([asdict(e) for e in examples])


def cpt_fingerprint(texts: Sequence[str]) -> str:
    """Content fingerprint of a CPT text list."""
    return fingerprint_json(list(texts))


# ----------------------------------------------------------------------------- datasets


def _sft_rows(
    examples: Sequence[SFTExample], config: GeneratorSFTConfig, tokenizer: Any
) -> list[dict[str, Any]]:
    """trl rows: conversational prompt/completion, or pre-rendered text without the template
    machinery of trl (``use_chat_template=False``; the text is the same chat format)."""
    from guardrails.components.generator import build_messages

    rows = []
    for e in examples:
        prompt: Any = build_messages(e.prompt, e.context_texts)
        completion: Any = [{"role": "assistant", "content": e.answer}]
        if not config.use_chat_template:
            prompt = tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True
            )
            completion = e.answer
        rows.append({"prompt": prompt, "completion": completion})
    return rows


# ----------------------------------------------------------------------------- training


def _base_model(base_path: Path) -> tuple[Any, Any]:
    check_ml_stack()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (base_path / "config.json").is_file():
        raise TrainingError(
            f"base_path={str(base_path)!r} has no config.json; pass a local "
            "causal-LM folder (e.g. smollm2_path())"
        )
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_path, local_files_only=True)
    return model, tokenizer


def lora_config(config: Any, model: Any) -> Any:
    """The peft ``LoraConfig`` of a causal-LM ``config`` (SFT, CPT, alignment) for ``model``:
    ``config.lora_layers`` (``()`` = every layer) become peft's ``layers_to_transform``,
    checked against the model's depth."""
    from peft import LoraConfig

    layers = list(config.lora_layers) or None
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if layers is not None and depth is not None and max(layers) >= depth:
        raise TrainingError(
            f"{type(config).__name__}: lora_layers={layers} but the model has {depth} layers "
            f"(0..{depth - 1})"
        )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def trl_args(cls: Any, config: Any, output_dir: str, progress: bool, **extra: Any) -> Any:
    """A trl / transformers training-arguments ``cls`` with our seeded float32 settings on
    ``config.device`` (shared by the SFT, CPT and alignment trainers) plus ``extra`` fields."""
    return cls(
        output_dir=output_dir,
        seed=config.seed,
        data_seed=config.seed,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        use_cpu=resolve_device(config.device) == "cpu",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,  # progress is logged (guardrails.report.progress), a bar is swallowed
        dataloader_num_workers=0,
        **extra,
    )


def _trainer_args(config: Any, output_dir: str, progress: bool, **extra: Any) -> Any:
    from trl import SFTConfig

    return trl_args(SFTConfig, config, output_dir, progress, max_length=config.max_length, **extra)


@contextlib.contextmanager
def scored_positions_only() -> Iterator[None]:
    """Within: trl's fused LM head projects only the positions that have a label.

    trl's trainers (SFT, DPO, KTO, GRPO, RLOO) compute per-token log-probabilities with a
    chunked LM head. On Triton devices it runs on the labelled positions alone; elsewhere
    (the CPU) on every position, masking the result afterwards, because a varying number of
    positions would recompile a Triton kernel, which the CPU does not have. With a
    completion-only loss most positions are prompt: SmolLM2's 49,152-word head then costs a
    2 x 576 x 49,152 multiply-add per prompt token for nothing. The masked positions add
    exactly zero to the loss and its gradient, so selecting them first changes only the
    work (tests/training/test_generator.py checks the loss curve and trained weights are
    equal).
    Patches ``trl.trainer.utils._use_triton`` for the duration (the kernels keep their own
    CPU path); with a trl that lacks it, nothing changes."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - trl is a dependency of every trainer here
        yield
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = lambda device: True  # only where it picks the compact rows
    try:
        yield
    finally:
        trl_utils._use_triton = original


def _loss_curve(trainer: Any) -> LossCurve:
    return [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]


def _run(
    base_path: str | Path,
    rows: list[dict[str, Any]] | None,
    config: Any,
    out_dir: str | Path,
    progress: bool,
    extra_args: Mapping[str, Any],
    make_rows: Any = None,
    init_adapter: str | Path | None = None,
) -> LossCurve:
    """Seed, build the LoRA SFTTrainer on ``rows``, train, save the adapter to ``out_dir``.

    ``init_adapter``: continue that LoRA (loaded trainable) instead of a fresh one."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_seed(config.seed)  # LoRA A matrices are drawn when the trainer wraps the model
    model, tokenizer = _base_model(Path(base_path))
    peft_config = lora_config(config, model)
    if init_adapter is not None:
        from peft import PeftModel

        if not (Path(init_adapter) / "adapter_config.json").is_file():
            raise TrainingError(f"init_adapter={str(init_adapter)!r} is not a peft adapter folder")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        peft_config = None
    data = Dataset.from_list(rows if rows is not None else make_rows(tokenizer))
    with tempfile.TemporaryDirectory(prefix="guardrails-trl-") as work:
        trainer = SFTTrainer(
            model=model,
            args=_trainer_args(config, work, progress, **extra_args),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        if progress:
            from guardrails.report.progress import trainer_callback

            method = "CPT" if type(config).__name__ == "GeneratorCPTConfig" else "SFT"
            trainer.add_callback(trainer_callback(f"generator LoRA-{method}"))
        with scored_positions_only():
            trainer.train()
        curve = _loss_curve(trainer)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    adapted: Any = trainer.model
    adapted.save_pretrained(str(out_dir))
    return curve


def train_sft_adapter(
    base_path: str | Path,
    examples: Sequence[SFTExample],
    config: GeneratorSFTConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    init_adapter: str | Path | None = None,
) -> LossCurve:
    """LoRA-SFT of the causal LM at ``base_path`` on ``examples``; adapter saved to ``out_dir``.

    Returns the loss curve ``[(step, loss), ...]``. The prompt format is the Generator's.
    ``init_adapter`` (e.g. a CPT adapter) is continued instead of a fresh LoRA: its shape
    applies (the config's ``lora_*`` fields are ignored) and the saved adapter holds both
    stages, loadable on the original base.
    """
    if not examples:
        raise TrainingError("train_sft_adapter: no examples")
    extra = {"completion_only_loss": config.completion_only_loss, "packing": False}
    return _run(
        base_path,
        None,
        config,
        out_dir,
        progress,
        extra,
        make_rows=lambda tok: _sft_rows(examples, config, tok),
        init_adapter=init_adapter,
    )


def train_cpt_adapter(
    base_path: str | Path,
    texts: Sequence[str],
    config: GeneratorCPTConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> LossCurve:
    """LoRA continued pre-training on raw ``texts`` (next-token loss on every token)."""
    if not texts:
        raise TrainingError("train_cpt_adapter: no texts")
    extra = {
        "packing": config.packing,
        "packing_strategy": "wrapped",
        "dataset_text_field": "text",
        "completion_only_loss": False,
    }
    return _run(base_path, [{"text": t} for t in texts], config, out_dir, progress, extra)


# ----------------------------------------------------------------------------- cache


def ensure_generator_candidate(
    kind: str,
    base_path: str | Path,
    data: Sequence[SFTExample] | Sequence[str],
    config: GeneratorSFTConfig | GeneratorCPTConfig | None = None,
    *,
    root: str | Path = "adapters",
    progress: bool = True,
    cpt_texts: Sequence[str] | None = None,
    cpt_config: GeneratorCPTConfig | None = None,
    datasheets: Sequence[Any] = (),
) -> Any:
    """Train (once) or load the ``kind`` (``"sft"`` | ``"cpt"`` | ``"cpt+sft"``) adapter.

    ``"cpt+sft"``: first a CPT adapter on ``cpt_texts`` (``cpt_config``, cached as ``"cpt"``),
    then SFT on ``data`` continuing it (:func:`train_sft_adapter` ``init_adapter``); the
    result's base fingerprint covers the CPT adapter and its record names it.

    ``datasheets`` name the curated sets mixed into ``data`` (:mod:`guardrails.training.mix`).
    Returns a :class:`~guardrails.training.cache.CandidateArtifact` whose ``path`` is the
    adapter folder under ``<root>/generator-<kind>/<fingerprint>/``.
    """
    from guardrails.artifacts import fingerprint_model_dir, fingerprint_parts
    from guardrails.training.cache import ensure_candidate

    if kind not in COMPONENTS:
        raise TrainingError(f"kind={kind!r} must be one of {sorted(COMPONENTS)}")
    config = config or (GeneratorCPTConfig() if kind == "cpt" else GeneratorSFTConfig())
    data_fp = _data_fingerprint("cpt" if kind == "cpt" else "sft", data)
    base = Path(base_path)
    base_fp = fingerprint_model_dir(base)
    extra: dict[str, Any] = {"n_examples": len(data), "base_path": str(base)}
    init_adapter = None
    if kind == "cpt+sft":
        if not cpt_texts:
            raise TrainingError("kind='cpt+sft' needs cpt_texts (see load_cpt_texts)")
        cpt = ensure_generator_candidate(
            "cpt",
            base,
            cpt_texts,
            cpt_config or GeneratorCPTConfig(),
            root=root,
            progress=progress,
        )
        init_adapter = cpt.path
        base_fp = fingerprint_parts(base_fp, cpt.fingerprint)
        extra.update(cpt_adapter=str(cpt.path), cpt_fingerprint=cpt.fingerprint)
        extra["n_cpt_texts"] = len(cpt_texts)

    def train(out_dir: Path) -> tuple[LossCurve, dict[str, Any]]:
        if kind == "cpt":
            texts = cast(Sequence[str], data)
            cpt_cfg = cast(GeneratorCPTConfig, config)
            curve = train_cpt_adapter(base, texts, cpt_cfg, out_dir, progress=progress)
        else:
            examples = cast(Sequence[SFTExample], data)
            sft_cfg = cast(GeneratorSFTConfig, config)
            curve = train_sft_adapter(
                base, examples, sft_cfg, out_dir, progress=progress, init_adapter=init_adapter
            )
        return curve, extra

    return ensure_candidate(
        COMPONENTS[kind],
        config,
        data_fingerprint=data_fp,
        base_fingerprint=base_fp,
        train=train,
        root=root,
        seed=config.seed,
        datasheets=datasheets,
    )


def _data_fingerprint(kind: str, data: Sequence[Any]) -> str:
    if kind == "sft":
        if not all(isinstance(e, SFTExample) for e in data):
            raise TrainingError("kind='sft' needs SFTExample items (see load_sft_pairs)")
        return sft_fingerprint(data)
    if not all(isinstance(t, str) for t in data):
        raise TrainingError("kind='cpt' needs strings (see load_cpt_texts)")
    return cpt_fingerprint(data)
