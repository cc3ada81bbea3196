"""Demo: does a MiniLM-built reranker help, and does a LoRA candidate for devices pass the gates?

1. Retrieval: MiniLM + flat FAISS over the whole knowledge base (both domains), top ``--top-k``.
2. Production reranker: the MiniLM-built cross-encoder fully fine-tuned on
   ``golden/payments/train.jsonl`` (training triplets only; the test qrels are never seen).
   Per domain, nDCG@10 of retrieval → rerank vs retrieval alone on the held-out golden queries,
   paired bootstrap CI through :func:`guardrails.gates.evaluate_gate` (superior, min-gain 0).
3. Candidate: a LoRA on the production reranker trained on ``golden/devices/train.jsonl``;
   devices nDCG@10 must rise (superior) and payments stay non-inferior (policy max-drop).
4. Wall times: training, reranking, per-query latency, and the cached re-run (load, no training).

    nice -n 10 python benchmarks/demo_reranker.py [--root adapters] [--top-k 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.gates import GateResult, evaluate_gate
from guardrails.golden import RetrievalSet, load_beir
from guardrails.metrics.ranking import evaluate_ranking
from guardrails.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("payments", "devices")
METRIC = "ndcg@10"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_golden(golden: Path) -> dict[str, RetrievalSet]:
    corpora = [golden / d / "corpus.jsonl" for d in DOMAINS]
    return {
        d: load_beir(
            golden / d,
            name=f"{d}-retrieval",
            strict=True,
            extra_corpora=[c for c in corpora if c.parent.name != d],
        )
        for d in DOMAINS
    }


def retrieve(
    golden: dict[str, RetrievalSet], kb: dict[str, str], root: Path, k: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Top-``k`` MiniLM + flat-FAISS runs per domain (index and vectors cached under root)."""
    from guardrails.components.embedder import Embedder, EmbeddingCache, minilm_path
    from guardrails.components.stack import Retriever, ensure_index

    embedder = Embedder.load(minilm_path())
    index = ensure_index(embedder, kb, root / "indexes", cache=EmbeddingCache(root / "cache"))
    retriever = Retriever(embedder, index)
    return {d: retriever.search_run(g.query_ids, g.texts(), k) for d, g in golden.items()}


def ndcg(golden: RetrievalSet, run: Any) -> np.ndarray:
    return evaluate_ranking(golden.qrels, run, [METRIC], golden.query_ids)[METRIC]


def gate(
    kind: str, name: str, golden: RetrievalSet, cand: Any, base: Any, policy: Any
) -> GateResult:
    return evaluate_gate(
        kind,
        METRIC,
        candidate=ndcg(golden, cand),
        baseline=ndcg(golden, base),
        policy=policy,
        name=name,
        ids=golden.query_ids,
    )


def show(result: GateResult) -> dict[str, Any]:
    lo, hi = result.ci
    print(
        f"  {result.name:<40} {result.kind:<11} base={result.baseline:.4f} "
        f"cand={result.candidate:.4f} Δ={result.delta:+.4f} CI [{lo:+.4f}, {hi:+.4f}] "
        f"p={result.p_value:.3g} -> {result.status.value}"
    )
    return {
        "name": result.name,
        "kind": result.kind,
        "baseline": result.baseline,
        "candidate": result.candidate,
        "delta": result.delta,
        "ci": list(result.ci),
        "p": result.p_value,
        "status": result.status.value,
        "n": result.n,
    }


def rerank_all(
    reranker: Any, golden: dict[str, RetrievalSet], runs: dict, kb: dict[str, str], k: int
) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    out = {d: reranker.rerank_run(runs[d], g.queries, kb, top_k=k) for d, g in golden.items()}
    return out, time.perf_counter() - start


def latency(
    reranker: Any, golden: RetrievalSet, run: Any, kb: dict[str, str], k: int, n: int = 10
) -> dict[str, float]:
    """p50 / p95 per-query rerank latency (ms) over the first ``n`` queries."""
    sample = {q: run[q] for q in golden.query_ids[:n]}
    _, lat = reranker.timed_rerank(sample, golden.queries, kb, top_k=k)
    ms = 1000 * np.asarray(lat)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    from guardrails.components.reranker import Reranker
    from guardrails.training.reranker import ensure_production_reranker, ensure_reranker_candidate

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT / "adapters")
    parser.add_argument("--golden", type=Path, default=ROOT / "golden")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    policy = load_policy(ROOT / "pyproject.toml", "release")
    golden = load_golden(args.golden)
    kb = {i: doc.full_text for i, doc in golden["payments"].corpus.items()}
    report: dict[str, Any] = {"top_k": args.top_k, "gates": []}

    runs, report["retrieval_s"] = timed(retrieve, golden, kb, args.root, args.top_k)
    prod_dir, report["production_train_s"] = timed(
        ensure_production_reranker, args.root, golden_dir=args.golden
    )
    _, report["production_cached_s"] = timed(
        ensure_production_reranker, args.root, golden_dir=args.golden, progress=False
    )
    production = Reranker.load(prod_dir)
    reranked, report["production_rerank_s"] = rerank_all(production, golden, runs, kb, args.top_k)
    print(
        f"production reranker {prod_dir} ({report['production_train_s']:.1f} s; cached "
        f"re-run {report['production_cached_s']:.2f} s)"
    )
    for d in DOMAINS:
        report["gates"].append(
            show(
                gate(
                    "superior", f"rerank-vs-retrieval-{d}", golden[d], reranked[d], runs[d], policy
                )
            )
        )

    artifact, report["candidate_train_s"] = timed(
        ensure_reranker_candidate, "devices", root=args.root, golden_dir=args.golden
    )
    _, report["candidate_cached_s"] = timed(
        ensure_reranker_candidate, "devices", root=args.root, golden_dir=args.golden, progress=False
    )
    candidate = Reranker.load(prod_dir, adapter=artifact.path)
    cand_runs, report["candidate_rerank_s"] = rerank_all(candidate, golden, runs, kb, args.top_k)
    print(
        f"candidate LoRA {artifact.path} (trained={artifact.trained}, "
        f"{report['candidate_train_s']:.1f} s; cached re-run {report['candidate_cached_s']:.2f} s)"
    )
    report["gates"].append(
        show(
            gate(
                "superior",
                "candidate-devices",
                golden["devices"],
                cand_runs["devices"],
                reranked["devices"],
                policy,
            )
        )
    )
    report["gates"].append(
        show(
            gate(
                "noninferior",
                "candidate-payments",
                golden["payments"],
                cand_runs["payments"],
                reranked["payments"],
                policy,
            )
        )
    )
    for d in DOMAINS:
        report["gates"].append(
            show(
                gate(
                    "superior",
                    f"candidate-vs-retrieval-{d}",
                    golden[d],
                    cand_runs[d],
                    runs[d],
                    policy,
                )
            )
        )
    report["latency"] = {
        d: latency(production, golden[d], runs[d], kb, args.top_k) for d in DOMAINS
    }
    report["training_records"] = {
        "production_wall_s": _record(prod_dir)["wall_time_s"],
        "candidate_wall_s": artifact.record.wall_time_s,
        "production_loss": _record(prod_dir)["loss_curve"],
        "candidate_loss": [list(x) for x in artifact.record.loss_curve],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "gates"}, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))


def _record(folder: Path) -> dict[str, Any]:
    from guardrails.training.cache import RECORD_FILE

    return dict(json.loads((folder / RECORD_FILE).read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
