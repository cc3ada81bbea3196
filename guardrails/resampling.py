"""Resampling kernels behind :mod:`guardrails.stats`: shared bootstrap counts, sign-flip sums.

Two costs dominated a gate at 10k samples x 10k resamples (~1 s each): drawing 10^8 bootstrap
indices and gathering ``d[idx]``, and materialising 10^8 random signs as float64 for the
sign-flip test. Here:

* **Bootstrap** (:func:`bootstrap_sums`): a resample is the count vector ``c`` of how often
  each sample is drawn (multinomial ``n`` draws over ``n`` samples, the same distribution as
  drawing indices), and the resampled sum is ``c @ d``. The ``(n_resamples, n)`` count matrix
  depends only on ``(n, n_resamples, seed)``, so every gate on a golden set of the same size
  shares it: it is drawn once (uniform indices by Lemire's multiply-shift with rejection,
  counted with ``bincount``), kept as uint8 while it fits :data:`_CACHE_MAX_CELLS`, and turned
  into all gates' resampled sums by one float64 matrix product (BLAS). Counts are integers, so
  ``c @ d`` differs from the gathered sum only by floating-point summation order.
* **Sign flips** (:func:`flip_sums`): the random bytes are drawn exactly as before (same seed,
  same chunks, same stream), but instead of unpacking them to a 0/1 float matrix, each byte
  of flips indexes a table holding the sum of its 8 values for all 256 patterns ("method of
  four Russians"), so a resample costs ``n / 8`` look-ups instead of ``n`` multiply-adds.

Seeded with ``numpy.random.Generator(PCG64(seed))``: equal ``(n, n_resamples, seed)`` give the
same counts in any order of calls, in any process (pytest-xdist workers draw the same matrix).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

__all__ = ["bootstrap_counts", "bootstrap_sums", "flip_sums"]

_COUNT_CHUNK_CELLS = 1 << 18  # count cells per drawn chunk: bincount's int64 counters ~2 MB
_MAX_CHUNK_CELLS = 1 << 21  # sign-flip chunking, as in guardrails.stats (the stream depends on it)
_CACHE_MAX_CELLS = 1 << 27  # keep at most one uint8 count matrix of <= 128 MB (10k x 10k fits)
_cache: dict[tuple[int, int, int], NDArray[np.uint8]] = {}


# --------------------------------------------------------------------------- bootstrap


def bootstrap_sums(columns: NDArray[np.float64], n_resamples: int, seed: int) -> NDArray:
    """Resampled column sums ``counts @ columns``, shape ``(n_resamples, k)``, float64.

    ``columns`` is ``(n, k)``: one column per statistic sharing the samples (e.g. the deltas
    of several gates on one golden set); all use the same resamples.
    """
    n, k = columns.shape
    out = np.empty((n_resamples, k), dtype=np.float64)
    for start, counts in _count_blocks(n, n_resamples, seed):
        np.matmul(counts.astype(np.float64), columns, out=out[start : start + counts.shape[0]])
    return out


def bootstrap_counts(n: int, n_resamples: int, seed: int) -> NDArray[np.uint8]:
    """The ``(n_resamples, n)`` multinomial count matrix for ``(n, n_resamples, seed)``.

    uint8: a count above 255 needs one sample drawn 256 times out of ``n``, probability below
    ``n_resamples * n / 256! < 1e-490`` at any ``n`` (and impossible for ``n < 256``).
    """
    out = np.empty((n_resamples, n), dtype=np.uint8)
    for start, counts in _drawn_counts(n, n_resamples, seed):
        out[start : start + counts.shape[0]] = counts
    return out


def _count_blocks(n: int, n_resamples: int, seed: int) -> Iterator[tuple[int, NDArray]]:
    """Row blocks of the count matrix: from the cache when it fits, else drawn on the fly."""
    if n * n_resamples > _CACHE_MAX_CELLS:
        yield from _drawn_counts(n, n_resamples, seed)
        return
    key = (n, n_resamples, seed)
    if key not in _cache:
        _cache.clear()  # one matrix at a time: a session gates on one golden size at a time
        _cache[key] = bootstrap_counts(n, n_resamples, seed)
        _cache[key].flags.writeable = False  # shared by every caller: read only
    matrix = _cache[key]
    rows = max(1, _COUNT_CHUNK_CELLS // n)
    for start in range(0, n_resamples, rows):
        yield start, matrix[start : start + rows]


def _drawn_counts(n: int, n_resamples: int, seed: int) -> Iterator[tuple[int, NDArray]]:
    """Draw the count matrix in row chunks (the chunking is part of the seeded stream)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    rows = max(1, _COUNT_CHUNK_CELLS // n)
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        idx = _uniform_below(rng, r * n, n).reshape(r, n)
        idx += np.arange(0, r * n, n, dtype=np.int64)[:, None]  # row b counts in [b n, b n + n)
        yield start, np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)


def _uniform_below(rng: np.random.Generator, size: int, n: int) -> NDArray[np.int64]:
    """``size`` exactly uniform integers in ``[0, n)``, ``n < 2**32``: Lemire (2019)
    multiply-shift on 32-bit draws, rejecting the ``2**32 mod n`` low products (bias-free)."""
    u = rng.bit_generator.random_raw((size + 1) // 2).view(np.uint32)[:size]
    reject_below = np.uint32((1 << 32) % n)
    prod = np.multiply(u, np.uint64(n), dtype=np.uint64)
    bad = np.flatnonzero(u * np.uint32(n) < reject_below) if reject_below else ()
    while len(bad):
        redo = (rng.bit_generator.random_raw(len(bad)) & 0xFFFFFFFF).astype(np.uint32)
        prod[bad] = np.multiply(redo, np.uint64(n), dtype=np.uint64)
        bad = bad[redo * np.uint32(n) < reject_below]
    prod >>= np.uint64(32)
    return prod.view(np.int64)


# --------------------------------------------------------------------------- sign flips


def flip_sums(e: NDArray[np.float64], n_resamples: int, seed: int) -> NDArray[np.float64]:
    """``n_resamples`` random sign-flip sums ``sum(s * e)``, ``s`` in {-1, +1}^m.

    One random bit per (resample, value), drawn as bytes in the chunks of
    ``guardrails.stats`` (``2**21 // m`` rows); bit ``7 - k`` of byte ``j`` flips ``e[8 j + k]``
    (``numpy.unpackbits`` order), so the flips equal the former unpack-and-multiply ones.
    """
    m = e.size
    n_bytes = (m + 7) // 8
    table = _byte_table(e, n_bytes).ravel()
    offsets = np.arange(0, n_bytes * 256, 256, dtype=np.int64)
    total = float(e.sum())
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, _MAX_CHUNK_CELLS // max(m, 1))
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        flips = rng.integers(0, 256, size=(r, n_bytes), dtype=np.uint8)
        flipped = table[offsets + flips].sum(axis=1)  # sum of the flipped values per resample
        out[start : start + r] = total - 2.0 * flipped
    return out


def _byte_table(e: NDArray[np.float64], n_bytes: int) -> NDArray[np.float64]:
    """``table[j, p]`` = sum of ``e[8 j + k]`` over the bits ``k`` set in pattern ``p``
    (most significant bit first); values past ``e``'s end are zero."""
    padded = np.zeros(n_bytes * 8, dtype=np.float64)
    padded[: e.size] = e
    bits = (np.arange(256)[None, :] >> np.arange(7, -1, -1)[:, None]) & 1  # (8, 256)
    return padded.reshape(n_bytes, 8) @ bits.astype(np.float64)
