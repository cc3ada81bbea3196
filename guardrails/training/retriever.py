"""Retriever candidates: a peft adapter (LoRA by default; IA3, LoHa, LoKr by ``config.method``,
see :mod:`guardrails.training.peft_methods`) on a sentence-transformers embedder.

Training data are (query, positive, negative) triplets, one JSON object a line
(``{"query": ..., "positive": <doc id>, "negative": <doc id>}``), resolved to texts through the
corpus with :attr:`Document.full_text` (what the index embeds). The loss is
MultipleNegativesRankingLoss (InfoNCE with in-batch negatives plus the hard negative column)::

    L = -1/B Σ_i log softmax_j( s · cos(q_i, d_j) )_{j = i},   d ∈ {p_1..p_B, n_1..n_B}

(Henderson et al., 2017, arXiv:1705.00652; van den Oord et al., 2018, arXiv:1807.03748).
The adapter is saved in peft's format (``adapter_config.json`` + ``adapter_model.safetensors``)
and loads with ``Embedder.load(base, adapter=folder)``. :func:`ensure_retriever_candidate`
caches it by fingerprint (config + triplets + base weights + versions), see
:mod:`guardrails.training.cache`.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrails.artifacts import fingerprint_dir, fingerprint_json
from guardrails.components.device import resolve_device
from guardrails.components.ml_stack import check_ml_stack
from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Document, read_jsonl, text_field
from guardrails.training.cache import CandidateArtifact, ensure_candidate
from guardrails.training.config import RetrieverTrainingConfig
from guardrails.training.peft_methods import adapter_parameter_count

__all__ = [
    "COMPONENT",
    "Triplet",
    "base_fingerprint",
    "ensure_retriever_candidate",
    "load_triplets",
    "shuffle_triplets",
    "train_retriever_adapter",
    "triplets_fingerprint",
]

COMPONENT = "retriever"
LossCurve = list[tuple[int, float]]


@dataclass(frozen=True)
class Triplet:
    """One training example as texts: a query, a relevant and a non-relevant document."""

    query: str
    positive: str
    negative: str


# ------------------------------------------------------------------------------------ data


def load_triplets(path: str | Path, corpus: Mapping[str, Document]) -> list[Triplet]:
    """Read a triplets JSONL and resolve doc ids to ``full_text``; errors name ``path:line``."""
    p = Path(path)
    triplets = [_triplet(obj, corpus, p, lineno) for lineno, obj in read_jsonl(p)]
    if not triplets:
        raise GoldenDataError(p, None, "no triplets; add lines {query, positive, negative}")
    return triplets


def _triplet(
    obj: Mapping[str, Any], corpus: Mapping[str, Document], path: Path, lineno: int
) -> Triplet:
    query = text_field(obj, "query", path, lineno)
    positive, negative = (
        _document(obj, key, corpus, path, lineno) for key in ("positive", "negative")
    )
    if positive.id == negative.id:
        raise GoldenDataError(
            path, lineno, f"positive and negative are the same document {positive.id!r}"
        )
    return Triplet(query, positive.full_text, negative.full_text)


def _document(
    obj: Mapping[str, Any], key: str, corpus: Mapping[str, Document], path: Path, lineno: int
) -> Document:
    doc_id = text_field(obj, key, path, lineno)
    if doc_id not in corpus:
        raise GoldenDataError(
            path,
            lineno,
            f"{key}={doc_id!r} is not a document of the corpus "
            f"({len(corpus)} documents); fix the id or the corpus",
        )
    return corpus[doc_id]


def triplets_fingerprint(triplets: Sequence[Triplet]) -> str:
    """Fingerprint of the training texts in order (order changes batches, hence the model)."""
    return fingerprint_json([[t.query, t.positive, t.negative] for t in triplets])


def shuffle_triplets(triplets: Sequence[Triplet], seed: int) -> list[Triplet]:
    """Deliberately broken data: each query gets another triplet's positive (a derangement
    when the positives differ), so training teaches the embedder wrong associations."""
    order = list(range(len(triplets)))
    random.Random(seed).shuffle(order)
    shifted = order[1:] + order[:1]  # rotate the shuffled cycle: no index maps to itself
    positives = {order[i]: triplets[shifted[i]].positive for i in range(len(order))}
    return [Triplet(t.query, positives[i], t.negative) for i, t in enumerate(triplets)]


# -------------------------------------------------------------------------------- training


def train_retriever_adapter(
    base_path: str | Path,
    triplets: Sequence[Triplet],
    config: RetrieverTrainingConfig | None = None,
    out_dir: str | Path = "retriever-adapter",
    *,
    progress: bool = True,
) -> LossCurve:
    """Train a ``config.method`` adapter on the embedder at ``base_path``; save it (peft format) in
    ``out_dir``; return the loss curve ``[(step, loss), ...]`` from the trainer's log history.

    Seeded by ``config.seed`` (adapter init, batch order). Trains on ``config.device``.
    """
    config = config or RetrieverTrainingConfig()
    if len(triplets) < 2:
        raise TrainingError(
            f"train_retriever_adapter: {len(triplets)} triplet(s); in-batch "
            "negatives need at least 2"
        )
    model = _model_with_adapter(Path(base_path), config)
    with tempfile.TemporaryDirectory(prefix="retriever-trainer-") as scratch:
        trainer = _trainer(model, triplets, config, scratch, progress)
        if progress:
            from guardrails.report.progress import trainer_callback

            trainer.add_callback(trainer_callback(f"retriever {config.method}"))
        trainer.train()
    curve = _loss_curve(trainer.state.log_history)
    _save_adapter(model, Path(out_dir))
    return curve


def _model_with_adapter(base_path: Path, config: RetrieverTrainingConfig) -> Any:
    check_ml_stack()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers import set_seed

    from guardrails.training.peft_methods import adapter_config

    set_seed(config.seed)  # the adapter's random factors are drawn at add_adapter time
    try:
        model = SentenceTransformer(
            str(base_path), device=resolve_device(config.device), local_files_only=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"cannot load base embedder path={str(base_path)!r}: {exc}") from exc
    model.max_seq_length = config.max_length
    adapter = adapter_config(config)
    try:
        model.add_adapter(adapter)
    except ValueError as exc:
        raise TrainingError(
            f"cannot add a {config.method} adapter with target_modules={config.target_modules} "
            f"to path={str(base_path)!r}: {exc}"
        ) from exc
    return model


def _dataset(triplets: Sequence[Triplet], hard_negatives: bool) -> Any:
    from datasets import Dataset

    columns = {"anchor": [t.query for t in triplets], "positive": [t.positive for t in triplets]}
    if hard_negatives:
        columns["negative"] = [t.negative for t in triplets]
    return Dataset.from_dict(columns)


def _trainer(
    model: Any,
    triplets: Sequence[Triplet],
    config: RetrieverTrainingConfig,
    scratch: str,
    progress: bool,
) -> Any:
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    return SentenceTransformerTrainer(
        model=model,
        args=_arguments(config, scratch, progress),
        loss=loss,
        train_dataset=_dataset(triplets, config.use_hard_negatives),
    )


def _arguments(config: RetrieverTrainingConfig, scratch: str, progress: bool) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=scratch,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=resolve_device(config.device) == "cpu",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # transformers v5: a float < 1 is a ratio
        weight_decay=config.weight_decay,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,  # progress is logged (guardrails.report.progress)
        dataloader_num_workers=0,
        batch_sampler="no_duplicates" if config.no_duplicates_sampler else "batch_sampler",
    )


def _loss_curve(log_history: Sequence[Mapping[str, Any]]) -> LossCurve:
    """``[(step, loss)]`` of the logged training steps; a non-finite loss is an error."""
    curve = [(int(row["step"]), float(row["loss"])) for row in log_history if "loss" in row]
    bad = [(s, v) for s, v in curve if not math.isfinite(v)]
    if bad:
        raise TrainingError(
            f"retriever training diverged: loss={bad[0][1]} at step={bad[0][0]}; "
            "lower learning_rate or raise batch_size"
        )
    return curve


def _save_adapter(model: Any, out_dir: Path) -> None:
    """Only the adapter (peft format): ``adapter_config.json`` + ``adapter_model.safetensors``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.transformers_model.save_pretrained(str(out_dir))
    for stray in ("README.md",):  # a generated card is not part of the adapter's identity
        (out_dir / stray).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- cache


def ensure_retriever_candidate(
    base_path: str | Path,
    triplets_path: str | Path,
    corpus: Mapping[str, Document],
    config: RetrieverTrainingConfig | None = None,
    root: str | Path = "adapters",
    *,
    shuffled: bool = False,
    progress: bool = True,
    datasheets: Sequence[Any] = (),
) -> CandidateArtifact:
    """Load the cached adapter for (base, triplets, config), or train it once (file lock).

    ``datasheets`` name the curated sets merged into the triplets (:mod:`guardrails.training.mix`).

    ``shuffled=True`` trains on :func:`shuffle_triplets` (seeded by ``config.seed``): the
    deliberately broken candidate a release gate must roll back.
    """
    config = config or RetrieverTrainingConfig()
    triplets = load_triplets(triplets_path, corpus)
    if shuffled:
        triplets = shuffle_triplets(triplets, config.seed)

    def train(out_dir: Path) -> tuple[LossCurve, dict[str, Any]]:
        cpu = time.process_time()  # all threads: wall time on a shared machine says little
        curve = train_retriever_adapter(base_path, triplets, config, out_dir, progress=progress)
        return curve, {
            "cpu_time_s": round(time.process_time() - cpu, 3),
            "triplets": str(triplets_path),
            "n_triplets": len(triplets),
            "shuffled": shuffled,
            "base_path": str(base_path),
            "method": config.method,
            "adapter_parameters": adapter_parameter_count(out_dir),
        }

    return ensure_candidate(
        COMPONENT,
        config,
        data_fingerprint=triplets_fingerprint(triplets),
        base_fingerprint=base_fingerprint(base_path),
        train=train,
        root=root,
        seed=config.seed,
        datasheets=datasheets,
    )


def base_fingerprint(base_path: str | Path) -> str:
    """Fingerprint of the base model's weights folder (its model card excluded)."""
    path = Path(base_path)
    if not path.is_dir():
        raise TrainingError(f"base embedder path={str(path)!r} is not a folder")
    return fingerprint_dir(path, exclude=("README.md",))
