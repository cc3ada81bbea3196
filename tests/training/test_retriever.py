"""Retriever LoRA trainer: tiny random embedder in seconds; real MiniLM in a slow test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Document
from guardrails.training.config import RetrieverTrainingConfig
from guardrails.training.retriever import (
    Triplet,
    ensure_retriever_candidate,
    load_triplets,
    shuffle_triplets,
    train_retriever_adapter,
    triplets_fingerprint,
)

REPO = Path(__file__).resolve().parents[2]
TINY = RetrieverTrainingConfig(
    max_steps=12,
    batch_size=4,
    learning_rate=1e-2,
    max_length=32,
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    logging_steps=1,
    warmup_ratio=0.0,
    seed=7,
)


@pytest.fixture(scope="module")
def trained(
    tiny_st_path: Path,
    tiny_corpus: dict[str, Document],
    tiny_triplets_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[tuple[int, float]], Path]:
    out = tmp_path_factory.mktemp("tiny_retriever") / "adapter"
    triplets = load_triplets(tiny_triplets_path, tiny_corpus)
    curve = train_retriever_adapter(tiny_st_path, triplets, TINY, out, progress=False)
    return curve, out


# ---------------------------------------------------------------------------------- training


def test_loss_curve_is_finite_logged_every_step_and_decreases(trained: Any) -> None:
    curve, _ = trained
    steps = [s for s, _ in curve]
    assert steps == list(range(1, TINY.max_steps + 1))
    losses = np.array([v for _, v in curve])
    assert np.isfinite(losses).all()
    assert losses[-3:].mean() < losses[:3].mean()


def test_adapter_is_peft_format_with_the_configured_shape(trained: Any) -> None:
    _, out = trained
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == TINY.lora_r and config["lora_alpha"] == TINY.lora_alpha
    assert set(config["target_modules"]) == set(TINY.target_modules)


def test_lora_layers_restrict_the_adapter(tiny_st_path: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    triplets = [Triplet("cats", "the cat sat", "a train"), Triplet("trains", "a train", "cats")]
    config = TINY.with_(max_steps=1, batch_size=2, lora_layers=(1,))
    train_retriever_adapter(tiny_st_path, triplets, config, tmp_path, progress=False)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["layers_to_transform"] == [1]
    with safe_open(str(tmp_path / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(".layer.1." in k for k in keys)


def test_adapter_loads_changes_embeddings_and_fingerprint(trained: Any, tiny_st_path: Path) -> None:
    from guardrails.components.embedder import Embedder

    _, out = trained
    base, tuned = Embedder.load(tiny_st_path), Embedder.load(tiny_st_path, adapter=out)
    assert tuned.fingerprint != base.fingerprint
    texts = ["the cat sat on the mat", "a fast train"]
    assert np.abs(tuned.encode(texts) - base.encode(texts)).max() > 1e-3
    assert np.allclose(
        Embedder.load(tiny_st_path, adapter=out).encode(texts), tuned.encode(texts), atol=1e-6
    )  # loading is deterministic


def test_same_seed_same_loss_curve(
    tiny_st_path: Path, tiny_corpus: dict[str, Document], tiny_triplets_path: Path, tmp_path: Path
) -> None:
    triplets = load_triplets(tiny_triplets_path, tiny_corpus)
    short = TINY.with_(max_steps=3)
    a = train_retriever_adapter(tiny_st_path, triplets, short, tmp_path / "a", progress=False)
    b = train_retriever_adapter(tiny_st_path, triplets, short, tmp_path / "b", progress=False)
    c = train_retriever_adapter(
        tiny_st_path, triplets, short.with_(seed=8), tmp_path / "c", progress=False
    )
    assert [v for _, v in a] == pytest.approx([v for _, v in b], rel=1e-5)
    assert [v for _, v in a] != pytest.approx([v for _, v in c], rel=1e-5)


def test_too_few_triplets_and_bad_base_are_training_errors(tmp_path: Path) -> None:
    one = [Triplet("q", "p", "n")]
    with pytest.raises(TrainingError, match="at least 2"):
        train_retriever_adapter(tmp_path, one, TINY, tmp_path / "out", progress=False)
    with pytest.raises(TrainingError, match="path="):
        train_retriever_adapter(tmp_path / "nope", one * 2, TINY, tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    ("method", "peft_type", "key"),
    [("ia3", "IA3", "ia3_l"), ("loha", "LOHA", ".hada_w"), ("lokr", "LOKR", ".lokr_w")],
)
def test_non_lora_methods_train_load_merge_and_change_the_vectors(
    method: str, peft_type: str, key: str, tiny_st_path: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from guardrails.components.embedder import Embedder
    from guardrails.training.peft_methods import adapter_parameter_count

    triplets = [Triplet("cats", "the cat sat", "a train"), Triplet("trains", "a train", "cats")]
    config = TINY.with_(max_steps=3, batch_size=2, method=method, learning_rate=5e-2)
    curve = train_retriever_adapter(tiny_st_path, triplets, config, tmp_path, progress=False)
    assert len(curve) == 3 and all(math.isfinite(v) for _, v in curve)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == peft_type
    with safe_open(str(tmp_path / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(key in k for k in keys)
    assert adapter_parameter_count(tmp_path) > 0
    texts = ["the cat sat on the mat", "a fast train"]
    base = Embedder.load(tiny_st_path)
    merged = Embedder.load(tiny_st_path, adapter=tmp_path)
    wrapped = Embedder.load(tiny_st_path, adapter=tmp_path, merge_adapter=False)
    assert merged.fingerprint != base.fingerprint
    assert np.abs(merged.encode(texts) - base.encode(texts)).max() > 1e-4  # training moved it
    assert np.allclose(merged.encode(texts), wrapped.encode(texts), atol=1e-5)  # merge is exact
    assert not any(
        "Tuner" in type(m).__name__ or "ia3" in type(m).__module__ for m in merged.model.modules()
    )  # served as a plain transformer


def test_ia3_is_orders_of_magnitude_smaller_than_lora(tiny_st_path: Path, tmp_path: Path) -> None:
    from guardrails.training.peft_methods import adapter_parameter_count

    triplets = [Triplet("cats", "the cat sat", "a train"), Triplet("trains", "a train", "cats")]
    counts = {}
    for method in ("lora", "ia3"):
        config = TINY.with_(max_steps=1, batch_size=2, method=method)
        train_retriever_adapter(tiny_st_path, triplets, config, tmp_path / method, progress=False)
        counts[method] = adapter_parameter_count(tmp_path / method)
    # hidden 32, 2 layers, query/key/value: IA3 one vector of 32 per layer; LoRA r=4: 4*(32+32)
    assert counts == {"ia3": 2 * 3 * 32, "lora": 2 * 3 * 4 * (32 + 32)}


def test_unknown_method_and_ia3_misuse_are_training_errors(tiny_st_path: Path) -> None:
    from guardrails.training.peft_methods import adapter_config

    with pytest.raises(TrainingError, match=r"method='adapterh'.*allowed values"):
        TINY.with_(method="adapterh")
    with pytest.raises(TrainingError, match="subset of target_modules"):
        adapter_config(TINY.with_(method="ia3", feedforward_modules=("intermediate.dense",)))
    with pytest.raises(TrainingError, match="cannot restrict lora_layers"):
        adapter_config(TINY.with_(method="ia3", lora_layers=(1,)))


# -------------------------------------------------------------------------------------- cache


def test_ensure_candidate_trains_once_then_loads(
    tiny_st_path: Path, tiny_corpus: dict[str, Document], tiny_triplets_path: Path, tmp_path: Path
) -> None:
    config = TINY.with_(max_steps=2)
    first = ensure_retriever_candidate(
        tiny_st_path, tiny_triplets_path, tiny_corpus, config, tmp_path, progress=False
    )
    again = ensure_retriever_candidate(
        tiny_st_path, tiny_triplets_path, tiny_corpus, config, tmp_path, progress=False
    )
    broken = ensure_retriever_candidate(
        tiny_st_path,
        tiny_triplets_path,
        tiny_corpus,
        config,
        tmp_path,
        shuffled=True,
        progress=False,
    )
    assert (first.trained, again.trained, broken.trained) == (True, False, True)
    assert again.path == first.path and again.record == first.record
    assert first.path.parent == tmp_path / "retriever"
    assert broken.fingerprint != first.fingerprint
    assert broken.record.data_fingerprint != first.record.data_fingerprint
    assert broken.record.extra["shuffled"] is True
    assert first.record.seed == config.seed and len(first.record.loss_curve) == 2
    assert first.record.extra["method"] == "lora"
    ia3 = ensure_retriever_candidate(
        tiny_st_path,
        tiny_triplets_path,
        tiny_corpus,
        config.with_(method="ia3"),
        tmp_path,
        progress=False,
    )  # the method is part of the fingerprint: a new adapter, not the LoRA's folder
    assert ia3.trained and ia3.fingerprint != first.fingerprint
    assert ia3.record.config["method"] == "ia3" and "method" not in first.record.config
    assert ia3.record.extra["adapter_parameters"] < first.record.extra["adapter_parameters"]


# --------------------------------------------------------------------------------------- data


def test_load_triplets_resolves_full_text(
    tiny_corpus: dict[str, Document], tiny_triplets_path: Path
) -> None:
    triplets = load_triplets(tiny_triplets_path, tiny_corpus)
    assert triplets[0] == Triplet(
        "cats on a mat", tiny_corpus["d1"].full_text, tiny_corpus["d2"].full_text
    )
    titled = {"a": Document("a", "body", "Title"), "b": Document("b", "other")}
    path = tiny_triplets_path.parent / "titled.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "a", "negative": "b"}) + "\n")
    assert load_triplets(path, titled) == [Triplet("q", "Title. body", "other")]


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"query": "q", "positive": "d1", "negative": "zz9"}', r":3: negative='zz9' is not"),
        ('{"query": "q", "negative": "d2"}', r":3: missing key 'positive'"),
        ('{"query": "", "positive": "d1", "negative": "d2"}', r":3: query is empty"),
        ('{"query": "q", "positive": "d1", "negative": "d1"}', r":3: .*same document 'd1'"),
        ('{"query": "q", "positive": ', r":3: not valid JSON"),
    ],
)
def test_bad_triplet_lines_name_file_and_line(
    tiny_corpus: dict[str, Document], tmp_path: Path, line: str, pattern: str
) -> None:
    good = '{"query": "q", "positive": "d1", "negative": "d2"}'
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(GoldenDataError, match=pattern) as info:
        load_triplets(path, tiny_corpus)
    assert str(info.value).startswith(f"{path}:3:")


def test_empty_triplet_file_is_an_error(tiny_corpus: dict[str, Document], tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(GoldenDataError, match="no triplets"):
        load_triplets(path, tiny_corpus)


def test_fingerprint_depends_on_content_and_order() -> None:
    a, b = Triplet("q1", "p1", "n1"), Triplet("q2", "p2", "n2")
    assert triplets_fingerprint([a, b]) == triplets_fingerprint([Triplet("q1", "p1", "n1"), b])
    assert triplets_fingerprint([a, b]) != triplets_fingerprint([b, a])
    assert triplets_fingerprint([a, b]) != triplets_fingerprint([a, Triplet("q2", "p2", "n3")])


@pytest.mark.parametrize("n", [2, 3, 10, 57])
def test_shuffle_moves_every_positive_and_keeps_the_rest(n: int) -> None:
    triplets = [Triplet(f"q{i}", f"p{i}", f"n{i}") for i in range(n)]
    broken = shuffle_triplets(triplets, seed=3)
    assert [t.query for t in broken] == [t.query for t in triplets]
    assert [t.negative for t in broken] == [t.negative for t in triplets]
    assert sorted(t.positive for t in broken) == sorted(t.positive for t in triplets)
    assert all(t.positive != f"p{i}" for i, t in enumerate(broken))
    assert shuffle_triplets(triplets, seed=3) == broken


# ---------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_minilm_ten_steps_on_devices_triplets(tmp_path: Path) -> None:
    from guardrails.components.embedder import Embedder, minilm_path
    from guardrails.golden import load_corpus

    golden = REPO / "golden" / "devices"
    triplets = load_triplets(golden / "train.jsonl", load_corpus(golden / "corpus.jsonl"))
    config = RetrieverTrainingConfig(max_steps=10, batch_size=8, logging_steps=1)
    curve = train_retriever_adapter(minilm_path(), triplets, config, tmp_path, progress=False)
    assert len(curve) == 10 and all(math.isfinite(v) for _, v in curve)
    base, tuned = Embedder.load(minilm_path()), Embedder.load(minilm_path(), adapter=tmp_path)
    assert tuned.fingerprint != base.fingerprint
    assert np.abs(tuned.encode(["reset the thermostat"]) - base.encode(["reset"])).max() > 0
