"""Demo: the shadow model gates on the demo's trained artifacts, read-only.

Replays a seeded sample of the current production log's queries (plus every must-refuse
canary as a probe) through production's retriever (MiniLM + flat index over both domains),
then through the production reranker and its LoRA candidate, and through SmolLM2 and its
LoRA-SFT candidate on production's top passages; prints the paired numbers and the four
gates' outcomes under the repository's release policy (as suites/test_shadow.py runs them).

    nice -n 10 python benchmarks/demo_shadow_model.py --artifacts adapters [--queries 24]

``--artifacts`` is a finished demo run's folder (reranker-base/, reranker/, generator-sft/,
models/, logs/); nothing is written there: the index and the result cache go to ``--work``
(a temp folder by default), so a second run with the same ``--work`` generates nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("payments", "devices")
PASSAGES, DEPTH = 3, 20


def _only(folder: Path) -> Path:
    found = [p for p in folder.iterdir() if p.is_dir()]
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one trained folder, found {len(found)}")
    return found[0]


def _components(artifacts: Path, work: Path) -> dict[str, Any]:
    from guardrails.components.embedder import Embedder, minilm_path
    from guardrails.components.generator import Generator
    from guardrails.components.memo import ResultCache
    from guardrails.components.reranker import Reranker
    from guardrails.components.stack import build_retriever
    from guardrails.golden import load_beir_domains
    from guardrails.training.reranker import PRODUCTION_RERANKER_CONFIG

    golden = load_beir_domains(None, {d: ROOT / "golden" / d for d in DOMAINS})
    kb = {i: doc.full_text for i, doc in next(iter(golden.values())).corpus.items()}
    cache = ResultCache(work / "cache")
    base, length = _only(artifacts / "reranker-base"), PRODUCTION_RERANKER_CONFIG.max_length
    smollm2 = artifacts / "models" / "smollm2-135m-instruct"
    return {
        "kb": kb,
        "retriever": build_retriever(Embedder.load(minilm_path()), kb, work / "indexes"),
        "rerankers": (
            Reranker.load(base, max_length=length, cache=cache),
            Reranker.load(base, _only(artifacts / "reranker"), max_length=length, cache=cache),
        ),
        "generators": (
            Generator.load(smollm2, max_new_tokens=48, cache=cache),
            Generator.load(
                smollm2, _only(artifacts / "generator-sft"), max_new_tokens=48, cache=cache
            ),
        ),
    }


def _gates(reranked: Any, generated: Any) -> list[Any]:
    from guardrails.gates import evaluate_gate
    from guardrails.policy import load_policy

    policy = load_policy(ROOT / "pyproject.toml", "release")
    g, safe, ids = generated, generated.safe, list(generated.query_ids)
    r_ids = list(reranked.query_ids)

    def floor(metric: str) -> dict[str, float]:  # the suite's AGREEMENT_FLOOR when unset
        return {} if policy.threshold(metric).min is not None else {"min": 0.5}

    return [
        evaluate_gate("at_least", "top_k_overlap@1", candidate=reranked.top1, policy=policy,
                      name="reranker-shadow:top_k_overlap@1", ids=r_ids,
                      overrides=floor("top_k_overlap@1")),
        evaluate_gate("at_least", "rbo", candidate=reranked.rbo, policy=policy,
                      name="reranker-shadow:rbo", ids=r_ids, overrides=floor("rbo")),
        evaluate_gate("noninferior", "groundedness", candidate=g.candidate_groundedness[safe],
                      baseline=g.production_groundedness[safe], policy=policy,
                      name="generation-shadow:groundedness", ids=g.safe_ids()),
        evaluate_gate("noninferior", "unsafe_rate", candidate=g.candidate_unsafe,
                      baseline=g.production_unsafe, policy=policy,
                      name="generation-shadow:unsafe_rate", ids=ids),
        evaluate_gate("noninferior", "refusal_rate", candidate=g.candidate_refused[safe],
                      baseline=g.production_refused[safe], policy=policy,
                      name="generation-shadow:refusal_rate", ids=g.safe_ids()),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--timed", type=int, default=4)
    parser.add_argument("--probes", type=int, default=None, help="first N must-refuse canaries")
    args = parser.parse_args()
    from guardrails.components.shadow_model import (
        production_contexts,
        replay_generators,
        replay_rerankers,
        shadow_model_sample,
    )
    from guardrails.golden import load_canaries
    from guardrails.monitoring.drift import load_window

    work = args.work or Path(tempfile.mkdtemp(prefix="shadow-model-"))
    start = time.perf_counter()
    parts = _components(args.artifacts, work)
    probes = [
        (c.id, c.prompt)
        for d in DOMAINS
        for c in load_canaries(ROOT / "golden" / d / "canaries.jsonl").of_kind("must-refuse")
    ][: args.probes]
    logged = list(load_window(args.artifacts / "logs" / "current.jsonl").queries)
    traffic = shadow_model_sample(logged, size=args.queries, probes=probes)
    run, ranked = production_contexts(parts["retriever"], traffic, parts["kb"], depth=DEPTH)
    print(f"loaded in {time.perf_counter() - start:.0f}s; {len(traffic)} queries "
          f"({len(probes)} must-refuse probes); work={work}")  # fmt: skip
    t = time.perf_counter()
    reranked = replay_rerankers(*parts["rerankers"], traffic, run, parts["kb"], top_k=DEPTH,
                                latency_queries=args.timed)  # fmt: skip
    print(f"rerankers replayed in {time.perf_counter() - t:.0f}s: {reranked.to_extra()}")
    t = time.perf_counter()
    contexts = {q: [parts["kb"][d] for d in docs[:PASSAGES]] for q, docs in ranked.items()}
    must = {i for i, _ in probes}
    generated = replay_generators(*parts["generators"], traffic, contexts, must_refuse=must,
                                  latency_queries=args.timed)  # fmt: skip
    print(f"generators replayed in {time.perf_counter() - t:.0f}s: {generated.to_extra()}")
    for q, rules in generated.unsafe_reasons.items():
        print(f"  unsafe {q}: {rules}")
    for result in _gates(reranked, generated):
        print(f"{result.name:<36} {result.status.value:<12} {result.message()}")


if __name__ == "__main__":
    main()
