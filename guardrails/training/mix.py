"""Curated sets into the trainers: the one path from production logs to every candidate.

:func:`guardrails.training.curation.curate` + :func:`~guardrails.training.curation.write_dataset`
leave ``<dir>/<name>.jsonl`` and ``<name>.datasheet.json``; each set has one loader and one
trainer:

=====================  ===========================================  ==========================
curated set            rows -> examples                             trainer
=====================  ===========================================  ==========================
``reranker_labels``    :func:`load_graded_labels` +                 reranker fine-tune
                       :func:`graded_examples` (y = grade / max)    (listwise or pointwise)
``sft``                :func:`~.generator.load_sft_pairs`           LoRA-SFT
``dpo``                :func:`~.alignment.load_preference_pairs`    DPO
``kto``                :func:`~.alignment.load_kto_examples`        KTO
``retriever_triplets`` the triplets file the retriever reads        retriever LoRA
=====================  ===========================================  ==========================

:func:`mix` puts the golden training examples first and adds at most
``CuratedMix.limit(n_golden) = min(cap, floor(ratio * n_golden))`` curated rows (a seeded draw
of whole groups, e.g. every label of one query, so listwise lists survive; file order kept).
With ``hold_steps`` (the default) :func:`step_budget` pins ``max_steps`` to what the golden
examples alone would take, so curated rows replace repeated golden passes instead of adding
optimiser steps. The :class:`DatasheetRef` it returns goes to the ``ensure_*`` function's
``datasheets=``: the training record names the datasheet (path + sha256) and the fingerprint
covers it, beside the examples' own content.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from guardrails.artifacts import fingerprint_file
from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import read_jsonl, text_field

__all__ = [
    "CuratedMix",
    "DatasheetRef",
    "GradedLabel",
    "Mixed",
    "curated_rows",
    "datasheet_ref",
    "graded_examples",
    "load_graded_labels",
    "mix",
    "step_budget",
]

T = TypeVar("T")


@dataclass(frozen=True)
class CuratedMix:
    """How many curated rows join a golden training set: at most ``cap`` and at most
    ``ratio`` x the golden examples; ``hold_steps`` keeps the golden-only step budget;
    ``context_k`` trims each curated example's passages."""

    cap: int = 100
    ratio: float = 0.25
    seed: int = 0
    hold_steps: bool = True
    # keep at most this many context passages per curated example (None = all that were
    # shown): logged answers saw the top k, the golden files give one, and every passage
    # lengthens the prompt past the trainers' max_length / max_prompt_length
    context_k: int | None = None

    def __post_init__(self) -> None:
        if self.cap < 0 or not (self.ratio >= 0.0 and math.isfinite(self.ratio)):
            raise TrainingError(
                f"CuratedMix: cap={self.cap} and ratio={self.ratio} must be >= 0 (0 = no rows)"
            )

    def limit(self, n_golden: int) -> int:
        """Curated rows allowed beside ``n_golden`` golden examples."""
        return min(self.cap, math.floor(self.ratio * n_golden))


@dataclass(frozen=True)
class DatasheetRef:
    """A curated set as a training record names it."""

    name: str
    datasheet: str
    datasheet_sha256: str
    data: str
    data_sha256: str
    rows_available: int
    rows_used: int

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datasheet": self.datasheet,
            "datasheet_sha256": self.datasheet_sha256,
            "data": self.data,
            "data_sha256": self.data_sha256,
            "rows_available": self.rows_available,
            "rows_used": self.rows_used,
        }


def curated_rows(path: str | Path, loader: Callable[..., list[T]], *args: Any) -> list[T]:
    """``loader(path, *args)``, or ``[]`` when the curated file has no rows yet (the golden
    loaders refuse an empty file; a window without feedback curates nothing)."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(
            f"curated set {p} does not exist; curate the logs first (the stack's curated fixture)"
        )
    with p.open(encoding="utf-8") as f:
        if not any(line.strip() for line in f):
            return []
    return loader(p, *args)


def datasheet_ref(data_path: str | Path, rows_available: int, rows_used: int) -> DatasheetRef:
    """The reference of ``<name>.jsonl`` and the ``<name>.datasheet.json`` beside it."""
    data = Path(data_path)
    sheet = data.with_name(data.name.removesuffix(".jsonl") + ".datasheet.json")
    if not sheet.is_file():
        raise TrainingError(
            f"{data}: no datasheet {sheet.name} beside it; write curated sets with "
            "guardrails.training.curation.write_dataset"
        )
    return DatasheetRef(
        data.name.removesuffix(".jsonl"),
        str(sheet),
        fingerprint_file(sheet).removeprefix("sha256:"),
        str(data),
        fingerprint_file(data).removeprefix("sha256:"),
        rows_available,
        rows_used,
    )


@dataclass(frozen=True)
class Mixed:
    """Golden + curated examples, the config to train them with, and the curated set's ref."""

    examples: tuple[Any, ...]
    config: Any
    datasheet: DatasheetRef
    n_golden: int


def mix(
    golden: Sequence[Any],
    curated: Sequence[T],
    data_path: str | Path,
    config: Any,
    how: CuratedMix,
    *,
    group: Callable[[T], Hashable] | None = None,
    expand: Callable[[list[T]], Sequence[Any]] = list,
    budget: Callable[[Any, Sequence[Any]], int] | None = None,
) -> Mixed:
    """Golden examples, then a seeded draw of ``curated`` rows (whole ``group`` s, at most
    ``how.limit(len(golden))`` rows), turned into examples by ``expand``.

    ``budget(config, golden)`` is the trainer's step count on the golden examples alone
    (default :func:`step_budget` over ``len(golden)``; the reranker's listwise loss counts
    lists); with ``how.hold_steps`` it becomes ``config.max_steps``.
    """
    picked = _pick(list(curated), how.limit(len(golden)), how.seed, group)
    examples = (*golden, *(_trimmed(ex, how.context_k) for ex in expand(picked)))
    if how.hold_steps:
        steps = budget(config, golden) if budget else step_budget(config, len(golden))
        config = replace(config, max_steps=steps)
    ref = datasheet_ref(data_path, len(curated), len(picked))
    return Mixed(examples, config, ref, len(golden))


def _pick(rows: list[T], limit: int, seed: int, group: Callable[[T], Hashable] | None) -> list[T]:
    """Whole groups in a seeded order until the next would pass ``limit``; file order kept."""
    groups: dict[Hashable, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(group(row) if group else i, []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    for members in order:
        if len(chosen) + len(members) <= limit:
            chosen += members
    return [rows[i] for i in sorted(chosen)]


def _trimmed(example: Any, k: int | None) -> Any:
    texts = getattr(example, "context_texts", None)
    if k is None or texts is None or len(texts) <= k:
        return example
    return replace(example, context_texts=tuple(texts[:k]))


def step_budget(config: Any, n_units: int, per_batch: int | None = None) -> int:
    """Optimiser steps ``n_units`` take under ``config``: ``max_steps`` when set, else
    ``ceil(epochs * ceil(n / per_batch) / gradient_accumulation_steps)`` (the reranker loop's
    rule, and transformers' on one device without gradient accumulation)."""
    if config.max_steps > 0:
        return int(config.max_steps)
    batches = math.ceil(max(n_units, 1) / (per_batch or config.batch_size))
    return max(1, math.ceil(config.epochs * batches / config.gradient_accumulation_steps))


# ----------------------------------------------------------------------- graded labels


@dataclass(frozen=True)
class GradedLabel:
    """One curated reranker label: ``grade`` in ``0..max_relevance`` (click + dwell = 2)."""

    query: str
    doc_id: str
    grade: float


def load_graded_labels(
    path: str | Path, corpus: Mapping[str, Any], *, max_relevance: int = 2
) -> list[GradedLabel]:
    """Read ``{"query", "doc_id", "label"}`` lines (``reranker_labels.jsonl``).

    A label is a number in ``0..max_relevance`` (not a bool); ``doc_id`` must be in
    ``corpus``. Errors are :class:`GoldenDataError` at ``path:line``. An empty file gives no
    labels (no feedback yet is not an error).
    """
    p = Path(path)
    out = []
    for lineno, obj in read_jsonl(p):
        query = text_field(obj, "query", p, lineno)
        doc = obj.get("doc_id")
        if not isinstance(doc, str) or not doc:
            raise GoldenDataError(p, lineno, f"doc_id={doc!r} must be a non-empty string")
        if doc not in corpus:
            raise GoldenDataError(
                p,
                lineno,
                f"doc_id={doc!r} is not in the corpus ({len(corpus)} documents); pass the "
                "knowledge base the logged queries were served from",
            )
        out.append(GradedLabel(query, doc, _grade(obj.get("label"), max_relevance, p, lineno)))
    return out


def _grade(label: Any, max_relevance: int, path: Path, lineno: int) -> float:
    ok = isinstance(label, int | float) and not isinstance(label, bool)
    if not ok or not math.isfinite(label) or not 0 <= label <= max_relevance:
        raise GoldenDataError(
            path,
            lineno,
            f"label={label!r} must be a relevance grade in 0..{max_relevance} "
            "(2 = clicked and read, 1 = clicked, 0 = skipped)",
        )
    return float(label)


def graded_examples(
    labels: Sequence[GradedLabel],
    corpus: Mapping[str, Any],
    *,
    max_relevance: int = 2,
    negatives_per_query: int = 0,
    seed: int = 13,
) -> list[Any]:
    """Labels -> :class:`~guardrails.training.reranker.RerankExample` (``y = grade / max``)
    per query, in first-seen query order, plus ``negatives_per_query`` sampled unjudged
    documents (as for golden qrels). A (query, document) labelled twice keeps its highest
    grade: one reader who read it makes it relevant."""
    from guardrails.training.reranker import rerank_examples_from_qrels

    qrels: dict[str, dict[str, float]] = {}
    for lab in labels:
        judged = qrels.setdefault(lab.query, {})
        judged[lab.doc_id] = max(lab.grade, judged.get(lab.doc_id, 0.0))
    return rerank_examples_from_qrels(
        qrels,
        {q: q for q in qrels},
        corpus,
        negatives_per_query=negatives_per_query,
        max_relevance=max_relevance,
        seed=seed,
        qids=list(qrels),
    )
