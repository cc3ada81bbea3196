"""Verdict maths at scale: 10 non-inferiority gates x 10k paired samples x 10k resamples.

Run: ``.venv/bin/python benchmarks/bench_resampling.py [--gates 10] [--n 10000]
[--resamples 10000] [--today 5aec781] [--main 5b74107] [--repeat 1] [--agreement 0]``.
Times, in one process, today's implementation (``guardrails/stats.py`` and
``guardrails/gates/evaluate.py`` read from git at ``--today``, swapped in for the run) against
the working tree's:

- ``evaluate_gate`` called once per gate, cold (no count matrix drawn yet), as a pytest
  session does;
- ``redecide`` of the verdict those gates make (a fresh process' cost: the matrix cache is
  emptied first).

Wall, process CPU and calling-thread CPU seconds for each, the ratio old / new, and each
gate's decision under both. The new kernels run twice: on their thread pool (the default) and
with ``GUARDRAILS_RESAMPLING_THREADS=0`` (all in the calling thread), which must give the
same evidence; ``--main REV`` also times the kernels of ``guardrails/resampling.py`` at
``REV`` (one stream drawn in the calling thread, before the per-chunk streams) and counts
statuses / p-values that differ from the new ones.
On a shared machine the pool's wall time says little (its threads wait for cores); the line
"2 idle cores" is the lower bound ``max(calling-thread CPU, CPU / 2)`` from the run's CPU.
With ``--agreement K`` it also simulates ``K`` gates near their limit at ``--agreement-n``
samples and counts decisions that differ between today's and the new implementation, beside
the number that differ between two seeds of today's (the Monte-Carlo noise floor): both
random streams changed (the bootstrap draws one count matrix per golden-set size and run seed,
and both kernels draw each chunk from its own stream, ``SeedSequence(seed)``'s child).

Goal: new <= 1 s for 10 gates x 10k x 10k (and for redecide).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

import guardrails
from guardrails import resampling
from guardrails.policy import Policy
from guardrails.verdict import decide, redecide

ROOT = Path(__file__).resolve().parents[1]
TODAY = "5aec781f421e38707494800bbe0b843318fb3784"  # the parent of the shared-resampling change
MAIN = "5b74107c8a0628d37ab95d7d7b9823725a275cfe"  # main before the resampling thread pool
METRIC = "ndcg@10"


def load_module(rev: str, name: str, path: str) -> ModuleType:
    """``path`` at git revision ``rev`` as a module named ``today.<name>``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"today.{name}", loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while decorating
    exec(compile(source, f"{rev[:7]}:{path}", "exec"), mod.__dict__)
    return mod


@contextlib.contextmanager
def main_kernels(rev: str) -> Iterator[ModuleType]:
    """``guardrails.stats`` calling ``guardrails/resampling.py`` as of ``rev``."""
    from guardrails import stats

    old = load_module(rev, "guardrails.resampling", "guardrails/resampling.py")
    saved = stats.resampling
    stats.resampling = old  # type: ignore[attr-defined]
    try:
        yield old
    finally:
        stats.resampling = saved  # type: ignore[attr-defined]


def load_today(rev: str) -> tuple[ModuleType, ModuleType]:
    """Today's ``guardrails.stats`` and ``guardrails.gates.evaluate``, read from git."""
    mods = [
        load_module(rev, name, path)
        for name, path in (
            ("guardrails.stats", "guardrails/stats.py"),
            ("guardrails.gates.evaluate", "guardrails/gates/evaluate.py"),
        )
    ]
    return mods[0], mods[1]


@contextlib.contextmanager
def swapped(stats: ModuleType, evaluate: ModuleType) -> Iterator[None]:
    """Make ``from guardrails import stats`` / ``guardrails.gates.evaluate`` resolve to
    the given modules (both are imported inside the functions that use them)."""
    saved = sys.modules["guardrails.stats"], sys.modules["guardrails.gates.evaluate"]
    sys.modules["guardrails.stats"], sys.modules["guardrails.gates.evaluate"] = stats, evaluate
    guardrails.stats = stats  # type: ignore[attr-defined]
    try:
        yield
    finally:
        sys.modules["guardrails.stats"], sys.modules["guardrails.gates.evaluate"] = saved
        guardrails.stats = saved[0]  # type: ignore[attr-defined]


def golden(gates: int, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-gate (candidate, baseline) scores in [0, 1]: true deltas from -0.02 to +0.01
    around a max-drop of 0.01, so the gates pass, fail and stay inconclusive."""
    rng = np.random.default_rng(seed)
    out = []
    for shift in np.linspace(-0.02, 0.01, gates):
        base = rng.uniform(0.2, 0.8, n)
        out.append((np.clip(base + shift + rng.normal(0.0, 0.15, n), 0.0, 1.0), base))
    return out


def run_gates(evaluate_gate: Callable, data: list, policy: Policy) -> list:
    return [
        evaluate_gate(
            "noninferior",
            METRIC,
            candidate=cand,
            baseline=base,
            policy=policy,
            name=f"gate-{i}",
            overrides={"max_drop": 0.01},
        )
        for i, (cand, base) in enumerate(data)
    ]


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[object, float, float, float]:
    """Result, and the least wall, process CPU and calling-thread CPU seconds of ``repeat``
    cold runs (a shared machine only ever adds time). Process CPU sums all threads (the
    resampling pool's and BLAS's); the calling thread's is the part no pool thread can take."""
    walls, cpus, callers = [], [], []
    for _ in range(repeat):
        resampling._cache.clear()  # cold: a fresh process has drawn nothing yet
        wall, cpu, caller = time.perf_counter(), time.process_time(), time.thread_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        callers.append(time.thread_time() - caller)
    return out, min(walls), min(cpus), min(callers)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run with ``GUARDRAILS_RESAMPLING_THREADS=n`` (None: the default)."""
    key = "GUARDRAILS_RESAMPLING_THREADS"
    saved = os.environ.get(key)
    if n is not None:
        os.environ[key] = str(n)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def agreement(today: tuple[ModuleType, ModuleType], k: int, n: int, resamples: int) -> None:
    """Decisions of K near-limit gates: today vs new, and today(seed 0) vs today(seed 1)."""
    from guardrails.gates.evaluate import evaluate_gate

    rng = np.random.default_rng(2026)
    policy = Policy(name="agreement", n_resamples=resamples)
    data = []
    for _ in range(k):  # true delta near -max_drop +- 2 SE: the decisions that can flip
        base = rng.uniform(0.2, 0.8, n)
        shift = -0.01 + rng.uniform(-2.0, 2.0) * 0.15 / np.sqrt(n)
        data.append((np.clip(base + shift + rng.normal(0.0, 0.15, n), 0.0, 1.0), base))
    new = [g.status for g in run_gates(evaluate_gate, data, policy)]
    with swapped(*today):
        old = [g.status for g in run_gates(today[1].evaluate_gate, data, policy)]
        old2 = [g.status for g in run_gates(today[1].evaluate_gate, data, _seeded(policy, 1))]
    print(f"\nagreement: {k} gates near the limit, n={n}, resamples={resamples}")
    differ = [sum(a != b for a, b in zip(old, x, strict=True)) for x in (new, old2)]
    print(f"  today vs new:          {differ[0]} differ of {k}")
    print(f"  today seed 0 vs 1:     {differ[1]} differ of {k}")
    print(f"  statuses today {dict(Counter(s.value for s in old))}")
    print(f"  statuses new   {dict(Counter(s.value for s in new))}")


def _evidence(gates: list) -> list[tuple]:
    """What a decision rests on: status, CI, both p-values, per gate."""
    return [(g.status, g.ci, g.p_value, g.extra["p_pass"]) for g in gates]


def _differences(a: list, b: list) -> str:
    """Statuses and p-values compared exactly, CI bounds by their largest difference."""
    status = sum(x.status != y.status for x, y in zip(a, b, strict=True))
    p = sum(
        (x.p_value, x.extra["p_pass"]) != (y.p_value, y.extra["p_pass"])
        for x, y in zip(a, b, strict=True)
    )
    ci = max(abs(u - v) for x, y in zip(a, b, strict=True) for u, v in zip(x.ci, y.ci, strict=True))
    return f"{status} statuses and {p} p-value pairs differ of {len(a)}; max |CI diff| {ci:.1e}"


def _seeded(policy: Policy, seed: int) -> Policy:
    from dataclasses import replace

    return replace(policy, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gates", type=int, default=10)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--today", default=TODAY, help="git revision of today's implementation")
    ap.add_argument("--main", default=MAIN, help="revision of the previous kernels ('' = skip)")
    ap.add_argument("--repeat", type=int, default=1, help="cold runs of each (least is kept)")
    ap.add_argument("--agreement", type=int, default=0, help="near-limit gates to compare")
    ap.add_argument("--agreement-n", type=int, default=1000)
    args = ap.parse_args()
    from guardrails.gates.evaluate import evaluate_gate

    today = load_today(args.today)
    policy = Policy(name="bench", n_resamples=args.resamples)
    data = golden(args.gates, args.n, 0)
    print(
        f"{args.gates} non-inferiority gates x n={args.n} x resamples={args.resamples}; "
        f"today = {args.today[:7]}; cores={os.cpu_count()} load={os.getloadavg()[0]:.1f}; "
        f"least of {args.repeat} cold run(s)"
    )
    rows = {}
    print(f"  resampling pool: {resampling.workers()} thread(s) (new); 0 = in the calling thread")
    new_gates, *rows["evaluate_gate new"] = timed(
        lambda: run_gates(evaluate_gate, data, policy), args.repeat
    )
    verdict = decide(new_gates, policy)  # type: ignore[arg-type]
    again, *rows["redecide new"] = timed(lambda: redecide(verdict, policy), args.repeat)
    with threads(0):
        serial, *rows["evaluate_gate new/0"] = timed(
            lambda: run_gates(evaluate_gate, data, policy), args.repeat
        )
        serial_again, *rows["redecide new/0"] = timed(
            lambda: redecide(verdict, policy), args.repeat
        )
    for label, a, b in (
        ("evaluate_gate", new_gates, serial),
        ("redecide", again.gates, serial_again.gates),  # type: ignore[attr-defined]
    ):
        same = _evidence(a) == _evidence(b)  # type: ignore[arg-type]
        print(f"  {label}, pool vs 0 threads: {'identical' if same else 'DIFFERENT'} evidence")
    if args.main:
        with main_kernels(args.main) as kernels:

            def cold_main() -> list:
                kernels._cache.clear()
                return run_gates(evaluate_gate, data, policy)

            main_gates, *rows[f"evaluate_gate {args.main[:7]}"] = timed(cold_main, args.repeat)
        print(f"  evaluate_gate, {args.main[:7]} vs new: {_differences(main_gates, new_gates)}")
    with swapped(*today):
        old_gates, *rows["evaluate_gate today"] = timed(
            lambda: run_gates(today[1].evaluate_gate, data, policy), args.repeat
        )
        old_again, *rows["redecide today"] = timed(lambda: redecide(verdict, policy), args.repeat)
    for label, (wall, cpu, caller) in rows.items():
        print(
            f"  {label:<20} {wall:7.3f} s wall  {cpu:7.3f} s CPU  "
            f"{caller:7.3f} s CPU in the calling thread"
        )
    for what in ("evaluate_gate", "redecide"):
        old, new = rows[f"{what} today"], rows[f"{what} new"]
        print(f"  {what}: today / new = {old[0] / new[0]:.1f}x wall, {old[1] / new[1]:.1f}x CPU")
        print(
            f"    2 idle cores, new: wall >= max(calling-thread CPU, CPU / 2) = "
            f"{max(new[2], new[1] / 2):.3f} s (a bound from this run's CPU, not a measurement)"
        )
    print("  gate        today         new           redecide today / new")
    for o, g, ro, rn in zip(old_gates, new_gates, old_again.gates, again.gates, strict=True):  # type: ignore[attr-defined]
        print(
            f"  {g.name:<10}  {o.status.value:<12}  {g.status.value:<12}  "
            f"{ro.status.value} / {rn.status.value}   CI today [{o.ci[0]:+.5f}, {o.ci[1]:+.5f}]"
            f" new [{g.ci[0]:+.5f}, {g.ci[1]:+.5f}]"
        )
    if args.agreement:
        agreement(today, args.agreement, args.agreement_n, args.resamples)


if __name__ == "__main__":
    main()
