"""Incremental and batch re-embed on real FAISS with the tiny random embedder.

The oracle for an incremental update is a full rebuild from scratch on the new corpus: the
updated index must answer every query with the same documents and scores. Model calls are
counted by wrapping the sentence-transformers model under the embedder, not our code.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.cli import main
from guardrails.components.embedder import Embedder, EmbeddingCache, content_hash
from guardrails.components.index import IndexConfig, VectorIndex
from guardrails.components.reembed import (
    apply_reembed,
    batch_reembed,
    most_retrieved,
    plan_reembed,
)
from guardrails.components.stack import corpus_fingerprint, ensure_index
from guardrails.errors import ComponentError, FingerprintMismatch
from guardrails.monitoring.logs import Hit
from tests.components.conftest import WORDS, tiny_hf_dir, tiny_st_path

__all__ = ["tiny_hf_dir", "tiny_st_path"]

VOCAB = sorted(set(WORDS))
CONFIGS = {
    "flat": IndexConfig(kind="flat"),
    "hnsw": IndexConfig(kind="hnsw", hnsw_m=8, ef_search=64),
    "ivf": IndexConfig(kind="ivf", ivf_nlist=4, nprobe=4),  # every cell probed: exact
}


def _sentence(rng: random.Random, length: int | None = None) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(length or rng.randint(5, 12)))


def _corpora(seed: int = 0) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """An old corpus of 40 docs and a new one: 3 deleted, 4 changed, 5 new.

    Every text has its own length in words: the tiny tokenizer of tests/components knows only
    its special tokens (every word becomes [UNK]), so length is what makes vectors differ.
    """
    rng = random.Random(seed)
    lengths = iter(rng.sample(range(2, 60), 49))
    old = {f"d{i:02d}": _sentence(rng, next(lengths)) for i in range(40)}
    new = {d: t for d, t in old.items() if d not in {"d03", "d17", "d29"}}
    for d in ("d05", "d11", "d23", "d38"):
        new[d] = _sentence(rng, next(lengths))
    new.update({f"n{i}": _sentence(rng, next(lengths)) for i in range(5)})
    expected = {
        "new": {f"n{i}" for i in range(5)},
        "changed": {"d05", "d11", "d23", "d38"},
        "deleted": {"d03", "d17", "d29"},
    }
    expected["unchanged"] = set(old) - expected["changed"] - expected["deleted"]
    return old, new, expected


class CountingModel:
    """Forwards to a SentenceTransformer and records every text it is asked to encode."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.texts: list[str] = []

    def _counted(self, method: str) -> Any:
        def encode(texts: Any, *args: Any, **kwargs: Any) -> Any:
            self.texts.extend([texts] if isinstance(texts, str) else list(texts))
            return getattr(self._model, method)(texts, *args, **kwargs)

        return encode

    def __getattr__(self, name: str) -> Any:
        if name in ("encode", "encode_document", "encode_query"):
            return self._counted(name)
        return getattr(self._model, name)

    def __iter__(self) -> Any:
        return iter(self._model)


@pytest.fixture(scope="module")
def _loaded(tiny_st_path: Path) -> Embedder:
    return Embedder.load(tiny_st_path, batch_size=16)


@pytest.fixture
def embedder(_loaded: Embedder) -> Embedder:
    """The tiny embedder, its model wrapped in a fresh :class:`CountingModel`."""
    base = _loaded.model
    counted = Embedder(
        CountingModel(base), _loaded.fingerprint, batch_size=16, normalize=True, cache=None
    )
    return counted


def _calls(embedder: Embedder) -> list[str]:
    return embedder.model.texts


def _search(index: VectorIndex, embedder: Embedder, queries: list[str], k: int = 10) -> Any:
    q = embedder.encode_queries(queries)
    return index.search(q, k, embedder_fingerprint=embedder.fingerprint)


def _random_index(hashes: dict[str, str]) -> VectorIndex:
    ids = sorted(hashes)
    x = np.random.default_rng(len(ids)).standard_normal((len(ids), 8)).astype(np.float32)
    return VectorIndex.build(
        x,
        ids,
        config=IndexConfig(),
        embedder_fingerprint="sha256:e",
        corpus_fingerprint="sha256:c",
        doc_hashes=hashes,
    )


# ------------------------------------------------------------------------------ planning


def test_plan_categories_are_exact() -> None:
    old, new, expected = _corpora()
    index = _random_index({d: content_hash(t) for d, t in old.items()})
    plan = plan_reembed(index, new)
    for name, ids in expected.items():
        assert set(getattr(plan, name)) == ids, name
        assert list(getattr(plan, name)) == sorted(ids)
    assert plan.refresh == ()
    assert plan.to_embed == tuple(sorted(expected["new"] | expected["changed"]))
    assert plan.to_remove == tuple(sorted(expected["deleted"] | expected["changed"]))
    assert plan.corpus_fingerprint == corpus_fingerprint(new)
    assert plan.counts() == {"new": 5, "changed": 4, "deleted": 3, "unchanged": 33, "refresh": 0}
    assert "new=5 changed=4 deleted=3 unchanged=33 refresh=0" in plan.summary()[0]


def test_plan_refreshes_only_unchanged_hot_documents() -> None:
    old, new, _ = _corpora()
    index = _random_index({d: content_hash(t) for d, t in old.items()})
    hot = ["d05", "d30", "d03", "n1", "d01", "d02", "d09"]  # changed, ok, deleted, new, ok, ok
    assert plan_reembed(index, new, hot_ids=hot, refresh_hot=5).refresh == ("d01", "d30")
    assert plan_reembed(index, new, hot_ids=hot, refresh_hot=0).refresh == ()
    assert plan_reembed(index, new, hot_ids=hot, refresh_hot=99).refresh == (
        "d01",
        "d02",
        "d09",
        "d30",
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=st.dictionaries(st.sampled_from("abcdefghij"), st.sampled_from("xyz"), min_size=1),
    new=st.dictionaries(st.sampled_from("abcdefghij"), st.sampled_from("xyz"), min_size=1),
)
def test_plan_partitions_like_set_algebra(old: dict[str, str], new: dict[str, str]) -> None:
    plan = plan_reembed(_random_index({d: content_hash(t) for d, t in old.items()}), new)
    assert set(plan.new) == new.keys() - old.keys()
    assert set(plan.deleted) == old.keys() - new.keys()
    assert set(plan.changed) == {d for d in old.keys() & new.keys() if old[d] != new[d]}
    assert set(plan.unchanged) | set(plan.changed) | set(plan.new) == set(new)
    assert plan.is_empty == (old == new)


def test_most_retrieved_counts_dicts_objects_and_ties() -> None:
    @dataclass
    class Rec:
        retrieved: list[Any]

    records = [
        Rec([{"doc_id": "b", "score": 0.9}, {"doc_id": "a", "score": 0.5}]),
        Rec([Hit("c", 0.3), Hit("b", 0.2)]),
        Rec([["a", 1.0], "c", {"doc_id": "b", "score": 0.1}]),
        Rec([]),
    ]
    assert most_retrieved(records, 2) == ["b", "a"]  # b x3; a and c x2, tie broken by id
    assert most_retrieved(records, 10) == ["b", "a", "c"]
    assert most_retrieved(records, 0) == []


def test_empty_corpus_is_refused() -> None:
    with pytest.raises(ComponentError, match="empty"):
        plan_reembed(_random_index({"a": "sha256:a"}), {})


# ------------------------------------------------------------------------------ applying


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_apply_equals_full_rebuild(kind: str, embedder: Embedder, tmp_path: Path) -> None:
    old, new, _ = _corpora()
    cache = EmbeddingCache(tmp_path / "cache")
    index = ensure_index(
        embedder, old, tmp_path / "old", config=CONFIGS[kind], cache=cache, progress=False
    )
    report = apply_reembed(index, plan_reembed(index, new), embedder, new, cache=cache)
    scratch = ensure_index(
        embedder, new, tmp_path / "scratch", config=CONFIGS[kind], cache=cache, progress=False
    )
    updated = report.index
    assert report.mode == {"flat": "in-place", "hnsw": "rebuilt", "ivf": "in-place"}[kind]
    assert (updated is index) == (kind != "hnsw")
    queries = [_sentence(random.Random(s), s + 1) for s in range(60)] + [new["n2"], new["d05"]]
    got, want = _search(updated, embedder, queries), _search(scratch, embedder, queries)
    assert got[1] == want[1]
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-6)
    assert updated.doc_hashes == {d: content_hash(t) for d, t in new.items()}
    assert updated.corpus_fingerprint == scratch.corpus_fingerprint == corpus_fingerprint(new)
    assert report.index_fingerprint == updated.fingerprint != report.previous_fingerprint
    assert (report.new, report.changed, report.deleted) == (5, 4, 3)
    updated.save(tmp_path / "saved")  # the manifest stays consistent with the FAISS index
    assert VectorIndex.load(tmp_path / "saved").fingerprint == updated.fingerprint


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_only_new_and_changed_documents_reach_the_model(
    kind: str, embedder: Embedder, tmp_path: Path
) -> None:
    old, new, expected = _corpora(seed=1)
    cache = EmbeddingCache(tmp_path / "cache")
    index = ensure_index(
        embedder, old, tmp_path / "i", config=CONFIGS[kind], cache=cache, progress=False
    )
    assert sorted(_calls(embedder)) == sorted(old.values())
    del _calls(embedder)[:]
    plan = plan_reembed(index, new)
    # no cache: HNSW must take unchanged vectors from the index itself, never the model
    report = apply_reembed(index, plan, embedder, new, cache=None, progress=False)
    fresh = {new[d] for d in expected["new"] | expected["changed"]}
    assert sorted(_calls(embedder)) == sorted(fresh)
    assert (report.encoded, report.embedded) == (9, 9)
    again = apply_reembed(report.index, plan_reembed(report.index, new), embedder, new)
    assert again.mode == "unchanged" and again.encoded == 0
    assert again.index_fingerprint == report.index_fingerprint
    assert len(_calls(embedder)) == 9


def test_hot_refresh_goes_through_the_cache(embedder: Embedder, tmp_path: Path) -> None:
    old, new, _ = _corpora(seed=2)
    cache = EmbeddingCache(tmp_path / "cache")
    index = ensure_index(embedder, old, tmp_path / "i", cache=cache, progress=False)
    del _calls(embedder)[:]
    plan = plan_reembed(index, new, hot_ids=["d07", "d08", "d05"], refresh_hot=3)
    assert plan.refresh == ("d07", "d08")
    report = apply_reembed(index, plan, embedder, new, cache=cache, progress=False)
    assert report.refreshed == 2 and report.encoded == 11 and report.embedded == 9
    assert len(_calls(embedder)) == 9  # the two hot documents came from the cache
    assert set(index.doc_ids) == set(new)


def test_mismatched_embedder_is_refused(
    embedder: Embedder, tiny_st_path: Path, tmp_path: Path
) -> None:
    old, new, _ = _corpora()
    index = ensure_index(embedder, old, tmp_path / "i", progress=False)
    before = index.fingerprint
    other = Embedder.load(tiny_st_path, normalize=False)  # another fingerprint, same weights
    assert other.fingerprint != embedder.fingerprint
    with pytest.raises(FingerprintMismatch, match=r"rebuild"):
        apply_reembed(index, plan_reembed(index, new), other, new)
    assert index.fingerprint == before


def test_a_stale_plan_is_refused(embedder: Embedder, tmp_path: Path) -> None:
    old, new, _ = _corpora()
    index = ensure_index(embedder, old, tmp_path / "i", progress=False)
    plan = plan_reembed(index, new)
    apply_reembed(index, plan, embedder, new, progress=False)
    with pytest.raises(ComponentError, match="plan_reembed"):
        apply_reembed(index, plan, embedder, new, progress=False)
    edited = {**new, "d00": "a changed text"}
    with pytest.raises(ComponentError, match="plan_reembed"):
        apply_reembed(index, plan_reembed(index, new), embedder, edited, progress=False)


# ------------------------------------------------------------------------------ batch mode


def test_batch_reembed_equals_ensure_index(embedder: Embedder, tmp_path: Path) -> None:
    _, new, _ = _corpora()
    cache = EmbeddingCache(tmp_path / "cache")
    index = batch_reembed(
        embedder, new, tmp_path / "b", config=CONFIGS["flat"], cache=cache, batch_size=7
    )
    assert len(_calls(embedder)) == len(new)  # each document embedded once, in 7 batches
    assert VectorIndex.load(tmp_path / "b").fingerprint == index.fingerprint
    built = ensure_index(embedder, new, tmp_path / "e", cache=cache, progress=False)
    assert built.fingerprint == index.fingerprint
    assert len(_calls(embedder)) == len(new)


# ------------------------------------------------------------------------------------- CLI


def _write_corpus(path: Path, docs: dict[str, str]) -> Path:
    lines = [json.dumps({"_id": d, "title": "", "text": t}) for d, t in docs.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_dry_run_then_apply(
    embedder: Embedder, tiny_st_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    old, new, _ = _corpora()
    folder = tmp_path / "index"
    batch_reembed(embedder, old, folder, config=CONFIGS["hnsw"], progress=False)
    before = VectorIndex.load(folder).fingerprint
    manifest = (folder / "manifest.json").read_bytes()
    items = sorted(new.items())
    files = [
        _write_corpus(tmp_path / "a.jsonl", dict(items[:20])),
        _write_corpus(tmp_path / "b.jsonl", dict(items[20:])),
    ]
    logs = tmp_path / "logs.jsonl"
    hits = [{"doc_id": "d09", "score": 0.5}, {"doc_id": "d03", "score": 0.4}]
    record = {"timestamp": 0, "session_id": "s", "query": "q", "retrieved": hits}
    logs.write_text(json.dumps(record) + "\n", encoding="utf-8")
    args = ["reembed", "--index", str(folder), "--model", str(tiny_st_path)]
    args += [a for f in files for a in ("--corpus", str(f))]

    assert main([*args, "--dry-run", "--hot-from-logs", str(logs), "--refresh-hot", "2"]) == 0
    out = capsys.readouterr().out
    assert "new=5 changed=4 deleted=3 unchanged=33 refresh=1" in out
    assert "refresh: d09" in out and "dry run" in out
    assert (folder / "manifest.json").read_bytes() == manifest
    assert VectorIndex.load(folder).fingerprint == before

    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plan"]["counts"]["new"] == 5 and result["report"]["mode"] == "rebuilt"
    on_disk = VectorIndex.load(folder)
    assert on_disk.fingerprint == result["report"]["index_fingerprint"] != before
    assert on_disk.doc_hashes == {d: content_hash(t) for d, t in new.items()}
    assert on_disk.corpus_fingerprint == corpus_fingerprint(new)


def test_cli_refuses_refresh_without_logs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = _write_corpus(tmp_path / "c.jsonl", {"a": "text"})
    argv = ["reembed", "--index", str(tmp_path), "--corpus", str(corpus), "--refresh-hot", "3"]
    assert main(argv) == 2
    assert "--hot-from-logs" in capsys.readouterr().err


def test_cli_reembed_on_ray_equals_in_process(
    local_ray, embedder: Embedder, tiny_st_path: Path, tmp_path: Path, capsys
) -> None:
    """`reembed --ray`: the same plan, the same ids and hashes, the same vectors (float32
    rounding: the actors batch texts differently), the same answers."""
    old, new, _ = _corpora()
    corpus = _write_corpus(tmp_path / "new.jsonl", new)
    results = {}
    for name, extra in (("here", ["--backend", "in-process"]), ("ray", ["--ray"])):
        folder = tmp_path / name
        batch_reembed(embedder, old, folder, config=CONFIGS["flat"], progress=False)
        argv = ["reembed", "--index", str(folder), "--model", str(tiny_st_path)]
        argv += ["--corpus", str(corpus), "--config", str(tmp_path / "absent.toml"), "--json"]
        assert main([*argv, *extra]) == 0
        results[name] = (json.loads(capsys.readouterr().out), VectorIndex.load(folder))
    (here, here_index), (ray_out, ray_index) = results["here"], results["ray"]
    assert (here["backend"], ray_out["backend"]) == ("in-process", "ray")
    assert ray_out["plan"] == here["plan"] and ray_out["report"]["encoded"] == 9
    assert ray_index.doc_hashes == here_index.doc_hashes
    for doc in ("d05", "d11", *sorted(set(new) - set(old))):  # changed and new documents
        np.testing.assert_allclose(
            ray_index.reconstruct(doc), here_index.reconstruct(doc), rtol=1e-5, atol=1e-6
        )
    assert not np.allclose(ray_index.reconstruct("d05"), ray_index.reconstruct("d11"))
