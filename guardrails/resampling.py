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
  into all gates' resampled sums by float64 matrix products (BLAS). Counts are integers, so
  ``c @ d`` differs from the gathered sum only by floating-point summation order.
* **Sign flips** (:func:`flip_sums`): one random bit per (resample, value), taken from raw
  64-bit words (8 flip bytes per word); instead of unpacking them to a 0/1 float matrix, each
  byte of flips indexes a table holding the sum of its 8 values for all 256 patterns ("method
  of four Russians"), so a resample costs ``n / 8`` look-ups instead of ``n`` multiply-adds.

**Streams.** Both kernels cut their resamples into row chunks whose boundaries depend only on
``n`` and ``n_resamples``, and chunk ``i`` draws from its own generator,
``PCG64(SeedSequence(seed, spawn_key=(kernel, i)))`` (:func:`_chunk_bits`: the ``i``-th child
of the ``kernel``-th child of ``SeedSequence(seed)``; ``kernel`` 0 = bootstrap, 1 = sign
flips, so a bootstrap and a sign-flip test with the same seed never share draws). A chunk's
draws are thus a function of ``(seed, kernel, i)`` alone: equal ``(n, n_resamples, seed)``
give the same counts in any order of calls, in any process (pytest-xdist workers draw the
same matrix), whichever thread draws them. Bytes are read little-endian, so big-endian
machines draw the same flips and indices.

**Threads.** Every chunk is drawn, checked (Lemire's rejections are replaced from the chunk's
own stream), counted or looked up whole by one task of a small thread pool (:func:`workers`,
at most :data:`_MAX_WORKERS`; numpy releases the GIL in these loops), as is each row block's
matrix product; the calling thread only hands out chunk indices and collects results in
order. Chunk boundaries and streams do not depend on the number of threads, so results are
bit-identical with 0, 1 or N threads. BLAS is held at one thread inside the kernels
(threadpoolctl): the products are many and small, an OpenBLAS worker spinning between them
took a core from the pool, and OpenBLAS' own split made the byte table and multi-column sums
depend on its thread count (by ~1e-13). Scratch buffers are per thread and reused: allocating
and freeing MB-sized temporaries per chunk made glibc hand the memory back and fault it in
again (counting took 3x the CPU).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from guardrails.errors import StatisticsError

__all__ = ["bootstrap_counts", "bootstrap_sums", "flip_sums", "workers"]

_COUNT_CHUNK_CELLS = 1 << 18  # count cells per drawn chunk: bincount's int64 counters ~2 MB
_MAX_CHUNK_CELLS = 1 << 21  # sign-flip cells per chunk (the flips depend on it)
_CACHE_MAX_CELLS = 1 << 27  # keep at most one uint8 count matrix of <= 128 MB (10k x 10k fits)
_BLOCKS_PER_TASK = 8  # cached row blocks per pool task: fewer, longer tasks (less hand-off)
_POOL_MIN_CELLS = 1 << 23  # smaller jobs (n x n_resamples) stay in the caller: ~ms, overhead-bound
_MAX_WORKERS = 2  # threads beside the caller's; 2 cores is the machine we size for
_BOOTSTRAP_STREAM, _FLIP_STREAM = 0, 1  # first spawn key of a chunk's stream, per kernel
_cache: dict[tuple[int, int, int], NDArray[np.uint8]] = {}
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_local = threading.local()  # per-thread scratch buffers
_T = TypeVar("_T")


def workers() -> int:
    """Pool threads used for the per-chunk work: ``GUARDRAILS_RESAMPLING_THREADS`` if set
    (``0`` or ``1`` = all in the calling thread), else the usable cores, at most
    :data:`_MAX_WORKERS`. Results do not depend on it."""
    env = os.environ.get("GUARDRAILS_RESAMPLING_THREADS", "").strip()
    if env:
        if not env.isdigit():
            raise StatisticsError(
                f"GUARDRAILS_RESAMPLING_THREADS={env!r} is not a whole number: unset it, "
                "or set 0 (no pool) or the number of threads"
            )
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, _MAX_WORKERS) if cores > 1 else 0


def _executor() -> tuple[ThreadPoolExecutor, int] | None:
    """The shared pool and its size, or None to run everything in the calling thread."""
    global _pool, _pool_size
    n = workers()
    if n < 2:
        return None
    with _pool_lock:
        if _pool is None or _pool_size != n:  # resized only when the variable changes
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="guardrails-resampling")
            _pool_size = n
        return _pool, n


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS at one thread inside the kernels: their products are many and small (a ``(26,
    n)`` block each), and between them an idle OpenBLAS worker spins on a core the pool
    needs (measured: a flip_sums call with no BLAS work in it took 2x CPU after one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _ordered_map(
    fn: Callable[..., _T], args: Iterable[tuple[Any, ...]], cells: int
) -> Iterator[_T]:
    """``fn(*a)`` for each ``a`` of ``args``, results in order; the pool runs ``fn`` a few
    chunks ahead of the results collected at most (bounded memory). A job of fewer than
    :data:`_POOL_MIN_CELLS` ``cells`` runs in the calling thread."""
    executor = _executor()  # reads (and checks) the setting on every call
    if cells < _POOL_MIN_CELLS:
        executor = None
    if executor is None:
        for a in args:
            yield fn(*a)
        return
    pool, ahead = executor[0], 2 * executor[1]
    pending: deque[Future[_T]] = deque()
    for a in args:
        pending.append(pool.submit(fn, *a))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# --------------------------------------------------------------------------- bootstrap


def bootstrap_sums(columns: NDArray[np.float64], n_resamples: int, seed: int) -> NDArray:
    """Resampled column sums ``counts @ columns``, shape ``(n_resamples, k)``, float64.

    ``columns`` is ``(n, k)``: one column per statistic sharing the samples (e.g. the deltas
    of several gates on one golden set); all use the same resamples.
    """
    n, k = columns.shape
    out = np.empty((n_resamples, k), dtype=np.float64)

    rows = max(1, _COUNT_CHUNK_CELLS // n)  # rows per product: the blocks BLAS summed before

    def product(start: int, counts: NDArray) -> None:
        for at in range(0, counts.shape[0], rows):
            block = counts[at : at + rows]
            dense = _scratch("dense", block.size, np.float64).reshape(block.shape)
            np.copyto(dense, block)
            np.matmul(dense, columns, out=out[start + at : start + at + block.shape[0]])

    with _one_blas_thread():
        for _ in _ordered_map(product, _count_blocks(n, n_resamples, seed), n * n_resamples):
            pass
    return out


def bootstrap_counts(n: int, n_resamples: int, seed: int) -> NDArray[np.uint8]:
    """The ``(n_resamples, n)`` multinomial count matrix for ``(n, n_resamples, seed)``.

    uint8: a count above 255 needs one sample drawn 256 times out of ``n``, probability below
    ``n_resamples * n / 256! < 1e-490`` at any ``n`` (and impossible for ``n < 256``).
    """
    out = np.empty((n_resamples, n), dtype=np.uint8)

    def count_into(*chunks: tuple[int, int, int]) -> None:
        for start, r, chunk in chunks:
            out[start : start + r] = _drawn_rows(n, r, seed, chunk)

    chunks = _row_chunks(n, n_resamples)
    for _ in _ordered_map(count_into, _groups(chunks, _BLOCKS_PER_TASK // 2), n * n_resamples):
        pass
    return out


def _groups(items: Iterable[_T], size: int) -> Iterator[tuple[_T, ...]]:
    """Consecutive tuples of ``size`` items (the last one shorter)."""
    group: list[_T] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield tuple(group)
            group = []
    if group:
        yield tuple(group)


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
    rows = max(1, _COUNT_CHUNK_CELLS // n) * _BLOCKS_PER_TASK  # a multiple of the product rows
    for start in range(0, n_resamples, rows):
        yield start, matrix[start : start + rows]


def _drawn_counts(n: int, n_resamples: int, seed: int) -> Iterator[tuple[int, NDArray]]:
    """Row chunks of the count matrix, drawn and counted on the fly (on the pool)."""

    def count(start: int, r: int, chunk: int) -> tuple[int, NDArray]:
        return start, _drawn_rows(n, r, seed, chunk)

    return _ordered_map(count, _row_chunks(n, n_resamples), n * n_resamples)


def _row_chunks(n: int, n_resamples: int) -> Iterator[tuple[int, int, int]]:
    """``(start, rows, chunk index)`` of the count matrix's row chunks: fixed by ``n`` and
    ``n_resamples`` (the draws depend on them)."""
    rows = max(1, _COUNT_CHUNK_CELLS // n)
    for chunk, start in enumerate(range(0, n_resamples, rows)):
        yield start, min(rows, n_resamples - start), chunk


def _drawn_rows(n: int, r: int, seed: int, chunk: int) -> NDArray[np.int64]:
    """The ``(r, n)`` counts of row chunk ``chunk``, drawn from its own stream."""
    bits = _chunk_bits(seed, _BOOTSTRAP_STREAM, chunk)
    return _count_rows(_accepted_draws(bits, r * n, n), r, n)


def _chunk_bits(seed: int, kernel: int, chunk: int) -> np.random.PCG64:
    """Chunk ``chunk``'s bit generator: ``PCG64`` seeded by the child ``(kernel, chunk)`` of
    ``SeedSequence(seed)`` (``SeedSequence(seed).spawn(2)[kernel].spawn(chunk + 1)[chunk]``),
    so its draws depend on nothing else (not on the thread, nor on the other chunks)."""
    return np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(kernel, chunk)))


def _raw_words(bits: np.random.PCG64, count: int) -> NDArray[np.uint64]:
    """``count`` raw 64-bit draws, little-endian whatever the machine (no copy on x86/ARM),
    so their bytes and 32-bit halves are the same everywhere."""
    return bits.random_raw(count).astype("<u8", copy=False)


def _count_rows(u: NDArray[np.uint32], r: int, n: int) -> NDArray[np.int64]:
    """The ``(r, n)`` counts of the indices ``_scaled(u, n)``, row ``b`` from ``u[b n:]``."""
    idx = _scaled(u, n, _scratch("scaled", u.size, np.uint64)).reshape(r, n)
    idx += _row_offsets(r, n)  # row b counts in [b n, b n + n)
    return np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)


def _row_offsets(r: int, n: int) -> NDArray[np.int64]:
    return np.arange(0, r * n, n, dtype=np.int64)[:, None]


def _uniform_below(bits: np.random.PCG64, size: int, n: int) -> NDArray[np.int64]:
    """``size`` exactly uniform integers in ``[0, n)``, ``n < 2**32``: Lemire (2019)
    multiply-shift on 32-bit draws, rejecting the ``2**32 mod n`` low products (bias-free)."""
    return _scaled(_accepted_draws(bits, size, n), n)


def _accepted_draws(bits: np.random.PCG64, size: int, n: int) -> NDArray[np.uint32]:
    """``size`` 32-bit draws whose product with ``n`` Lemire's method accepts: the low then
    high half of each raw word, in order; a draw ``u`` with ``u * n mod 2**32 < 2**32 mod n``
    is replaced, in order, by the low halves of the stream's next words."""
    u = _raw_words(bits, (size + 1) // 2).view("<u4")[:size]
    reject_below = np.uint32((1 << 32) % n)
    if not reject_below:  # n is a power of two: nothing to reject
        return u
    low = np.multiply(u, np.uint32(n), out=_scratch("low", size, np.uint32))
    bad = np.flatnonzero(np.less(low, reject_below, out=_scratch("bad", size, np.bool_)))
    while len(bad):
        redo = (bits.random_raw(len(bad)) & 0xFFFFFFFF).astype(np.uint32)
        u[bad] = redo
        bad = bad[redo * np.uint32(n) < reject_below]
    return u


def _scaled(
    u: NDArray[np.uint32], n: int, out: NDArray[np.uint64] | None = None
) -> NDArray[np.int64]:
    """Lemire's multiply-shift ``(u * n) >> 32`` of accepted draws: uniform in ``[0, n)``."""
    prod = np.multiply(u, np.uint64(n), dtype=np.uint64, out=out)
    prod >>= np.uint64(32)
    return prod.view(np.int64)


def _scratch(name: str, size: int, dtype: type[np.generic]) -> NDArray[Any]:
    """A reusable per-thread buffer of at least ``size`` items: the per-chunk temporaries
    (MBs each) are not allocated and freed thousands of times, which made glibc return the
    memory to the system and fault it back in (3x slower counting, measured)."""
    bufs: dict[str, NDArray[Any]] = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = bufs[name] = np.empty(size, dtype=dtype)
    return buf[:size]


# --------------------------------------------------------------------------- sign flips


def flip_sums(e: NDArray[np.float64], n_resamples: int, seed: int) -> NDArray[np.float64]:
    """``n_resamples`` random sign-flip sums ``sum(s * e)``, ``s`` in {-1, +1}^m.

    One random bit per (resample, value): row chunks of ``2**21 // m`` resamples, chunk
    ``i`` reading ``rows * ceil(m / 8)`` bytes, row after row, from the little-endian raw
    words of :func:`_chunk_bits` ``(seed, 1, i)``; bit ``7 - k`` of a row's byte ``j`` flips
    ``e[8 j + k]`` (``numpy.unpackbits`` order).
    """
    m = e.size
    n_bytes = (m + 7) // 8
    with _one_blas_thread():
        table = _byte_table(e, n_bytes).ravel()
    offsets = np.arange(0, n_bytes * 256, 256, dtype=np.int64)
    total = float(e.sum())
    out = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, _MAX_CHUNK_CELLS // max(m, 1))

    def chunks() -> Iterator[tuple[int, int]]:
        yield from enumerate(range(0, n_resamples, rows))

    def look_up(chunk: int, start: int) -> None:
        r = min(rows, n_resamples - start)
        flips = _flip_bytes(_chunk_bits(seed, _FLIP_STREAM, chunk), r, n_bytes)
        idx = np.add(offsets, flips, out=_scratch("idx", flips.size, np.int64).reshape(flips.shape))
        looked = _scratch("looked", flips.size, np.float64).reshape(idx.shape)
        table.take(idx, out=looked, mode="clip")  # in range: "raise" would buffer
        flipped = looked.sum(axis=1)  # sum of the flipped values per resample
        out[start : start + flips.shape[0]] = total - 2.0 * flipped

    for _ in _ordered_map(look_up, chunks(), m * n_resamples):
        pass
    return out


def _flip_bytes(bits: np.random.PCG64, rows: int, n_bytes: int) -> NDArray[np.uint8]:
    """``(rows, n_bytes)`` uniform bytes: the raw words' bytes in order (8 per word)."""
    size = rows * n_bytes
    return _raw_words(bits, -(-size // 8)).view(np.uint8)[:size].reshape(rows, n_bytes)


def _byte_table(e: NDArray[np.float64], n_bytes: int) -> NDArray[np.float64]:
    """``table[j, p]`` = sum of ``e[8 j + k]`` over the bits ``k`` set in pattern ``p``
    (most significant bit first); values past ``e``'s end are zero."""
    padded = np.zeros(n_bytes * 8, dtype=np.float64)
    padded[: e.size] = e
    bits = (np.arange(256)[None, :] >> np.arange(7, -1, -1)[:, None]) & 1  # (8, 256)
    return padded.reshape(n_bytes, 8) @ bits.astype(np.float64)
