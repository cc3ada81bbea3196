"""Demo measurement: a generator LoRA-SFT on the new domain (devices), gated like a suite.

Trains (or loads from ``adapters/generator-sft/<fingerprint>/``) a LoRA on SmolLM2-135M-Instruct
from ``golden/devices/qa_train.jsonl`` (each prompt with its grounding passages from the
corpus), answers the 90 held-out questions of ``golden/devices/qa.jsonl`` with their context
passages, base vs SFT (greedy), scores ROUGE-L and token F1 per question, and evaluates the
paired gate ``superior`` on ``rouge_l`` (release policy of ``pyproject.toml``, ``min_gain=0``).
Then a cached re-run (load, no training). Results go to ``out/demo_generator_sft.json``::

    nice -n 10 .venv/bin/python benchmarks/demo_generator_sft.py [--steps 46 --lr 3e-4 ...]
"""

from __future__ import annotations

import argparse
import json
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

from guardrails.gates import evaluate_gate  # noqa: E402
from guardrails.golden import load_corpus, load_qa  # noqa: E402
from guardrails.metrics.text import evaluate_text  # noqa: E402
from guardrails.policy import load_policy  # noqa: E402
from guardrails.training.config import GeneratorSFTConfig  # noqa: E402
from guardrails.training.generator import ensure_generator_candidate, load_sft_pairs  # noqa: E402

DOMAIN = ROOT / "golden" / "devices"
METRICS = ("rouge_l", "token_f1")


def parse_args() -> argparse.Namespace:
    defaults = GeneratorSFTConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=defaults.max_steps)
    p.add_argument("--epochs", type=float, default=defaults.epochs)
    p.add_argument("--lr", type=float, default=defaults.learning_rate)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--rank", type=int, default=defaults.lora_r)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N questions")
    return p.parse_args()


def answer_all(
    base: Path,
    adapter: Path | None,
    questions: list[str],
    contexts: list[list[str]],
    max_new_tokens: int,
) -> tuple[list[str], float]:
    from guardrails.components.generator import Generator

    gen = Generator.load(base, adapter, max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    answers = gen.generate(questions, contexts=contexts, batch_size=8)
    return answers, time.perf_counter() - start


def summary(scores: Any) -> dict[str, float]:
    return {name: round(float(v.mean()), 4) for name, v in scores.items()}


def main() -> None:
    args = parse_args()
    from guardrails.components.generator import smollm2_path

    base = smollm2_path(ROOT / "adapters" / "models")
    config = GeneratorSFTConfig(
        max_steps=args.steps,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora_r=args.rank,
        lora_alpha=2 * args.rank,
    )
    examples = load_sft_pairs(DOMAIN / "qa_train.jsonl")
    start = time.perf_counter()
    artifact = ensure_generator_candidate("sft", base, examples, config, root=ROOT / "adapters")
    first = time.perf_counter() - start
    start = time.perf_counter()
    ensure_generator_candidate("sft", base, examples, config, root=ROOT / "adapters")
    cached = time.perf_counter() - start
    print(
        f"adapter {artifact.path} trained={artifact.trained} in {first:.1f}s; "
        f"training wall {artifact.record.wall_time_s:.1f}s; cached re-run {cached:.2f}s"
    )

    corpus = load_corpus(DOMAIN / "corpus.jsonl")
    qa = load_qa(DOMAIN / "qa.jsonl")
    held = list(qa.examples[: args.limit or None])
    questions = [e.question for e in held]
    contexts = [[corpus[c].full_text for c in e.context] for e in held]
    refs = [list(e.answers) for e in held]
    base_answers, base_time = answer_all(base, None, questions, contexts, args.max_new_tokens)
    sft_answers, sft_time = answer_all(
        base, artifact.path, questions, contexts, args.max_new_tokens
    )
    base_scores = evaluate_text(base_answers, refs, METRICS)
    sft_scores = evaluate_text(sft_answers, refs, METRICS)

    policy = load_policy(ROOT / "pyproject.toml")
    gate = evaluate_gate(
        "superior",
        "rouge_l",
        candidate=sft_scores["rouge_l"],
        baseline=base_scores["rouge_l"],
        policy=policy,
        name="generator-devices:rouge_l",
        ids=[e.id for e in held],
        overrides={"min_gain": 0.0},
    )
    print(gate.message())
    result = {
        "config": asdict(config),
        "adapter": str(artifact.path),
        "fingerprint": artifact.fingerprint,
        "trained_now": artifact.trained,
        "training_wall_s": artifact.record.wall_time_s,
        "cached_rerun_s": round(cached, 3),
        "loss_curve": artifact.record.loss_curve,
        "n_questions": len(held),
        "generation_s": {"base": round(base_time, 1), "sft": round(sft_time, 1)},
        "base": summary(base_scores),
        "sft": summary(sft_scores),
        "gate": {
            "status": gate.status.value,
            "delta": gate.delta,
            "ci": list(gate.ci),
            "p_value": gate.p_value,
        },
        "examples": [
            {"q": q, "base": b, "sft": s, "ref": r[0]}
            for q, b, s, r in list(zip(questions, base_answers, sft_answers, refs, strict=True))[:5]
        ],
    }
    out = ROOT / "out" / "demo_generator_sft.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "base",
                    "sft",
                    "gate",
                    "generation_s",
                    "training_wall_s",
                    "cached_rerun_s",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
