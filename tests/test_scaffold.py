"""``guardrails init``: the starter project runs as written (A/A promotes, a ruined candidate
run rolls back) and init never overwrites a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from guardrails.cli import main
from guardrails.scaffold import TEMPLATE_FILES


def _pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _decision(folder: Path) -> str:
    return json.loads((folder / "out" / "verdict.json").read_text())["decision"]


def test_the_starter_project_promotes_as_written_and_rolls_back_a_ruined_run(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "project"
    assert main(["init", str(folder)]) == 0
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(
        TEMPLATE_FILES
    )
    done = _pytest(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _decision(folder) == "promote"
    assert (folder / "out" / "verdict.html").is_file()

    run = folder / "runs" / "candidate.run"  # the candidate ranks every relevant doc last
    lines = [line.split() for line in run.read_text().splitlines()]
    run.write_text("".join(f"{q} Q0 {d} {r} {-float(s)} cand\n" for q, _, d, r, s, _ in lines))
    done = _pytest(folder)
    assert done.returncode == 11 and _decision(folder) == "rollback", done.stdout


def test_init_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "production.run").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 2
    assert "would overwrite runs/production.run" in capsys.readouterr().err
    assert (tmp_path / "runs" / "production.run").read_text() == "mine\n"
    assert not (tmp_path / "pyproject.toml").exists()
