"""Model outputs on disk, content-addressed: a warm re-run regenerates and rescores nothing.

:class:`ResultCache` keeps one JSON value per key in ``<dir>/results.sqlite``::

    key   = (kind, fingerprint, input_key)
    kind        "generate" | "loglik" | "rerank" (what was computed)
    fingerprint the component's :attr:`fingerprint`: H(base weights folder, adapter folder |
                "none", output config), e.g. a generator's system prompt, default
                max_new_tokens, dtype and decoding, or a reranker's max_length and score
    input_key   :func:`input_key` = sha256 of the canonical JSON of every input of one output,
                e.g. [exact chat prompt text, max_new_tokens] for an answer,
                [chat prompt text, completion] for a log-likelihood,
                [query, document] for a reranker logit
    value = the output as JSON text (an answer string, a float)

Why a hit is safe: the fingerprint hashes the weight and adapter files' CONTENT plus the
generation / scoring config, and the input key hashes the exact text the model reads, so a
retrained adapter, a new base model, a changed system prompt or token limit gives a new key and
can never reuse a stale answer. Outputs are deterministic (greedy decoding, eval mode), so an
output computed once is the output. The stored fingerprint also folds in the installed torch,
transformers, peft and sentence-transformers versions (kernels and generation code change outputs
between releases), so upgrading a library starts a fresh cache. Not in the key: the device.
A model changed in memory after loading (e.g. :meth:`Generator.merged`, which is compared
against its unmerged original) must not be given a cache: it keeps its original's fingerprint.

SQLite in WAL mode with ``timeout=60``: several processes (pytest-xdist workers) read while one
writes, and every :meth:`ResultCache.put_many` is one ``BEGIN IMMEDIATE`` transaction (all rows
or none). Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from guardrails.artifacts import fingerprint_bytes, fingerprint_json, fingerprint_parts
from guardrails.components.store import SQLiteStore
from guardrails.errors import ComponentError

__all__ = ["ResultCache", "input_key"]

_RUNTIME_LIBRARIES = ("torch", "transformers", "peft", "sentence-transformers")


def _runtime_fingerprint() -> str:
    """Hash of the installed versions of the libraries that compute the cached outputs."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in _RUNTIME_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return fingerprint_json(versions)


def input_key(*parts: Any) -> str:
    """``"sha256:<hex>"`` of the canonical JSON list of ``parts`` (the inputs of one output).

    Parts must be JSON values (str, int, float, bool, None, lists, dicts); anything else raises
    :class:`ComponentError` rather than being hashed through a lossy ``str()``.
    """
    try:
        blob = json.dumps(
            list(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
        )
    except (TypeError, ValueError) as exc:
        raise ComponentError(f"result cache key parts are not JSON values: {exc}") from exc
    return fingerprint_bytes(blob.encode("utf-8"))


class ResultCache(SQLiteStore):
    """Model outputs on disk: ``<dir>/results.sqlite``, keyed by (kind, fingerprint, input key).

    Values are any JSON value (answers are strings, scores floats); see the module docstring for
    the key. A corrupted or unreadable file raises :class:`ComponentError` naming it.
    """

    FILENAME = "results.sqlite"
    TABLE = "results"
    LABEL = "result cache"
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS results (kind TEXT NOT NULL, fingerprint TEXT NOT NULL, "
        "input_key TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (kind, fingerprint, input_key)) WITHOUT ROWID"
    )

    def __init__(self, directory: str | Path) -> None:
        self._runtime = _runtime_fingerprint()
        super().__init__(directory)

    def _stored(self, fingerprint: str) -> str:
        """The fingerprint as stored: the component's, combined with the library versions."""
        return fingerprint_parts(fingerprint, self._runtime)

    def get_many(self, kind: str, fingerprint: str, keys: Sequence[str]) -> dict[str, Any]:
        """Cached values of those of ``keys`` present under ``(kind, fingerprint)``."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        if not wanted:
            return found
        fingerprint = self._stored(fingerprint)
        sql = (
            "SELECT input_key, value FROM results WHERE kind = ? AND fingerprint = ? "
            "AND input_key IN ({marks})"
        )
        with self._connect() as conn:
            for key, value in self._select_in(conn, sql, [kind, fingerprint], wanted):
                found[key] = self._decode(kind, key, value)
        return found

    def put_many(self, kind: str, fingerprint: str, items: Mapping[str, Any]) -> None:
        """Store ``{input_key: value}`` under ``(kind, fingerprint)`` in one transaction.

        A value that is not JSON-serialisable raises :class:`ComponentError` and stores nothing.
        """
        if not items:
            return
        fingerprint = self._stored(fingerprint)

        def rows() -> Iterator[tuple[str, str, str, str]]:
            for key, value in items.items():
                yield kind, fingerprint, key, self._encode(kind, key, value)

        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now (waits up to `timeout`)
            conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows())

    def _encode(self, kind: str, key: str, value: Any) -> str:
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise ComponentError(
                f"result cache {self.path}: the {kind!r} value of key {key!r} is not "
                f"JSON-serialisable ({exc}); nothing was stored"
            ) from exc

    def _decode(self, kind: str, key: str, value: str) -> Any:
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ComponentError(
                f"result cache {self.path}: the {kind!r} value of key {key!r} is not JSON "
                f"({exc}); delete the file to start an empty cache"
            ) from exc
