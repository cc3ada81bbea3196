"""ResultCache (SQLite, content-addressed model outputs) and its use by Generator and Reranker.

The generator is the tiny random Llama of ``test_generator.py``, the reranker the tiny random
cross-encoder of ``test_reranker.py``; "did not call the model" is checked by replacing the
model call with one that raises.
"""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.components.generator import Generator
from guardrails.components.memo import ResultCache, input_key
from guardrails.components.reranker import Reranker
from guardrails.errors import ComponentError
from tests.components.test_generator import QUESTIONS, build_tiny_causal_lm
from tests.components.test_reranker import DOCS, QUERIES, RUN, make_tiny_cross_encoder

CONTEXTS = [["Refunds take five days."], [], ["Label each wire."], ["Paris."], []]
COMPLETIONS = ["Five days.", "Paris is the capital.", "E21", "the lazy dog", "Why not?"]


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the model was called although every output is cached")


# ----------------------------------------------------------------------------- ResultCache


def test_round_trip_across_instances(tmp_path: Path) -> None:
    values = {"k1": "an answer é ✓", "k2": -12.375, "k3": 1e-300, "k4": ""}
    ResultCache(tmp_path).put_many("generate", "fp", values)
    again = ResultCache(tmp_path)  # a fresh connection reads what the first one stored
    assert (tmp_path / "results.sqlite").is_file()
    assert again.get_many("generate", "fp", ["k1", "k2", "k3", "k4", "k5"]) == values
    assert again.get_many("generate", "fp", []) == {}
    assert len(again) == 4
    again.put_many("generate", "fp", {"k1": "replaced"})
    assert again.get_many("generate", "fp", ["k1"]) == {"k1": "replaced"} and len(again) == 4


def test_float32_and_float64_values_survive_exactly(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    x64 = float(np.float64(1) / 3)
    x32 = float(np.float32(0.1))
    cache.put_many("loglik", "fp", {"a": x64, "b": x32})
    got = cache.get_many("loglik", "fp", ["a", "b"])
    assert got["a"] == x64 and np.float32(got["b"]) == np.float32(0.1)


def test_kinds_and_fingerprints_are_isolated(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put_many("generate", "fp-a", {"k": "from a"})
    cache.put_many("generate", "fp-b", {"k": "from b"})
    cache.put_many("loglik", "fp-a", {"k": 1.5})
    assert cache.get_many("generate", "fp-a", ["k"]) == {"k": "from a"}
    assert cache.get_many("generate", "fp-b", ["k"]) == {"k": "from b"}
    assert cache.get_many("loglik", "fp-a", ["k"]) == {"k": 1.5}
    assert cache.get_many("rerank", "fp-a", ["k"]) == {}
    assert cache.get_many("loglik", "fp-b", ["k"]) == {}
    assert len(cache) == 3


def test_input_key_is_canonical_and_separates_parts() -> None:
    assert input_key("prompt", 48) == input_key("prompt", 48)
    assert input_key("prompt", 48).startswith("sha256:")
    distinct = {
        input_key("prompt", 48),
        input_key("prompt", 47),
        input_key("prompt ", 48),
        input_key("ab", "c"),
        input_key("a", "bc"),
        input_key("c", "ab"),
        input_key("prompt", "48"),
    }
    assert len(distinct) == 7
    assert input_key({"b": 1, "a": 2}) == input_key({"a": 2, "b": 1})
    with pytest.raises(ComponentError, match="not JSON values"):
        input_key("prompt", object())


def test_put_many_is_atomic(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put_many("generate", "fp", {"old": "kept"})
    bad = {f"k{i}": f"answer {i}" for i in range(50)} | {"bad": object(), "after": "x"}
    with pytest.raises(ComponentError, match=r"results\.sqlite.*'bad'.*not JSON-serialisable"):
        cache.put_many("generate", "fp", bad)
    assert len(cache) == 1  # the 50 rows inserted before the bad value were rolled back
    assert cache.get_many("generate", "fp", ["old", "k0", "k49", "after"]) == {"old": "kept"}


def _writer(directory: str, name: str, barrier: Any) -> None:
    cache = ResultCache(directory)
    barrier.wait(timeout=60)
    for batch in range(40):
        rows = {f"{name}-{batch}-{i}": f"{name} {batch} {i}" for i in range(10)}
        rows[f"shared-{batch}"] = "same"  # both processes write this key
        cache.put_many("generate", "fp", rows)


def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    ResultCache(tmp_path)  # the schema exists before the race (each writer opens it too)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n, barrier)) for n in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = ResultCache(tmp_path)
    keys = [f"{n}-{b}-{i}" for n in ("a", "b") for b in range(40) for i in range(10)]
    found = cache.get_many("generate", "fp", keys + [f"shared-{b}" for b in range(40)])
    assert len(found) == len(cache) == 2 * 400 + 40
    assert found["b-39-9"] == "b 39 9" and found["shared-7"] == "same"


def test_a_corrupted_file_raises_component_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not an sqlite database\n" * 200)
    with pytest.raises(ComponentError, match=rf"{re.escape(str(path))}.*not a database"):
        ResultCache(tmp_path)


def test_a_corrupted_value_raises_component_error_naming_the_file(tmp_path: Path) -> None:
    import sqlite3

    cache = ResultCache(tmp_path)
    with sqlite3.connect(cache.path) as conn:
        conn.execute(
            "INSERT INTO results VALUES ('generate', ?, 'k', '{not json')", [cache._stored("fp")]
        )
    conn.close()
    with pytest.raises(ComponentError, match=rf"{re.escape(str(cache.path))}.*'k'.*not JSON"):
        cache.get_many("generate", "fp", ["k"])


def test_a_library_upgrade_starts_a_fresh_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guardrails.components.memo as memo

    ResultCache(tmp_path).put_many("generate", "fp", {"k": "old answer"})
    monkeypatch.setattr(memo, "_runtime_fingerprint", lambda: "sha256:other-torch")
    assert ResultCache(tmp_path).get_many("generate", "fp", ["k"]) == {}


def test_an_unreadable_path_raises_component_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "results.sqlite").mkdir()  # a folder where the database file should be
    with pytest.raises(ComponentError, match=re.escape(str(tmp_path / "results.sqlite"))):
        ResultCache(tmp_path)


# ----------------------------------------------------------------------------- Generator


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("memo_llama") / "model")


@pytest.fixture(scope="module")
def plain(tiny_lm: Path) -> Generator:
    return Generator.load(tiny_lm, max_new_tokens=6)


def _with_cache(gen: Generator, cache: ResultCache | None, **changes: Any) -> Generator:
    """``gen``'s model and tokenizer with another cache (and config changes)."""
    config = {
        "base_path": gen.base_path,
        "adapter_path": gen.adapter_path,
        "max_new_tokens": gen.max_new_tokens,
        "dtype": gen.dtype,
        "system_prompt": gen.system_prompt,
    }
    return Generator(gen.model, gen.tokenizer, **(config | changes), cache=cache)


@pytest.fixture
def cached(plain: Generator, tmp_path: Path) -> Generator:
    return _with_cache(plain, ResultCache(tmp_path / "cache"))


def _count_calls(monkeypatch: pytest.MonkeyPatch, gen: Generator, name: str) -> list[list[Any]]:
    """Record the inputs of each call of ``gen.<name>`` (still computed for real)."""
    calls: list[list[Any]] = []
    real = getattr(gen, name)

    def spy(items: list[Any], *args: Any) -> Any:
        calls.append(list(items))
        return real(items, *args)

    monkeypatch.setattr(gen, name, spy)
    return calls


def test_load_passes_the_cache(tiny_lm: Path, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    assert Generator.load(tiny_lm, cache=cache).cache is cache
    assert Generator.load(tiny_lm).cache is None


def test_generate_second_call_is_identical_and_skips_the_model(
    plain: Generator, cached: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = plain.generate(QUESTIONS, contexts=CONTEXTS, batch_size=2, progress=False)
    first = cached.generate(QUESTIONS, contexts=CONTEXTS, batch_size=2, progress=False)
    assert first == expected
    assert cached.cache is not None and len(cached.cache) == len(QUESTIONS)
    monkeypatch.setattr(cached, "_generate_batch", _boom)
    assert cached.generate(QUESTIONS, contexts=CONTEXTS, batch_size=2, progress=False) == first
    reordered = cached.generate(QUESTIONS[::-1], contexts=CONTEXTS[::-1], progress=False)
    assert reordered == first[::-1]


def test_generate_computes_only_misses(cached: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached.generate(QUESTIONS, contexts=CONTEXTS, progress=False)
    calls = _count_calls(monkeypatch, cached, "_generate_batch")
    cached.generate(QUESTIONS, contexts=CONTEXTS, max_new_tokens=3, progress=False)
    assert sum(len(c) for c in calls) == len(QUESTIONS)  # another limit: every prompt misses
    calls.clear()
    questions = [*QUESTIONS[:2], "Is the river fast?", QUESTIONS[2], QUESTIONS[2]]
    contexts = [*CONTEXTS[:2], [], CONTEXTS[2], ["another context"]]
    answers = cached.generate(questions, contexts=contexts, progress=False)
    new_prompts = [
        cached.build_prompt(q, c) for q, c in zip(questions[3:], contexts[3:], strict=True)
    ]
    assert sorted(p for c in calls for p in c) == sorted(
        [cached.build_prompt(questions[2], []), new_prompts[1]]
    )
    assert answers[:2] == first[:2] and answers[3] == first[2]


def test_generate_key_is_the_chat_prompt_and_the_limit(cached: Generator) -> None:
    assert cached.cache is not None
    prompt = cached.build_prompt(QUESTIONS[0], CONTEXTS[0])
    cached.cache.put_many("generate", cached.fingerprint, {input_key(prompt, 6): "planted"})
    got = cached.generate(QUESTIONS[:2], contexts=CONTEXTS[:2], progress=False)
    assert got[0] == "planted" and got[1] != "planted"
    other = cached.generate(QUESTIONS[:1], contexts=CONTEXTS[:1], max_new_tokens=5, progress=False)
    assert other != ["planted"]


def test_generate_does_not_share_across_fingerprints(
    cached: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached.generate(QUESTIONS, contexts=CONTEXTS, max_new_tokens=6, progress=False)
    sibling = _with_cache(cached, cached.cache, max_new_tokens=7)  # same prompt key, new fp
    assert sibling.fingerprint != cached.fingerprint
    calls = _count_calls(monkeypatch, sibling, "_generate_batch")
    sibling.generate(QUESTIONS, contexts=CONTEXTS, max_new_tokens=6, progress=False)
    assert sum(len(c) for c in calls) == len(QUESTIONS)


def test_merged_copy_has_no_cache(cached: Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    cached.generate(QUESTIONS, contexts=CONTEXTS, progress=False)
    merged = cached.merged()
    assert merged.cache is None and merged.fingerprint == cached.fingerprint
    calls = _count_calls(monkeypatch, merged, "_generate_batch")
    merged.generate(QUESTIONS, contexts=CONTEXTS, progress=False)
    assert sum(len(c) for c in calls) == len(QUESTIONS)


def test_log_likelihood_second_call_is_identical_and_skips_the_model(
    plain: Generator, cached: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = plain.log_likelihood(QUESTIONS, COMPLETIONS, contexts=CONTEXTS, batch_size=2)
    first = cached.log_likelihood(QUESTIONS, COMPLETIONS, contexts=CONTEXTS, batch_size=2)
    np.testing.assert_array_equal(first, expected)
    assert first.dtype == np.float64 and first.shape == (len(QUESTIONS),)
    monkeypatch.setattr(cached, "_score_batch", _boom)
    again = cached.log_likelihood(QUESTIONS, COMPLETIONS, contexts=CONTEXTS, batch_size=2)
    np.testing.assert_array_equal(again, first)


def test_log_likelihood_computes_only_misses(
    cached: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cached.log_likelihood(QUESTIONS, COMPLETIONS, contexts=CONTEXTS)
    calls = _count_calls(monkeypatch, cached, "_score_batch")
    completions = [*COMPLETIONS[:-1], "A changed completion."]
    scores = cached.log_likelihood(QUESTIONS, completions, contexts=CONTEXTS)
    prompt = cached.build_prompt(QUESTIONS[-1], CONTEXTS[-1])
    assert calls == [[(prompt, "A changed completion.")]]
    np.testing.assert_array_equal(scores[:-1], first[:-1])
    assert scores[-1] != first[-1]
    merged = cached.merged()
    merged_calls = _count_calls(monkeypatch, merged, "_score_batch")
    merged.log_likelihood(QUESTIONS, COMPLETIONS, contexts=CONTEXTS)
    assert sum(len(c) for c in merged_calls) == len(QUESTIONS)


# ----------------------------------------------------------------------------- Reranker


@pytest.fixture(scope="module")
def tiny_ce(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cross_encoder(tiny_hf_dir, tmp_path_factory.mktemp("memo_ce") / "model")


@pytest.fixture(scope="module")
def plain_reranker(tiny_ce: Path) -> Reranker:
    return Reranker.load(tiny_ce, batch_size=3, max_length=64)


@pytest.fixture
def cached_reranker(plain_reranker: Reranker, tmp_path: Path) -> Reranker:
    r = plain_reranker
    cache = ResultCache(tmp_path / "cache")
    return Reranker(r.model, r.fingerprint, batch_size=3, max_length=64, cache=cache)


PAIRS = [(q, d) for q in QUERIES.values() for d in DOCS.values()]


def _assert_runs_close(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> None:
    """Equal up to float32 noise: other batch compositions pad differently (~1e-7)."""
    assert {q: sorted(s) for q, s in got.items()} == {q: sorted(s) for q, s in want.items()}
    for qid, scores in want.items():
        assert got[qid] == pytest.approx(scores, abs=1e-5), qid


def test_reranker_load_passes_the_cache(tiny_ce: Path, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    assert Reranker.load(tiny_ce, max_length=64, cache=cache).cache is cache


def test_cached_score_pairs_equal_uncached_and_skip_the_model(
    plain_reranker: Reranker, cached_reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = plain_reranker.score_pairs(PAIRS)
    first = cached_reranker.score_pairs(PAIRS)
    np.testing.assert_array_equal(first, expected)
    assert first.dtype == np.float32 and len(set(first.tolist())) > 1
    assert cached_reranker.cache is not None and len(cached_reranker.cache) == len(PAIRS)
    monkeypatch.setattr(cached_reranker, "_predict", _boom)
    np.testing.assert_array_equal(cached_reranker.score_pairs(PAIRS), first)
    run = cached_reranker.rerank_run(RUN, QUERIES, DOCS, top_k=3, progress=False)
    _assert_runs_close(run, plain_reranker.rerank_run(RUN, QUERIES, DOCS, top_k=3, progress=False))


def test_score_pairs_scores_only_misses(
    cached_reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_reranker.score_pairs(PAIRS[:4])
    calls = _count_calls(monkeypatch, cached_reranker, "_predict")
    cached_reranker.score_pairs([*PAIRS[:6], PAIRS[5]])
    assert calls == [[PAIRS[4], PAIRS[5]]]


def test_timed_rerank_bypasses_the_cache(
    plain_reranker: Reranker, cached_reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cached_reranker.cache
    assert cache is not None
    planted = {input_key(q, d): 999.0 for q, d in PAIRS}
    cache.put_many("rerank", cached_reranker.fingerprint, planted)
    # positive control: the planted keys are the ones rerank_run reads
    hit = cached_reranker.rerank_run(RUN, QUERIES, DOCS, top_k=3, progress=False)
    assert {v for scores in hit.values() for v in scores.values()} == {999.0}
    calls = _count_calls(monkeypatch, cached_reranker, "_predict")
    timed, latencies = cached_reranker.timed_rerank(RUN, QUERIES, DOCS, top_k=3)
    _assert_runs_close(
        timed, plain_reranker.rerank_run(RUN, QUERIES, DOCS, top_k=3, progress=False)
    )
    assert len(calls) == len(RUN) and len(latencies) == len(RUN)
    assert len(cache) == len(planted)  # nor does it write


def test_lookups_span_several_in_chunks(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    items = {input_key("prompt", i): f"answer {i}" for i in range(2 * cache.CHUNK + 7)}
    cache.put_many("generate", "fp", items)
    keys = [*items, "sha256:absent"]
    assert cache.get_many("generate", "fp", keys) == items
    assert len(cache) == len(items)
