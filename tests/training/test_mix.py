"""Curated sets into the trainers (guardrails.training.mix): the graded-label loader, the mix
(cap, ratio, whole groups, held step budget), datasheets in the record and the fingerprint,
and each trainer (tiny random models) fed from curated files written by write_dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from guardrails.errors import GoldenDataError, TrainingError
from guardrails.training.cache import ensure_candidate
from guardrails.training.curation import Row, prepare, write_dataset
from guardrails.training.mix import (
    CuratedMix,
    GradedLabel,
    curated_rows,
    datasheet_ref,
    graded_examples,
    load_graded_labels,
    mix,
    step_budget,
)
from guardrails.training.reranker import RerankExample, ranking_lists, training_steps
from tests.training.test_reranker import CORPUS  # the same toy corpus (domains and topics)

LABELS = [  # (query, doc, grade) as reranker_labels curates them: read 2, clicked 1, skipped 0
    ("cat on a mat", "d0", 2),
    ("cat on a mat", "d1", 1),
    ("cat on a mat", "d3", 0),
    ("cat on a mat", "d1", 2),  # the same pair read by another user: its highest grade counts
    ("dog by the river", "d4", 1),
    ("dog by the river", "d5", 0),
]


def _graded_mix(golden: list[Any], labels: list[Any], path: Path, config: Any) -> Any:
    """Curated graded labels joined to ``golden`` the way the reranker fixture joins them."""
    return mix(
        golden,
        labels,
        path,
        config,
        CuratedMix(ratio=1.0),
        group=lambda label: label.query,
        expand=lambda picked: graded_examples(picked, CORPUS),
        budget=training_steps,
    )


def _curated(folder: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """A curated set written as the stack's curated fixture writes one (rows + datasheet)."""
    keyed = [Row(r, json.dumps(r, sort_keys=True), group=str(i)) for i, r in enumerate(rows)]
    dataset = prepare(name, keyed)  # one group per row: no near-duplicate is dropped
    return write_dataset(dataset, folder)


def _label_rows() -> list[dict[str, Any]]:
    return [{"query": q, "doc_id": d, "label": g} for q, d, g in LABELS]


# --------------------------------------------------------------------------- graded labels


def test_graded_labels_become_unit_targets_per_query(tmp_path: Path) -> None:
    path = tmp_path / "reranker_labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _label_rows()))
    labels = load_graded_labels(path, CORPUS)
    assert labels[0] == GradedLabel("cat on a mat", "d0", 2.0) and len(labels) == 6
    got = [(ex.query, ex.document, ex.label) for ex in graded_examples(labels, CORPUS)]
    assert got == [  # y = grade / 2, per query in first-seen order, documents as text
        ("cat on a mat", "cat mat sat", 1.0),
        ("cat on a mat", "the cat slept", 1.0),
        ("cat on a mat", "the dog ran", 0.0),
        ("dog by the river", "dogs and the river", 0.5),
        ("dog by the river", "a bird in a tree", 0.0),
    ]
    sampled = graded_examples(labels, CORPUS, negatives_per_query=2, seed=3)
    extra = [ex for ex in sampled if (ex.query, ex.document, ex.label) not in got]
    assert len(extra) == 4 and {ex.label for ex in extra} == {0.0}
    travel = {"train rail fast", "a bus on the road"}
    assert not travel & {ex.document for ex in extra}  # negatives stay in the positives' domain


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ({"query": "q", "doc_id": "d0", "label": 3}, r"label=3 must be a relevance grade in 0..2"),
        ({"query": "q", "doc_id": "d0", "label": True}, r"label=True must be a relevance grade"),
        ({"query": "q", "doc_id": "d0", "label": "high"}, r"label='high'"),
        ({"query": "q", "doc_id": "d0", "label": -1}, r"label=-1"),
        ({"query": "q", "label": 1}, r"doc_id=None must be a non-empty string"),
        ({"query": "q", "doc_id": "nope", "label": 1}, r"doc_id='nope' is not in the corpus"),
        ({"doc_id": "d0", "label": 1}, r"query"),
        ("{not json", r"not valid JSON"),
    ],
)
def test_a_bad_label_row_is_a_typed_error_at_its_line(
    tmp_path: Path, line: Any, match: str
) -> None:
    path = tmp_path / "reranker_labels.jsonl"
    good = json.dumps({"query": "q", "doc_id": "d0", "label": 2})
    path.write_text(good + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(GoldenDataError, match=rf"reranker_labels\.jsonl:2: .*{match}") as info:
        load_graded_labels(path, CORPUS)
    assert info.value.line == 2 and isinstance(info.value, ValueError)


def test_an_empty_curated_set_gives_no_rows_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "sft.jsonl"
    empty.write_text("\n")
    assert curated_rows(empty, load_graded_labels, CORPUS) == []
    with pytest.raises(TrainingError, match="does not exist; curate the logs first"):
        curated_rows(tmp_path / "dpo.jsonl", load_graded_labels, CORPUS)


# ------------------------------------------------------------------------------------ mix


def test_mix_caps_rows_keeps_groups_whole_and_holds_the_step_budget(tmp_path: Path) -> None:
    from guardrails.training.config import RerankerTrainingConfig

    path = _curated(tmp_path, "reranker_labels", _label_rows())
    labels = load_graded_labels(path, CORPUS)
    golden = [RerankExample(f"g{i}", "cat mat sat", float(i % 2)) for i in range(16)]
    config = RerankerTrainingConfig(loss="bce", batch_size=4, epochs=2.0)
    how = CuratedMix(cap=100, ratio=0.25)  # 0.25 x 16 golden = 4 rows: one query's 4 fit
    mixed = mix(golden, labels, path, config, how, group=lambda label: label.query)
    curated = mixed.examples[16:]
    assert mixed.examples[:16] == tuple(golden)
    assert {ex.query for ex in curated} in ({"cat on a mat"}, {"dog by the river"})
    assert mixed.datasheet.rows_available == 6 and mixed.datasheet.rows_used == len(curated)
    assert mixed.config.max_steps == 8 == step_budget(config, 16)  # ceil(16/4) x 2 epochs
    assert CuratedMix(cap=3, ratio=1.0).limit(16) == 3 and CuratedMix(ratio=0.1).limit(16) == 1
    free = mix(golden, labels, path, config, CuratedMix(ratio=1.0, hold_steps=False))
    assert len(free.examples) == 22 and free.config.max_steps == -1
    again = mix(golden, labels, path, config, how, group=lambda label: label.query)
    assert again.examples == mixed.examples  # seeded
    with pytest.raises(TrainingError, match="ratio=-1"):
        CuratedMix(ratio=-1)


def test_listwise_budget_counts_the_golden_lists_only(tmp_path: Path) -> None:
    from guardrails.training.config import RerankerTrainingConfig

    path = _curated(tmp_path, "reranker_labels", _label_rows())
    labels = load_graded_labels(path, CORPUS)
    golden = [RerankExample(f"g{i // 4}", f"doc {i}", float(i % 4 == 0)) for i in range(32)]
    config = RerankerTrainingConfig(loss="listwise", list_size=4, batch_size=8, epochs=2.0)
    mixed = _graded_mix(golden, labels, path, config)
    assert len(ranking_lists(golden, 4, config.seed)) == 8  # 8 lists, 2 per batch, 2 epochs
    assert mixed.config.max_steps == 8 == training_steps(config, golden)
    assert len(ranking_lists(mixed.examples, 4, config.seed)) > 8


# ------------------------------------------------------------------- record and fingerprint


def _train(out: Path) -> list[tuple[int, float]]:
    (out / "adapter.bin").write_bytes(b"weights")
    return [(1, 0.5)]


def test_the_record_names_the_datasheets_and_they_are_in_the_fingerprint(tmp_path: Path) -> None:
    path = _curated(tmp_path / "datasets", "sft", [{"prompt": "p", "answer": "a", "context": []}])
    ref = datasheet_ref(path, 1, 1)
    sheet = path.with_name("sft.datasheet.json")
    assert ref.datasheet == str(sheet)
    assert ref.datasheet_sha256 == hashlib.sha256(sheet.read_bytes()).hexdigest()
    assert ref.data_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    kwargs: dict[str, Any] = {
        "data_fingerprint": "sha256:rows",
        "base_fingerprint": "sha256:base",
        "train": _train,
        "root": tmp_path / "adapters",
    }
    golden_only = ensure_candidate("generator-sft", {"seed": 0}, **kwargs)
    with_curated = ensure_candidate("generator-sft", {"seed": 0}, datasheets=[ref], **kwargs)
    assert golden_only.record.datasheets == ()
    assert with_curated.fingerprint != golden_only.fingerprint
    assert with_curated.record.datasheets == (ref.as_record(),)
    cached = ensure_candidate("generator-sft", {"seed": 0}, datasheets=[ref], **kwargs)
    assert not cached.trained and cached.record.datasheets == (ref.as_record(),)
    # the same rows curated differently (another datasheet) are another training set
    sheet.write_text(sheet.read_text().replace('"seed": 0', '"seed": 1'))
    recurated = ensure_candidate(
        "generator-sft", {"seed": 0}, datasheets=[datasheet_ref(path, 1, 1)], **kwargs
    )
    assert recurated.trained and recurated.fingerprint != with_curated.fingerprint
    with pytest.raises(TrainingError, match="names no datasheet"):
        ensure_candidate("generator-sft", {"seed": 0}, datasheets=[{"path": "x"}], **kwargs)
    with pytest.raises(TrainingError, match=r"no datasheet sft2\.datasheet\.json beside it"):
        datasheet_ref(path.with_name("sft2.jsonl"), 0, 0)


# ------------------------------------------------------------------- each trainer, tiny models


@pytest.fixture(scope="module")
def tiny_ce(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.components.test_reranker import make_tiny_cross_encoder

    return make_tiny_cross_encoder(tiny_hf_dir, tmp_path_factory.mktemp("ce") / "model")


def test_curated_graded_labels_train_the_reranker_candidate(tiny_ce: Path, tmp_path: Path) -> None:
    from guardrails.training.config import RerankerTrainingConfig
    from guardrails.training.reranker import ensure_reranker_candidate

    config = RerankerTrainingConfig(
        loss="listwise", list_size=3, batch_size=6, max_length=32, lora_r=4, lora_alpha=8
    )
    golden = [
        RerankExample("sleeping cat", "the cat slept", 1.0),
        RerankExample("sleeping cat", "train rail fast", 0.0),
        RerankExample("sleeping cat", "a bus on the road", 0.0),
        RerankExample("fast train", "train rail fast", 1.0),
        RerankExample("fast train", "the cat slept", 0.0),
    ]
    path = _curated(tmp_path / "datasets", "reranker_labels", _label_rows())
    mixed = _graded_mix(golden, load_graded_labels(path, CORPUS), path, config)
    common: dict[str, Any] = {"root": tmp_path / "adapters", "base": tiny_ce, "progress": False}
    plain = ensure_reranker_candidate("toy", config=mixed.config, examples=golden, **common)
    curated = ensure_reranker_candidate(
        "toy", config=mixed.config, examples=mixed.examples, datasheets=[mixed.datasheet], **common
    )
    assert curated.trained and curated.fingerprint != plain.fingerprint
    assert curated.record.data_fingerprint != plain.record.data_fingerprint
    assert curated.record.extra["n_examples"] == len(golden) + 3  # 3 of the 5 fit the ratio
    (sheet,) = curated.record.datasheets
    assert sheet["datasheet"] == str(path.with_name("reranker_labels.datasheet.json"))
    assert sheet["rows_used"] == 4 and sheet["rows_available"] == 6
    assert len(curated.record.loss_curve) >= 1 and curated.record.config["max_steps"] == 2


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.components.test_generator import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_llama_mix") / "model")


DOCS = {"d0": "E21 means the backplate is not level.", "d1": "Reset: hold the button."}


def test_curated_sft_dpo_and_kto_sets_train_their_adapters(tiny_lm: Path, tmp_path: Path) -> None:
    from guardrails.training.alignment import (
        KTOExample,
        PreferenceExample,
        ensure_alignment_candidate,
        load_kto_examples,
        load_preference_pairs,
    )
    from guardrails.training.config import DPOConfig, GeneratorSFTConfig, KTOConfig
    from guardrails.training.generator import (
        SFTExample,
        ensure_generator_candidate,
        load_sft_pairs,
    )

    small = {"lora_r": 4, "lora_alpha": 8, "batch_size": 2, "max_steps": 1}
    folder = tmp_path / "datasets"
    sft = _curated(
        folder,
        "sft",
        [
            {"prompt": "What is E21?", "answer": "Not level.", "context": ["d0", "d1"]},
            {"prompt": "How to reset?", "answer": "Hold the button.", "context": ["d1"]},
        ],
    )
    dpo = _curated(
        folder,
        "dpo",
        [{"prompt": "E21?", "chosen": "Not level.", "rejected": "No idea.", "context": ["d0"]}],
    )
    kto = _curated(
        folder,
        "kto",
        [
            {"prompt": "E21?", "completion": "Not level.", "label": True, "context": ["d0"]},
            {"prompt": "E21?", "completion": "No idea.", "label": False, "context": ["d0"]},
        ],
    )
    how = CuratedMix(ratio=1.0, context_k=1)
    root = {"root": tmp_path / "adapters", "progress": False}
    plans: list[tuple[str, list[Any], Path, Any, Any]] = [
        ("sft", [SFTExample("Hi?", "Hello.")] * 2, sft, load_sft_pairs, GeneratorSFTConfig),
        ("dpo", [PreferenceExample("Hi?", "Hello.", "Go.")], dpo, load_preference_pairs, DPOConfig),
        (
            "kto",
            [KTOExample("Hi?", "Hello.", True), KTOExample("Hi?", "Go.", False)],
            kto,
            load_kto_examples,
            KTOConfig,
        ),
    ]
    for kind, golden, path, loader, config_type in plans:
        config = config_type(**small)
        rows = curated_rows(path, loader, DOCS)
        assert rows[0].context_texts[0] == DOCS["d0"]  # context ids resolved to passages
        mixed = mix(golden, rows, path, config, how)
        assert mixed.examples[len(golden)].context_texts == (DOCS["d0"],)  # context_k=1
        ensure = ensure_generator_candidate if kind == "sft" else ensure_alignment_candidate
        artifact = ensure(
            kind, tiny_lm, mixed.examples, mixed.config, datasheets=[mixed.datasheet], **root
        )
        plain = ensure(kind, tiny_lm, golden, mixed.config, **root)
        assert artifact.fingerprint != plain.fingerprint, kind
        assert artifact.record.extra["n_examples"] == len(golden) + len(rows), kind
        (sheet,) = artifact.record.datasheets
        assert Path(sheet["datasheet"]).name == f"{kind}.datasheet.json"
        assert sheet["rows_used"] == len(rows) and (artifact.path / "adapter_config.json").is_file()
    with pytest.raises(TrainingError, match="no datasheet"):
        datasheet_ref(tmp_path / "nowhere.jsonl", 0, 0)
