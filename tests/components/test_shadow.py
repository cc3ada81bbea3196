"""Shadow replay and the demo-style retriever wiring, with real FAISS and tiny encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guardrails.components.embedder import Embedder, EmbeddingCache
from guardrails.components.index import IndexConfig
from guardrails.components.stack import build_retriever, ensure_index, index_folder
from guardrails.errors import ComponentError, FingerprintMismatch
from guardrails.registry import Registry
from guardrails.shadow import replay_traffic, traffic_sample

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
    shadow.register(reg, embedder_source={"base": "minilm", "adapter": "lora"}, alias="candidate")
    assert reg.resolve("index", "production").fingerprint == production.index.fingerprint
    assert reg.resolve("index", "shadow").fingerprint == shadow.index.fingerprint
    assert reg.resolve("embedder", "candidate").metadata["adapter"] == "lora"
    production.register(
        reg, embedder_source={"base": "minilm", "adapter": None}, alias="production"
    )  # idempotent: production is not re-set
    assert len([h for h in reg.history() if h.action == "set_alias"]) == 4
