"""guardrails.resampling against the straightforward implementations it replaced (the oracles).

* sign flips: the former unpack-the-bits-and-multiply test, on flips drawn here from the
  documented per-chunk streams; the byte-table sums must give the *same* p-values;
* bootstrap: the index-gathering bootstrap ``d[idx].mean(axis=1)`` on the very indices the
  count matrix is built from, and the former per-gate bootstrap (its own stream) within
  Monte-Carlo error;
* the streams themselves: pinned seeded values, uniform counts and balanced, independent flips.
"""

from __future__ import annotations

import numpy as np
import pytest

from guardrails import resampling
from guardrails.errors import StatisticsError
from guardrails.gates.evaluate import evaluate_gate
from guardrails.policy import DEFAULT_POLICY
from guardrails.stats import paired_bootstrap_ci, paired_randomization_test

scipy_stats = pytest.importorskip("scipy.stats")

_MAX_CHUNK_CELLS = 1 << 21
_REL_TIE = 1e-10


def chunk_bits(seed: int, kernel: int, chunk: int) -> np.random.PCG64:
    """The documented stream of a chunk (0 = bootstrap, 1 = sign flips), spelled with spawn."""
    child = np.random.SeedSequence(seed).spawn(2)[kernel].spawn(chunk + 1)[chunk]
    return np.random.PCG64(child)


def flip_bytes(seed: int, chunk: int, rows: int, n_bytes: int) -> np.ndarray:
    """A chunk's flip bytes: its raw 64-bit words' bytes, little-endian, row after row."""
    words = chunk_bits(seed, 1, chunk).random_raw(-(-rows * n_bytes // 8)).astype("<u8")
    return words.view(np.uint8)[: rows * n_bytes].reshape(rows, n_bytes)


def _chunks(n_resamples: int, n: int) -> list[int]:
    rows = max(1, _MAX_CHUNK_CELLS // max(n, 1))
    full, rest = divmod(n_resamples, rows)
    return [rows] * full + ([rest] if rest else [])


def reference_randomization_test(
    d: np.ndarray, threshold: float, alternative: str, n_resamples: int, seed: int
) -> float:
    """The sign-flip test before the byte table (random flips only, m > 16)."""
    e = np.asarray(d, dtype=np.float64) - threshold
    e = e[e != 0.0]
    assert e.size > 16, "fewer changed values are enumerated exactly, not sampled"
    total, tol = float(e.sum()), _REL_TIE * float(np.abs(e).sum())
    count = 0
    for chunk, rows in enumerate(_chunks(n_resamples, e.size)):
        n_bytes = (e.size + 7) // 8
        raw = flip_bytes(seed, chunk, rows, n_bytes)
        flipped = np.unpackbits(raw, axis=1)[:, : e.size].astype(np.float64)
        sums = total - 2.0 * (flipped @ e)
        if alternative == "less":
            count += int(np.count_nonzero(sums <= total + tol))
        elif alternative == "greater":
            count += int(np.count_nonzero(sums >= total - tol))
        else:
            count += int(np.count_nonzero(np.abs(sums) >= abs(total) - tol))
    return (1 + count) / (1 + n_resamples)


def reference_bootstrap_ci(d: np.ndarray, alpha: float, n_resamples: int, seed: int) -> tuple:
    """The per-call index-gathering bootstrap before the shared count matrix."""
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.concatenate(
        [
            d[rng.integers(0, d.size, size=(rows, d.size))].mean(axis=1)
            for rows in _chunks(n_resamples, d.size)
        ]
    )
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def gathered_means(d: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """``d[idx].mean(axis=1)`` on the indices behind :func:`resampling.bootstrap_counts`."""
    rows = max(1, resampling._COUNT_CHUNK_CELLS // d.size)
    parts = []
    for chunk, start in enumerate(range(0, n_resamples, rows)):
        r = min(rows, n_resamples - start)
        idx = resampling._uniform_below(chunk_bits(seed, 0, chunk), r * d.size, d.size)
        parts.append(d[idx.reshape(r, d.size)])
    return np.concatenate(parts).mean(axis=1)


def _deltas(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(0.0, 0.2, n)
    if kind == "ternary":  # a 0/1 metric's paired deltas: ties everywhere
        return rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.1, 0.8, 0.1])
    return rng.integers(-10, 11, size=n) / 10.0  # a coarse ranking metric's lattice


@pytest.mark.parametrize("kind", ["normal", "ternary", "lattice"])
@pytest.mark.parametrize(("n", "threshold"), [(200, 0.0), (300, -0.01), (2500, 0.02)])
def test_sign_flip_p_values_equal_the_former_test(kind: str, n: int, threshold: float) -> None:
    d = _deltas(kind, n, n)
    for seed in (0, 7):
        for alternative in ("less", "greater", "two-sided"):
            got = paired_randomization_test(d, threshold, alternative, 3001, seed)  # type: ignore[arg-type]
            assert got == reference_randomization_test(d, threshold, alternative, 3001, seed)


def test_flip_sums_follow_unpackbits_bit_order() -> None:
    e = np.arange(1.0, 12.0)  # 11 values: two bytes, the second one partly padding
    raw = flip_bytes(3, 0, 5, 2)
    flipped = np.unpackbits(raw, axis=1)[:, :11].astype(np.float64)
    np.testing.assert_array_equal(resampling.flip_sums(e, 5, 3), e.sum() - 2.0 * flipped @ e)


@pytest.mark.parametrize("kind", ["normal", "ternary", "lattice"])
@pytest.mark.parametrize("n", [5, 257, 3000])
def test_bootstrap_sums_equal_gathered_means(kind: str, n: int) -> None:
    d = _deltas(kind, n, n + 1)
    got = resampling.bootstrap_sums(d[:, None], 2000, 11)[:, 0] / n
    np.testing.assert_allclose(got, gathered_means(d, 2000, 11), rtol=0.0, atol=1e-12)


def test_count_rows_sum_to_n_and_the_cache_matches_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = resampling.bootstrap_counts(1000, 700, 5)
    assert counts.shape == (700, 1000) and np.all(counts.sum(axis=1, dtype=np.int64) == 1000)
    cols = _deltas("normal", 1000, 2)[:, None] * np.array([1.0, -3.0])
    cached = resampling.bootstrap_sums(cols, 700, 5)
    monkeypatch.setattr(resampling, "_CACHE_MAX_CELLS", 0)  # drawn chunk by chunk instead
    np.testing.assert_array_equal(resampling.bootstrap_sums(cols, 700, 5), cached)
    assert not np.array_equal(resampling.bootstrap_counts(1000, 700, 6), counts)


def test_uniform_below_rejects_the_biased_products() -> None:
    """n = 3 * 2**30: plain multiply-shift maps two 32-bit draws to every third value
    (P(v % 3 == 0) = 1/2); with Lemire's rejection each value is equally likely (1/3)."""
    v = resampling._uniform_below(np.random.PCG64(0), 60_000, 3 << 30)
    assert v.min() >= 0 and v.max() < 3 << 30
    assert abs(np.mean(v % 3 == 0) - 1 / 3) < 0.01


@pytest.mark.parametrize("kind", ["normal", "ternary"])
def test_bootstrap_ci_agrees_with_the_former_one_within_monte_carlo_error(kind: str) -> None:
    """Another stream, the same distribution: bounds 20k resamples apart differ by about
    0.02 standard errors each (quantile noise), so 0.15 SE is a 5-sigma bound."""
    d = _deltas(kind, 400, 9)
    se = d.std(ddof=1) / np.sqrt(d.size)
    new = paired_bootstrap_ci(d, 0.05, 20000, 4)
    old = reference_bootstrap_ci(d, 0.05, 20000, 4)
    assert abs(new[0] - old[0]) < 0.15 * se and abs(new[1] - old[1]) < 0.15 * se


def _gates(order: list[int], n: int = 600) -> dict[str, tuple]:
    rng = np.random.default_rng(1)
    base = [rng.uniform(size=n) for _ in range(3)]
    cand = [b + rng.normal(0.0, 0.05, n) for b in base]
    out = {}
    for i in order:
        g = evaluate_gate(
            "noninferior",
            "ndcg@10",
            candidate=cand[i],
            baseline=base[i],
            policy=DEFAULT_POLICY,
            name=f"gate-{i}",
            overrides={"max_drop": 0.01},
        )
        out[g.name] = (g.status, g.ci, g.p_value, g.extra["p_pass"], g.seed)
    return out


def test_gates_are_reproducible_in_any_order_and_after_other_sizes() -> None:
    first = _gates([0, 1, 2])
    resampling._cache.clear()
    paired_bootstrap_ci(np.arange(50.0), seed=DEFAULT_POLICY.seed)  # evicts the n=600 matrix
    assert _gates([2, 0, 1]) == first


def test_gates_share_the_bootstrap_but_not_the_sign_flips() -> None:
    d = _deltas("normal", 500, 3)
    a, b = (
        evaluate_gate(
            "noninferior",
            "ndcg@10",
            candidate=d,
            baseline=np.zeros(500),
            policy=DEFAULT_POLICY,
            name=name,
            overrides={"max_drop": 0.01},
        )
        for name in ("answers", "retrieval")
    )
    assert a.ci == b.ci and a.extra["bootstrap_seed"] == DEFAULT_POLICY.seed
    assert a.seed != b.seed and a.extra["p_pass"] != b.extra["p_pass"]


@pytest.mark.parametrize("n", [7, 1000, 3001])
def test_results_do_not_depend_on_the_number_of_threads(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool only runs the per-chunk work; draws, chunks and sums are the same."""
    d = _deltas("normal", n, 4)
    cols = d[:, None] * np.array([1.0, 0.5])
    results = []
    monkeypatch.setattr(resampling, "_POOL_MIN_CELLS", 0)  # small jobs on the pool too
    for threads in ("0", "2", "3"):
        monkeypatch.setenv("GUARDRAILS_RESAMPLING_THREADS", threads)
        resampling._cache.clear()
        results.append(
            (
                resampling.bootstrap_counts(n, 900, 8),
                resampling.bootstrap_sums(cols, 900, 8),
                resampling.flip_sums(d, 2001, 8),
            )
        )
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


def test_on_the_fly_counts_equal_the_cached_matrix_with_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARDRAILS_RESAMPLING_THREADS", "2")
    monkeypatch.setattr(resampling, "_POOL_MIN_CELLS", 0)
    cols = _deltas("lattice", 800, 6)[:, None]
    resampling._cache.clear()
    cached = resampling.bootstrap_sums(cols, 1500, 2)
    monkeypatch.setattr(resampling, "_CACHE_MAX_CELLS", 0)
    np.testing.assert_array_equal(resampling.bootstrap_sums(cols, 1500, 2), cached)
    want = resampling.bootstrap_counts(800, 1500, 2).astype(np.float64) @ cols
    np.testing.assert_allclose(cached, want, rtol=0.0, atol=1e-9)


def test_a_bad_thread_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAILS_RESAMPLING_THREADS", "two")
    with pytest.raises(StatisticsError, match="GUARDRAILS_RESAMPLING_THREADS='two'"):
        resampling.flip_sums(np.arange(1.0, 40.0), 10, 0)


def test_seeded_draws_are_pinned() -> None:
    """The streams are part of the recorded evidence (a verdict's seeds must reproduce it):
    a change of stream has to show up here, and be made on purpose."""
    assert resampling.bootstrap_counts(6, 3, 0).tolist() == PINNED_COUNTS
    e = np.array([0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, -2.0, 1.0])
    assert resampling.flip_sums(e, 4, 0).tolist() == PINNED_FLIP_SUMS


PINNED_COUNTS = [[1, 0, 1, 1, 0, 3], [1, 0, 1, 0, 3, 1], [3, 1, 0, 0, 0, 2]]
PINNED_FLIP_SUMS = [3.5, 8.0, 4.5, 2.5]


def test_counts_are_uniform_and_chunks_independent() -> None:
    """Column totals of a 30000 x 50 matrix follow the multinomial's chi-square, and no
    chunk repeats the first one's draws (a stream per chunk, not one stream reused)."""
    n, n_resamples = 50, 30000  # 2**18 // 50 = 5242 rows per chunk: 6 chunks
    counts = resampling.bootstrap_counts(n, n_resamples, 12).astype(np.int64)
    totals = counts.sum(axis=0)
    chi2 = float(((totals - n_resamples) ** 2 / n_resamples).sum())
    assert scipy_stats.chi2.sf(chi2, n - 1) > 1e-4
    rows = resampling._COUNT_CHUNK_CELLS // n
    for i in range(1, n_resamples // rows):
        assert not np.array_equal(counts[:rows], counts[i * rows : (i + 1) * rows])
    assert counts.max() >= 3 and np.all(counts.sum(axis=1) == n)


def test_flips_are_balanced_and_independent() -> None:
    """With ``e = 2**k`` a flip sum spells its flip pattern exactly: every bit is +-1 with
    probability 1/2, and the number flipped per resample is Binomial(20, 1/2)."""
    m, n_resamples = 20, 40000  # 104857 rows per chunk: the pattern reads across chunks too
    e = 2.0 ** np.arange(m)
    flipped = ((e.sum() - resampling.flip_sums(e, n_resamples, 5)) / 2.0).astype(np.int64)
    bits = (flipped[:, None] >> np.arange(m)) & 1
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 4.0 * 0.5 / np.sqrt(n_resamples))
    observed = np.bincount(bits.sum(axis=1), minlength=m + 1)
    expected = scipy_stats.binom.pmf(np.arange(m + 1), m, 0.5) * n_resamples
    keep = expected > 5
    chi2 = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    assert scipy_stats.chi2.sf(chi2, int(keep.sum()) - 1) > 1e-4


def test_flips_read_their_own_stream_not_the_bootstraps() -> None:
    """``e = 2**k`` over 16 values: the flip sums spell each resample's 2 bytes, which are
    the sign-flip stream's (kernel 1), not the bootstrap's (kernel 0) of the same seed."""
    e = 2.0 ** (7 - np.arange(16) % 8) * 256.0 ** (1 - np.arange(16) // 8)  # byte order
    flipped = ((e.sum() - resampling.flip_sums(e, 50, 9)) / 2.0).astype(np.int64)
    got = np.stack([flipped >> 8, flipped & 0xFF], axis=1).astype(np.uint8)
    np.testing.assert_array_equal(got, flip_bytes(9, 0, 50, 2))
    bootstrap = chunk_bits(9, 0, 0).random_raw(13).astype("<u8").view(np.uint8)[:100]
    assert not np.array_equal(got.ravel(), bootstrap)
