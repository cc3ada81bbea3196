"""Reranker trainer: examples, a tiny cross-encoder trained in seconds, the cached candidate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.components.reranker import Reranker, build_cross_encoder_from_minilm
from guardrails.errors import GoldenDataError, TrainingError
from guardrails.golden import Document
from guardrails.training.config import RerankerTrainingConfig
from guardrails.training.reranker import (
    RerankExample,
    ensure_reranker_candidate,
    load_triplet_ids,
    ranking_lists,
    rerank_examples_from_qrels,
    rerank_examples_from_triplets,
    total_steps,
    train_reranker,
    train_reranker_adapter,
)
from tests.components.test_reranker import make_tiny_cross_encoder

FULL = RerankerTrainingConfig(
    full_finetune=True,
    max_steps=40,
    batch_size=8,
    learning_rate=3e-3,
    max_length=32,
    logging_steps=5,
    warmup_ratio=0.0,
    seed=5,
)
LORA = RerankerTrainingConfig(
    full_finetune=False,
    max_steps=30,
    batch_size=8,
    learning_rate=1e-2,
    max_length=32,
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    logging_steps=5,
    warmup_ratio=0.0,
    seed=5,
)
# A memorisable toy set: every document appears once, as a positive or as a negative.
TOY = {
    "the cat sat on the mat": ("cat mat sofa", ["dog river", "bird tree"]),
    "a fast train on the rail": ("train rail engine", ["bus road", "plane ship"]),
    "the king and queen": ("king queen castle", ["war battle army", "church paris"]),
    "a proof of the theory": ("proof theory algorithm", ["red green blue", "big small old"]),
}
CORPUS = {
    f"d{i}": Document(f"d{i}", text, "", {"domain": dom, "topic": topic})
    for i, (text, dom, topic) in enumerate(
        [
            ("cat mat sat", "pets", "cats"),
            ("the cat slept", "pets", "cats"),
            ("a cat on the sofa", "pets", "cats"),
            ("the dog ran", "pets", "dogs"),
            ("dogs and the river", "pets", "dogs"),
            ("a bird in a tree", "pets", "birds"),
            ("train rail fast", "travel", "rail"),
            ("a bus on the road", "travel", "road"),
        ]
    )
}


def _toy_examples() -> list[RerankExample]:
    out = []
    for query, (pos, negs) in TOY.items():
        out.append(RerankExample(query, pos, 1.0))
        out += [RerankExample(query, n, 0.0) for n in negs]
    return out


@pytest.fixture(scope="module")
def tiny_ce(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cross_encoder(tiny_hf_dir, tmp_path_factory.mktemp("ce") / "model")


@pytest.fixture(scope="module")
def full_trained(tiny_ce: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("full") / "model"
    return train_reranker(tiny_ce, _toy_examples(), FULL, out, progress=False), out


@pytest.fixture(scope="module")
def lora_trained(tiny_ce: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("lora") / "adapter"
    return train_reranker_adapter(tiny_ce, _toy_examples(), LORA, out, progress=False), out


def _ranks_positive_first(model: Reranker) -> bool:
    for query, (pos, negs) in TOY.items():
        scores = model.score(query, [pos, *negs])
        if scores.argmax() != 0:
            return False
    return True


# ---------------------------------------------------------------------------------- examples


def test_triplets_as_texts_give_one_positive_and_one_negative() -> None:
    out = rerank_examples_from_triplets([("q", "good doc", "bad doc")])
    assert out == [RerankExample("q", "good doc", 1.0), RerankExample("q", "bad doc", 0.0)]


def test_triplet_ids_resolve_and_sampled_negatives_are_hard_and_in_domain() -> None:
    triplets = [{"query": "cats", "positive": "d0", "negative": "d3"}]
    out = rerank_examples_from_triplets(triplets, CORPUS, negatives_per_query=4, seed=1)
    assert out[:2] == [
        RerankExample("cats", "cat mat sat", 1.0),
        RerankExample("cats", "the dog ran", 0.0),
    ]
    sampled = out[2:]
    assert len(sampled) == 4 and all(ex.label == 0.0 for ex in sampled)
    texts = {CORPUS[d].text: d for d in CORPUS}
    ids = [texts[ex.document] for ex in sampled]
    assert "d0" not in ids and "d3" not in ids and len(set(ids)) == 4
    assert {"d1", "d2"} <= set(ids)  # half are hard: the positive's topic ("cats")
    assert not {"d6", "d7"} & set(ids)  # never another domain


def test_sampling_is_seeded() -> None:
    triplets = [("cats", "d0", "d3"), ("dogs", "d3", "d0")]
    a = rerank_examples_from_triplets(triplets, CORPUS, negatives_per_query=2, seed=3)
    assert a == rerank_examples_from_triplets(triplets, CORPUS, negatives_per_query=2, seed=3)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["q1", "q2", "q3"]),
            st.sampled_from(sorted(CORPUS)),
            st.sampled_from(sorted(CORPUS)),
        ),
        min_size=1,
        max_size=6,
    ),
    n=st.integers(0, 5),
    seed=st.integers(0, 99),
)
def test_no_sampled_negative_is_a_positive_of_its_query(pairs: list, n: int, seed: int) -> None:
    positive_ids = {(q, p) for q, p, _ in pairs}
    triplets = [(q, p, neg) for q, p, neg in pairs if (q, neg) not in positive_ids]
    out = rerank_examples_from_triplets(triplets, CORPUS, negatives_per_query=n, seed=seed)
    positives = {(q, CORPUS[p].text) for q, p, _ in triplets}
    assert all(0.0 <= ex.label <= 1.0 for ex in out)
    assert not [ex for ex in out if ex.label == 0.0 and (ex.query, ex.document) in positives]


def test_graded_qrels_scale_to_unit_interval_plus_unjudged_negatives() -> None:
    qrels = {"q": {"d0": 2, "d1": 1, "d2": 0}}
    out = rerank_examples_from_qrels(qrels, {"q": "cats"}, CORPUS, negatives_per_query=2, seed=0)
    labels = {ex.document: ex.label for ex in out}
    assert labels["cat mat sat"] == 1.0 and labels["the cat slept"] == 0.5
    assert labels["a cat on the sofa"] == 0.0
    assert len(out) == 5 and sum(ex.label == 0.0 for ex in out) == 3


def test_unknown_document_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="'nope'"):
        rerank_examples_from_triplets([("q", "nope", "d0")], CORPUS)


def test_triplet_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"query": "q", "positive": "d0", "negative": "d1"}\n{"query": "q"}\n')
    with pytest.raises(GoldenDataError, match=r"train.jsonl:2:"):
        load_triplet_ids(path)


def test_total_steps_follows_epochs_unless_max_steps() -> None:
    cfg = RerankerTrainingConfig(epochs=2.0, batch_size=16)
    assert total_steps(100, cfg) == 14  # 2 x ceil(100 / 16)
    assert total_steps(100, cfg.with_(max_steps=3)) == 3
    # listwise: a batch of 16 pairs holds 16 // 4 = 4 lists
    assert total_steps(100, cfg.with_(loss="listwise", list_size=4)) == 50  # 2 x ceil(100 / 4)


def test_ranking_lists_put_the_relevant_document_first_over_lower_labels() -> None:
    examples = [
        RerankExample("q1", "best", 1.0),
        RerankExample("q1", "partly", 0.5),
        RerankExample("q1", "bad-a", 0.0),
        RerankExample("q1", "bad-b", 0.0),
        RerankExample("q2", "good", 1.0),
        RerankExample("q2", "also good", 1.0),  # equal labels never compete
        RerankExample("q2", "bad", 0.0),
        RerankExample("q3", "orphan", 1.0),  # nothing to rank against: no list
    ]
    lists = ranking_lists(examples, list_size=3, seed=1)
    by_top = {lst[0].document: lst for lst in lists}
    assert set(by_top) == {"best", "partly", "good", "also good"}
    assert len(by_top["best"]) == 3 and {ex.document for ex in by_top["best"][1:]} <= {
        "partly",
        "bad-a",
        "bad-b",
    }
    assert [ex.document for ex in by_top["partly"][1:]] in (["bad-a", "bad-b"], ["bad-b", "bad-a"])
    assert [ex.document for ex in by_top["good"]] == ["good", "bad"]
    assert all(ex.query == lst[0].query for lst in lists for ex in lst)
    assert ranking_lists(examples, 3, seed=1) == lists  # seeded
    with pytest.raises(TrainingError, match="no query has a relevant document"):
        ranking_lists([RerankExample("q", "d", 1.0)], 4, seed=1)


def test_list_size_and_head_rate_are_validated() -> None:
    with pytest.raises(TrainingError, match="list_size=1"):
        RerankerTrainingConfig(list_size=1)
    with pytest.raises(TrainingError, match="head_learning_rate=-1"):
        RerankerTrainingConfig(head_learning_rate=-1.0)


# ---------------------------------------------------------------------------------- training


def test_full_finetune_lowers_the_loss_and_ranks_positives_first(full_trained: Any) -> None:
    curve, out = full_trained
    assert [s for s, _ in curve] == list(range(5, FULL.max_steps + 1, 5))
    losses = np.array([v for _, v in curve])
    assert np.isfinite(losses).all() and losses[-2:].mean() < 0.8 * losses[:2].mean()
    assert _ranks_positive_first(Reranker.load(out, max_length=32))


def test_listwise_finetune_learns_to_rank_positives_first(tiny_ce: Path, tmp_path: Path) -> None:
    cfg = FULL.with_(loss="listwise", list_size=3, batch_size=6, head_learning_rate=1e-2)
    curve = train_reranker(tiny_ce, _toy_examples(), cfg, tmp_path / "m", progress=False)
    losses = np.array([v for _, v in curve])
    assert np.isfinite(losses).all() and losses[-2:].mean() < 0.5 * losses[:2].mean()
    assert _ranks_positive_first(Reranker.load(tmp_path / "m", max_length=32))


def test_untrained_model_does_not_already_rank_positives_first(tiny_ce: Path) -> None:
    assert not _ranks_positive_first(Reranker.load(tiny_ce, max_length=32))


def test_lora_adapter_round_trips_learns_and_leaves_the_base_untouched(
    tiny_ce: Path, lora_trained: Any
) -> None:
    from guardrails.components.reranker import reranker_fingerprint

    curve, adapter = lora_trained
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not (adapter / "model.safetensors").exists()  # only the adapter is saved
    losses = [v for _, v in curve]
    assert losses[-1] < losses[0]
    base = Reranker.load(tiny_ce, max_length=32)
    adapted = Reranker.load(tiny_ce, adapter=adapter, max_length=32)
    assert adapted.fingerprint != base.fingerprint
    assert base.fingerprint == reranker_fingerprint(tiny_ce, max_length=32)
    assert _ranks_positive_first(adapted)
    query, (pos, negs) = next(iter(TOY.items()))
    assert not np.allclose(adapted.score(query, [pos, *negs]), base.score(query, [pos, *negs]))


def test_an_ia3_adapter_trains_the_head_and_loads_like_a_lora(
    tiny_ce: Path, tmp_path: Path
) -> None:
    import json

    cfg = LORA.with_(method="ia3", max_steps=3)
    curve = train_reranker_adapter(tiny_ce, _toy_examples(), cfg, tmp_path, progress=False)
    assert len(curve) >= 1 and all(np.isfinite(v) for _, v in curve)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "IA3" and saved["modules_to_save"] == ["classifier"]
    base = Reranker.load(tiny_ce, max_length=32)
    adapted = Reranker.load(tiny_ce, adapter=tmp_path, max_length=32)
    assert adapted.fingerprint != base.fingerprint
    query, (pos, negs) = next(iter(TOY.items()))
    assert not np.allclose(adapted.score(query, [pos, *negs]), base.score(query, [pos, *negs]))


def test_training_is_seeded(tiny_ce: Path, tmp_path: Path) -> None:
    cfg = LORA.with_(max_steps=3)
    a = train_reranker_adapter(tiny_ce, _toy_examples(), cfg, tmp_path / "a", progress=False)
    b = train_reranker_adapter(tiny_ce, _toy_examples(), cfg, tmp_path / "b", progress=False)
    assert a == b


def test_trainer_and_config_must_agree(tiny_ce: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="full_finetune=True"):
        train_reranker(tiny_ce, _toy_examples(), LORA, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="full_finetune=False"):
        train_reranker_adapter(tiny_ce, _toy_examples(), FULL, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="loss='lambda'"):
        train_reranker(
            tiny_ce, _toy_examples(), FULL.with_(loss="lambda"), tmp_path, progress=False
        )
    with pytest.raises(TrainingError, match="no reranker training examples"):
        train_reranker(tiny_ce, [], FULL, tmp_path, progress=False)


# ------------------------------------------------------------------------ cached candidate


def _golden(root: Path, triplets: list[tuple[str, str, str]]) -> Path:
    folder = root / "golden" / "toy"
    folder.mkdir(parents=True)
    docs = [
        {"_id": d, "title": "", "text": doc.text, "metadata": dict(doc.metadata)}
        for d, doc in CORPUS.items()
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    rows = [json.dumps({"query": q, "positive": p, "negative": n}) for q, p, n in triplets]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    return folder.parent


def test_candidate_trains_once_then_loads_and_retrains_when_data_change(
    tiny_ce: Path, tmp_path: Path
) -> None:
    cfg = LORA.with_(max_steps=2)
    golden = _golden(tmp_path, [("cats", "d0", "d6"), ("rail", "d6", "d0")])
    kwargs: dict[str, Any] = {
        "root": tmp_path / "adapters",
        "golden_dir": golden,
        "base": tiny_ce,
        "config": cfg,
        "progress": False,
    }
    first = ensure_reranker_candidate("toy", **kwargs)
    second = ensure_reranker_candidate("toy", **kwargs)
    assert first.trained and not second.trained
    assert second.path == first.path and second.fingerprint == first.fingerprint
    assert first.path.parent.name == "reranker"
    assert second.record.extra["n_examples"] == 8  # (2 + 3 sampled) + (2 + the 1 travel doc left)
    Reranker.load(tiny_ce, adapter=first.path, max_length=32)  # a loadable peft folder
    (golden / "toy" / "train.jsonl").write_text(
        json.dumps({"query": "dogs", "positive": "d3", "negative": "d7"}) + "\n"
    )
    third = ensure_reranker_candidate("toy", **kwargs)
    assert third.trained and third.fingerprint != first.fingerprint


# ------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_minilm_cross_encoder_trains_a_few_steps(tmp_path: Path) -> None:
    base = build_cross_encoder_from_minilm(tmp_path / "ce")
    cfg = FULL.with_(max_steps=3, batch_size=4, learning_rate=5e-5, logging_steps=1)
    curve = train_reranker(base, _toy_examples(), cfg, tmp_path / "out", progress=False)
    assert len(curve) == 3 and np.isfinite([v for _, v in curve]).all()
    scores = Reranker.load(tmp_path / "out").score("cat", ["cat mat sat", "proof theory"])
    assert np.isfinite(scores).all()
