"""Preference margins against a hand computation with ``Generator.log_likelihood`` (plus
hypothesis invariants), and the merged-vs-unmerged LoRA gap on a tiny random Llama: below the
float32 tolerance for a real merge, above it when the merged weights are perturbed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.components.generator import Generator
from guardrails.errors import ComponentError, MetricError
from guardrails.metrics import parse_metric
from guardrails.metrics.preference import (
    MERGE_TOLERANCE,
    MERGED_GAP_METRIC,
    assert_merged_equivalent,
    merged_unmerged_gap,
    merged_unmerged_gaps,
    preference_margins,
)
from tests.components.test_generator import QUESTIONS, build_random_lora, build_tiny_causal_lm

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Batched and one-at-a-time log-likelihoods are float32 sums of ~100 nats summed in a different
# order (padding, kernels): they agree to a few ulps of that, ~1e-5 per margin, not to 1e-6.
# A wrong margin (reference not subtracted, pairs swapped) is off by more than 1e-3.
FLOAT32_ATOL = 1e-4

WORDS = ["the", "backplate", "is", "not", "level", "Paris", "refunds", "card", "E21", "days"]


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    context_texts: tuple[str, ...] = ()


PAIRS = [
    Pair("What does E21 mean?", "The backplate is not level.", "Wi-Fi.", ("E21: not level.",)),
    Pair("How long do refunds take?", "Five to ten business days.", "Paris."),
    Pair("Label wires?", "Use the terminal letter, not its colour.", "the lazy dog"),
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama_pref") / "model")


@pytest.fixture(scope="module")
def base(tiny_lm: Path) -> Generator:
    return Generator.load(tiny_lm)


@pytest.fixture(scope="module")
def adapted(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Generator:
    lora = build_random_lora(tiny_lm, tmp_path_factory.mktemp("pref_lora") / "adapter")
    return Generator.load(tiny_lm, lora)


def _hand_margin(gen: Generator, pair: Pair) -> float:
    ctx = [list(pair.context_texts)]
    chosen = gen.log_likelihood([pair.prompt], [pair.chosen], contexts=ctx)[0]
    rejected = gen.log_likelihood([pair.prompt], [pair.rejected], contexts=ctx)[0]
    return float(chosen - rejected)


# ----------------------------------------------------------------------------- margins


def test_margins_equal_hand_computation_one_pair_at_a_time(base: Generator) -> None:
    got = preference_margins(base, PAIRS, batch_size=2)
    want = [_hand_margin(base, p) for p in PAIRS]
    assert got.shape == (3,) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=FLOAT32_ATOL)


def test_context_passages_enter_the_prompt(base: Generator) -> None:
    bare = Pair(PAIRS[0].prompt, PAIRS[0].chosen, PAIRS[0].rejected)
    assert preference_margins(base, [bare])[0] != pytest.approx(
        preference_margins(base, PAIRS[:1])[0], abs=1e-6
    )


def test_implicit_reward_margin_subtracts_the_reference(
    base: Generator, adapted: Generator
) -> None:
    implicit = preference_margins(adapted, PAIRS, reference=base)
    want = [_hand_margin(adapted, p) - _hand_margin(base, p) for p in PAIRS]
    np.testing.assert_allclose(implicit, want, rtol=1e-6, atol=FLOAT32_ATOL)
    assert np.abs(implicit).max() > 1e-3  # the random LoRA moves the margins


phrases = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(prompt=phrases, chosen=phrases, rejected=phrases)
def test_margin_invariants(base: Generator, prompt: str, chosen: str, rejected: str) -> None:
    """Swapping chosen and rejected negates the margin; a model against itself is 0; an
    identical pair scores 0."""
    pair, swapped = Pair(prompt, chosen, rejected), Pair(prompt, rejected, chosen)
    m = preference_margins(base, [pair, swapped])
    assert m[0] == pytest.approx(-m[1], abs=1e-4)
    assert preference_margins(base, [pair], reference=base)[0] == 0.0
    assert preference_margins(base, [Pair(prompt, chosen, chosen)])[0] == 0.0


def test_margins_refuse_empty_input_and_string_context(base: Generator) -> None:
    with pytest.raises(MetricError, match="at least one pair"):
        preference_margins(base, [])
    with pytest.raises(MetricError, match="not one string"):
        preference_margins(base, [Pair("q", "a", "b", "one string")])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- merge gap


def test_merged_gap_is_below_tolerance_and_per_prompt(adapted: Generator) -> None:
    gaps = merged_unmerged_gaps(adapted, QUESTIONS, batch_size=2)
    assert gaps.shape == (len(QUESTIONS),) and (gaps >= 0).all()
    assert gaps.max() < MERGE_TOLERANCE
    assert merged_unmerged_gap(adapted, QUESTIONS) == pytest.approx(gaps.max(), abs=1e-7)
    assert assert_merged_equivalent(adapted, QUESTIONS) < MERGE_TOLERANCE
    assert hasattr(adapted.model, "peft_config")  # the generator itself stays unmerged


def test_perturbed_merge_is_caught(adapted: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge that lost part of the update (one q_proj nudged by 1e-2) must fail the check."""
    import torch

    broken = adapted.merged()
    with torch.no_grad():
        broken.model.model.layers[0].self_attn.q_proj.weight.add_(1e-2)
    monkeypatch.setattr(adapted, "merged", lambda: broken)
    gaps = merged_unmerged_gaps(adapted, QUESTIONS)
    assert gaps.min() > MERGE_TOLERANCE
    with pytest.raises(ComponentError, match=r"max \|Δlogit\|=.* > tolerance=0\.001 at prompt"):
        assert_merged_equivalent(adapted, QUESTIONS)


def test_merge_gap_needs_an_adapter_and_prompts(base: Generator, adapted: Generator) -> None:
    with pytest.raises(ComponentError, match="has no LoRA to merge"):
        merged_unmerged_gap(base, QUESTIONS)
    with pytest.raises(MetricError, match="non-empty list"):
        merged_unmerged_gaps(adapted, "Why?")


def test_merge_gap_metric_is_registered_lower_is_better() -> None:
    spec = parse_metric(MERGED_GAP_METRIC)
    assert spec.family == "alignment" and not spec.higher_is_better
    assert parse_metric("preference_margin").higher_is_better


def test_merge_gap_works_as_an_at_least_gate(adapted: Generator) -> None:
    from guardrails.gates import Status, evaluate_gate
    from guardrails.policy import Policy

    # six or more prompts: with five, the exact pass test cannot reach alpha/2 (2^-5 > 0.025)
    prompts = [*QUESTIONS, *(f"{q} Answer briefly." for q in QUESTIONS)]
    gaps = merged_unmerged_gaps(adapted, prompts)
    result = evaluate_gate(
        "at_least",
        MERGED_GAP_METRIC,
        candidate=gaps,
        policy=Policy(name="t"),
        name="alignment:merge",
        overrides={"max": MERGE_TOLERANCE},
    )
    assert result.status is Status.PASSED, result.message()
