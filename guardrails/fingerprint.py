"""Content fingerprints (sha256) for golden sets, models, adapters, indexes and configs.

A fingerprint is ``"sha256:<hex>"`` over canonical bytes: files are hashed by content, folders
by the sorted (relative path, file hash) pairs, JSON-able objects by their canonical dump
(``sort_keys=True``, no whitespace). Equal content gives equal fingerprints on any machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "fingerprint_bytes",
    "fingerprint_dir",
    "fingerprint_dir_cached",
    "fingerprint_file",
    "fingerprint_json",
    "fingerprint_model_dir",
    "fingerprint_parts",
]

_CHUNK = 1 << 20


def _tag(h: Any) -> str:
    return f"sha256:{h.hexdigest()}"


def fingerprint_bytes(data: bytes) -> str:
    """Fingerprint of raw bytes."""
    return _tag(hashlib.sha256(data))


def fingerprint_file(path: str | Path) -> str:
    """Fingerprint of one file's content (streamed, constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return _tag(h)


def fingerprint_dir(path: str | Path, *, exclude: Iterable[str] = ()) -> str:
    """Fingerprint of a folder: sorted relative paths and their content hashes.

    ``exclude`` holds file names (not paths) to skip, e.g. a lock file or a training record
    that must not change the identity of the weights beside it.
    """
    root = Path(path)
    skip = set(exclude)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip):
        rel = file.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + fingerprint_file(file).encode() + b"\n")
    return _tag(h)


_MEMO: dict[tuple[str, tuple[str, ...], tuple[int, int, int]], str] = {}


def fingerprint_dir_cached(path: str | Path, *, exclude: Iterable[str] = ()) -> str:
    """:func:`fingerprint_dir`, memoised for this process per (folder, ``exclude``, file count,
    total size, newest mtime): a model folder is hashed once, again only after a write."""
    root = Path(path).resolve()
    stats = [p.stat() for p in root.rglob("*") if p.is_file()]
    signature = (
        len(stats),
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=0),
    )
    key = (str(root), tuple(sorted(exclude)), signature)
    if key not in _MEMO:
        _MEMO[key] = fingerprint_dir(root, exclude=exclude)
    return _MEMO[key]


def fingerprint_model_dir(path: str | Path) -> str:
    """Identity of a model or adapter folder: every file but the README (memoised)."""
    return fingerprint_dir_cached(path, exclude=("README.md",))


def fingerprint_json(obj: Any) -> str:
    """Fingerprint of a JSON-able object, independent of key order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return fingerprint_bytes(blob.encode("utf-8"))


def fingerprint_parts(*parts: str) -> str:
    """Fingerprint combining other fingerprints / strings in order (e.g. base + adapter)."""
    return fingerprint_bytes("\n".join(parts).encode("utf-8"))
