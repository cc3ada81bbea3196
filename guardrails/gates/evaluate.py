"""Gates: compare a candidate with a baseline under a policy -> :class:`GateResult`.

A comparative gate works on the *oriented* per-sample delta ``d`` (candidate − baseline, sign
flipped for lower-is-better metrics, so positive is always better) and a threshold ``t``
(``-max-drop`` for :meth:`Gate.noninferior`, ``+min-gain`` for :meth:`Gate.superior`, the
floor ``min`` for :meth:`Gate.at_least`). Three outcomes:

* **passed** — shown within the limit, at one-sided level α/2 (the lower bound of a two-sided
  (1−α) CI): the paired percentile-bootstrap CI of ``mean(d)`` lies above ``t`` **and** the
  mirror test of ``H0: mean(d) <= t`` has ``p_pass < α/2`` — the sign-flip test on ``d − t``,
  exact over the changed queries when at most 16 differ (exact McNemar / binomial for 0/1
  scores at ``t = 0`` / a floor);
* **failed** — the one-sided paired randomisation (or exact McNemar) p-value of
  ``H0: mean(d) >= t`` is below α (Holm-adjusted across the run's gates in the verdict):
  shown to violate the limit ⇒ rollback;
* **inconclusive** — neither: the golden set cannot tell ⇒ hold. Absence of evidence is
  not a pass.

Why both: the percentile bootstrap alone is too generous when only a handful of queries
changed (the effective sample is the changed queries, not n): in A/A runs with 3–7 of 200
changed, a zero-margin non-inferiority gate passed 12 % (k=3) and superiority ~5 % (k=5)
instead of 2.5 % (``benchmarks/sim_gate_calibration.py``). The sign-flip test is exact for an
A/A (exchangeable) candidate whatever the number of ties, so the conjunction is calibrated
there; it costs little power elsewhere (the bootstrap bound is kept, so a skewed ``d`` where
the sign-flip's symmetry assumption fails is no worse than before). Binary metrics with
``max-drop = 0`` keep the policy's "no new failure" contract: pass iff no case newly fails.

Passing needs no multiplicity correction (every gate must pass: an intersection-union test);
failing does (any failure rolls back), hence Holm on the failure side only, which keeps the
false-rollback rate of an unchanged candidate at α for the whole run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from guardrails.errors import (
    MetricError,
    PolicyError,
)
from guardrails.metrics import MetricSpec, parse_metric
from guardrails.policy import Policy
from guardrails.verdict.schema import COMPARATIVE, GateResult, Status

if TYPE_CHECKING:
    from guardrails.stats import PairedComparison

__all__ = [
    "COMPARATIVE",
    "MIN_SAMPLES",
    "GuardrailsWarning",
    "evaluate_gate",
    "gate_seed",
    "missing_limit",
]


class GuardrailsWarning(UserWarning):
    """A gate result is valid but weak (e.g. the margin is below the detectable effect)."""


MIN_SAMPLES = 3


def gate_seed(seed: int, name: str) -> int:
    """A per-gate seed derived from the run seed and the gate name (order-independent,
    so ``pytest -n 2`` draws the same resamples as a serial run): it seeds the gate's sign
    flips. The bootstrap is seeded with the run seed itself, so all gates on a golden set of
    one size resample the same queries and share one count matrix
    (:func:`guardrails.resampling.bootstrap_sums`)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()
    return int(digest[:8], 16)


# ------------------------------------------------------------------ pure gate evaluation


def evaluate_gate(
    kind: str,
    metric: str,
    *,
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray | None = None,
    policy: Policy,
    name: str,
    ids: Sequence[str] | None = None,
    overrides: Mapping[str, float | None] | None = None,
    seed: int | None = None,
    worst_k: int = 5,
) -> GateResult:
    """Evaluate a comparative gate on per-sample scores (pure; the verdict re-decides with it)."""
    from guardrails import stats

    spec = parse_metric(metric)
    limits = policy.threshold(spec.name, name).merged(dict(overrides or {}))
    higher = limits.higher_is_better
    sign = 1.0 if higher else -1.0
    alpha = limits.alpha if limits.alpha is not None else policy.alpha
    cand = np.asarray(candidate, dtype=np.float64)
    base = None if baseline is None else np.asarray(baseline, dtype=np.float64)
    threshold, limit = _threshold(kind, spec, limits, higher)
    boot_seed = policy.seed if seed is None else seed  # shared by the run's gates: one matrix
    run_seed = gate_seed(boot_seed, name)
    if spec.binary and kind != "at_least":
        stats.check_binary_tolerance(abs(threshold), cand.size, spec.name)
    if kind == "at_least":
        comp = stats.compare_one_sample(
            sign * cand,
            threshold,
            alpha,
            policy.n_resamples,
            run_seed,
            binary=spec.binary and higher,
            bootstrap_seed=boot_seed,
        )
    else:
        if base is None:
            raise MetricError(f"gate {name}: {kind} needs baseline scores")
        comp = stats.compare_paired(
            _orient(cand, higher, spec.binary),
            _orient(base, higher, spec.binary),
            threshold,
            alpha,
            policy.n_resamples,
            run_seed,
            binary=spec.binary,
            bootstrap_seed=boot_seed,
        )
    mde = (
        stats.minimum_detectable_effect(comp.sd, comp.n, alpha, policy.power)
        if comp.n > 1 and math.isfinite(comp.sd)
        else math.nan
    )
    if kind == "noninferior" and spec.binary and threshold == 0.0 and base is not None:
        status = _no_new_failure(sign * (cand - base), comp.p_value, alpha)
    else:
        status = _status(comp, threshold, alpha, strict=kind == "superior")
    if comp.n < MIN_SAMPLES and status is Status.PASSED:
        status = Status.INCONCLUSIVE  # one or two samples prove nothing
    ci = (comp.ci_low, comp.ci_high) if higher else (-comp.ci_high, -comp.ci_low)
    ids_list = [str(i) for i in ids] if ids is not None else [str(i) for i in range(cand.size)]
    if len(ids_list) != cand.size:
        raise MetricError(f"gate {name}: {len(ids_list)} ids for {cand.size} scores")
    return GateResult(
        name=name,
        kind=kind,
        metric=spec.name,
        status=status,
        candidate=float(cand.mean()),
        baseline=None if base is None else float(base.mean()),
        delta=None if base is None else float(cand.mean() - base.mean()),
        ci=(float(ci[0]), float(ci[1])),
        p_value=comp.p_value,
        threshold=threshold,
        limit=limit,
        alpha=alpha,
        n=comp.n,
        higher_is_better=higher,
        binary=spec.binary,
        mde=mde,
        method=comp.method,
        seed=run_seed,
        per_sample=_per_sample(ids_list, cand, base),
        worst=_worst(ids_list, cand, base, sign, worst_k),
        warnings=_warnings(kind, spec, threshold, mde, comp.n),
        overrides={k: float(v) for k, v in (overrides or {}).items() if v is not None},
        extra={"p_pass": comp.p_pass, "bootstrap_seed": boot_seed},
    )


def _orient(x: np.ndarray, higher: bool, binary: bool) -> np.ndarray:
    """Scores oriented so that higher is better; a lower-is-better 0/1 score (a degenerate
    answer) becomes 1 - x, which keeps it 0/1 for McNemar and negates every paired delta."""
    if higher:
        return x
    return 1.0 - x if binary else -x


def _threshold(kind: str, spec: MetricSpec, limits: Any, higher: bool) -> tuple[float, str]:
    if kind == "noninferior":
        if limits.max_drop is None:
            raise PolicyError(missing_limit("max-drop", spec.name))
        word = "drop" if higher else "rise"
        return -limits.max_drop, f"max-{word} {limits.max_drop:g}"
    if kind == "superior":
        gain = limits.min_gain if limits.min_gain is not None else 0.0
        return gain, f"min-gain {gain:g} (CI must lie above it)"
    if kind == "at_least":
        bound = limits.min if higher else limits.max
        if bound is None:
            raise PolicyError(missing_limit("min" if higher else "max", spec.name))
        return (bound if higher else -bound), (f"min {bound:g}" if higher else f"max {bound:g}")
    raise MetricError(f"unknown gate kind {kind!r}; allowed: {list(COMPARATIVE)}")


def missing_limit(key: str, metric: str) -> str:
    return (
        f"no {key} for metric {metric!r} in the policy: add `{key} = ...` under "
        f'[tool.guardrails.policies.<name>.metrics."{metric}"] or pass it to the gate'
    )


def _status(comp: PairedComparison, threshold: float, alpha: float, strict: bool) -> Status:
    """Oriented comparison -> status (see the module docstring).

    Passing needs both the CI bound and ``p_pass < alpha / 2``. Non-inferiority and floors
    accept a CI touching the limit (``lo >= t``); superiority is strict (``lo > t``) unless
    the CI is degenerate above the limit.
    """
    lo, hi = comp.ci_low, comp.ci_high
    ci_ok = lo > threshold or (not strict and lo >= threshold) or (lo == hi and lo > threshold)
    if ci_ok and comp.p_pass < alpha / 2.0:
        return Status.PASSED
    if comp.p_value < alpha:
        return Status.FAILED
    return Status.INCONCLUSIVE


def _no_new_failure(d: np.ndarray, p_fail: float, alpha: float) -> Status:
    """Binary metric with ``max-drop = 0``: the policy's "no new failure" contract.

    Passes when no case newly fails (every oriented delta >= 0), a statement about each
    case, not about a mean; fails on a significant McNemar p-value; otherwise inconclusive.
    """
    if not np.any(d < 0.0):
        return Status.PASSED
    return Status.FAILED if p_fail < alpha else Status.INCONCLUSIVE


def _per_sample(ids: list[str], cand: np.ndarray, base: np.ndarray | None) -> dict[str, list]:
    out: dict[str, list] = {"ids": ids, "candidate": cand.tolist()}  # float64 -> float
    if base is not None:
        out["baseline"] = base.tolist()
    return out


def _worst(
    ids: list[str], cand: np.ndarray, base: np.ndarray | None, sign: float, k: int
) -> tuple[dict[str, Any], ...]:
    from guardrails import stats

    if base is None:
        order = np.argsort(sign * cand, kind="stable")[:k]
    else:
        order = stats.worst_indices(sign * (cand - base), k)
    return tuple(
        {
            "id": ids[i],
            "candidate": float(cand[i]),
            "baseline": float(base[i]) if base is not None else math.nan,
        }
        for i in order
    )


def _warnings(kind: str, spec: MetricSpec, threshold: float, mde: float, n: int) -> tuple[str, ...]:
    out = []
    if kind == "noninferior" and math.isfinite(mde) and -threshold < mde:
        out.append(
            f"margin {-threshold:g} is below the minimum detectable effect "
            f"{mde:.3g} for n={n}: an unchanged candidate will often be held; add "
            "golden cases or widen max-drop"
        )
    if n < 30 and not spec.binary:
        out.append(f"only n={n} samples: the bootstrap CI is approximate")
    return tuple(out)
