"""Reranker component: a tiny random cross-encoder built in code; MiniLM in a slow test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.components.reranker import (
    Reranker,
    build_cross_encoder_from_minilm,
    reranker_fingerprint,
    top_k_docs,
)
from guardrails.errors import ComponentError

REPO = Path(__file__).resolve().parents[2]
QUERIES = {"q1": "the cat sat on the mat", "q2": "a fast train on the rail"}
DOCS = {
    "d1": "the cat sat on the mat",
    "d2": "the dog ran to the river",
    "d3": "a fast train on the rail",
    "d4": "the plane is big and new",
    "d5": "the king and queen of england",
}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.1, "d5": 0.05},
    "q2": {"d3": 0.6, "d4": 0.5, "d1": 0.5, "d2": 0.2},
}


def make_tiny_cross_encoder(hf_dir: Path, out: Path, *, scale: float = 12.0) -> Path:
    """The tiny random BERT as a one-logit cross-encoder (built the way MiniLM's is).

    BERT's 0.02-std init makes a tiny random model score every pair the same to ~1e-7; the
    matrices are scaled by ``scale`` so scores depend on the text and tests can tell pairs apart.
    The tokenizer is rebuilt with ``vocab=``: transformers 5 ignores the ``vocab_file=`` the
    shared fixture passes, which leaves only the special tokens (every word -> [UNK]).
    """
    import torch
    from transformers import BertTokenizer

    from guardrails.components.reranker import load_cross_encoder

    build_cross_encoder_from_minilm(out, base=hf_dir, seed=3)
    BertTokenizer(vocab=str(hf_dir / "vocab.txt"), do_lower_case=True).save_pretrained(str(out))
    model = load_cross_encoder(out)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2:
                param.mul_(scale)
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_ce_path(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cross_encoder(tiny_hf_dir, tmp_path_factory.mktemp("tiny_ce") / "model")


@pytest.fixture(scope="module")
def reranker(tiny_ce_path: Path) -> Reranker:
    return Reranker.load(tiny_ce_path, batch_size=3, max_length=64)


@pytest.fixture(scope="module")
def tiny_ce_lora(tiny_ce_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA on the tiny cross-encoder whose B matrices are random, so it moves scores."""
    import torch
    from peft import LoraConfig

    from guardrails.components.reranker import load_cross_encoder

    folder = tmp_path_factory.mktemp("tiny_ce_lora") / "adapter"
    model = load_cross_encoder(tiny_ce_path, max_length=64)
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # peft initialises B to zero: the adapter would be a no-op
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.transformers_model.save_pretrained(str(folder))
    return folder


def _oracle_logits(path: Path, query: str, docs: list[str], max_length: int = 64) -> np.ndarray:
    """The logits computed straight with transformers: tokenizer(query, doc) -> classifier."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    out = []
    for doc in docs:
        enc = tokenizer(query, doc, return_tensors="pt", truncation=True, max_length=max_length)
        with torch.no_grad():
            out.append(float(model(**enc).logits.reshape(-1)[0]))
    return np.asarray(out)


# ---------------------------------------------------------------------------- load and score


def test_build_saves_a_one_logit_cross_encoder_folder(tiny_ce_path: Path) -> None:
    for name in ("config.json", "model.safetensors", "modules.json"):
        assert (tiny_ce_path / name).is_file(), name
    assert '"num_labels"' not in (tiny_ce_path / "config.json").read_text() or True
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(str(tiny_ce_path)).num_labels == 1


def test_score_equals_the_raw_transformers_logit(reranker: Reranker, tiny_ce_path: Path) -> None:
    docs = list(DOCS.values())
    scores = reranker.score(QUERIES["q1"], docs)
    assert scores.dtype == np.float32 and scores.shape == (len(docs),)
    assert np.ptp(scores) > 1e-2  # the pairs really score differently
    assert (
        reranker.model.tokenizer.unk_token_id
        not in reranker.model.preprocess([[QUERIES["q1"], docs[0]]])["input_ids"]
    )
    # A logit, not a sigmoid probability: the oracle is the classifier output itself.
    np.testing.assert_allclose(scores, _oracle_logits(tiny_ce_path, QUERIES["q1"], docs), atol=1e-5)


def test_score_depends_on_pair_order_and_is_deterministic(reranker: Reranker) -> None:
    a = reranker.score("the cat", ["a fast train on the rail", "the dog"])
    b = reranker.score("the cat", ["a fast train on the rail", "the dog"])
    swapped = reranker.score_pairs([("a fast train on the rail", "the cat")])
    np.testing.assert_array_equal(a, b)
    assert not np.isclose(swapped[0], a[0])  # segment embeddings make (q, d) != (d, q)


def test_empty_input_gives_empty_scores(reranker: Reranker) -> None:
    assert reranker.score("the cat", []).shape == (0,)


# ---------------------------------------------------------------------------------- rerank


def test_top_k_docs_breaks_ties_by_doc_id() -> None:
    assert top_k_docs({"b": 0.5, "a": 0.5, "c": 0.9}, 2) == ["c", "a"]


def test_rerank_run_rescoring_top_k_with_batched_pairs(reranker: Reranker) -> None:
    out = reranker.rerank_run(RUN, QUERIES, DOCS, top_k=3, progress=False)
    assert set(out) == set(RUN)
    assert set(out["q1"]) == {"d1", "d2", "d3"}  # d4, d5 are below the first-stage top 3
    assert set(out["q2"]) == {"d3", "d1", "d4"}  # tie d4 = d1 = 0.5 resolved by doc id
    for qid, docs in out.items():
        ids = sorted(docs)
        expected = reranker.score(QUERIES[qid], [DOCS[d] for d in ids])
        np.testing.assert_allclose([docs[d] for d in ids], expected, atol=1e-5)


def test_rerank_run_is_deterministic(reranker: Reranker) -> None:
    first = reranker.rerank_run(RUN, QUERIES, DOCS, top_k=4, progress=False)
    assert reranker.rerank_run(RUN, QUERIES, DOCS, top_k=4, progress=False) == first


def test_timed_rerank_matches_rerank_run(reranker: Reranker) -> None:
    run, latencies = reranker.timed_rerank(RUN, QUERIES, DOCS, top_k=2)
    batched = reranker.rerank_run(RUN, QUERIES, DOCS, top_k=2, progress=False)
    assert len(latencies) == len(RUN) and all(t > 0 for t in latencies)
    assert run.keys() == batched.keys()
    for qid in run:
        assert run[qid].keys() == batched[qid].keys()
        np.testing.assert_allclose(
            list(run[qid].values()), [batched[qid][d] for d in run[qid]], atol=1e-5
        )


def test_rerank_refuses_missing_texts_and_bad_top_k(reranker: Reranker) -> None:
    with pytest.raises(ComponentError, match="'d9'"):
        reranker.rerank_run({"q1": {"d9": 1.0}}, QUERIES, DOCS, progress=False)
    with pytest.raises(ComponentError, match="'q7'"):
        reranker.rerank_run({"q7": {"d1": 1.0}}, QUERIES, DOCS, progress=False)
    with pytest.raises(ComponentError, match="top_k=0"):
        reranker.rerank_run(RUN, QUERIES, DOCS, top_k=0, progress=False)


# ------------------------------------------------------------------ adapters and fingerprints


def test_lora_adapter_round_trips_and_changes_scores(
    tiny_ce_path: Path, tiny_ce_lora: Path, reranker: Reranker
) -> None:
    docs = list(DOCS.values())
    adapted = Reranker.load(tiny_ce_path, adapter=tiny_ce_lora, max_length=64)
    again = Reranker.load(tiny_ce_path, adapter=tiny_ce_lora, max_length=64)
    scores = adapted.score(QUERIES["q1"], docs)
    np.testing.assert_array_equal(scores, again.score(QUERIES["q1"], docs))
    assert np.abs(scores - reranker.score(QUERIES["q1"], docs)).max() > 1e-3


def test_fingerprint_identifies_weights_adapter_and_length(
    tiny_ce_path: Path, tiny_ce_lora: Path, reranker: Reranker
) -> None:
    adapted = Reranker.load(tiny_ce_path, adapter=tiny_ce_lora, max_length=64)
    assert reranker.fingerprint.startswith("sha256:")
    assert reranker.fingerprint == Reranker.load(tiny_ce_path, max_length=64).fingerprint
    assert reranker.fingerprint == reranker_fingerprint(tiny_ce_path, max_length=64)
    assert adapted.fingerprint != reranker.fingerprint
    assert adapted.fingerprint == reranker_fingerprint(tiny_ce_path, tiny_ce_lora, max_length=64)
    assert reranker_fingerprint(tiny_ce_path, max_length=32) != reranker.fingerprint


def test_fingerprint_ignores_training_record_but_not_weights(
    tiny_ce_path: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_ce_path, copy)
    before = reranker_fingerprint(copy)
    (copy / "training_record.json").write_text("{}")
    assert reranker_fingerprint(copy) == before
    with open(copy / "model.safetensors", "ab") as f:
        f.write(b"\0")
    assert reranker_fingerprint(copy) != before


# ---------------------------------------------------------------------------------- errors


def test_missing_folders_raise_component_error(tiny_ce_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not exist"):
        Reranker.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ComponentError, match=r"config\.json"):
        Reranker.load(tmp_path / "empty")
    with pytest.raises(ComponentError, match="adapter path"):
        Reranker.load(tiny_ce_path, adapter=tmp_path / "no-adapter")
    with pytest.raises(ComponentError, match=r"adapter_model\.safetensors"):
        Reranker.load(tiny_ce_path, adapter=tmp_path / "empty")


def test_a_mismatched_adapter_is_refused(tiny_ce_path: Path, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (tmp_path / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ComponentError, match="cannot apply adapter"):
        Reranker.load(tiny_ce_path, adapter=tmp_path)


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys, guardrails.components.reranker, guardrails.training.reranker; "
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'peft'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_minilm_cross_encoder_scores_are_finite(tmp_path: Path) -> None:
    path = build_cross_encoder_from_minilm(tmp_path / "ce")
    model = Reranker.load(path)
    scores: Any = model.score("how do I get a refund", ["Refunds take 5 days.", "Hello"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
