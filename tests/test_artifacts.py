"""Atomic writes: complete or absent, the previous content survives a failure, no temp debris,
and permissions as a plain open would give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardrails.artifacts import atomic_folder, atomic_path, atomic_write_text


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_text_is_replaced_whole_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "verdict.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert _debris(target.parent) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "logs.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n" and _debris(tmp_path) == []


def test_a_folder_is_swapped_in_whole_and_restored_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "index"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("1")
    with atomic_folder(target) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]  # replaced, not merged
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:
        (tmp / "c").write_text("3")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert _debris(tmp_path) == []
