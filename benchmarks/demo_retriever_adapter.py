"""Demo measurement: a retriever adapter trained on the new domain (devices), gated like the suite.

Trains (or loads from ``adapters/retriever/<fingerprint>/``) an adapter (LoRA, or
``--method ia3 | loha | lokr``) on ``golden/devices/train.jsonl`` from MiniLM, searches the
whole knowledge base (both domains' corpora) with production and candidate exactly as
``suites/test_retrieval.py`` does, and evaluates the release policy's gates with
:func:`guardrails.gates.evaluate_gate`:

* devices ``ndcg@10`` must RISE: gate ``superior`` (paired CI above ``min-gain``);
* both domains ``ndcg@10`` / ``mrr@10`` / ``recall@10`` must stay ``noninferior``.

Then the same for a candidate trained on shuffled pairs (:func:`shuffle_triplets`), which the
gates must reject, and a cached re-run (load, no training). Run it with ``nice``::

    nice -n 10 .venv/bin/python benchmarks/demo_retriever_adapter.py [--epochs 2 --lr 5e-4 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from guardrails.gates import GateResult, evaluate_gate  # noqa: E402
from guardrails.golden import RetrievalSet  # noqa: E402
from guardrails.metrics.ranking import evaluate_ranking  # noqa: E402
from guardrails.policy import Policy, load_policy  # noqa: E402
from guardrails.training.config import RetrieverTrainingConfig  # noqa: E402
from guardrails.training.retriever import ensure_retriever_candidate  # noqa: E402

GOLDEN = ROOT / "golden"
ADAPTERS = ROOT / "adapters"
DOMAINS = ("payments", "devices")
TRAIN_DOMAIN = "devices"
METRICS = ("ndcg@10", "mrr@10", "recall@10")
DEPTH = 100


def load_golden() -> dict[str, RetrievalSet]:
    """Per-domain golden sets over the whole knowledge base (as the root conftest loads them)."""
    from guardrails.golden import load_beir_domains

    return load_beir_domains(GOLDEN, DOMAINS)


def retriever(adapter: Path | None, texts: dict[str, str]) -> Any:
    """MiniLM (+ adapter) over its own index of ``texts``, loaded or built by fingerprint."""
    from guardrails.components.embedder import Embedder, EmbeddingCache, minilm_path
    from guardrails.components.stack import Retriever, ensure_index

    embedder = Embedder.load(minilm_path(), adapter=adapter)
    index = ensure_index(
        embedder,
        texts,
        ADAPTERS / "indexes",
        cache=EmbeddingCache(ADAPTERS / "cache"),
        progress=False,
    )
    return Retriever(embedder, index)


def scores(golden: dict[str, RetrievalSet], retr: Any) -> dict[str, dict[str, Any]]:
    """``{domain: {metric: per-query array}}`` for the golden queries."""
    out = {}
    for domain, gs in golden.items():
        run = retr.search_run(gs.query_ids, gs.texts(), DEPTH)
        out[domain] = evaluate_ranking(gs.qrels, run, METRICS, gs.query_ids)
    return out


def gates(
    golden: dict[str, RetrievalSet], base: dict, cand: dict, policy: Policy
) -> list[GateResult]:
    """The release gates: non-inferiority everywhere, superiority of nDCG@10 on devices."""
    plan = [("noninferior", d, m) for d in DOMAINS for m in METRICS]
    plan.append(("superior", TRAIN_DOMAIN, "ndcg@10"))
    return [
        evaluate_gate(
            kind,
            metric,
            candidate=cand[d][metric],
            baseline=base[d][metric],
            policy=policy,
            name=f"retrieval-{d}:{metric}:{kind}",
            ids=golden[d].query_ids,
        )
        for kind, d, metric in plan
    ]


def show(title: str, base: dict, cand: dict, results: list[GateResult]) -> None:
    print(f"\n== {title}")
    print(f"{'domain':9} {'metric':10} {'before':>7} {'after':>7} {'delta':>8}")
    for d in DOMAINS:
        for m in METRICS:
            b, c = base[d][m].mean(), cand[d][m].mean()
            print(f"{d:9} {m:10} {b:7.4f} {c:7.4f} {c - b:+8.4f}")
    print(f"{'gate':40} {'status':13} {'delta':>8}  95% CI              limit")
    for r in results:
        lo, hi = r.ci
        print(
            f"{r.name:40} {r.status.value:13} {r.delta:+8.4f}  [{lo:+.4f}, {hi:+.4f}]  "
            f"{r.limit} (p={r.p_value:.3g})"
        )


def candidate(
    config: RetrieverTrainingConfig, golden: dict[str, RetrievalSet], shuffled: bool
) -> tuple[Any, float]:
    """Train-or-load the adapter; wall time of this call."""
    from guardrails.components.embedder import minilm_path

    start = time.perf_counter()
    art = ensure_retriever_candidate(
        minilm_path(),
        GOLDEN / TRAIN_DOMAIN / "train.jsonl",
        golden[TRAIN_DOMAIN].corpus,
        config,
        ADAPTERS,
        shuffled=shuffled,
    )
    return art, time.perf_counter() - start


def evaluate(
    label: str,
    config: RetrieverTrainingConfig,
    golden: dict[str, RetrievalSet],
    texts: dict[str, str],
    base: dict,
    policy: Policy,
    shuffled: bool,
) -> bool:
    art, took = candidate(config, golden, shuffled)
    rec = art.record
    print(
        f"\n{label}: {art.path} trained={art.trained} call={took:.1f}s "
        f"training wall={rec.wall_time_s:.1f}s cpu={rec.extra.get('cpu_time_s', 0):.0f}s "
        f"steps={rec.loss_curve[-1][0]} method={config.method} "
        f"adapter parameters={rec.extra.get('adapter_parameters', '?')} "
        f"loss {rec.loss_curve[0][1]:.4f} -> {rec.loss_curve[-1][1]:.4f}"
    )
    cand = scores(golden, retriever(art.path, texts))
    results = gates(golden, base, cand, policy)
    show(label, base, cand, results)
    return all(r.passed for r in results)


def parse_config(argv: list[str] | None) -> tuple[RetrieverTrainingConfig, bool]:
    """The training config from the command line, and whether to skip the shuffled run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = RetrieverTrainingConfig()
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--modules", default=",".join(defaults.target_modules))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--layers", default=",".join(map(str, defaults.lora_layers)))
    parser.add_argument("--method", default=defaults.method, help="lora, ia3, loha or lokr")
    parser.add_argument("--only-real", action="store_true", help="skip the shuffled candidate")
    a = parser.parse_args(argv)
    config = defaults.with_(
        epochs=a.epochs,
        learning_rate=a.lr,
        batch_size=a.batch_size,
        lora_r=a.lora_r,
        lora_alpha=2 * a.lora_r,
        max_length=a.max_length,
        target_modules=tuple(a.modules.split(",")),
        seed=a.seed,
        lora_layers=tuple(int(x) for x in a.layers.split(",") if x),
        method=a.method,
    )
    return config, a.only_real


def main(argv: list[str] | None = None) -> int:
    config, only_real = parse_config(argv)
    print("config:", asdict(config))
    policy = load_policy(ROOT / "pyproject.toml")
    golden = load_golden()
    texts = {d: doc.full_text for d, doc in golden[TRAIN_DOMAIN].corpus.items()}
    base = scores(golden, retriever(None, texts))
    good = evaluate(
        f"{config.method} on devices triplets", config, golden, texts, base, policy, False
    )
    if only_real:
        return 0 if good else 1
    start = time.perf_counter()
    evaluate("cached re-run", config, golden, texts, base, policy, False)
    print(
        f"cached re-run (load adapter + index + search + gates): {time.perf_counter() - start:.1f}s"
    )
    broken = evaluate(
        f"{config.method} on SHUFFLED pairs", config, golden, texts, base, policy, True
    )
    print(f"\nreal candidate passes every gate: {good}; shuffled candidate passes: {broken}")
    return 0 if good and not broken else 1


if __name__ == "__main__":
    raise SystemExit(main())
