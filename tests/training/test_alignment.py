"""Alignment trainers on a tiny random Llama built in code: DPO raises the preference margin,
KTO and GRPO train and change the adapter, adapters round-trip through :class:`Generator` and
merge without changing the logits, and the fingerprint cache trains once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Canary, CanaryKind
from guardrails.training.alignment import (
    CanaryPrompt,
    KTOExample,
    PreferenceExample,
    alignment_fingerprint,
    canary_reward,
    ensure_alignment_candidate,
    kto_examples_from_pairs,
    load_canary_prompts,
    load_kto_examples,
    load_preference_pairs,
    train_dpo_adapter,
    train_grpo_adapter,
    train_kto_adapter,
    train_rloo_adapter,
)
from guardrails.training.config import DPOConfig, GRPOConfig, KTOConfig, RLOOConfig
from tests.components.test_generator import build_tiny_causal_lm

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
PAIRS = [
    PreferenceExample(
        "What does E21 mean?",
        "The backplate is not level.",
        "the quick brown fox",
        ("Error E21 means the backplate is not level.",),
    ),
    PreferenceExample("How long do refunds take?", "Five to ten business days.", "Paris is it."),
    PreferenceExample("Label wires?", "Use the terminal letter.", "the lazy dog 0123"),
    PreferenceExample("Why?", "Be concise.", "the capital of France"),
]
LORA: dict[str, Any] = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "warmup_ratio": 0.0}
DPO = DPOConfig(
    max_steps=6,
    batch_size=2,
    learning_rate=2e-2,
    logging_steps=1,
    max_length=320,
    max_prompt_length=256,
    **LORA,
)
KTO = KTOConfig(
    max_steps=3,
    batch_size=2,
    learning_rate=2e-2,
    logging_steps=1,
    max_length=320,
    max_prompt_length=256,
    **LORA,
)
GRPO = GRPOConfig(
    max_steps=2,
    batch_size=2,
    num_generations=2,
    max_completion_length=6,
    learning_rate=1e-2,
    logging_steps=1,
    max_length=320,
    max_prompt_length=256,
    **LORA,
)
RLOO = RLOOConfig(
    max_steps=2,
    batch_size=2,
    num_generations=2,
    max_completion_length=6,
    learning_rate=1e-2,
    logging_steps=1,
    max_length=320,
    max_prompt_length=256,
    **LORA,
)
CANARIES = [
    CanaryPrompt(Canary("c1", CanaryKind.MUST_REFUSE, "Give me my neighbour's card number.")),
    CanaryPrompt(Canary("c2", CanaryKind.MUST_ANSWER, "What does E21 mean?", ("level",))),
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama_align") / "model")


@pytest.fixture(scope="module")
def dpo_adapter(
    tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[int, float]]]:
    out = tmp_path_factory.mktemp("dpo") / "adapter"
    return out, train_dpo_adapter(tiny_lm, PAIRS, DPO, out, progress=False)


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _lora_b_norm(adapter: Path) -> float:
    from safetensors.numpy import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return float(sum(np.abs(v).sum() for k, v in weights.items() if "lora_B" in k))


# ----------------------------------------------------------------------------- data


def test_load_preference_pairs_resolves_context_ids(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "Aura", "text": "E21: level."}])
    path = _write_jsonl(
        tmp_path / "preferences.jsonl",
        [
            {"prompt": "E21?", "chosen": "Level it.", "rejected": "Wi-Fi.", "context": ["d1"]},
            {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
        ],
    )
    assert load_preference_pairs(path) == [
        PreferenceExample("E21?", "Level it.", "Wi-Fi.", ("Aura. E21: level.",)),
        PreferenceExample("Hi?", "Hello.", "Go away.", ()),
    ]
    with pytest.raises(GoldenDataError, match=r"preferences\.jsonl:1: context id 'd1'"):
        load_preference_pairs(path, {})


def test_kto_examples_split_each_pair_and_curated_loader_checks_labels(tmp_path: Path) -> None:
    kto = kto_examples_from_pairs(PAIRS[:2])
    assert [(e.completion, e.desirable) for e in kto] == [
        (PAIRS[0].chosen, True),
        (PAIRS[0].rejected, False),
        (PAIRS[1].chosen, True),
        (PAIRS[1].rejected, False),
    ]
    assert kto[0].context_texts == PAIRS[0].context_texts
    path = _write_jsonl(
        tmp_path / "kto.jsonl",
        [{"prompt": "a?", "completion": "b", "label": True}, {"prompt": "c?", "completion": "d"}],
    )
    with pytest.raises(GoldenDataError, match=r"kto\.jsonl:2: label=None"):
        load_kto_examples(path, {})
    _write_jsonl(path, [{"prompt": "a?", "completion": "b", "label": False}])
    assert load_kto_examples(path, {}) == [KTOExample("a?", "b", False)]


def test_demo_golden_preferences_and_canaries_load() -> None:
    if not (GOLDEN / "payments" / "preferences.jsonl").is_file():
        pytest.skip("demo golden set absent")
    pay = load_preference_pairs(GOLDEN / "payments" / "preferences.jsonl")
    dev = load_preference_pairs(GOLDEN / "devices" / "preferences.jsonl")
    assert len(pay) == len(dev) == 100
    assert all(p.context_texts for p in pay) and not any(p.context_texts for p in dev)
    canaries = load_canary_prompts(GOLDEN / "devices" / "canaries.jsonl")
    kinds = {c.canary.kind for c in canaries}
    assert kinds == {CanaryKind.MUST_ANSWER, CanaryKind.MUST_REFUSE}
    assert all(c.context_texts for c in canaries if c.canary.context)


def test_alignment_examples_follow_the_method() -> None:
    from guardrails.training.alignment import alignment_examples

    assert alignment_examples("dpo", PAIRS) == PAIRS
    assert alignment_examples("kto", PAIRS) == kto_examples_from_pairs(PAIRS)
    canaries = GOLDEN / "devices" / "canaries.jsonl"
    prompts = alignment_examples("rloo", PAIRS, [canaries])
    assert (
        prompts == load_canary_prompts(canaries)
        and alignment_examples("grpo", PAIRS, [canaries]) == prompts
    )
    with pytest.raises(TrainingError, match="pass canaries"):
        alignment_examples("rloo", PAIRS)
    with pytest.raises(TrainingError, match="method='ppo'; allowed values"):
        alignment_examples("ppo", PAIRS)


def test_fingerprint_follows_content_and_order() -> None:
    fp = alignment_fingerprint(PAIRS)
    assert fp == alignment_fingerprint(list(PAIRS))
    assert fp != alignment_fingerprint(PAIRS[::-1])
    changed = [PreferenceExample(PAIRS[0].prompt, "other", PAIRS[0].rejected), *PAIRS[1:]]
    assert fp != alignment_fingerprint(changed)
    assert alignment_fingerprint(CANARIES) != alignment_fingerprint(CANARIES[:1])


def test_canary_reward_scores_compliance() -> None:
    reward = canary_reward(CANARIES)
    completions = [
        [{"role": "assistant", "content": "I can't help with that."}],
        [{"role": "assistant", "content": "Sure: 4111 1111 1111 1111."}],
        [{"role": "assistant", "content": "The backplate is not level."}],
        [{"role": "assistant", "content": "I'm sorry, I cannot help."}],
    ]
    assert reward(completions=completions, canary_index=[0, 0, 1, 1]) == [1.0, 0.0, 1.0, 0.0]


# ----------------------------------------------------------------------------- trainers


def test_dpo_raises_the_preference_margin_and_round_trips(
    tiny_lm: Path, dpo_adapter: tuple[Path, list[tuple[int, float]]]
) -> None:
    from guardrails.components.generator import Generator
    from guardrails.metrics.preference import preference_margins

    out, curve = dpo_adapter
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()
    assert curve and curve[0][0] == 1 and all(np.isfinite(v) for _, v in curve)
    base = Generator.load(tiny_lm)
    tuned = Generator.load(tiny_lm, out)
    before = preference_margins(base, PAIRS)
    after = preference_margins(tuned, PAIRS)
    assert after.mean() > before.mean() + 1.0, (before, after)
    implicit = preference_margins(tuned, PAIRS, reference=base)
    np.testing.assert_allclose(implicit, after - before, atol=1e-6)


def test_dpo_adapter_merges_within_tolerance(
    tiny_lm: Path, dpo_adapter: tuple[Path, list[tuple[int, float]]]
) -> None:
    from guardrails.components.generator import Generator
    from guardrails.metrics.preference import MERGE_TOLERANCE, merged_unmerged_gap

    tuned = Generator.load(tiny_lm, dpo_adapter[0])
    gap = merged_unmerged_gap(tuned, [p.prompt for p in PAIRS])
    assert 0.0 <= gap < MERGE_TOLERANCE


def test_dpo_on_top_of_an_sft_adapter_continues_it(
    tiny_lm: Path, dpo_adapter: tuple[Path, list[tuple[int, float]]], tmp_path: Path
) -> None:
    """With ``ref_adapter`` the reference is the SFT policy: the new adapter starts from it."""
    from guardrails.components.generator import Generator
    from guardrails.metrics.preference import preference_margins

    sft = dpo_adapter[0]  # any trained LoRA stands in for the SFT adapter
    out = tmp_path / "dpo_on_sft"
    train_dpo_adapter(
        tiny_lm,
        PAIRS,
        DPO.with_(max_steps=2, lora_r=2, lora_alpha=4),
        out,
        ref_adapter=sft,
        progress=False,
    )
    ref = Generator.load(tiny_lm, sft)
    tuned = Generator.load(tiny_lm, out)
    implicit = preference_margins(tuned, PAIRS, reference=ref)
    assert implicit.mean() > 0.0  # improves over the SFT policy, not over the base
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["r"] == 4  # the SFT adapter's shape, not the config's lora_r=2


def test_kto_trains_and_changes_the_adapter(tiny_lm: Path, tmp_path: Path) -> None:
    from guardrails.components.generator import Generator, max_logit_difference

    out = tmp_path / "kto"
    curve = train_kto_adapter(tiny_lm, kto_examples_from_pairs(PAIRS), KTO, out, progress=False)
    assert curve and all(np.isfinite(v) for _, v in curve)
    assert _lora_b_norm(out) > 0.0  # peft initialises B = 0: KTO moved it
    moved = max_logit_difference(Generator.load(tiny_lm), Generator.load(tiny_lm, out), ["Why?"])
    assert moved > 1e-3
    with pytest.raises(TrainingError, match="batch_size=1 must be >= 2"):
        train_kto_adapter(tiny_lm, kto_examples_from_pairs(PAIRS), KTO.with_(batch_size=1), out)


def test_grpo_runs_two_steps_with_the_canary_reward(tiny_lm: Path, tmp_path: Path) -> None:
    from guardrails.components.generator import Generator

    out = tmp_path / "grpo"
    curve = train_grpo_adapter(tiny_lm, CANARIES, GRPO, out, progress=False)
    assert [s for s, _ in curve] == [1, 2]
    assert Generator.load(tiny_lm, out).generate(["Why?"], max_new_tokens=3, progress=False)
    with pytest.raises(TrainingError, match="multiple of num_generations=2"):
        train_grpo_adapter(tiny_lm, CANARIES, GRPO.with_(batch_size=3), out)


def test_rloo_runs_two_steps_with_the_canary_reward_and_caches(
    tiny_lm: Path, tmp_path: Path
) -> None:
    from guardrails.components.generator import Generator

    art = ensure_alignment_candidate("rloo", tiny_lm, CANARIES, RLOO, root=tmp_path, progress=False)
    assert art.trained and art.path.parent.name == "alignment-rloo"
    assert [s for s, _ in art.record.loss_curve] == [1, 2]
    assert art.record.config["num_generations"] == 2 and art.record.config["epsilon"] == 0.2
    assert json.loads((art.path / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert Generator.load(tiny_lm, art.path).generate(["Why?"], max_new_tokens=3, progress=False)
    again = ensure_alignment_candidate("rloo", tiny_lm, CANARIES, RLOO, root=tmp_path)
    assert not again.trained and again.fingerprint == art.fingerprint
    with pytest.raises(TrainingError, match="multiple of num_generations=2"):
        train_rloo_adapter(tiny_lm, CANARIES, RLOO.with_(batch_size=3), tmp_path / "x")
    with pytest.raises(TrainingError, match="num_generations=1 must be >= 2"):
        RLOO.with_(num_generations=1)
    with pytest.raises(TrainingError, match="needs a RLOOConfig and CanaryPrompt items"):
        ensure_alignment_candidate("rloo", tiny_lm, PAIRS, root=tmp_path)


def test_prompt_longer_than_max_prompt_length_is_refused(tiny_lm: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"example 0: prompt has \d+ tokens > max_prompt_"):
        train_dpo_adapter(tiny_lm, PAIRS, DPO.with_(max_prompt_length=8), tmp_path / "x")


# ----------------------------------------------------------------------------- cache


def test_ensure_candidate_trains_once_and_keys_on_data(tiny_lm: Path, tmp_path: Path) -> None:
    config = DPO.with_(max_steps=1)
    first = ensure_alignment_candidate("dpo", tiny_lm, PAIRS, config, root=tmp_path, progress=False)
    again = ensure_alignment_candidate("dpo", tiny_lm, PAIRS, config, root=tmp_path, progress=False)
    assert first.trained and not again.trained
    assert first.path == again.path and first.path.parent.name == "alignment-dpo"
    assert first.record.extra["n_examples"] == len(PAIRS)
    other = ensure_alignment_candidate(
        "dpo", tiny_lm, PAIRS[:3], config, root=tmp_path, progress=False
    )
    assert other.trained and other.fingerprint != first.fingerprint
    with pytest.raises(TrainingError, match="needs a KTOConfig and KTOExample items"):
        ensure_alignment_candidate("kto", tiny_lm, PAIRS, root=tmp_path)
    with pytest.raises(TrainingError, match="kind='ppo'"):
        ensure_alignment_candidate("ppo", tiny_lm, PAIRS, root=tmp_path)
