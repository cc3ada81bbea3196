"""Per-sample scores from what a gate is given: runs scored against qrels, answers scored
against references, or plain score arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from guardrails.errors import (
    MetricError,
)
from guardrails.metrics import parse_metric

__all__ = [
    "score_samples",
]


def score_samples(
    metric: str,
    scores: Any,
    qrels: Any = None,
    references: Any = None,
    ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Per-sample scores from scores, a run (+qrels) or answers (+references)."""
    spec = parse_metric(metric)
    if isinstance(scores, Mapping) and spec.family == "ranking":
        if qrels is None:
            raise MetricError(f"metric {spec.name!r} on a run needs qrels=")
        from guardrails.metrics.ranking import evaluate_ranking

        judged = getattr(qrels, "qrels", qrels)
        qids = list(ids) if ids is not None else getattr(qrels, "query_ids", None)
        if qids is None:
            qids = sorted(q for q, d in judged.items() if any(r > 0 for r in d.values()))
        return evaluate_ranking(judged, scores, [spec.name], qids=qids)[spec.name], list(qids)
    if spec.family == "text" and references is not None and not _numeric(scores):
        from guardrails.metrics.text import evaluate_text

        refs = (
            [e.answers for e in references.examples]
            if hasattr(references, "examples")
            else references
        )
        sample_ids = (
            list(ids)
            if ids is not None
            else (
                references.ids if hasattr(references, "ids") else [str(i) for i in range(len(refs))]
            )
        )
        return evaluate_text(list(scores), refs, [spec.name])[spec.name], sample_ids
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise MetricError(
            f"metric {spec.name!r}: expected one score per sample, got shape {arr.shape}"
        )
    return arr, list(ids) if ids is not None else [str(i) for i in range(arr.size)]


def _numeric(values: Any) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True
