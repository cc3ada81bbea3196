"""`.ci/lockfile.py`: the lock parser, the drift check .ci/setup runs, and the refresh diff."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "lockfile.py"
LOCK = Path(__file__).resolve().parents[1] / ".ci" / "requirements.lock"

LOCK_TEXT = """\
#    bash .ci/refresh-lock
#
numpy==2.4.6 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via pytest-guardrails (pyproject.toml)
Torch==2.13.0+cpu \\
    --hash=sha256:cccc
sentence_transformers==6.3.0 \\
    --hash=sha256:dddd
"""


@pytest.fixture(scope="module")
def lockfile():
    spec = importlib.util.spec_from_file_location("lockfile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pins_are_read_with_canonical_names(lockfile, tmp_path: Path) -> None:
    (tmp_path / "a.lock").write_text(LOCK_TEXT)
    assert lockfile.read_pins(tmp_path / "a.lock") == {
        "numpy": "2.4.6",
        "torch": "2.13.0+cpu",
        "sentence-transformers": "6.3.0",
    }


def test_a_package_pinned_twice_is_refused(lockfile, tmp_path: Path) -> None:
    (tmp_path / "a.lock").write_text(LOCK_TEXT + "numpy==2.0.0 \\\n    --hash=sha256:eeee\n")
    with pytest.raises(SystemExit, match=r"a.lock:11: numpy is pinned twice"):
        lockfile.read_pins(tmp_path / "a.lock")


def test_drift_names_wrong_missing_and_extra_packages(lockfile) -> None:
    pins = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "scipy": "1.17.1"}
    have = {"numpy": "2.4.6", "torch": "2.14.1", "pip": "26.3", "pytest-guardrails": "0.1.0"}
    have["rich"] = "15.0.0"
    assert lockfile.drift(pins, have) == [
        "  scipy: locked 1.17.1, installed nothing",
        "  torch: locked 2.13.0+cpu, installed 2.14.1",
        "  rich==15.0.0: installed but not in the lock",
    ]
    assert lockfile.drift(pins, {**pins, "pip": "26.3"}) == []


def test_diff_lists_changes_added_and_removed(tmp_path: Path) -> None:
    (tmp_path / "old.lock").write_text(LOCK_TEXT)
    new = LOCK_TEXT.replace("numpy==2.4.6", "numpy==2.5.0").replace("Torch==2.13.0+cpu", "x==1")
    (tmp_path / "new.lock").write_text(new)
    out = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "diff",
            str(tmp_path / "old.lock"),
            str(tmp_path / "new.lock"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "3 change(s), 3 packages in the new lock" in out
    assert "numpy: 2.4.6 -> 2.5.0" in out and "x: added 1" in out and "torch: removed" in out


def test_the_committed_lock_pins_every_package_exactly_with_hashes(lockfile) -> None:
    pins = lockfile.read_pins(LOCK)
    text = LOCK.read_text()
    requirements = [line for line in text.splitlines() if line and line[0].isalnum()]
    assert len(requirements) == len(pins) >= 100
    assert all("==" in line and line.endswith("\\") for line in requirements)  # hashes follow
    assert pins["torch"].endswith("+cpu")
    assert text.count("--hash=sha256:") >= len(pins)
