"""Ray scale-out equals the in-process statistics (Ray local mode, one CPU)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from guardrails.metrics.drift import (
    compare_embeddings,
    summarize_embeddings,
    summarize_embeddings_like,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class CharEmbedder:
    """Picklable factory product: (length, count of 'a', count of ' ') per text."""

    def encode(self, texts):
        return np.array([[len(t), t.count("a"), t.count(" ")] for t in texts], dtype=np.float32)


def make_embedder() -> CharEmbedder:
    return CharEmbedder()


def test_ray_summary_and_drift_equal_in_process(local_ray, tmp_path) -> None:
    from guardrails.monitoring.scaleout import ray_compare_embeddings, ray_summarize_like

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3000, 12)).astype(np.float32)
    cur = (rng.standard_normal((2500, 12)) * 1.1 + 0.05).astype(np.float32)
    reference = summarize_embeddings(ref, ks_bins=32)
    merged = ray_summarize_like(cur, reference, block_rows=700)  # 4 blocks
    local = summarize_embeddings_like(cur, reference)
    assert merged.n == local.n == 2500
    np.testing.assert_array_equal(merged.norm_hist.counts, local.norm_hist.counts)
    np.testing.assert_array_equal(merged.norm_fine.counts, local.norm_fine.counts)
    np.testing.assert_array_equal(merged.ks_counts, local.ks_counts)
    np.testing.assert_allclose(merged.vector_sum, local.vector_sum, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(merged.unit_sum, local.unit_sum, rtol=1e-5, atol=1e-3)
    assert merged.norm_mean == pytest.approx(local.norm_mean, rel=1e-12)
    assert merged.norm_m2 == pytest.approx(local.norm_m2, rel=1e-9)
    ours, theirs = (
        ray_compare_embeddings(reference, cur, block_rows=700),
        compare_embeddings(reference, cur),
    )
    assert ours.norm_psi == theirs.norm_psi and ours.norm_kl == theirs.norm_kl
    assert ours.cosine_to_history == pytest.approx(theirs.cosine_to_history, abs=1e-8)
    assert ours.centroid_shift == pytest.approx(theirs.centroid_shift, rel=1e-6, abs=1e-8)
    np.testing.assert_array_equal(ours.ks_per_dim, theirs.ks_per_dim)
    np.save(tmp_path / "cur.npy", cur)  # .npy files read by Ray Data give the same counts
    from_file = ray_summarize_like(str(tmp_path / "cur.npy"), reference)
    np.testing.assert_array_equal(from_file.norm_hist.counts, local.norm_hist.counts)


def test_ray_reembed_keeps_input_order(local_ray) -> None:
    from guardrails.monitoring.scaleout import ray_reembed

    texts = [f"{'a' * (i % 5)} text {i}" for i in range(50)]
    out = ray_reembed(texts, make_embedder, batch_size=7)
    np.testing.assert_array_equal(out, CharEmbedder().encode(texts))


def test_ray_is_never_imported_by_default() -> None:
    code = (
        "import sys, guardrails.monitoring.drift, guardrails.monitoring.triggers, "
        "guardrails.training.curation, "
        "guardrails.monitoring.scaleout; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
