"""Gates: compare a candidate with a baseline under a policy -> :class:`GateResult`.

A comparative gate works on the *oriented* per-sample delta ``d`` (candidate − baseline, sign
flipped for lower-is-better metrics, so positive is always better) and a threshold ``t``
(``-max-drop`` for :meth:`Gate.noninferior`, ``+min-gain`` for :meth:`Gate.superior`, the
floor ``min`` for :meth:`Gate.at_least`). Three outcomes:

* **passed** — the (1−α) paired bootstrap CI of ``mean(d)`` lies above ``t``: shown safe;
* **failed** — the one-sided paired randomisation (or exact McNemar) p-value of
  ``H0: mean(d) >= t`` is below α (Holm-adjusted across the run's gates in the verdict):
  shown to violate the limit ⇒ rollback;
* **inconclusive** — neither: the golden set cannot tell ⇒ hold. Absence of evidence is
  not a pass.

Passing needs no multiplicity correction (every gate must pass: an intersection-union test);
failing does (any failure rolls back), hence Holm on the failure side only, which keeps the
false-rollback rate of an unchanged candidate at α for the whole run.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from guardrails.errors import GateFailed, GateInconclusive, MetricError, PolicyError
from guardrails.metrics import MetricSpec, parse_metric
from guardrails.policy import Policy

__all__ = [
    "Gate",
    "GateResult",
    "GuardrailsWarning",
    "Status",
    "evaluate_gate",
    "gate_seed",
    "restatus",
]


class GuardrailsWarning(UserWarning):
    """A gate result is valid but weak (e.g. the margin is below the detectable effect)."""


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


COMPARATIVE = ("noninferior", "superior", "at_least")
MIN_SAMPLES = 3


@dataclass(frozen=True)
class GateResult:
    """One gate's evidence; every field is JSON-able (see :meth:`to_dict`)."""

    name: str
    kind: str
    metric: str
    status: Status
    candidate: float
    baseline: float | None
    delta: float | None
    ci: tuple[float, float]
    p_value: float | None
    threshold: float
    limit: str
    alpha: float
    n: int
    higher_is_better: bool = True
    binary: bool = False
    mde: float | None = None
    method: str = ""
    seed: int = 0
    p_adjusted: float | None = None
    per_sample: Mapping[str, list[Any]] = field(default_factory=dict)
    worst: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    nodeid: str = ""
    golden: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["passed"] = self.passed
        out["ci"] = [_json_float(v) for v in self.ci]
        for key in ("candidate", "baseline", "delta", "p_value", "p_adjusted", "mde", "threshold"):
            out[key] = _json_float(out[key])
        out["worst"] = [dict(w) for w in self.worst]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["status"] = Status(data["status"])
        fields["ci"] = tuple(_nan(v) for v in data["ci"])
        for key in ("candidate", "threshold"):
            fields[key] = _nan(data[key])
        fields["worst"] = tuple(data.get("worst", ()))
        fields["warnings"] = tuple(data.get("warnings", ()))
        return cls(**fields)

    def message(self) -> str:
        """The failure text: what moved, by how much, the CI, p, the limit, worst samples."""
        lo, hi = self.ci
        level = f"{100 * (1 - self.alpha):g}%"
        if self.kind in ("noninferior", "superior"):
            moved = "rose" if (self.delta or 0) >= 0 else "dropped"
            head = (
                f"gate {self.name}: {self.metric} {moved} {abs(self.delta or 0):.4g} "
                f"({level} CI {lo:+.4g}..{hi:+.4g}); policy: {self.limit}."
            )
            nums = f"baseline={self.baseline:.4g} candidate={self.candidate:.4g} n={self.n}"
        elif self.kind == "at_least":
            head = (
                f"gate {self.name}: {self.metric}={self.candidate:.4g} ({level} CI "
                f"{lo:.4g}..{hi:.4g}); policy: {self.limit}."
            )
            nums = f"candidate={self.candidate:.4g} n={self.n}"
        else:
            head = f"gate {self.name}: {self.metric}={self.candidate:.4g}; policy: {self.limit}."
            nums = f"n={self.n}"
        p = "" if self.p_value is None else f" p={self.p_value:.3g} ({self.method})"
        lines = [head, f"  status={self.status.value}: {nums}{p}"]
        if self.status is Status.INCONCLUSIVE:
            lines.append(
                "  not enough evidence either way: the release is held. Add golden "
                "cases or widen the margin (see the MDE)."
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.worst:
            lines.append("  worst samples (id: baseline -> candidate):")
            lines += [
                f"    {w['id']}: {w['baseline']:.4g} -> {w['candidate']:.4g}" for w in self.worst
            ]
        return "\n".join(lines)


def _json_float(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def gate_seed(seed: int, name: str) -> int:
    """A per-gate seed derived from the run seed and the gate name (order-independent,
    so ``pytest -n 2`` draws the same resamples as a serial run)."""
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
    run_seed = gate_seed(policy.seed if seed is None else seed, name)
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
        )
    else:
        if base is None:
            raise MetricError(f"gate {name}: {kind} needs baseline scores")
        comp = stats.compare_paired(
            sign * cand,
            sign * base,
            threshold,
            alpha,
            policy.n_resamples,
            run_seed,
            binary=spec.binary,
        )
    mde = (
        stats.minimum_detectable_effect(comp.sd, comp.n, alpha, policy.power)
        if comp.n > 1 and math.isfinite(comp.sd)
        else math.nan
    )
    status = _status(
        comp.ci_low, comp.ci_high, comp.p_value, threshold, alpha, strict=kind == "superior"
    )
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
    )


def _threshold(kind: str, spec: MetricSpec, limits: Any, higher: bool) -> tuple[float, str]:
    if kind == "noninferior":
        if limits.max_drop is None:
            raise PolicyError(_missing("max-drop", spec.name))
        word = "drop" if higher else "rise"
        return -limits.max_drop, f"max-{word} {limits.max_drop:g}"
    if kind == "superior":
        gain = limits.min_gain if limits.min_gain is not None else 0.0
        return gain, f"min-gain {gain:g} (CI must lie above it)"
    if kind == "at_least":
        bound = limits.min if higher else limits.max
        if bound is None:
            raise PolicyError(_missing("min" if higher else "max", spec.name))
        return (bound if higher else -bound), (f"min {bound:g}" if higher else f"max {bound:g}")
    raise MetricError(f"unknown gate kind {kind!r}; allowed: {list(COMPARATIVE)}")


def _missing(key: str, metric: str) -> str:
    return (
        f"no {key} for metric {metric!r} in the policy: add `{key} = ...` under "
        f'[tool.guardrails.policies.<name>.metrics."{metric}"] or pass it to the gate'
    )


def _status(
    lo: float, hi: float, p: float, threshold: float, alpha: float, strict: bool = False
) -> Status:
    """Oriented CI / p -> status (see the module docstring).

    Non-inferiority and floors accept a CI touching the limit (``lo >= t``: with binary
    canaries and ``max-drop = 0`` the bootstrap bound sits exactly on 0 when nothing newly
    fails); superiority is strict (``lo > t``) unless the CI is degenerate above the limit.
    """
    if lo > threshold or (not strict and lo >= threshold) or (lo == hi and lo > threshold):
        return Status.PASSED
    if p < alpha:
        return Status.FAILED
    return Status.INCONCLUSIVE


def restatus(result: GateResult, p_adjusted: float | None) -> GateResult:
    """The result re-decided with a Holm-adjusted p-value (passes are unaffected)."""
    if result.kind not in COMPARATIVE and result.kind != "no_drift":
        return replace(result, p_adjusted=p_adjusted)
    if result.passed or p_adjusted is None:
        return replace(result, p_adjusted=p_adjusted)
    status = Status.FAILED if p_adjusted < result.alpha else Status.INCONCLUSIVE
    if result.kind == "no_drift" and status is Status.INCONCLUSIVE:
        status = Status.PASSED  # a drift alarm needs significance; without it, no alarm
    return replace(result, p_adjusted=p_adjusted, status=status)


def _per_sample(ids: list[str], cand: np.ndarray, base: np.ndarray | None) -> dict[str, list]:
    out: dict[str, list] = {"ids": ids, "candidate": [float(x) for x in cand]}
    if base is not None:
        out["baseline"] = [float(x) for x in base]
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


# ------------------------------------------------------------------------- drift gate


def evaluate_drift_gate(
    metric: str,
    *,
    reference: np.ndarray,
    current: np.ndarray,
    policy: Policy,
    name: str,
    maximum: float | None = None,
    bins: int = 10,
    seed: int | None = None,
) -> GateResult:
    """No-drift gate: alarm when the statistic exceeds the policy's ``max`` *and* is
    significant at α (so neither a huge n nor a tiny one raises a false alarm)."""
    spec = parse_metric(metric)
    limits = policy.threshold(spec.name, name)
    bound = maximum if maximum is not None else limits.max
    if bound is None:
        raise PolicyError(_missing("max", spec.name))
    alpha = limits.alpha if limits.alpha is not None else policy.alpha
    run_seed = gate_seed(policy.seed if seed is None else seed, name)
    ref, cur = _drift_inputs(spec.name, reference, current)
    value, p = drift_statistic(spec.name, ref, cur, bins=bins, seed=run_seed)
    plots = drift_plot_data(np.asarray(reference), np.asarray(current), seed=run_seed)
    status = Status.FAILED if (value > bound and p < alpha) else Status.PASSED
    return GateResult(
        name=name,
        kind="no_drift",
        metric=spec.name,
        status=status,
        candidate=float(value),
        baseline=None,
        delta=None,
        ci=(math.nan, math.nan),
        p_value=p,
        threshold=bound,
        limit=f"max {bound:g} and significant at alpha={alpha:g}",
        alpha=alpha,
        n=len(cur),
        higher_is_better=False,
        method=f"{spec.name}-test",
        seed=run_seed,
        extra={"n_reference": len(ref), "n_current": len(cur), "bins": bins, **plots},
    )


def drift_plot_data(
    reference: np.ndarray, current: np.ndarray, *, seed: int = 0, points: int = 300, bins: int = 30
) -> dict[str, Any]:
    """Small, JSON-able data for the report's drift plots: histograms of the values (of the
    norms, for embeddings) and, for embeddings, a 2-D PCA of both sides fitted on the pooled
    sample (at most ``points`` per side)."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    ref_v = np.linalg.norm(reference, axis=1) if reference.ndim == 2 else reference.ravel()
    cur_v = np.linalg.norm(current, axis=1) if current.ndim == 2 else current.ravel()
    edges = np.histogram_bin_edges(np.concatenate([ref_v, cur_v]), bins=bins)
    out: dict[str, Any] = {
        "norm_hist": {
            "edges": edges.tolist(),
            "reference": (np.histogram(ref_v, edges)[0] / max(len(ref_v), 1)).tolist(),
            "current": (np.histogram(cur_v, edges)[0] / max(len(cur_v), 1)).tolist(),
        }
    }
    if reference.ndim == 2 and reference.shape[1] >= 2:
        a, b = _subsample(reference, points, seed), _subsample(current, points, seed + 1)
        pooled = np.concatenate([a, b]).astype(np.float64)
        mean = pooled.mean(axis=0)
        _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
        out["pca"] = {
            "reference": np.round((a - mean) @ vt[:2].T, 4).tolist(),
            "current": np.round((b - mean) @ vt[:2].T, 4).tolist(),
        }
    return out


def drift_statistic(
    metric: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    bins: int = 10,
    seed: int = 0,
    n_permutations: int = 200,
) -> tuple[float, float]:
    """``(statistic, p_value)`` of H0 "same distribution" for a drift metric.

    PSI uses its asymptotic null (``n·m/(n+m)·PSI ~ χ²(bins−1)``); KS its exact test; MMD the
    pooled permutation null; KL, JS and Wasserstein a permutation null over the pooled sample
    (subsampled to 20k per side, which bounds the cost, not the statistic).
    """
    from scipy.stats import chi2

    from guardrails.metrics import drift

    n, m = len(reference), len(current)
    if metric == "psi":
        value = drift.psi(reference, current, bins=bins)
        return float(value), float(chi2.sf(value * n * m / (n + m), bins - 1))
    if metric == "ks":
        stat, p = drift.ks(reference, current)
        return float(stat), float(p)
    if metric == "mmd":
        mmd2, p = drift.mmd_permutation_test(
            _subsample(reference, 2000, seed),
            _subsample(current, 2000, seed + 1),
            n_permutations=n_permutations,
            seed=seed,
        )
        return float(mmd2), float(p)
    funcs = {
        "kl": lambda a, b: drift.kl(a, b, bins=bins),
        "js": lambda a, b: drift.js(a, b, bins=bins),
        "wasserstein": drift.wasserstein,
    }
    if metric not in funcs:
        raise MetricError(
            f"no_drift does not support {metric!r}; allowed: {sorted([*funcs, 'psi', 'ks', 'mmd'])}"
        )
    return _permutation_drift(funcs[metric], reference, current, seed, n_permutations)


def _subsample(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    if len(x) <= k:
        return x
    return x[np.random.default_rng(seed).choice(len(x), k, replace=False)]


def _permutation_drift(
    fn: Callable[[np.ndarray, np.ndarray], float],
    ref: np.ndarray,
    cur: np.ndarray,
    seed: int,
    n_perm: int,
) -> tuple[float, float]:
    ref, cur = _subsample(ref, 20000, seed), _subsample(cur, 20000, seed + 1)
    observed = float(fn(ref, cur))
    pooled = np.concatenate([ref, cur])
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        perm = rng.permutation(pooled)
        hits += fn(perm[: len(ref)], perm[len(ref) :]) >= observed
    return observed, (1 + hits) / (1 + n_perm)


def _drift_inputs(
    metric: str, reference: np.ndarray, current: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = np.asarray(reference), np.asarray(current)
    if ref.ndim == 2 and metric not in ("mmd",):
        # embedding matrices: the 1-D statistics run on the L2 norms (seed: norm drift)
        ref, cur = np.linalg.norm(ref, axis=1), np.linalg.norm(cur, axis=1)
    return ref, cur


# ------------------------------------------------------------------------ the fixture


class Gate:
    """The ``gate`` fixture: each method evaluates, records the result on the test report
    and raises :class:`GateFailed` / :class:`GateInconclusive` unless the gate passed.

    ``candidate`` / ``baseline`` are per-sample scores, or runs (``{qid: {doc: score}}``)
    scored against ``qrels`` for ranking metrics, or answer strings scored against
    ``references`` for text metrics.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        record: Callable[[GateResult], None],
        default_name: str,
        nodeid: str = "",
    ) -> None:
        self.policy = policy
        self._record = record
        self._default_name = default_name
        self._nodeid = nodeid
        self._count = 0
        self.golden: dict[str, str] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}
        self.examples: dict[str, dict[str, Any]] = {}

    def noninferior(
        self,
        metric: str,
        *,
        candidate: Any,
        baseline: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        max_drop: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate is no worse than baseline by more than ``max-drop``."""
        return self._compare(
            "noninferior",
            metric,
            candidate,
            baseline,
            name,
            qrels,
            references,
            ids,
            {"max_drop": max_drop},
        )

    def superior(
        self,
        metric: str,
        *,
        candidate: Any,
        baseline: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        min_gain: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate beats baseline by more than ``min-gain`` (default 0)."""
        return self._compare(
            "superior",
            metric,
            candidate,
            baseline,
            name,
            qrels,
            references,
            ids,
            {"min_gain": min_gain},
        )

    def at_least(
        self,
        metric: str,
        *,
        candidate: Any,
        name: str | None = None,
        qrels: Any = None,
        references: Any = None,
        minimum: float | None = None,
        ids: Sequence[str] | None = None,
    ) -> GateResult:
        """Candidate's mean clears the absolute floor ``min`` (or ceiling ``max``)."""
        key = "min" if parse_metric(metric).higher_is_better else "max"
        return self._compare(
            "at_least", metric, candidate, None, name, qrels, references, ids, {key: minimum}
        )

    def no_drift(
        self,
        metric: str,
        *,
        reference: Any,
        current: Any,
        name: str | None = None,
        maximum: float | None = None,
        bins: int = 10,
    ) -> GateResult:
        """No significant drift of ``current`` from ``reference`` beyond the policy's ``max``."""
        gate_name = self._name(name, metric)
        result = evaluate_drift_gate(
            metric,
            reference=reference,
            current=current,
            policy=self.policy,
            name=gate_name,
            maximum=maximum,
            bins=bins,
        )
        return self._finish(result)

    def record(
        self,
        *,
        golden: Any = None,
        artifact: Mapping[str, Any] | None = None,
        facts: Mapping[str, Any] | None = None,
        examples: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Add provenance and evidence to the gates this test records next: a golden set,
        an artifact ``{"component", "role", "fingerprint"}``, JSON-able ``facts`` (e.g.
        latency percentiles), or ``examples`` (``{sample_id: {"input", "baseline",
        "candidate"}}``, the outputs the report shows beside the worst samples)."""
        if golden is not None:
            self.golden[golden.name] = golden.fingerprint
        if artifact is not None:
            self.artifacts.append(dict(artifact))
        if facts:
            self.facts.update(facts)
        if examples:
            self.examples.update({str(k): dict(v) for k, v in examples.items()})

    # -- internals

    def _name(self, name: str | None, metric: str) -> str:
        self._count += 1
        return name or f"{self._default_name}:{parse_metric(metric).name}"

    def _compare(
        self,
        kind: str,
        metric: str,
        candidate: Any,
        baseline: Any,
        name: str | None,
        qrels: Any,
        references: Any,
        ids: Sequence[str] | None,
        overrides: Mapping[str, float | None],
    ) -> GateResult:
        gate_name = self._name(name, metric)
        if hasattr(qrels, "fingerprint"):
            self.golden[qrels.name] = qrels.fingerprint
        if hasattr(references, "fingerprint"):
            self.golden[references.name] = references.fingerprint
        cand, sample_ids = score_samples(metric, candidate, qrels, references, ids)
        base = None
        if baseline is not None:
            base, base_ids = score_samples(metric, baseline, qrels, references, ids)
            if base_ids != sample_ids:
                raise MetricError(
                    f"gate {gate_name}: candidate and baseline are scored on "
                    "different samples; pass the same ids / qrels"
                )
        result = evaluate_gate(
            kind,
            metric,
            candidate=cand,
            baseline=base,
            policy=self.policy,
            name=gate_name,
            ids=sample_ids,
            overrides={k: v for k, v in overrides.items() if v is not None},
        )
        return self._finish(result)

    def _finish(self, result: GateResult) -> GateResult:
        extra = dict(result.extra)
        if self.artifacts:
            extra["artifacts"] = list(self.artifacts)
        if self.facts:
            extra["facts"] = dict(self.facts)
        worst_ids = {str(w["id"]) for w in result.worst}
        if self.examples and worst_ids:
            extra["examples"] = {k: v for k, v in self.examples.items() if k in worst_ids}
        result = replace(result, nodeid=self._nodeid, golden=dict(self.golden), extra=extra)
        self._record(result)
        for w in result.warnings:
            warnings.warn(GuardrailsWarning(f"gate {result.name}: {w}"), stacklevel=3)
        if result.status is Status.FAILED:
            raise GateFailed(result.message(), result)
        if result.status is Status.INCONCLUSIVE:
            raise GateInconclusive(result.message(), result)
        return result


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
