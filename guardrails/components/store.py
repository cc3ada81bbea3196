"""One SQLite file of cached model outputs: the shared mechanics of the on-disk caches.

:class:`SQLiteStore` is the base of :class:`~guardrails.components.embedder.EmbeddingCache`
(document vectors) and :class:`~guardrails.components.memo.ResultCache` (answers, scores). It
owns the file ``<directory>/<FILENAME>``, WAL mode (several pytest-xdist processes read while
one writes), a 60 s busy timeout, one transaction per ``with self._connect()`` (commit on
success, roll back on error), errors as :class:`ComponentError` naming the file, and chunked
``IN (...)`` lookups that stay below SQLite's bound-parameter limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from guardrails.errors import ComponentError

__all__ = ["SQLiteStore"]


class SQLiteStore:
    """Base of a cache file; subclasses set ``FILENAME``, ``TABLE``, ``SCHEMA`` and ``LABEL``."""

    FILENAME = ""
    TABLE = ""
    SCHEMA = ""
    LABEL = "cache"
    CHUNK = 500  # keys per IN (...) query: far below SQLite's bound-parameter limit

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ComponentError(
                f"{self.LABEL} {self.path}: cannot create its folder: {exc}"
            ) from exc
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(self.SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0)
        except sqlite3.Error as exc:
            raise ComponentError(f"{self.LABEL} {self.path}: {exc}") from exc
        try:
            with conn:  # commit on success, roll back on error
                yield conn
        except sqlite3.Error as exc:
            raise ComponentError(
                f"{self.LABEL} {self.path}: {exc}; delete the file to start an empty cache"
            ) from exc
        finally:
            conn.close()

    def _select_in(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], keys: Sequence[str]
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (which ends in ``IN ({marks})``) for ``keys``, chunk by chunk."""
        for start in range(0, len(keys), self.CHUNK):
            chunk = list(keys[start : start + self.CHUNK])
            yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk])

    def __len__(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {self.TABLE}").fetchone()[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"
