"""VectorIndex on real FAISS: oracle search, save/load round trips, guards and atomic writes."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.components.index import IndexConfig, VectorIndex
from guardrails.errors import ComponentError, FingerprintMismatch

EMB = "sha256:embedder-a"
OTHER = "sha256:embedder-b"
CORPUS = "sha256:corpus"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _docs(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[str], dict[str, str]]:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(n)]
    return x, ids, {d: f"sha256:{d}" for d in ids}


def _build(kind: str = "flat", n: int = 200, **config: Any) -> tuple[VectorIndex, np.ndarray]:
    x, ids, hashes = _docs(n)
    index = VectorIndex.build(
        x,
        ids,
        config=IndexConfig(kind=kind, **config),
        embedder_fingerprint=EMB,
        corpus_fingerprint=CORPUS,
        doc_hashes=hashes,
    )
    return index, x


def _brute_force(x: np.ndarray, q: np.ndarray, k: int, metric: str, normalize: bool) -> Any:
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ x.T if metric == "ip" else -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), [[f"doc-{i}" for i in row] for row in top]


def test_import_pulls_no_faiss() -> None:
    code = "import sys, guardrails.components.index; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("normalize", [True, False])
def test_flat_search_matches_brute_force(metric: str, normalize: bool) -> None:
    index, x = _build(metric=metric, normalize=normalize)
    q = np.random.default_rng(9).standard_normal((7, 16)).astype(np.float32)
    scores, ids = index.search(q, 5, embedder_fingerprint=EMB)
    want_scores, want_ids = _brute_force(x, q, 5, metric, normalize)
    assert scores.shape == (7, 5) and scores.dtype == np.float32
    assert ids == want_ids
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


def test_ivf_probing_every_cell_is_exact() -> None:
    flat, x = _build("flat")
    ivf, _ = _build("ivf", ivf_nlist=8, nprobe=8)
    q = x[:20] + 0.1
    assert (
        ivf.search(q, 10, embedder_fingerprint=EMB)[1]
        == flat.search(q, 10, embedder_fingerprint=EMB)[1]
    )
    assert ivf.manifest()["params"] == {"ivf_nlist": 8, "nprobe": 8}


def test_ivf_nlist_default_is_four_root_n() -> None:
    assert IndexConfig(kind="ivf").resolved(400).ivf_nlist == 80
    assert IndexConfig(kind="ivf").resolved(5).ivf_nlist == 5  # never more cells than points
    assert IndexConfig(kind="ivf").resolved(10**9).ivf_nlist == 4096


def test_hnsw_recall_against_exact_search() -> None:
    flat, _ = _build("flat", n=1000)
    hnsw, _ = _build("hnsw", n=1000, hnsw_m=16, ef_search=64)
    q = np.random.default_rng(3).standard_normal((50, 16)).astype(np.float32)
    exact = flat.search(q, 10, embedder_fingerprint=EMB)[1]
    approx = hnsw.search(q, 10, embedder_fingerprint=EMB)[1]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_mismatched_embedder_is_refused(kind: str) -> None:
    index, x = _build(kind, n=50)
    with pytest.raises(FingerprintMismatch) as info:
        index.search(x[:2], 3, embedder_fingerprint=OTHER)
    message = str(info.value)
    assert EMB in message and OTHER in message
    assert "rebuild the index with this embedder or use the matching one" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(FingerprintMismatch):
        index.search_run(["q1", "q2"], x[:2], 3, OTHER)
    with pytest.raises(FingerprintMismatch):
        index.add(x[:1], ["new"], {"new": "sha256:new"}, embedder_fingerprint=OTHER)


def test_search_run_shape_and_short_results() -> None:
    index, x = _build(n=3)
    run = index.search_run(["q1", "q2"], x[:2], 5, EMB)
    assert set(run) == {"q1", "q2"} and len(run["q1"]) == 3
    assert max(run["q1"], key=run["q1"].__getitem__) == "doc-0"
    scores, ids = index.search(x[:1], 5, embedder_fingerprint=EMB)
    assert (
        len(ids[0]) == 3 and np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()
    )


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_remove_and_add_by_id(kind: str) -> None:
    index, x = _build(kind, n=100, nprobe=64)
    gone = ["doc-3", "doc-50", "doc-99"]
    kept_vector = index.reconstruct("doc-4")
    old_corpus = index.corpus_fingerprint
    index.remove(gone)
    assert len(index) == 97 and not set(gone) & set(index.doc_hashes)
    assert index.corpus_fingerprint != old_corpus
    _, ids = index.search(x, 100, embedder_fingerprint=EMB)
    assert not set(gone) & {d for row in ids for d in row}
    np.testing.assert_array_equal(index.reconstruct("doc-4"), kept_vector)
    with pytest.raises(ComponentError, match="doc-3"):
        index.reconstruct("doc-3")
    fresh = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32)
    index.add(fresh, ["new-a", "doc-3"], {"new-a": "sha256:a", "doc-3": "sha256:c"})
    assert index.search(fresh, 1, embedder_fingerprint=EMB)[1] == [["new-a"], ["doc-3"]]
    assert len(index) == 99 and index.doc_hashes["doc-3"] == "sha256:c"


def test_add_refuses_present_ids_and_remove_refuses_unknown_ones() -> None:
    index, x = _build(n=10)
    with pytest.raises(ComponentError, match="already indexed"):
        index.add(x[:1], ["doc-1"], {"doc-1": "sha256:x"})
    with pytest.raises(ComponentError, match="'ghost' is not in the index"):
        index.remove(["doc-1", "ghost"])
    assert len(index) == 10


def test_hnsw_cannot_remove_but_can_be_rebuilt_from_reconstruct() -> None:
    index, _ = _build("hnsw", n=30)
    assert not index.supports_remove
    with pytest.raises(ComponentError, match="hnsw index cannot remove vectors; rebuild"):
        index.remove(["doc-1"])
    keep = [d for d in index.doc_ids if d != "doc-1"]
    rebuilt = VectorIndex.build(
        np.stack([index.reconstruct(d) for d in keep]),
        keep,
        config=index.config,
        embedder_fingerprint=EMB,
        corpus_fingerprint=CORPUS,
        doc_hashes=index.doc_hashes,
    )
    assert len(rebuilt) == 29 and "doc-1" not in rebuilt.doc_ids


doc_id = st.text(min_size=1, max_size=12)


@st.composite
def index_cases(draw: st.DrawFn) -> tuple[str, str, bool, np.ndarray, list[str]]:
    n = draw(st.integers(1, 60))
    dim = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    ids = draw(st.lists(doc_id, min_size=n, max_size=n, unique=True))
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    kind = draw(st.sampled_from(["flat", "hnsw", "ivf"]))
    return kind, draw(st.sampled_from(["ip", "l2"])), draw(st.booleans()), x, ids


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=index_cases(), k=st.integers(1, 8))
def test_save_load_round_trip_gives_identical_search(
    case: tuple[str, str, bool, np.ndarray, list[str]],
    k: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    kind, metric, normalize, x, ids = case
    hashes = {d: f"sha256:{i}" for i, d in enumerate(ids)}
    config = IndexConfig(kind=kind, metric=metric, normalize=normalize, nprobe=2, hnsw_m=8)
    index = VectorIndex.build(
        x,
        ids,
        config=config,
        embedder_fingerprint=EMB,
        corpus_fingerprint=CORPUS,
        doc_hashes=hashes,
    )
    folder = index.save(tmp_path_factory.mktemp("idx") / "index")
    loaded = VectorIndex.load(folder)
    q = x[: min(5, len(ids))] + np.float32(0.05)
    before, after = (
        index.search(q, k, embedder_fingerprint=EMB),
        loaded.search(q, k, embedder_fingerprint=EMB),
    )
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1] == before[1]
    assert loaded.config == index.config and loaded.doc_hashes == hashes
    assert loaded.manifest() == index.manifest() and loaded.fingerprint == index.fingerprint


def test_manifest_records_provenance(tmp_path: Path) -> None:
    import faiss

    index, _ = _build("hnsw", n=20, hnsw_m=8, ef_search=40)
    manifest = json.loads((index.save(tmp_path / "ix") / "manifest.json").read_text())
    assert manifest["embedder_fingerprint"] == EMB and manifest["corpus_fingerprint"] == CORPUS
    assert manifest["dim"] == 16 and manifest["metric"] == "ip" and manifest["normalize"] is True
    assert manifest["kind"] == "hnsw" and manifest["params"] == {"hnsw_m": 8, "ef_search": 40}
    assert manifest["faiss_version"] == faiss.__version__ and manifest["schema_version"] == 1
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset() == timedelta(0)
    assert sorted(manifest["doc_ids"].values()) == list(range(20))
    assert manifest["doc_hashes"]["doc-7"] == "sha256:doc-7"


def test_fingerprint_and_memory_follow_content() -> None:
    small, _ = _build(n=50)
    same, _ = _build(n=50)
    big, _ = _build(n=100)
    assert small.fingerprint == same.fingerprint != big.fingerprint
    assert 50 * 16 * 4 <= small.memory_bytes() < big.memory_bytes()
    same.remove(["doc-0"])
    assert same.fingerprint != small.fingerprint


def _corrupt(folder: Path, edit: Any) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda m: m.pop("embedder_fingerprint"), "embedder_fingerprint"),
        (lambda m: m.update(dim="16"), "dim"),
        (lambda m: m.update(dim=8), "dim"),
        (lambda m: m["doc_ids"].pop("doc-1"), "doc_ids"),
        (lambda m: m["doc_hashes"].pop("doc-1"), "doc_hashes"),
        (lambda m: m.update(schema_version=99), "schema_version"),
        (lambda m: m.update(kind="annoy"), "kind"),
        (lambda m: m.update(normalize="yes"), "normalize"),
        (lambda m: m.update(kind="hnsw", params={"hnsw_m": 8, "ef_search": 8}), "kind"),
        (lambda m: m.update(metric="l2"), "metric"),
        (lambda m: m.update(params={"nprobe": 0}), "params"),
        (lambda m: m.update(next_id=3), "next_id"),
    ],
)
def test_broken_manifest_names_file_and_key(tmp_path: Path, edit: Any, key: str) -> None:
    index, _ = _build(n=10)
    folder = index.save(tmp_path / "ix")
    _corrupt(folder, edit)
    with pytest.raises(ComponentError, match=rf"manifest\.json: key '{key}'"):
        VectorIndex.load(folder)


def test_unparsable_or_missing_manifest(tmp_path: Path) -> None:
    index, _ = _build(n=10)
    folder = index.save(tmp_path / "ix")
    (folder / "manifest.json").write_text('{"kind": "flat",')
    with pytest.raises(ComponentError, match=r"manifest\.json: manifest is not valid JSON"):
        VectorIndex.load(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ComponentError, match="manifest is missing"):
        VectorIndex.load(folder)


def test_crash_mid_save_leaves_previous_index_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    old, x = _build(n=40)
    folder = old.save(tmp_path / "ix")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    new, _ = _build(n=80)

    partial = faiss.serialize_index(new._index).tobytes()[:100]

    def crash(index: Any, path: str) -> None:
        Path(path).write_bytes(partial)  # the first bytes land, then the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError, match="disk full"):
        new.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]  # no temp folder left behind
    monkeypatch.undo()
    loaded = VectorIndex.load(folder)
    assert len(loaded) == 40
    assert (
        loaded.search(x[:3], 4, embedder_fingerprint=EMB)[1]
        == old.search(x[:3], 4, embedder_fingerprint=EMB)[1]
    )
    new.save(folder)  # a successful save replaces the folder whole
    assert len(VectorIndex.load(folder)) == 80 and [p.name for p in tmp_path.iterdir()] == ["ix"]


def test_bad_inputs_are_refused() -> None:
    x, ids, hashes = _docs(5)
    build = functools.partial(
        VectorIndex.build, config=IndexConfig(), embedder_fingerprint=EMB, corpus_fingerprint=CORPUS
    )
    with pytest.raises(ComponentError, match="kind='annoy'"):
        IndexConfig(kind="annoy")
    with pytest.raises(ComponentError, match=r"len\(doc_ids\)=4"):
        build(x, ids[:4], doc_hashes=hashes)
    with pytest.raises(ComponentError, match="unique"):
        build(x, ["a"] * 5, doc_hashes={"a": "h"})
    with pytest.raises(ComponentError, match="doc_hashes lacks 1 doc ids"):
        build(x, ids, doc_hashes={d: h for d, h in hashes.items() if d != "doc-2"})
    x[0, 0] = np.nan
    with pytest.raises(ComponentError, match="NaN"):
        build(x, ids, doc_hashes=hashes)
    index, _ = _build(n=5)
    with pytest.raises(ComponentError, match=r"shape \(n, 16\)"):
        index.search(np.ones((1, 3)), 2, embedder_fingerprint=EMB)


def _dbpedia(limit: int) -> tuple[list[str], list[str], list[str]]:
    corpus = DATA / "dbpedia_entity_sample" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"public data not found at {corpus}")
    docs = [json.loads(line) for line in corpus.open(encoding="utf-8")][:limit]
    queries = DATA / "dbpedia_entity_sample" / "queries.jsonl"
    qtexts = [json.loads(line)["text"] for line in queries.open(encoding="utf-8")]
    texts = [f"{d.get('title', '')}. {d.get('text', '')}" for d in docs]
    return [d["_id"] for d in docs], texts, qtexts


@pytest.mark.slow
def test_minilm_on_dbpedia_approximate_kinds_agree_with_exact(tmp_path: Path) -> None:
    from guardrails.components.embedder import Embedder, EmbeddingCache, content_hash, minilm_path

    ids, texts, queries = _dbpedia(1000)
    model = Embedder.load(minilm_path())
    vectors = model.encode_documents(texts, EmbeddingCache(tmp_path), progress=False)
    q = model.encode_queries(queries)
    hashes = {d: content_hash(t) for d, t in zip(ids, texts, strict=True)}
    runs = {}
    for kind in ("flat", "hnsw", "ivf"):
        index = VectorIndex.build(
            vectors,
            ids,
            config=IndexConfig(kind=kind, nprobe=16),
            embedder_fingerprint=model.fingerprint,
            corpus_fingerprint=CORPUS,
            doc_hashes=hashes,
        )
        runs[kind] = index.search(q, 10, embedder_fingerprint=model.fingerprint)[1]
    for kind in ("hnsw", "ivf"):
        pairs = zip(runs[kind], runs["flat"], strict=True)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in pairs])
        print(f"top-10 overlap {kind} vs flat on dbpedia: {overlap:.3f}")
        assert overlap >= 0.85, (kind, overlap)
