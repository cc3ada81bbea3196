"""Tiny random-initialised models for component tests, built in code (nothing downloaded).

Heavy libraries are imported inside the fixtures so that collecting this folder does not load
torch into a session that may assert on ``sys.modules``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HIDDEN = 32
WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "with",
    "and",
    "or",
    "but",
    "not",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "has",
    "have",
    "had",
    "cat",
    "cats",
    "dog",
    "dogs",
    "bird",
    "fish",
    "horse",
    "mouse",
    "sat",
    "ran",
    "jumped",
    "slept",
    "ate",
    "mat",
    "sofa",
    "tree",
    "river",
    "car",
    "cars",
    "train",
    "trains",
    "bus",
    "plane",
    "ship",
    "road",
    "rail",
    "fast",
    "slow",
    "engine",
    "wheel",
    "fuel",
    "hello",
    "world",
    "good",
    "morning",
    "night",
    "day",
    "week",
    "year",
    "time",
    "people",
    "city",
    "country",
    "king",
    "queen",
    "norman",
    "normans",
    "france",
    "england",
    "paris",
    "london",
    "war",
    "battle",
    "army",
    "castle",
    "church",
    "computer",
    "theory",
    "complexity",
    "problem",
    "algorithm",
    "time",
    "space",
    "class",
    "proof",
    "machine",
    "red",
    "green",
    "blue",
    "big",
    "small",
    "old",
    "new",
    "first",
    "last",
    "many",
    "few",
    "one",
    "two",
    "three",
    "four",
    "five",
]


def _vocab() -> list[str]:
    """About 1000 WordPiece entries: specials, words, characters and ``##`` continuations."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-")
    filler = [f"tok{i}" for i in range(1000 - 5 - len(WORDS) - 2 * len(chars))]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted(set(WORDS))
    return specials + words + chars + ["##" + c for c in chars] + filler


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BERT (hidden 32, 2 layers) and its WordPiece tokenizer, transformers format."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = _vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary as ``vocab`` (``vocab_file`` is silently ignored)
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(set(vocab)), "the tiny tokenizer lost its vocabulary"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_st_path(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a sentence-transformers folder (Transformer + mean Pooling)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    folder = tmp_path_factory.mktemp("tiny_st") / "model"
    modules = [Transformer(str(tiny_hf_dir), max_seq_length=64), Pooling(HIDDEN, "mean")]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_lora_path(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (r=4 on query/value) whose B matrices are random, so it moves outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny_lora") / "adapter"
    model = get_peft_model(
        BertModel.from_pretrained(tiny_hf_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]),
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # peft initialises B to zero: the adapter would be a no-op
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(str(folder))
    return folder
