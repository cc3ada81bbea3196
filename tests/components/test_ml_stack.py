"""The ML stack check: declared and runtime requirements among transformers / peft / trl / ...

End to end, a fake newer transformers and an older peft (dist-info folders put first on the
path of a subprocess) make the first model load raise DependencyError naming both versions,
before peft is ever imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from guardrails.components.ml_stack import (
    InstalledStack,
    check_ml_stack,
    find_conflicts,
    installed_stack,
)
from guardrails.errors import DependencyError, GuardrailsError


def _stack(versions, requires=None, min_peft=None) -> InstalledStack:
    return InstalledStack(versions, requires or {}, min_peft)


def test_transformers_min_peft_above_installed_peft_is_a_conflict() -> None:
    stack = _stack({"transformers": "5.25.0", "peft": "0.21.2"}, min_peft="0.22.0")
    (conflict,) = find_conflicts(stack)
    message = conflict.message()
    assert "transformers==5.25.0" in message and "peft==0.21.2" in message
    assert "pip install 'peft>=0.22.0'" in message


def test_installed_peft_at_or_above_the_minimum_is_fine() -> None:
    for peft in ("0.22.0", "0.22.1", "1.0"):
        assert not find_conflicts(_stack({"transformers": "5.25", "peft": peft}, min_peft="0.22"))
    assert not find_conflicts(_stack({"transformers": "5.25"}, min_peft="0.22"))  # no peft


def test_declared_requirements_are_checked_among_installed_packages() -> None:
    stack = _stack(
        {"trl": "1.16.0", "transformers": "4.50.0", "torch": "2.13.0+cpu"},
        {
            "trl": [
                "transformers>=4.56.2",
                "torch>=2.0",  # local version label: 2.13.0+cpu satisfies it
                "deepspeed>=0.14; extra == 'deepspeed'",  # an extra: not required
                "datasets>=3.0",  # not installed: nothing to compare
                "accelerate",  # no version bound
            ]
        },
    )
    (conflict,) = find_conflicts(stack)
    assert (conflict.package, conflict.requirement, conflict.installed) == (
        "trl",
        "transformers>=4.56.2",
        "4.50.0",
    )


def test_the_locked_environment_has_no_conflict() -> None:
    pytest.importorskip("transformers")
    stack = installed_stack()
    assert stack.min_peft is not None  # transformers still keeps MIN_PEFT_VERSION in that file
    assert find_conflicts(stack) == []
    check_ml_stack()


def _fake_dist(site: Path, name: str, version: str, files: dict[str, str] | None = None) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    for rel, text in (files or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")


LOAD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from guardrails.errors import DependencyError
    from guardrails.components.reranker import load_cross_encoder
    try:
        load_cross_encoder(Path("does-not-matter"))
    except DependencyError as exc:
        print(exc)
        print("peft imported:", "peft" in sys.modules)
        sys.exit(3)
    """
)


def test_first_model_load_raises_one_clear_error_on_a_broken_stack(tmp_path: Path) -> None:
    _fake_dist(
        tmp_path,
        "transformers",
        "5.25.0",
        {"transformers/integrations/peft.py": 'MIN_PEFT_VERSION = "0.22.0"\n'},
    )
    _fake_dist(tmp_path, "peft", "0.21.2")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("GUARDRAILS_SKIP_STACK_CHECK", None)
    done = subprocess.run(
        [sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "transformers==5.25.0 requires peft>=0.22.0" in done.stdout
    assert "peft==0.21.2 is installed" in done.stdout
    assert "peft imported: False" in done.stdout

    skipped = subprocess.run(
        [sys.executable, "-c", LOAD],
        env={**env, "GUARDRAILS_SKIP_STACK_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert skipped.returncode != 3  # the check is skipped; loading then fails its own way


def test_dependency_error_is_an_import_error() -> None:
    assert issubclass(DependencyError, GuardrailsError)
    assert issubclass(DependencyError, ImportError)
