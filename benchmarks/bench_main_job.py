"""The main job, phase by phase: wall and CPU time of each phase of ``pytest suites/``, the
FLOP/s training and generation achieve against a matmul peak measured in the same run, and the
minimum detectable effect of every gate.

Run (cold: a fresh clone of this checkout with no ``adapters/``, so everything trains)::

    python benchmarks/bench_main_job.py                   # clone HEAD to a temp dir, run cold
    python benchmarks/bench_main_job.py --project DIR     # run in DIR as it is (warm if cached)
    python benchmarks/bench_main_job.py --table PHASES.jsonl VERDICT.json [--wall S --cpu S]

The phases come from the progress accounting (``GUARDRAILS_PHASES``, see
``guardrails.report.progress``): every finished training run, embedding pass, index build,
generation / scoring pass, the log simulation, each gate's resampling and the verdict + report
append one row; "other" is the rest of the wall time (pytest, fixtures, metric kernels, the
timed shadow replays). FLOP counts: the Trainer's ``total_flos`` (6 · params · tokens) for
training, 2 · params · token positions for generation and scoring (padding included: what the
hardware computed). The peak is float32 ``torch.matmul`` of 2048² matrices on all threads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak(seconds: float = 3.0, size: int = 2048) -> float:
    """Best float32 GFLOP/s of ``size``² matmuls over ``seconds`` (threads: torch's default)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def phase_of(task: str) -> str:
    """The phase a progress task belongs to (trainers keep their own name)."""
    if task.startswith("embedder"):
        return "embedding"
    if task.startswith("index build"):
        return "index builds"
    if task == "generator generate":
        return "generation"
    if task in ("generator score", "reranker score"):
        return "scoring"
    return task  # log simulation, each trainer, gates, verdict and report


def phase_table(rows: list[dict[str, Any]], wall: float | None, peak: float | None) -> list[dict]:
    phases: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"runs": 0, "wall_s": 0.0, "cpu_s": 0.0, "flop": 0.0}
    )
    for row in rows:
        p = phases[phase_of(row["task"])]
        p["runs"] += 1
        p["wall_s"] += row["wall_s"]
        p["cpu_s"] += row["cpu_s"]
        facts = row.get("facts", {})
        if "flos" in facts:
            p["flop"] += float(facts["flos"])
        elif "tokens" in facts and "params" in facts:
            p["flop"] += 2.0 * float(facts["params"]) * float(facts["tokens"])
    out = []
    for name, p in sorted(phases.items(), key=lambda kv: -kv[1]["wall_s"]):
        gflops = p["flop"] / p["wall_s"] / 1e9 if p["flop"] and p["wall_s"] else None
        out.append(
            {
                "phase": name,
                **p,
                "gflop_per_s": gflops,
                "of_peak": gflops / peak if gflops and peak else None,
            }
        )
    if wall is not None:
        rest = wall - sum(p["wall_s"] for p in phases.values())
        out.append({"phase": "other", "runs": None, "wall_s": rest, "cpu_s": None, "flop": 0.0})
    return out


def gate_mdes(verdict: dict[str, Any]) -> list[tuple[str, str, int, Any, Any]]:
    """``(gate, status, n, mde, margin)`` of every gate of a verdict."""
    return [
        (g["name"], g["status"], g.get("n"), g.get("mde"), g.get("threshold"))
        for g in sorted(verdict.get("gates", []), key=lambda g: g["name"])
    ]


def _f(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(
    rows: list[dict[str, Any]],
    verdict: dict[str, Any] | None,
    wall: float | None,
    cpu: float | None,
    peak: float | None,
) -> None:
    if peak is not None:
        print(f"matmul peak (float32, 2048², {os.cpu_count()} cores): {peak:.1f} GFLOP/s")
    if wall is not None:
        print(f"main job: wall {wall:.0f} s ({wall / 60:.1f} min)", end="")
        print(f", CPU {cpu:.0f} s ({cpu / 60:.1f} min)" if cpu is not None else "")
    print(
        f"\n{'phase':34} {'runs':>5} {'wall s':>8} {'share':>6} {'CPU s':>8} "
        f"{'GFLOP/s':>8} {'peak':>6}"
    )
    for p in phase_table(rows, wall, peak):
        share = p["wall_s"] / wall if wall else None
        print(
            f"{p['phase'][:34]:34} {_f(p['runs'], 'd'):>5} {p['wall_s']:8.1f} "
            f"{_f(share, '.1%'):>6} {_f(p['cpu_s']):>8} {_f(p.get('gflop_per_s')):>8} "
            f"{_f(p.get('of_peak'), '.0%'):>6}"
        )
    if verdict is not None:
        print(f"\nverdict: {verdict['decision']}; gates and their minimum detectable effects:")
        print(f"{'gate':46} {'status':12} {'n':>6} {'MDE':>9} {'margin':>9}")
        for name, status, n, mde, margin in gate_mdes(verdict):
            print(
                f"{name[:46]:46} {status:12} {_f(n, 'd'):>6} {_f(mde, '.4g'):>9} "
                f"{_f(margin, '.4g'):>9}"
            )


def run_job(project: Path, phases: Path) -> tuple[float, float, int]:
    """Run ``pytest suites/`` in ``project``; ``(wall s, CPU s of the children, exit status)``."""
    env = dict(os.environ, GUARDRAILS_PHASES=str(phases), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(project)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    status = subprocess.call(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/",
            "--guardrails-verdict",
            "out/verdict.json",
            "-p",
            "no:cacheprovider",
        ],
        cwd=project,
        env=env,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status


_DONE = re.compile(
    r"^\[guardrails\] (?P<task>.+?): done(?:, (?P<units>\d+) \w+)? "
    r"in (?P<wall>[\d.]+) (?P<u>s|min|h)"
    r"(?: \(CPU (?P<cpu>[\d.]+) (?P<cu>s|min|h)\))?"
)
_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def rows_from_log(text: str) -> list[dict[str, Any]]:
    """Phase rows from a run's terminal output (``[guardrails] task: done, N units in T``):
    how the table of a run made before the phase file existed is rebuilt (wall only)."""
    rows = []
    for line in text.splitlines():
        m = _DONE.match(line.strip())
        if m is None:
            continue
        cpu = float(m["cpu"]) * _SECONDS[m["cu"]] if m["cpu"] else 0.0
        rows.append(
            {
                "task": m["task"],
                "units": int(m["units"] or 1),
                "wall_s": float(m["wall"]) * _SECONDS[m["u"]],
                "cpu_s": cpu,
                "facts": {},
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="run in this checkout as it is")
    parser.add_argument(
        "--table",
        nargs=2,
        metavar=("PHASES", "VERDICT"),
        type=Path,
        help="only print the table of a recorded run (PHASES: the .jsonl phase file or "
        "the run's terminal log)",
    )
    parser.add_argument("--wall", type=float, help="with --table: the run's wall seconds")
    parser.add_argument("--cpu", type=float, help="with --table: the run's CPU seconds")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)

    if args.table:
        phases_file, verdict_file = args.table
        text = phases_file.read_text(errors="replace")
        if phases_file.suffix == ".jsonl":
            rows = [json.loads(x) for x in text.splitlines() if x.strip()]
        else:  # a terminal log of the run
            rows = rows_from_log(text)
        verdict = json.loads(verdict_file.read_text())
        print_report(rows, verdict, args.wall, args.cpu, None)
        return 0

    peak = matmul_peak()
    if args.project is not None:
        project = args.project.resolve()
    else:  # a fresh clone of HEAD: nothing cached, everything trains
        project = Path(tempfile.mkdtemp(prefix="guardrails-main-job-")) / "repo"
        subprocess.check_call(["git", "clone", "-q", str(ROOT), str(project)])
    phases = project / "out" / "phases.jsonl"
    phases.parent.mkdir(parents=True, exist_ok=True)
    phases.unlink(missing_ok=True)
    wall, cpu, status = run_job(project, phases)
    rows = [json.loads(x) for x in phases.read_text().splitlines() if x.strip()]
    verdict_path = project / "out" / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.is_file() else None
    print(f"\nproject: {project}; pytest exit status {status}")
    print_report(rows, verdict, wall, cpu, peak)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "peak_gflop_per_s": peak,
                    "phases": phase_table(rows, wall, peak),
                    "gates": gate_mdes(verdict) if verdict else [],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
