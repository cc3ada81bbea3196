"""Calibration of ``guardrails drift``: per-statistic p-values under no drift, the family-wise
alarm rate, and the power on real shifts.

Run: ``.venv/bin/python benchmarks/sim_drift_calibration.py [--quick] [--out FILE.json]``.

* **H0, vectors** (``.npy``-like arrays): reference and current are two independent samples of
  one mixture of 8 Gaussian clusters (unit-norm cluster means in ``d`` dimensions, spread 0.5,
  unequal weights), for several ``(n, d)``, including the corners n=200 / d=16, n=200 / d=768
  and n=100 000 / d=16 (a few pairs only there: one comparison takes seconds). For every
  statistic: the share of p-values < 0.05 and a Kolmogorov–Smirnov test of uniformity of its
  p-values; for the report: the share of pairs where some Holm-adjusted p < alpha (the
  family-wise rate of the tests alone) and the share that ALARMS (Holm and the effect floors).
  The MMD test subsamples each side internally (``mmd_sample`` = 400 rows), whatever n is.
* **H0, logs**: two windows simulated independently by ``guardrails.demo.simulator`` from the
  same configuration (12 h each), compared with the retrain triggers (``decide_triggers``) in
  one Holm family, as ``guardrails drift`` does for two log files.
* **Power**: 30 % of the current vectors drawn from a new cluster; and the simulator's events
  injected at the middle of a simulated day (new domain launch, embedding model update,
  complaint surge).

Query vectors of the log windows come from a small LSA embedder (TF-IDF + SVD on the demo
corpora), as in the tests; no model download.

Measured (2-core box shared with other jobs; full run, permutations = 999, seeds 0..pairs-1;
rates at alpha = 0.05; "KS" = p-value of a KS test of the p-values against U(0, 1)):

  n / d / pairs       family: Holm-any  alarm | per statistic: reject rate (KS p)
  200 / 16 / 300      0.043   0.043  | norm_psi .050 (.13) norm_kl .037 (.41) cosine .063 (.41)
                                       cluster .070 (.047) mmd .033 (.74)
                                       novel .037 (1e-4: discrete)
                                       ks_max .017 (0, conservative: Bonferroni + binned D)
  1000 / 64 / 200     0.035   0.010  | all .03-.05; KS p >= .08 except ks_max (0)
  200 / 768 / 100     0.030   0.030  | cluster .07, others <= .05; KS p: cosine .029, novel .008
  3000 / 384 / 40     0.025   0.000  | cosine .075 (3/40), others <= .05
  100000 / 16 / 6     0.000   0.000  | no rejection in 6 pairs (17 s a pair)
  Before this change (200 / 16, 100 pairs): cosine_to_history p < 0.05 in 89 %, novel_share 19 %.

  power, 30 % of current rows from a new cluster (20 pairs): alarm rate 1.00 at 200 / 16,
  1000 / 64 and 200 / 768 (novel_share alarms in 100 %, 100 %, 95 %; mmd and ks_max 100 %).

  log windows, two independent 12 h simulations (40 pairs), drift + triggers in one Holm
  family: alarm rate 0.025 (1 pair: new_domain), retrain 0.025. Raw per-test reject rates:
  ctr .10 (.125 before the rate tests used sessions as n), cosine .10, novel .075, others
  <= .025; norm_psi / norm_kl / ks_max / rerank_score_psi are conservative (KS p = 0,
  mean p > .7). 40 pairs give a standard error of ~.035 on a rate of .05.
  Before this change (brief): 10 of 60 log pairs alarmed, 5 retrained the reranker on CTR.

  simulator events (one 24 h day, event at 12 h; drift alarms -> retrain): new domain ->
  cosine_to_history, ks_max, mmd, novel_share -> retriever, reranker, generator; embedding
  update -> norm_psi, norm_kl, ks_max, mmd -> retriever; complaint surge ('made-up', 8 %) ->
  complaint_rate + 2 complaint topics -> generator, alignment.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kstest

from guardrails.demo.simulator import (
    ComplaintSurge,
    EmbeddingShift,
    LSAEmbedder,
    NewDomainLaunch,
    SimulationConfig,
    simulate,
)
from guardrails.monitoring.drift import DriftThresholds, compare_windows
from guardrails.monitoring.logs import LogBatch
from guardrails.monitoring.triggers import decide_triggers, window_pair

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ALPHA = 0.05


def mixture(n: int, d: int, rng: np.random.Generator, world: int = 0) -> np.ndarray:
    """``n`` rows of one fixed 8-cluster Gaussian mixture (``world`` seeds its means)."""
    means_rng = np.random.default_rng(1000 + world)
    means = means_rng.standard_normal((8, d))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    weights = np.array([0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04])
    labels = rng.choice(8, size=n, p=weights)
    noise = rng.standard_normal((n, d)) * (0.5 / np.sqrt(d))
    return (means[labels] + noise).astype(np.float32)


def h0_vectors(n: int, d: int, pairs: int, permutations: int) -> dict[str, Any]:
    p_values: dict[str, list[float]] = defaultdict(list)
    holm_any = alarms = 0
    start = time.perf_counter()
    for seed in range(pairs):
        rng = np.random.default_rng(seed)
        ref, cur = mixture(n, d, rng), mixture(n, d, rng)
        t = DriftThresholds(seed=seed, n_permutations=permutations)
        report = compare_windows(ref, cur, thresholds=t, projections=False)
        for s in report.statistics:
            p_values[s.name].append(s.p_value)
        holm_any += any(s.p_adjusted < ALPHA for s in report.statistics)
        alarms += report.alarm
    return {
        "n": n,
        "d": d,
        "pairs": pairs,
        "seconds_per_pair": round((time.perf_counter() - start) / pairs, 3),
        "statistics": _per_statistic(p_values),
        "holm_rejects_any": holm_any / pairs,
        "alarm_rate": alarms / pairs,
    }


def _per_statistic(p_values: dict[str, list[float]]) -> dict[str, Any]:
    return {
        name: {
            "reject_at_0.05": round(float(np.mean(np.asarray(ps) < ALPHA)), 4),
            "ks_uniform_p": round(float(kstest(ps, "uniform").pvalue), 4),
            "mean_p": round(float(np.mean(ps)), 4),
        }
        for name, ps in p_values.items()
    }


def power_vectors(n: int, d: int, pairs: int, share: float, permutations: int) -> dict[str, Any]:
    """``share`` of the current rows from a cluster the reference never saw."""
    hits: dict[str, int] = defaultdict(int)
    alarms = 0
    for seed in range(pairs):
        rng = np.random.default_rng(10_000 + seed)
        ref, cur = mixture(n, d, rng), mixture(n, d, rng)
        new = rng.standard_normal(d)
        new /= np.linalg.norm(new)
        k = int(share * n)
        cur[:k] = (new + rng.standard_normal((k, d)) * (0.5 / np.sqrt(d))).astype(np.float32)
        t = DriftThresholds(seed=seed, n_permutations=permutations)
        report = compare_windows(ref, cur, thresholds=t, projections=False)
        for name in report.alarms:
            hits[name] += 1
        alarms += report.alarm
    return {
        "n": n,
        "d": d,
        "new_cluster_share": share,
        "pairs": pairs,
        "alarm_rate": alarms / pairs,
        "alarm_rate_by_statistic": {k: v / pairs for k, v in sorted(hits.items())},
    }


def _decide(before: LogBatch, after: LogBatch, permutations: int, seed: int):
    t = DriftThresholds(seed=seed, n_permutations=permutations)
    report = compare_windows(before, after, thresholds=t, projections=False)
    return decide_triggers(*window_pair(before.records, after.records), report)


def h0_logs(embedder: LSAEmbedder, pairs: int, permutations: int) -> dict[str, Any]:
    p_values: dict[str, list[float]] = defaultdict(list)
    alarms = retrains = 0
    fired: dict[str, int] = defaultdict(int)
    for i in range(pairs):
        sides = []
        for seed in (2 * i + 100, 2 * i + 101):
            cfg = SimulationConfig(seed=seed, hours=12.0, sessions_per_hour=30.0)
            recs = tuple(simulate(cfg, GOLDEN, embedder))
            sides.append(LogBatch(recs, (), len(recs)))
        decision = _decide(*sides, permutations, i)
        for name, p in _raw_p_values(decision).items():
            p_values[name.split(":")[0]].append(p)
        alarms += decision.drift.alarm or decision.alarm
        retrains += decision.fire
        for f in decision.findings:
            fired[f.signal] += 1
    return {
        "pairs": pairs,
        "statistics": _per_statistic(p_values),
        "alarm_rate": alarms / pairs,
        "retrain_rate": retrains / pairs,
        "findings": dict(fired),
    }


def _raw_p_values(decision: Any) -> dict[str, float]:
    """Raw (unadjusted) p-values of the drift statistics and the trigger tests."""
    out = {s.name: s.p_value for s in decision.drift.statistics}
    return {**out, **decision.tests}


def power_logs(embedder: LSAEmbedder, permutations: int) -> dict[str, Any]:
    at = timedelta(hours=12)
    events = {
        "new_domain": (NewDomainLaunch("devices", at, ramp_hours=2.0),),
        "embedding_shift": (EmbeddingShift(at, angle=0.5, norm_scale=1.15),),
        "complaint_surge": (ComplaintSurge("made-up", 0.08, at),),
    }
    out = {}
    for name, evs in events.items():
        cfg = SimulationConfig(seed=2, hours=24.0, sessions_per_hour=30.0, events=evs)
        records = simulate(cfg, GOLDEN, embedder)
        split = cfg.start + at.total_seconds()
        before = tuple(r for r in records if r.timestamp < split)
        after = tuple(r for r in records if r.timestamp >= split)
        decision = _decide(
            LogBatch(before, (), len(before)), LogBatch(after, (), len(after)), permutations, 0
        )
        out[name] = {
            "drift_alarms": list(decision.drift.alarms),
            "findings": [f.signal for f in decision.findings],
            "retrain": list(decision.components),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few pairs (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--only-logs", action="store_true", help="skip the vector sections")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    grid = [(200, 16, 300), (1000, 64, 200), (200, 768, 100), (3000, 384, 40), (100_000, 16, 6)]
    results: dict[str, Any] = {"alpha": ALPHA, "permutations": args.permutations}
    if args.only_logs:
        grid = []
    results["h0_vectors"] = [
        h0_vectors(n, d, max(3, int(pairs * scale)), args.permutations) for n, d, pairs in grid
    ]
    results["power_vectors"] = [
        power_vectors(n, d, max(3, int(20 * scale)), 0.3, args.permutations)
        for n, d in ((200, 16), (1000, 64), (200, 768))
        if not args.only_logs
    ]
    embedder = LSAEmbedder(GOLDEN, ("payments", "devices"))
    results["h0_logs"] = h0_logs(embedder, max(3, int(40 * scale)), args.permutations)
    results["power_logs"] = power_logs(embedder, args.permutations)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
