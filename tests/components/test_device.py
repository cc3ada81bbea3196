"""The device setting: resolved (auto -> CUDA when present), validated, and carried to the
models and the trainers' arguments. Only the CPU exists here, so CUDA is simulated by making
torch report one and by recording what reaches the loaders."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.components import device as device_module
from guardrails.components.device import check_device, resolve_device
from guardrails.errors import ComponentError, TrainingError

torch = pytest.importorskip("torch")


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_is_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"


@pytest.mark.usefixtures("fake_cuda")
def test_auto_prefers_cuda_and_cuda_indices_are_checked() -> None:
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ComponentError, match=r"device='cuda:2' but torch sees 2 CUDA"):
        resolve_device("cuda:2")


def test_asking_for_cuda_without_one_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ComponentError, match=r"device='cuda' but torch sees no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "", 0])
def test_unknown_devices_are_refused(bad: object) -> None:
    with pytest.raises(ComponentError, match="is not one of auto, cpu, cuda, cuda:N, mps"):
        check_device(bad)  # type: ignore[arg-type]


def _record_devices(monkeypatch: pytest.MonkeyPatch, module: str) -> list[str]:
    """Make ``module``'s resolve_device record what it is asked and answer 'cpu'."""
    import importlib

    seen: list[str] = []

    def spy(device: str = "auto") -> str:
        seen.append(device)
        return device_module.resolve_device("cpu")

    monkeypatch.setattr(importlib.import_module(module), "resolve_device", spy)
    return seen


def test_the_setting_reaches_embedder_reranker_and_generator(
    monkeypatch: pytest.MonkeyPatch, tiny_st_path: Path, tmp_path: Path
) -> None:
    from guardrails.components.embedder import Embedder
    from guardrails.components.generator import Generator
    from guardrails.components.reranker import load_cross_encoder
    from tests.components.test_generator import build_tiny_causal_lm

    seen = _record_devices(monkeypatch, "guardrails.components.embedder")
    Embedder.load(tiny_st_path, device="cuda:1")
    assert seen == ["cuda:1"]
    seen = _record_devices(monkeypatch, "guardrails.components.generator")
    Generator.load(build_tiny_causal_lm(tmp_path / "lm"), device="mps")
    assert seen == ["mps"]
    seen = _record_devices(monkeypatch, "guardrails.components.reranker")
    with pytest.raises(ComponentError):
        load_cross_encoder(tmp_path / "missing", device="cuda")
    assert seen in ([], ["cuda"])  # a missing folder may be refused before the device
    assert Embedder.load(tiny_st_path).model.device.type == "cpu"  # auto, here


def test_trainer_arguments_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import SFTConfig

    from guardrails.training import generator as sft
    from guardrails.training import retriever
    from guardrails.training.config import GeneratorSFTConfig, RetrieverTrainingConfig

    for module in (retriever, sft):
        monkeypatch.setattr(module, "resolve_device", lambda d: "cpu" if d == "cpu" else "cuda")
    on_gpu = retriever._arguments(RetrieverTrainingConfig(device="cuda"), "out", False)
    on_cpu = retriever._arguments(RetrieverTrainingConfig(device="cpu"), "out", False)
    assert (on_gpu.use_cpu, on_cpu.use_cpu) == (False, True)
    gen = GeneratorSFTConfig(device="cuda", max_steps=1)
    assert sft.trl_args(SFTConfig, gen, "out", False).use_cpu is False
    assert sft.trl_args(SFTConfig, gen.with_(device="cpu"), "out", False).use_cpu is True


def test_device_is_validated_and_not_part_of_the_candidate_identity() -> None:
    from guardrails.training.cache import candidate_fingerprint
    from guardrails.training.config import RetrieverTrainingConfig

    config = RetrieverTrainingConfig()
    assert config.device == "auto"
    same = [
        candidate_fingerprint("retriever", c, "data", "base")
        for c in (config, config.with_(device="cpu"), config.with_(device="cuda:0"))
    ]
    assert len(set(same)) == 1
    assert candidate_fingerprint("retriever", config.with_(seed=1), "data", "base") != same[0]
    with pytest.raises(TrainingError, match="device='gpu'"):
        config.with_(device="gpu")
