"""Artifacts on disk, the one home for how they are written and identified (standard library
only).

**Atomic writes**: a file or a whole folder appears complete or not at all, and what was there
before survives a failure.

* :func:`atomic_path` — a temp file beside the target, moved over it (``os.replace``) when the
  ``with`` block succeeds (for writers that want a path: Parquet, gzip, FAISS);
* :func:`atomic_write_text` — text through :func:`atomic_path`, fsynced;
* :func:`atomic_folder` — a temp sibling folder swapped in for the target (a model, an index,
  a trained adapter); a previous folder is moved aside first and put back if the swap fails.

Files get the permissions a plain ``open`` would give (``0o666`` less the umask), not the
``0o600`` of ``mkstemp``.

**Content fingerprints** (sha256) for golden sets, models, adapters, indexes and configs: a
fingerprint is ``"sha256:<hex>"`` over canonical bytes: files are hashed by content, folders
by the sorted (relative path, file hash) pairs, JSON-able objects by their canonical dump
(``sort_keys=True``, no whitespace). Equal content gives equal fingerprints on any machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write_text",
    "fingerprint_bytes",
    "fingerprint_dir",
    "fingerprint_dir_cached",
    "fingerprint_file",
    "fingerprint_json",
    "fingerprint_model_dir",
    "fingerprint_parts",
    "parse_json_line",
]

# ---- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; move it over ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; swap it in for ``path`` if the block succeeds.

    An existing ``path`` is renamed aside, replaced, then deleted; if the final rename fails it
    is put back. On failure inside the block the temp folder is removed and ``path`` untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- content fingerprints

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


# ---- strict JSON (what every reader of our files parses with)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN / Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json_line(line: str) -> Any:
    """``json.loads`` that refuses NaN / Infinity and numbers that overflow (``1e400``);
    raises ``ValueError`` (incl. ``json.JSONDecodeError``) or ``RecursionError`` (nesting
    too deep) on bad input."""
    return json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
