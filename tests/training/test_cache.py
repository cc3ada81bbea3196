"""The fingerprint-keyed adapter cache: identity, reuse, a file lock across processes, crashes."""

from __future__ import annotations

import json
import multiprocessing
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.errors import TrainingError
from guardrails.training.cache import (
    RECORD_FILE,
    CandidateArtifact,
    candidate_fingerprint,
    ensure_candidate,
    load_record,
)
from guardrails.training.config import (
    CONFIG_TYPES,
    DPOConfig,
    RetrieverTrainingConfig,
    config_from_dict,
)

CONFIG = RetrieverTrainingConfig(max_steps=3)
DATA, BASE = "sha256:" + "d" * 64, "sha256:" + "b" * 64


def fake_train(counter: Path, out_dir: Path, delay: float = 0.0) -> list[tuple[int, float]]:
    """Stands in for a trainer: counts its calls in ``counter`` and writes a dummy adapter."""
    with open(counter, "a", encoding="utf-8") as f:
        f.write(f"{out_dir}\n")
    time.sleep(delay)
    (out_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
    return [(1, 2.0), (2, 1.5)]


def calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def ensure(
    root: Path,
    counter: Path,
    config: Any = CONFIG,
    data: str = DATA,
    base: str = BASE,
    delay: float = 0.0,
) -> CandidateArtifact:
    return ensure_candidate(
        "retriever",
        config,
        data_fingerprint=data,
        base_fingerprint=base,
        train=partial(fake_train, counter, delay=delay),
        root=root,
    )


# ---------------------------------------------------------------------------------- identity


def test_fingerprint_changes_with_config_data_base_and_component() -> None:
    fp = candidate_fingerprint("retriever", CONFIG, DATA, BASE)
    assert fp == candidate_fingerprint(
        "retriever", RetrieverTrainingConfig(max_steps=3), DATA, BASE
    )
    others = {
        candidate_fingerprint("retriever", CONFIG.with_(learning_rate=2e-3), DATA, BASE),
        candidate_fingerprint("retriever", CONFIG.with_(seed=CONFIG.seed + 1), DATA, BASE),
        candidate_fingerprint("retriever", CONFIG.with_(target_modules=("query",)), DATA, BASE),
        candidate_fingerprint("retriever", CONFIG, "sha256:" + "e" * 64, BASE),
        candidate_fingerprint("retriever", CONFIG, DATA, "sha256:" + "c" * 64),
        candidate_fingerprint("reranker", CONFIG, DATA, BASE),
    }
    assert fp not in others and len(others) == 6


def test_second_call_loads_and_changed_inputs_retrain(tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    first = ensure(tmp_path, counter)
    again = ensure(tmp_path, counter)
    assert (first.trained, again.trained, calls(counter)) == (True, False, 1)
    assert again.path == first.path and again.record == first.record
    changed_data = ensure(tmp_path, counter, data="sha256:" + "e" * 64)
    changed_config = ensure(tmp_path, counter, config=CONFIG.with_(lora_r=4))
    assert changed_data.trained and changed_config.trained and calls(counter) == 3
    assert len({first.path, changed_data.path, changed_config.path}) == 3


def test_record_round_trips_with_config_seed_curve_and_versions(tmp_path: Path) -> None:
    art = ensure(tmp_path, tmp_path / "calls.txt")
    assert art.path == tmp_path / "retriever" / art.fingerprint.split(":")[1][:16]
    rec = load_record(art.path)
    assert rec == art.record
    # the device is not identity; method / feedforward_modules only when not their default
    defaults = {"device": None, "method": "lora", "feedforward_modules": ()}
    identity = {k: v for k, v in CONFIG.__dict__.items() if k not in defaults or v != defaults[k]}
    identity.pop("device", None)
    assert rec.config == json.loads(json.dumps(identity))
    assert (rec.data_fingerprint, rec.base_fingerprint, rec.seed) == (DATA, BASE, CONFIG.seed)
    assert rec.loss_curve == ((1, 2.0), (2, 1.5)) and rec.wall_time_s >= 0
    assert "torch" in rec.versions and "peft" in rec.versions
    assert sorted(p.name for p in art.path.iterdir()) == ["adapter_config.json", RECORD_FILE]


def test_peft_adapter_round_trips_through_the_cache(tiny_st_path: Path, tmp_path: Path) -> None:
    """The vectors of the in-memory adapted model equal those of the cached, re-loaded one."""
    from guardrails.components.embedder import Embedder

    probe = ["the cat sat on the mat", "a fast train"]
    expected: dict[str, np.ndarray] = {}

    def train(out_dir: Path) -> list[tuple[int, float]]:
        expected["vectors"] = _random_lora(tiny_st_path, out_dir, probe)
        return [(1, 0.5)]

    art = ensure_candidate(
        "retriever",
        CONFIG,
        data_fingerprint=DATA,
        base_fingerprint=BASE,
        train=train,
        root=tmp_path,
    )
    loaded = Embedder.load(tiny_st_path, adapter=art.path)
    np.testing.assert_allclose(loaded.encode(probe), expected["vectors"], atol=1e-5)
    assert np.abs(Embedder.load(tiny_st_path).encode(probe) - expected["vectors"]).max() > 1e-3


def _random_lora(base: Path, out_dir: Path, probe: list[str]) -> np.ndarray:
    """Add a LoRA with random B (peft starts B at 0: a no-op), save it, embed ``probe``."""
    import torch
    from peft import LoraConfig
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base), device="cpu")
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    model.eval()
    vectors = model.encode(probe, normalize_embeddings=True, convert_to_numpy=True)
    model.transformers_model.save_pretrained(str(out_dir))  # type: ignore[union-attr]
    return np.asarray(vectors, dtype=np.float32)


# ------------------------------------------------------------------------- crash and locking


def test_crash_leaves_no_folder_and_the_next_call_trains(tmp_path: Path) -> None:
    def boom(out_dir: Path) -> list[tuple[int, float]]:
        (out_dir / "adapter_model.safetensors").write_bytes(b"half written")
        raise RuntimeError("killed mid-training")

    with pytest.raises(RuntimeError, match="killed"):
        ensure_candidate(
            "retriever",
            CONFIG,
            data_fingerprint=DATA,
            base_fingerprint=BASE,
            train=boom,
            root=tmp_path,
        )
    leftovers = [p for p in (tmp_path / "retriever").iterdir() if p.is_dir()]
    assert leftovers == []
    counter = tmp_path / "calls.txt"
    art = ensure(tmp_path, counter)
    assert art.trained and calls(counter) == 1 and (art.path / RECORD_FILE).is_file()


def test_partial_folder_without_record_is_retrained(tmp_path: Path) -> None:
    fp = candidate_fingerprint("retriever", CONFIG, DATA, BASE)
    stale = tmp_path / "retriever" / fp.split(":")[1][:16]
    stale.mkdir(parents=True)
    (stale / "adapter_model.safetensors").write_bytes(b"from a killed run")
    art = ensure(tmp_path, tmp_path / "calls.txt")
    assert art.trained and art.path == stale
    assert not (stale / "adapter_model.safetensors").exists()


def _worker(root: str, counter: str, out: str) -> None:
    art = ensure(Path(root), Path(counter), delay=1.0)
    Path(out).write_text(json.dumps({"path": str(art.path), "trained": art.trained}))


def test_two_processes_train_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    counter, outs = tmp_path / "calls.txt", [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), str(counter), str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    results = [json.loads(o.read_text()) for o in outs]
    assert calls(counter) == 1
    assert sorted(r["trained"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]


# ----------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("kind", sorted(CONFIG_TYPES))
def test_every_config_is_frozen_seeded_hashable_and_fingerprintable(kind: str) -> None:
    config = CONFIG_TYPES[kind]()
    assert isinstance(config.seed, int) and config.lora_r > 0 and config.target_modules
    hash(config)
    with pytest.raises(AttributeError):
        config.seed = 1  # type: ignore[misc]
    fp = candidate_fingerprint(kind, config, DATA, BASE)
    assert fp != candidate_fingerprint(kind, config.with_(seed=config.seed + 1), DATA, BASE)


def test_config_from_dict_accepts_kebab_keys_and_lists_and_rejects_unknown() -> None:
    config = config_from_dict("dpo", {"beta": 0.2, "target-modules": ["q_proj"]})
    assert config == DPOConfig(beta=0.2, target_modules=("q_proj",))
    with pytest.raises(TrainingError, match=r"unknown field.*'betta'"):
        config_from_dict("dpo", {"betta": 0.2})
    with pytest.raises(TrainingError, match="unknown training config kind='ppo'"):
        config_from_dict("ppo", {})


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"learning_rate": 0.0}, "learning_rate=0.0"),
        ({"lora_r": 0}, "lora_r=0"),
        ({"epochs": 0, "max_steps": -1}, "epochs=0"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
    ],
)
def test_config_rejects_impossible_values(changes: dict[str, Any], pattern: str) -> None:
    with pytest.raises(TrainingError, match=pattern):
        RetrieverTrainingConfig(**changes)
