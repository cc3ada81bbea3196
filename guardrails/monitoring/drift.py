"""Drift of a current window against a reference window: logs or ``.npy`` embedding files.

:func:`compare_windows` reads both sides (a production log, JSONL / Parquet, or an ``(n, d)``
``.npy`` array, memory-mapped), summarises the reference ONCE (:class:`ReferenceProfile`, reusable
for every later window) and reports each statistic with its own p-value (uniform under no
drift) and its Holm adjustment over the whole family (:func:`with_family`; the retrain
triggers join that family in :func:`~guardrails.monitoring.triggers.decide_triggers`). A
statistic alarms when its Holm-adjusted p-value is below ``alpha`` AND its effect-size floor is
met, so one report's family-wise false-alarm rate is at most ``alpha``. A statistic that the
inputs call for but cannot be computed (e.g. a current window without ``query_embedding``) is
listed in ``skipped`` with the reason: absence of evidence, not a pass. With ``n``, ``m`` the
reference and current sizes (sessions for logs, rows for ``.npy``) and ``B`` bins:

* ``norm_psi``: PSI of the L2 norms on the reference's ``B`` quantile bins (adjacent bins
  merged down to ``min(n, m) / 20`` so each expects ~20 sessions); p-value
  ``P(chi2(B-1) > psi nm/(n+m))`` (Yurdakul, 2018); floor ``psi``.
* ``norm_kl``: ``KL(current || reference)`` of the same bins; ``KL ~ PSI / 2`` to second order,
  so its null is half PSI's.
* ``cosine_to_history``: mean cosine of each current vector to every reference vector (centroid
  identity). Its p-value is out of sample: the reference is split by session into a fit half
  and a held-out half; both the held-out half and the current rows are scored against the fit
  half's unit centroid (in-sample, a row's own term biased the reference up by ~1/n) and a
  one-sided Welch t-test on per-session means tests a drop; floor ``cosine_drop``.
* ``cluster_share_psi``: k-means (k-means++, Lloyd) fitted on the fit half's unit vectors;
  PSI of the cluster shares of the held-out half vs the current, p-value as ``norm_psi``.
  ``centroid_shift`` (``|mean x - mean h|``) is reported beside it.
* ``ks_max``: binned two-sample KS per dimension (``<=`` exact D); p-value
  ``min(1, d P(D_n_eff > ks_max))`` (Bonferroni over the ``d`` dimensions; conservative).
* ``mmd``: unbiased ``MMD^2`` with an RBF kernel (median heuristic) and the pooled permutation
  null (Gretton et al., 2012) on a seeded subsample of each side (one row per session,
  ``mmd_sample`` rows at most, whatever n is); ``p = (1 + b) / (1 + B)``.
* ``rerank_score_psi``: PSI of the logged reranker scores on the reference's quantile bins;
  ``n`` is the number of result LISTS (scores of one list are not independent).
* ``novel_share``: share of current rows whose cosine to their nearest reference centroid is
  below the held-out half's ``q``-quantile (q = 5 %). The cutoff is estimated, so the p-value
  is a permutation test over sessions of the held-out half and the current window that
  re-estimates the cutoff in every permutation; ``p = (1 + b) / (1 + B)``. Floor: the share is
  at least ``novelty_share`` and the novel rows form a coherent group: cohesion
  ``(inner - cross) / (reference - cross) >= coherence`` (mean pairwise cosine among them,
  to the reference, and within the reference). This is the new-domain signal.

Projections for the report reuse :func:`guardrails.gates.drift_plot_data` (norm histograms and a
2-D PCA of both sides) plus UMAP (McInnes et al., 2018) when ``umap`` is importable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.errors import LogDataError, MetricError
from guardrails.metrics import drift
from guardrails.monitoring.logs import LogBatch, LogError, read_logs

__all__ = [
    "DriftReport",
    "DriftStatistic",
    "DriftThresholds",
    "Novelty",
    "ReferenceProfile",
    "SkippedStatistic",
    "Window",
    "compare_windows",
    "load_window",
    "profile_reference",
    "with_family",
]

EMBEDDING_STATISTICS = (
    "norm_psi",
    "norm_kl",
    "cosine_to_history",
    "cluster_share_psi",
    "ks_max",
    "mmd",
    "novel_share",
)

_PLOT_POINTS = 300
Summarize = Callable[[np.ndarray, drift.EmbeddingSummary], drift.EmbeddingSummary]
"""``(current vectors, reference summary) -> current summary on the reference's edges``."""


@dataclass(frozen=True)
class DriftThresholds:
    """Effect-size floors (an alarm needs the floor AND a Holm-adjusted p-value < ``alpha``),
    and the seed and permutation count of the splits, subsamples and permutation tests."""

    alpha: float = 0.05
    psi: float = 0.1
    kl: float = 0.05
    cosine_drop: float = 0.02
    ks: float = 0.1
    mmd: float = 0.0
    novelty_quantile: float = 0.05
    novelty_share: float = 0.10
    coherence: float = 0.5
    bins: int = 10
    clusters: int = 8
    mmd_sample: int = 400
    n_permutations: int = 999
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("alpha", "novelty_quantile"):
            if not 0.0 < getattr(self, name) < 0.5:
                raise MetricError(f"{name}={getattr(self, name)!r} must be in (0, 0.5)")
        for name in ("bins", "clusters", "mmd_sample", "n_permutations"):
            if int(getattr(self, name)) < 2:
                raise MetricError(f"{name}={getattr(self, name)!r} must be an integer >= 2")

    @classmethod
    def from_policy(cls, policy: Any, **overrides: Any) -> DriftThresholds:
        """``alpha`` from the policy; ``psi`` / ``kl`` / ``mmd`` floors from their ``max``."""
        values: dict[str, Any] = {"alpha": policy.alpha, "seed": policy.seed}
        for metric in ("psi", "kl", "mmd"):
            limit = policy.threshold(metric).max
            if limit is not None:
                values[metric] = limit
        return cls(**{**values, **overrides})


@dataclass(frozen=True, eq=False)
class Window:
    """One side: query embeddings ``(n, d)`` (or None), reranker scores, the log batch."""

    source: str
    embeddings: np.ndarray | None
    rerank_scores: np.ndarray | None = None
    n_rerank_lists: int = 0
    batch: LogBatch | None = None
    queries: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    groups: np.ndarray | None = None
    n_score_units: int = 0

    @property
    def n(self) -> int:
        if self.embeddings is not None:
            return int(self.embeddings.shape[0])
        return self.n_rerank_lists

    @property
    def units(self) -> np.ndarray:
        """Sampling unit of each embedding row: its session (logs) or the row (``.npy``)."""
        if self.groups is not None:
            return self.groups
        return np.arange(self.n)

    @property
    def n_units(self) -> int:
        """Independent units behind the rows: sessions, whose queries are correlated."""
        return int(np.unique(self.units).size)

    @property
    def errors(self) -> tuple[LogError, ...]:
        return self.batch.errors if self.batch is not None else ()


def load_window(source: str | Path | np.ndarray | LogBatch | Window) -> Window:
    """A :class:`Window` from a ``.npy`` file (memory-mapped), a log file, a batch or an array."""
    if isinstance(source, Window):
        return source
    if isinstance(source, np.ndarray):
        return Window("<array>", _matrix(source, "<array>"))
    if isinstance(source, LogBatch):
        return _window_from_batch("<records>", source)
    path = Path(source)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise LogDataError(f"{path}: embedding file not found")
        return Window(str(path), _matrix(np.load(path, mmap_mode="r"), str(path)))
    return _window_from_batch(str(path), read_logs(path))


def _matrix(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim != 2 or x.shape[0] < 2:
        raise MetricError(f"{source}: embeddings must be an (n >= 2, d) array, got {x.shape}")
    return x


def _window_from_batch(source: str, batch: LogBatch) -> Window:
    with_vec = [r for r in batch.records if r.query_embedding is not None]
    if with_vec and len({len(r.query_embedding or ()) for r in with_vec}) > 1:
        raise LogDataError(f"{source}: query embeddings of different sizes in one window")
    vectors = np.asarray([r.query_embedding for r in with_vec], np.float32) if with_vec else None
    listed = [r for r in batch.records if r.reranked]
    scores = np.array([h.score for r in listed for h in r.reranked or ()], dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    sessions = np.unique([r.session_id for r in with_vec], return_inverse=True)[1]
    return Window(
        source,
        vectors if vectors is not None and len(vectors) >= 2 else None,
        scores if scores.size else None,
        len(listed),
        batch,
        tuple(r.query for r in with_vec),
        tuple(r.domain or "unknown" for r in with_vec),
        sessions.astype(np.int64) if with_vec else None,
        len({r.session_id for r in listed}),
    )


# ----------------------------------------------------------------------------- reference


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything the comparison needs from the reference, computed once and reused."""

    window: Window
    thresholds: DriftThresholds
    summary: drift.EmbeddingSummary | None = None
    self_cosine: np.ndarray | None = None
    fit_unit_centroid: np.ndarray | None = None
    centroids: np.ndarray | None = None
    cluster_counts: np.ndarray | None = None
    calibration_nearest: np.ndarray | None = None
    calibration_units: np.ndarray | None = None
    n_calibration_units: int = 0
    novelty_cutoff: float = math.nan
    pairwise_cosine: float = math.nan
    mmd_sample: np.ndarray | None = None
    plot_sample: np.ndarray | None = None
    score_edges: np.ndarray | None = None


def profile_reference(
    reference: Any, thresholds: DriftThresholds = DriftThresholds()
) -> ReferenceProfile:
    """Summarise the reference side once (see the module docstring for what is kept)."""
    window = load_window(reference)
    profile = ReferenceProfile(window, thresholds)
    if window.rerank_scores is not None:
        levels = np.linspace(0.0, 1.0, thresholds.bins + 1)[1:-1]
        profile = replace(profile, score_edges=np.quantile(window.rerank_scores, levels))
    x = window.embeddings
    if x is None:
        return profile
    summary = drift.summarize_embeddings(x, norm_bins=thresholds.bins, seed=thresholds.seed)
    units = _unit_rows(x)
    rng = np.random.default_rng(thresholds.seed)
    fit, calibrate = _cross_fit_folds(window.units, rng)
    centroids = _fit_centroids(units[fit], thresholds)
    labels, nearest = _nearest(units[calibrate], centroids)
    # cosine to history out of sample: the centroid of the fit half, read on the other half
    # (in-sample, each row's own term biases its mean cosine upward by ~1/n)
    fit_centroid = units[fit].mean(axis=0)
    return replace(
        profile,
        summary=summary,
        self_cosine=_unit_means(units[calibrate] @ fit_centroid, window.units[calibrate]),
        fit_unit_centroid=fit_centroid,
        centroids=centroids,
        cluster_counts=np.bincount(labels, minlength=centroids.shape[0]),
        calibration_nearest=nearest,
        calibration_units=window.units[calibrate],
        n_calibration_units=int(np.unique(window.units[calibrate]).size),
        novelty_cutoff=float(np.quantile(nearest, thresholds.novelty_quantile)),
        pairwise_cosine=_mean_pairwise_cosine(units, rng),
        mmd_sample=_subsample(_one_per_unit(x, window.units, rng), thresholds.mmd_sample, rng),
        plot_sample=_subsample(x, _PLOT_POINTS, rng),
    )


def _cross_fit_folds(units: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row masks of two halves split by unit (session): centroids are fitted on one and the
    novelty cutoff and cluster shares read on the other, so the reference side is scored
    out of sample exactly like the current side (no in-sample optimism)."""
    ids = np.unique(units)
    first = np.isin(units, rng.permutation(ids)[: max(1, ids.size // 2)])
    if first.all() or not first.any():
        raise MetricError("the reference needs at least two sessions (or rows) to profile")
    return first, ~first


def _unit_means(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per unit (session), the independent observations of a t-test."""
    _, inverse, counts = np.unique(units, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=values) / counts


def _one_per_unit(x: np.ndarray, units: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random row per unit (session): rows of one session are not independent."""
    order = rng.permutation(units.size)
    _, first = np.unique(units[order], return_index=True)
    return np.asarray(x[np.sort(order[first])])


def _unit_rows(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)


def _fit_centroids(units: np.ndarray, thresholds: DriftThresholds) -> np.ndarray:
    """Unit k-means centroids of the reference (fitted by ``kmeans_centroid_shift``)."""
    k = min(thresholds.clusters, len(np.unique(units, axis=0)))
    fit = drift.kmeans_centroid_shift(units, units[:2], k=k, seed=thresholds.seed)
    return _unit_rows(np.asarray(fit["centroids"]))


def _nearest(units: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by cosine and that cosine, per row."""
    cos = units @ centroids.T
    labels = np.argmax(cos, axis=1)
    return labels, cos[np.arange(units.shape[0]), labels]


def _mean_pairwise_cosine(units: np.ndarray, rng: np.random.Generator, limit: int = 2000) -> float:
    """Mean cosine over pairs of DISTINCT rows (repeats of one query would inflate it):
    ``(|sum u|^2 - n) / (n (n - 1))``."""
    distinct = _subsample(np.unique(units, axis=0), limit, rng)
    n = distinct.shape[0]
    if n < 2:
        return math.nan
    total = distinct.sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= k:
        return np.asarray(x, dtype=np.float32)
    return np.asarray(x[np.sort(rng.choice(x.shape[0], k, replace=False))], dtype=np.float32)


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True)
class DriftStatistic:
    """One statistic: its value, its effect-size floor, raw and Holm-adjusted p-values, alarm.

    ``p_value`` is the statistic's own p-value (uniform under no drift); ``p_adjusted`` is its
    Holm adjustment over every p-value of the family (the report's statistics, plus the
    trigger tests when :func:`with_family` added them). ``alarm`` is ``p_adjusted < alpha``
    and the value beyond ``critical``, the effect-size floor (``floor_met``).
    """

    name: str
    value: float
    critical: float
    p_value: float
    alarm: bool = False
    detail: str = ""
    p_adjusted: float = math.nan
    floor_met: bool = True


@dataclass(frozen=True)
class SkippedStatistic:
    """A statistic that could not be computed, and why (absence of evidence, not a pass)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Novelty:
    """Current rows far from every reference cluster (the new-domain signal)."""

    cutoff: float
    quantile: float
    n_novel: int
    n_current: int
    share: float
    p_value: float
    coherence: float
    n_distinct: int
    examples: tuple[str, ...] = ()
    domains: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport:
    """Statistics of one comparison. ``alarm``: some statistic's Holm-adjusted p-value is below
    ``alpha`` (and its floor met), so one report's family-wise false-alarm rate is at most
    ``alpha``; ``skipped``: statistics that could not be computed (``complete`` is false)."""

    reference: str
    current: str
    n_reference: int
    n_current: int
    statistics: tuple[DriftStatistic, ...]
    thresholds: DriftThresholds
    novelty: Novelty | None = None
    projections: Mapping[str, Any] = field(default_factory=dict)
    log_errors: tuple[LogError, ...] = ()
    skipped: tuple[SkippedStatistic, ...] = ()
    family: Mapping[str, float] = field(default_factory=dict)

    @property
    def alarm(self) -> bool:
        return any(s.alarm for s in self.statistics)

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.statistics if s.alarm)

    @property
    def complete(self) -> bool:
        """True when every statistic the inputs call for was computed."""
        return not self.skipped

    def statistic(self, name: str) -> DriftStatistic | None:
        return next((s for s in self.statistics if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None); ``projections`` only when they were computed."""
        out = {
            "reference": self.reference,
            "current": self.current,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "alarm": self.alarm,
            "alarms": list(self.alarms),
            "complete": self.complete,
            "statistics": [asdict(s) for s in self.statistics],
            "skipped": [asdict(s) for s in self.skipped],
            "family": dict(self.family),
            "novelty": asdict(self.novelty) if self.novelty else None,
            "thresholds": asdict(self.thresholds),
            "log_errors": [str(e) for e in self.log_errors],
        }
        if self.projections:
            out["projections"] = dict(self.projections)
        return _jsonable(out)

    def summary_lines(self) -> list[str]:
        """One line per statistic: value, floor, p-value, Holm p-value, ALARM / ok; then the
        skipped statistics with their reason."""
        lines = [f"drift: {self.current} (n={self.n_current}) vs {self.reference} "]
        lines[0] += f"(n={self.n_reference}); Holm over {len(self.family)} p-values, "
        lines[0] += f"alpha={self.thresholds.alpha:g}"
        for s in self.statistics:
            flag = "ALARM" if s.alarm else "ok"
            lines.append(
                f"  {s.name:<18} {s.value:>10.4f}  floor {s.critical:>8.4f}  "
                f"p={s.p_value:.3g} p_holm={s.p_adjusted:.3g}  {flag}  {s.detail}".rstrip()
            )
        for k in self.skipped:
            lines.append(f"  {k.name:<18} SKIPPED  {k.reason}")
        return lines


def with_family(report: DriftReport, extra: Mapping[str, float] | None = None) -> DriftReport:
    """``report`` with every statistic's ``p_adjusted`` and ``alarm`` recomputed by Holm over
    the report's p-values plus ``extra`` (name -> p-value of further tests decided at the same
    time, e.g. the retrain triggers), so the whole family errs with probability <= alpha."""
    from guardrails.stats import holm

    family = {s.name: _valid_p(s.p_value) for s in report.statistics}
    for name, p in (extra or {}).items():
        if name in family:
            raise MetricError(f"test {name!r} is already in the drift family; rename it")
        family[name] = _valid_p(p)
    adjusted = dict(zip(family, holm(list(family.values())).tolist(), strict=True))
    alpha = report.thresholds.alpha
    stats = tuple(
        replace(s, p_adjusted=adjusted[s.name], alarm=s.floor_met and adjusted[s.name] < alpha)
        for s in report.statistics
    )
    return replace(report, statistics=stats, family=adjusted)


def _valid_p(p: float) -> float:
    """A p-value for Holm; NaN (no evidence) counts as 1."""
    return min(max(float(p), 0.0), 1.0) if math.isfinite(p) else 1.0


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def compare_windows(
    reference: Any,
    current: Any,
    *,
    thresholds: DriftThresholds | None = None,
    projections: bool = True,
    summarize: Summarize | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` (paths, arrays, batches, or a
    :class:`ReferenceProfile` from :func:`profile_reference`, reused as is).

    ``summarize(vectors, reference_summary)`` reduces the current embeddings to their
    histograms, sums and norm moments on the reference's edges; default in-process
    (:func:`~guardrails.metrics.drift.summarize_embeddings_like`), on Ray Data with
    :func:`guardrails.monitoring.scaleout.summarizer` (the same counts, sums to rounding)."""
    if isinstance(reference, ReferenceProfile):
        profile = reference
        if thresholds is not None and thresholds != profile.thresholds:
            raise MetricError("thresholds differ from the profile's; re-profile the reference")
    else:
        profile = profile_reference(reference, thresholds or DriftThresholds())
    cur = load_window(current)
    stats: list[DriftStatistic] = []
    skipped: list[SkippedStatistic] = []
    novelty = None
    ref_vec, cur_vec = profile.summary is not None, cur.embeddings is not None
    if ref_vec and cur_vec:
        stats += _embedding_statistics(profile, cur, summarize)
        novelty = _novelty_of(profile, cur)
        stats.append(_novelty_statistic(novelty, profile.thresholds))
    elif ref_vec or cur_vec:
        side = cur.source if ref_vec else profile.window.source
        why = f"{side} has no query embeddings (at least 2 rows with query_embedding needed)"
        skipped += [SkippedStatistic(name, why) for name in EMBEDDING_STATISTICS]
    ref_scores, cur_scores = profile.score_edges is not None, cur.rerank_scores is not None
    if ref_scores and cur_scores:
        stats.append(_score_psi(profile, cur))
    elif ref_scores or cur_scores:
        side = cur.source if ref_scores else profile.window.source
        skipped.append(SkippedStatistic("rerank_score_psi", f"{side} has no reranker scores"))
    if not stats and not skipped:
        raise MetricError(
            f"nothing to compare: {profile.window.source} and {cur.source} share neither "
            "query embeddings nor reranker scores"
        )
    report = DriftReport(
        profile.window.source,
        cur.source,
        profile.window.n,
        cur.n,
        tuple(stats),
        profile.thresholds,
        novelty,
        _projections(profile, cur) if projections else {},
        profile.window.errors + cur.errors,
        tuple(skipped),
    )
    return with_family(report)


# ----------------------------------------------------------------------------- statistics


_MIN_PER_BIN = 20  # below ~20 expected per bin the chi-square null of PSI is too optimistic


def _coarsened(ref: np.ndarray, cur: np.ndarray, n: int, m: int):
    """Adjacent bins merged into ``clamp(min(n, m) // 20, 2, B)`` groups of near-equal size,
    so that every bin expects ~20 units and the chi-square null holds at small n."""
    groups = int(min(max(min(n, m) // _MIN_PER_BIN, 2), ref.size))
    starts = np.linspace(0, ref.size, groups + 1).astype(int)[:-1]
    return np.add.reduceat(ref, starts), np.add.reduceat(cur, starts)


def _proportions(ref: np.ndarray, cur: np.ndarray, eps: float = 1e-4):
    return np.maximum(ref / ref.sum(), eps), np.maximum(cur / cur.sum(), eps)


def _binned_psi(name: str, ref: np.ndarray, cur: np.ndarray, n: int, m: int, t: DriftThresholds):
    """PSI of two count vectors (coarsened for small n), its chi-square p-value and floor."""
    rc, cc = _coarsened(ref, cur, n, m)
    r, c = _proportions(rc, cc)
    value, bins = float(np.sum((c - r) * np.log(c / r))), rc.size
    p = drift.psi_p_value(value, n, m, bins)
    return DriftStatistic(name, value, t.psi, p, detail=f"bins={bins}", floor_met=value > t.psi)


def _embedding_statistics(
    profile: ReferenceProfile, cur: Window, summarize: Summarize | None = None
) -> list[DriftStatistic]:
    """Critical values use the number of sessions (units), not rows: a session's queries
    (repeats, reformulations) are correlated, and counting rows would over-state the evidence."""
    t, ref, x = profile.thresholds, profile.summary, cur.embeddings
    assert ref is not None and x is not None
    cur_summary = (summarize or drift.summarize_embeddings_like)(x, ref)
    d = drift.compare_embeddings(ref, cur_summary)
    n, m = profile.window.n_units, cur.n_units
    counts = (ref.norm_hist.counts, cur_summary.norm_hist.counts)
    out = [_binned_psi("norm_psi", *counts, n, m, t), _kl_statistic(*counts, n, m, t)]
    out.append(_cosine_statistic(profile, cur, d.cosine_to_history))
    out.append(_cluster_statistic(profile, cur, d.centroid_shift))
    if d.ks_per_dim is not None:
        out.append(_ks_statistic(d, n, m, t))
    out.append(_mmd_statistic(profile, cur))
    return out


def _kl_statistic(ref: np.ndarray, cur: np.ndarray, n: int, m: int, t: DriftThresholds):
    """``KL(c || r) ~ chi2(B-1) (1/n + 1/m) / 2`` under H0 (half the PSI null)."""
    from scipy.stats import chi2

    rc, cc = _coarsened(ref, cur, n, m)
    r, c = _proportions(rc, cc)
    r, c = r / r.sum(), c / c.sum()
    value, bins = max(0.0, float(np.sum(c * np.log(c / r)))), rc.size
    scale = 0.5 * (1.0 / n + 1.0 / m)
    p = float(chi2.sf(value / scale, bins - 1))
    return DriftStatistic("norm_kl", value, t.kl, p, detail=f"bins={bins}", floor_met=value > t.kl)


def _cosine_statistic(profile: ReferenceProfile, cur: Window, value: float) -> DriftStatistic:
    """One-sided Welch t-test of a drop in cosine to history, on per-session means, OUT OF
    SAMPLE: both the reference's held-out half and the current rows are scored against the
    unit centroid of the reference's other half (exchangeable under no drift)."""
    from scipy.stats import ttest_ind

    t, ref_cos, centre = profile.thresholds, profile.self_cosine, profile.fit_unit_centroid
    assert ref_cos is not None and centre is not None and cur.embeddings is not None
    cur_cos = _unit_means(_unit_rows(cur.embeddings) @ centre, cur.units)
    drop = float(ref_cos.mean() - cur_cos.mean())
    if ref_cos.size < 2 or cur_cos.size < 2:
        p = math.nan
    else:
        p = float(ttest_ind(ref_cos, cur_cos, equal_var=False, alternative="greater").pvalue)
    p = p if math.isfinite(p) else (0.0 if drop > 0 else 1.0)
    detail = (
        f"held-out reference={ref_cos.mean():.4f} current={cur_cos.mean():.4f} drop={drop:.4f} "
        f"(floor {t.cosine_drop:g})"
    )
    return DriftStatistic(
        "cosine_to_history",
        value,
        float(ref_cos.mean()) - t.cosine_drop,
        p,
        detail=detail,
        floor_met=drop > t.cosine_drop,
    )


def _cluster_statistic(profile: ReferenceProfile, cur: Window, shift: float) -> DriftStatistic:
    """PSI of the shares of the reference's k-means clusters: centroids fitted on one half of
    the reference, reference shares read on the other (out of sample, like the current's)."""
    assert profile.centroids is not None and profile.cluster_counts is not None
    assert cur.embeddings is not None
    labels, _ = _nearest(_unit_rows(cur.embeddings), profile.centroids)
    k = profile.centroids.shape[0]
    ref_counts, cur_counts = profile.cluster_counts, np.bincount(labels, minlength=k)
    n, m = profile.n_calibration_units, cur.n_units
    stat = _binned_psi("cluster_share_psi", ref_counts, cur_counts, n, m, profile.thresholds)
    return replace(stat, detail=f"k={k} {stat.detail} centroid_shift={shift:.4f}")


def _ks_statistic(d: drift.EmbeddingDrift, n: int, m: int, t: DriftThresholds) -> DriftStatistic:
    """Largest per-dimension binned KS; p-value Bonferroni over the ``d`` dimensions (binned
    KS <= exact KS, so the p-value is conservative)."""
    from scipy.stats import kstwo

    assert d.ks_per_dim is not None
    dims = d.ks_per_dim.size
    c = math.sqrt(-math.log(t.alpha / (2 * dims)) / 2.0)
    bound = c * math.sqrt((n + m) / (n * m))
    n_eff = max(1, round(n * m / (n + m)))
    p = min(1.0, float(kstwo.sf(d.ks_max, n_eff)) * dims)
    drifted = int(np.count_nonzero(d.ks_per_dim > max(t.ks, bound)))
    return DriftStatistic(
        "ks_max",
        d.ks_max,
        t.ks,
        p,
        detail=f"{drifted}/{dims} dimensions above max(floor, Bonferroni bound {bound:.3f})",
        floor_met=d.ks_max > t.ks,
    )


def _mmd_statistic(profile: ReferenceProfile, window: Window) -> DriftStatistic:
    """Permutation MMD on one row per session, subsampled (the permutation null needs
    exchangeable, independent rows); p = (1 + #perm >= observed) / (1 + B)."""
    t = profile.thresholds
    assert profile.mmd_sample is not None and window.embeddings is not None
    rng = np.random.default_rng(t.seed + 1)
    cur = _subsample(_one_per_unit(window.embeddings, window.units, rng), t.mmd_sample, rng)
    mmd2, p = drift.mmd_permutation_test(
        profile.mmd_sample, cur, n_permutations=t.n_permutations, seed=t.seed
    )
    detail = f"subsample {len(profile.mmd_sample)} vs {len(cur)}, {t.n_permutations} perms"
    return DriftStatistic("mmd", mmd2, t.mmd, p, detail=detail, floor_met=mmd2 > t.mmd)


def _novelty_of(profile: ReferenceProfile, cur: Window) -> Novelty:
    t = profile.thresholds
    assert cur.embeddings is not None and profile.centroids is not None
    assert profile.calibration_nearest is not None and profile.calibration_units is not None
    vectors = _unit_rows(cur.embeddings)
    _, nearest = _nearest(vectors, profile.centroids)
    novel = nearest < profile.novelty_cutoff
    k, n = int(novel.sum()), len(nearest)
    p = _novelty_permutation_p(
        profile.calibration_nearest,
        profile.calibration_units,
        nearest,
        cur.units,
        t,
    )
    rng = np.random.default_rng(t.seed + 2)
    coherence = _cohesion(vectors[novel], profile, rng) if k >= 2 else math.nan
    return Novelty(
        profile.novelty_cutoff,
        t.novelty_quantile,
        k,
        n,
        k / n,
        p,
        coherence,
        len(np.unique(vectors[novel], axis=0)) if k else 0,
        _examples(cur.queries, novel, nearest),
        _domain_counts(cur.domains, novel),
    )


def _novelty_permutation_p(
    ref_nearest: np.ndarray,
    ref_units: np.ndarray,
    cur_nearest: np.ndarray,
    cur_units: np.ndarray,
    t: DriftThresholds,
) -> float:
    """p-value of the current novel share that accounts for the ESTIMATED cutoff: sessions
    (units) of the reference's held-out half and of the current window are exchangeable under
    no drift, so each permutation re-draws which sessions are "reference", re-estimates the
    cutoff on them (their ``ceil(q n)``-th smallest nearest-centroid cosine) and counts the
    others' share below it;
    ``p = (1 + #perm >= observed) / (1 + B)``."""
    values = np.concatenate([ref_nearest, cur_nearest])
    _, ref_ids = np.unique(ref_units, return_inverse=True)
    _, cur_ids = np.unique(cur_units, return_inverse=True)
    n_ref_units = int(ref_ids.max()) + 1
    n_units = n_ref_units + int(cur_ids.max()) + 1
    # rows in ascending order of their value, and the unit of each: the cutoff is the k-th
    # smallest "reference" value, k = ceil(q n_ref_rows), found by a cumulative count, so one
    # permutation costs O(rows) without a sort
    order = np.argsort(values, kind="stable")
    unit_sorted = np.concatenate([ref_ids, cur_ids + n_ref_units])[order]
    q = t.novelty_quantile

    def share(is_ref_unit: np.ndarray) -> float:
        is_ref = is_ref_unit[unit_sorted]
        cum = np.cumsum(is_ref)
        n_ref_rows = int(cum[-1])
        k = max(1, math.ceil(q * n_ref_rows))
        position = int(np.searchsorted(cum, k))  # index of the k-th reference row
        return (position - (k - 1)) / (values.size - n_ref_rows)

    observed_mask = np.zeros(n_units, bool)
    observed_mask[:n_ref_units] = True
    observed = share(observed_mask)
    rng = np.random.default_rng(t.seed + 4)
    hits = 0
    for _ in range(t.n_permutations):
        mask = np.zeros(n_units, bool)
        mask[rng.permutation(n_units)[:n_ref_units]] = True
        hits += share(mask) >= observed
    return (1 + hits) / (1 + t.n_permutations)


def _cohesion(novel: np.ndarray, profile: ReferenceProfile, rng: np.random.Generator) -> float:
    """``(inner - cross) / (reference - cross)``: ``inner`` = mean pairwise cosine among the
    distinct novel rows, ``cross`` = their mean cosine to every reference row, ``reference`` =
    the reference traffic's own mean pairwise cosine. ~0 for scattered outliers (as close to
    the reference as to each other), ~1 for a group as tight as the reference traffic."""
    assert profile.summary is not None
    inner = _mean_pairwise_cosine(novel, rng)
    cross = float(np.unique(novel, axis=0).mean(axis=0) @ profile.summary.unit_centroid)
    spread = profile.pairwise_cosine - cross
    return (inner - cross) / spread if spread > 0 else math.nan


def _examples(queries: Sequence[str], novel: np.ndarray, nearest: np.ndarray) -> tuple[str, ...]:
    if not queries:
        return ()
    order = np.argsort(nearest, kind="stable")
    return tuple(dict.fromkeys(queries[i] for i in order if novel[i]))[:5]


def _domain_counts(domains: Sequence[str], novel: np.ndarray) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in np.flatnonzero(novel).tolist() if domains else ():
        counts[domains[i]] = counts.get(domains[i], 0) + 1
    return dict(sorted(counts.items()))


def _novelty_statistic(nov: Novelty, t: DriftThresholds) -> DriftStatistic:
    """The p-value is the permutation test's alone; the floor is the share AND coherence."""
    coherent = math.isfinite(nov.coherence) and nov.coherence >= t.coherence
    detail = (
        f"{nov.n_novel}/{nov.n_current} below the reference's {nov.quantile:.0%} nearest-"
        f"centroid cosine {nov.cutoff:.3f}; coherence={nov.coherence:.2f} (min {t.coherence:g})"
    )
    floor = nov.share >= t.novelty_share and coherent
    return DriftStatistic(
        "novel_share", nov.share, t.novelty_share, nov.p_value, detail=detail, floor_met=floor
    )


def _score_psi(profile: ReferenceProfile, cur: Window) -> DriftStatistic:
    """Reranker-score PSI; n = result lists, not scores (a list's scores are dependent)."""
    edges, t = profile.score_edges, profile.thresholds
    ref_scores, cur_scores = profile.window.rerank_scores, cur.rerank_scores
    assert edges is not None and ref_scores is not None and cur_scores is not None
    r = np.bincount(np.searchsorted(edges, ref_scores, side="right"), minlength=t.bins)
    c = np.bincount(np.searchsorted(edges, cur_scores, side="right"), minlength=t.bins)
    n, m = max(profile.window.n_score_units, 1), max(cur.n_score_units, 1)
    return _binned_psi("rerank_score_psi", r, c, n, m, t)


def _projections(profile: ReferenceProfile, cur: Window) -> dict[str, Any]:
    """Norm histograms and 2-D PCA (``drift_plot_data``), plus UMAP when installed."""
    from guardrails.gates import drift_plot_data

    if profile.plot_sample is None or cur.embeddings is None:
        return {}
    rng = np.random.default_rng(profile.thresholds.seed + 3)
    a, b = profile.plot_sample, _subsample(cur.embeddings, _PLOT_POINTS, rng)
    # float64: unit vectors' float32 norms span ~1e-7, too little for float32 histogram bins
    a, b = a.astype(np.float64), b.astype(np.float64)
    out = drift_plot_data(a, b, seed=profile.thresholds.seed, points=_PLOT_POINTS)
    umap_xy = _umap(a, b, profile.thresholds.seed)
    if umap_xy is not None:
        out["umap"] = umap_xy
    return out


def _umap(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, Any] | None:
    try:
        import umap
    except ImportError:
        return None
    xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(np.concatenate([a, b]))
    return {
        "reference": np.round(xy[: len(a)], 4).tolist(),
        "current": np.round(xy[len(a) :], 4).tolist(),
    }
