"""Alignment metrics: per-pair preference margins and the merged-vs-unmerged LoRA gap.

**Preference margin** (one score per pair, for the paired gate
``gate.superior("preference_margin", candidate=..., baseline=...)``)::

    m_θ(x, y_w, y_l) = log π_θ(y_w | x) - log π_θ(y_l | x)

with ``log π(y | x) = Σ_t log p(y_t | x, y_<t)`` from
:meth:`guardrails.components.generator.Generator.log_likelihood` (``x`` is the Generator's chat
prompt with the pair's context passages). With a ``reference`` model the score is the DPO
implicit reward margin at ``β = 1`` (Rafailov et al., 2023, arXiv:2305.18290, eq. 5)::

    m_θ(x, y_w, y_l) - m_ref(x, y_w, y_l)
      = [log π_θ(y_w|x) - log π_ref(y_w|x)] - [log π_θ(y_l|x) - log π_ref(y_l|x)]

**Merged vs unmerged** (peft#1836): folding a LoRA into its base (``W' = W + (α/r) B A``) must
not change the model. :func:`merged_unmerged_gap` is ``max |logits_LoRA - logits_merged|`` over
every position of every prompt; :func:`merged_unmerged_gaps` is the same per prompt (a sample
for ``gate.at_least("merged_logit_gap", candidate=gaps, minimum=1e-3)``: lower is better, the
bound is a maximum). :data:`MERGE_TOLERANCE` ``= 1e-3`` is for float32 weights: the merge
reorders float32 sums, which moves logits by ~1e-4 at most (9.5e-5 for the demo's DPO LoRA on
SmolLM2-135M, ``benchmarks/demo_alignment.py``), an order below the bound; a wrong merge (a
missing scaling ``α/r``, a dropped module) moves them by > 1e-2. bfloat16 weights need a looser
bound (~1e-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from guardrails.errors import ComponentError, MetricError
from guardrails.metrics import KNOWN_METRICS, register_metric

__all__ = [
    "MERGED_GAP_METRIC",
    "MERGE_TOLERANCE",
    "Pair",
    "assert_merged_equivalent",
    "merged_unmerged_gap",
    "merged_unmerged_gaps",
    "preference_margins",
]

MERGE_TOLERANCE = 1e-3
MERGED_GAP_METRIC = "merged_logit_gap"
if MERGED_GAP_METRIC not in KNOWN_METRICS:  # lower is better; a gate bound is a maximum
    register_metric(MERGED_GAP_METRIC, "alignment", higher_is_better=False)


class Pair(Protocol):
    """Anything with ``prompt``, ``chosen``, ``rejected`` (``context_texts`` optional)."""

    @property
    def prompt(self) -> str: ...
    @property
    def chosen(self) -> str: ...
    @property
    def rejected(self) -> str: ...


def _contexts(pairs: Sequence[Pair]) -> list[Sequence[str]]:
    contexts: list[Sequence[str]] = []
    for p in pairs:
        ctx = getattr(p, "context_texts", ())
        if isinstance(ctx, str):
            raise MetricError("context_texts must be a sequence of passages, not one string")
        contexts.append(tuple(ctx))
    return contexts


def _margins(generator: Any, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
    prompts = [p.prompt for p in pairs]
    contexts = _contexts(pairs)
    # one call: a pair's chosen and rejected share a batch and their prompt's computation
    both = generator.log_likelihood(
        prompts + prompts,
        [p.chosen for p in pairs] + [p.rejected for p in pairs],
        contexts=contexts + contexts,
        batch_size=batch_size,
    )
    n = len(pairs)
    return np.asarray(both[:n] - both[n:], dtype=np.float64)


def preference_margins(
    generator: Any, pairs: Sequence[Pair], *, reference: Any = None, batch_size: int = 16
) -> np.ndarray:
    """Per pair ``log π(chosen|x) - log π(rejected|x)`` (minus the ``reference``'s margin).

    See the module docstring for the formula. Float64 array, one score per pair, in order.
    """
    if not pairs:
        raise MetricError("preference_margins needs at least one pair")
    margins = _margins(generator, pairs, batch_size)
    if reference is not None:
        margins = margins - _margins(reference, pairs, batch_size)
    return margins


# ----------------------------------------------------------------------------- merge gap


def _require_adapter(generator: Any) -> None:
    if not hasattr(generator.model, "peft_config"):
        raise ComponentError(
            f"generator adapter={generator.adapter_path} has no LoRA to merge; load it with "
            "Generator.load(base, adapter) (a gap of 0 here would be no evidence)"
        )


def _row_gaps(a: Any, b: Any, prompts: Sequence[str], batch_size: int) -> np.ndarray:
    gaps: list[float] = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i : i + batch_size])
        diff = (a.logits(chunk) - b.logits(chunk)).abs()
        gaps.extend(float(x) for x in diff.amax(dim=(1, 2)))
    return np.asarray(gaps, dtype=np.float64)


def merged_unmerged_gaps(
    generator: Any, prompts: Sequence[str], *, batch_size: int = 4
) -> np.ndarray:
    """Per prompt ``max |logits_LoRA - logits_merged|`` over positions and vocabulary.

    ``generator`` must carry a LoRA (:class:`ComponentError` otherwise); it is left unmerged.
    """
    if isinstance(prompts, str) or not prompts:
        raise MetricError("merged_unmerged_gaps needs a non-empty list of prompts")
    _require_adapter(generator)
    return _row_gaps(generator, generator.merged(), prompts, batch_size)


def merged_unmerged_gap(generator: Any, prompts: Sequence[str], *, batch_size: int = 4) -> float:
    """``max |logits_LoRA - logits_merged|`` over every prompt (see the module docstring)."""
    return float(merged_unmerged_gaps(generator, prompts, batch_size=batch_size).max())


def assert_merged_equivalent(
    generator: Any, prompts: Sequence[str], *, tolerance: float = MERGE_TOLERANCE
) -> float:
    """Return the merge gap, or raise :class:`ComponentError` when it exceeds ``tolerance``."""
    gaps = merged_unmerged_gaps(generator, prompts)
    worst = int(np.argmax(gaps))
    if not gaps[worst] <= tolerance:  # NaN fails too
        raise ComponentError(
            f"merged LoRA differs from the unmerged one: max |Δlogit|={gaps[worst]:.3g} > "
            f"tolerance={tolerance:g} at prompt {worst} ({prompts[worst][:60]!r}); serve the "
            "adapter unmerged, or merge in float32 and check the adapter's scaling (peft#1836)"
        )
    return float(gaps[worst])
