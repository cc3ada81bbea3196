"""Shadow replay and the demo-style retriever wiring, with real FAISS and tiny encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guardrails.components.embedder import Embedder, EmbeddingCache
from guardrails.components.index import IndexConfig
from guardrails.components.shadow import (
    block_quantiles,
    measure_throughput,
    model_memory_bytes,
    replay_traffic,
    serving_memory_bytes,
    traffic_sample,
)
from guardrails.components.stack import build_retriever, ensure_index, index_folder
from guardrails.errors import ComponentError, FingerprintMismatch
from guardrails.registry import Registry

TEXTS = {
    f"d{i}": f"the {w} machine proof number {i} of class {c}"
    for i, (w, c) in enumerate(
        zip(
            ["red", "green", "blue", "big", "small", "old"] * 5,
            ["one", "two", "three", "four", "five"] * 6,
            strict=False,
        )
    )
}
QUERIES = [
    (f"q{i}", f"{w} machine {c}")
    for i, (w, c) in enumerate(
        [("red", "one"), ("blue", "two"), ("old", "five"), ("big", "three"), ("small", "four")] * 4
    )
]


@pytest.fixture(scope="module")
def production(tiny_st_path: Path, tmp_path_factory: pytest.TempPathFactory):
    emb = Embedder.load(tiny_st_path)
    root = tmp_path_factory.mktemp("idx")
    return build_retriever(emb, TEXTS, root, cache=EmbeddingCache(root / "cache"))


@pytest.fixture(scope="module")
def shadow(tiny_st_path: Path, tiny_lora_path: Path, tmp_path_factory: pytest.TempPathFactory):
    emb = Embedder.load(tiny_st_path, adapter=tiny_lora_path)
    return build_retriever(
        emb, TEXTS, tmp_path_factory.mktemp("shadow"), config=IndexConfig(kind="hnsw")
    )


def test_index_is_cached_by_fingerprint(production, tmp_path: Path) -> None:
    folder = index_folder(production.embedder, TEXTS, production.index_path.parent)
    assert folder == production.index_path and (folder / "manifest.json").is_file()
    again = ensure_index(production.embedder, TEXTS, production.index_path.parent)
    assert again.fingerprint == production.index.fingerprint
    changed = dict(TEXTS, d0="a new text")
    assert index_folder(production.embedder, changed, folder.parent) != folder


def test_replay_against_itself_agrees_fully(production) -> None:
    result = replay_traffic(production, production, QUERIES, k=5)
    assert np.allclose(result.overlap, 1.0) and np.allclose(result.rbo, 1.0)
    assert len(result.query_ids) == len(QUERIES)
    assert result.production_memory_bytes == result.shadow_memory_bytes > 0
    summary = result.latency_summary()
    assert summary["production"]["p50"] <= summary["production"]["p95"]


def test_replay_with_a_different_embedder_disagrees(production, shadow) -> None:
    result = replay_traffic(production, shadow, QUERIES, k=5)
    assert result.overlap.mean() < 1.0
    assert ((result.rbo >= 0) & (result.rbo <= 1)).all()
    assert shadow.index.fingerprint != production.index.fingerprint


def test_gradual_migration_routes_a_seeded_share(production, shadow) -> None:
    half = replay_traffic(production, shadow, QUERIES, k=5, shadow_share=0.5, seed=3)
    again = replay_traffic(production, shadow, QUERIES, k=5, shadow_share=0.5, seed=3)
    assert 0 < len(half.query_ids) < len(QUERIES) and half.query_ids == again.query_ids
    with pytest.raises(ComponentError, match="shadow_share=0"):
        replay_traffic(production, shadow, QUERIES, shadow_share=0)


def test_shadow_index_refuses_production_queries(production, shadow) -> None:
    vectors = production.embedder.encode_queries(["red machine"])
    with pytest.raises(FingerprintMismatch):
        shadow.index.search(vectors, 3, embedder_fingerprint=production.embedder.fingerprint)


def test_traffic_sample_fills_with_logged_queries() -> None:
    golden = [("g1", "a"), ("g2", "b")]
    sample = traffic_sample(golden, ["b", "c", "d", "c", ""], size=4, seed=0)
    assert sample[:2] == golden and {t for _, t in sample[2:]} == {"c", "d"}


def test_register_bootstraps_production_then_shadow(production, shadow, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.sqlite")
    production.register(
        reg, embedder_source={"base": "minilm", "adapter": None}, alias="production"
    )
    lora = tmp_path / "adapters" / "lora"
    shadow.register(reg, embedder_source={"base": "minilm", "adapter": lora}, alias="candidate")
    assert reg.resolve("index", "production").fingerprint == production.index.fingerprint
    assert reg.resolve("index", "shadow").fingerprint == shadow.index.fingerprint
    assert reg.resolve("index", "shadow").metadata["config"]["kind"] == shadow.index.config.kind
    # kept relative to the registry's root, so a moved checkout still resolves it
    assert reg.resolve("embedder", "candidate").metadata["adapter"] == "adapters/lora"
    assert reg.locate(reg.resolve("embedder", "candidate").metadata["adapter"]) == lora
    production.register(
        reg, embedder_source={"base": "minilm", "adapter": None}, alias="production"
    )  # idempotent: production is not re-set
    assert len([h for h in reg.history() if h.action == "set_alias"]) == 4


# ------------------------------------------------------------------ performance guardrails


def test_block_p95_known_answer() -> None:
    # 5 blocks of 20: production block b is 1..20 (+100 b), the shadow the same plus 2 ms
    prod = np.concatenate([np.arange(1.0, 21.0) + 100 * b for b in range(5)])
    out = block_quantiles(prod, prod + 2.0, ids=[f"q{i}" for i in range(100)])
    # np.percentile(1..20, 95) = 1 + 0.95 * 19 = 19.05 (linear interpolation)
    assert np.allclose(out.production, [19.05 + 100 * b for b in range(5)])
    assert np.allclose(out.shadow - out.production, 2.0)
    assert out.sizes == (20,) * 5 and out.q == 95.0
    assert out.ids[0] == "block-0:q0..q19" and out.ids[-1] == "block-4:q80..q99"


def test_block_p95_is_per_block_not_global() -> None:
    # one slow query per block moves that block's p95, not the others'
    lat = np.ones(100)
    lat[25] = 1000.0
    out = block_quantiles(lat, lat, blocks=5)
    assert out.production[1] > 1.0 and np.allclose(out.production[[0, 2, 3, 4]], 1.0)


@pytest.mark.parametrize(
    ("n", "blocks", "smallest"), [(360, 12, 30), (100, 5, 20), (61, 3, 20), (12, 1, 12)]
)
def test_block_count_keeps_blocks_of_twenty(n: int, blocks: int, smallest: int) -> None:
    out = block_quantiles(np.ones(n), np.ones(n))
    assert len(out.sizes) == blocks and min(out.sizes) == smallest and sum(out.sizes) == n


def test_block_quantiles_refuses_unpaired_latencies() -> None:
    with pytest.raises(ComponentError, match="paired"):
        block_quantiles(np.ones(30), np.ones(29))
    with pytest.raises(ComponentError, match="blocks"):
        block_quantiles(np.ones(3), np.ones(3), blocks=4)


def test_replay_exposes_block_p95(production) -> None:
    result = replay_traffic(production, production, QUERIES, k=5)
    blocks = result.block_p95(blocks=4)
    assert blocks.sizes == (5,) * 4 and blocks.ids[0].startswith("block-0:q0..")
    first = result.production_latency_ms[:5]
    assert blocks.production[0] == pytest.approx(np.percentile(first, 95))


class _Recorder:
    """A ``search_run`` stand-in that logs which side ran each batch."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def search_run(self, ids, texts, k):
        self.log.append(self.name)
        return {q: {} for q in ids}


def test_throughput_alternates_sides_per_repeat() -> None:
    log: list[str] = []
    texts = [f"query {i}" for i in range(10)]
    tp = measure_throughput(
        _Recorder("p", log), _Recorder("s", log), texts, repeats=4, batch_size=4
    )
    assert tp.first == ("production", "shadow", "production", "shadow")
    # warm-up (one batch each), then 3 batches per side per repeat, first side alternating
    assert log == ["p", "s"] + ["p"] * 3 + ["s"] * 3 + ["s"] * 3 + ["p"] * 3 + (
        ["p"] * 3 + ["s"] * 3 + ["s"] * 3 + ["p"] * 3
    )
    assert tp.ids[1] == "repeat-1:shadow-first" and tp.n_queries == 10


def test_throughput_of_real_retrievers_is_positive(production, shadow) -> None:
    texts = [t for _, t in QUERIES]
    tp = measure_throughput(production, shadow, texts, repeats=3, batch_size=8, depth=5)
    assert tp.production_qps.shape == tp.shadow_qps.shape == (3,)
    assert (tp.production_qps > 0).all() and (tp.shadow_qps > 0).all()
    assert tp.summary()["repeats"] == 3
    with pytest.raises(ComponentError, match="repeats"):
        measure_throughput(production, shadow, texts, repeats=0)


def test_model_memory_counts_parameters_and_buffers_exactly() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    # Linear: (12 + 4) float32 = 64; BatchNorm: weight + bias 32, running mean/var 32,
    # num_batches_tracked one int64 = 8
    assert model_memory_bytes(model) == 64 + 32 + 32 + 8
    tied = torch.nn.Sequential(model[0], model[0])  # a shared layer counts once
    assert model_memory_bytes(tied) == 64
    assert model_memory_bytes(model.half()) == (12 + 4 + 8 + 8) * 2 + 8


def test_serving_memory_of_a_merged_lora_equals_the_base_model(
    production, shadow, tiny_st_path: Path, tiny_lora_path: Path
) -> None:
    prod, cand = serving_memory_bytes(production), serving_memory_bytes(shadow)
    params = sum(p.numel() * p.element_size() for p in production.embedder.model.parameters())
    assert prod["model"] >= params > 0
    assert prod["total"] == prod["index"] + prod["model"]
    assert prod["index"] == production.index.memory_bytes()
    # the shadow's LoRA is merged into the weights and unwrapped: no extra tensors to serve
    assert not any("lora_" in name for name, _ in shadow.embedder.model.named_parameters())
    assert cand["model"] == prod["model"]
    unmerged = Embedder.load(tiny_st_path, adapter=tiny_lora_path, merge_adapter=False)
    lora = sum(
        p.numel() * p.element_size()
        for name, p in unmerged.model.named_parameters()
        if "lora_" in name
    )
    assert lora > 0 and model_memory_bytes(unmerged.model) == prod["model"] + lora


def test_served_index_config_follows_the_production_index(
    production, shadow, tmp_path: Path
) -> None:
    from guardrails.components.index import IndexConfig
    from guardrails.components.stack import served_index_config

    fresh = Registry(tmp_path / "fresh.sqlite")
    assert served_index_config(fresh, IndexConfig(kind="ivf")).kind == "ivf"  # none served yet
    served_hnsw = Registry(tmp_path / "hnsw.sqlite")
    shadow.register(served_hnsw, embedder_source={"base": "minilm"}, alias="production")
    config = served_index_config(served_hnsw)
    assert config == shadow.index.config and config.kind == "hnsw"
    served_flat = Registry(tmp_path / "flat.sqlite")
    production.register(served_flat, embedder_source={"base": "minilm"}, alias="production")
    assert served_index_config(served_flat).kind == production.index.config.kind == "flat"
