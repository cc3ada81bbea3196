"""Demo measurement: a DPO LoRA on SmolLM2-135M-Instruct, gated on held-out preference margins.

Trains (or loads from ``adapters/alignment-dpo/<fingerprint>/``) a DPO LoRA on the first
``--train-per-domain`` pairs of ``golden/devices/preferences.jsonl`` and of
``golden/payments/preferences.jsonl`` (payments pairs carry ``"context"`` doc ids: their
passages go into the prompt, exactly as at inference). On the remaining (held-out) pairs of both
files it scores the margin ``log p(chosen|x) - log p(rejected|x)`` per pair, base vs DPO, and
evaluates the paired gate ``superior`` on ``preference_margin`` (release policy of
``pyproject.toml``, ``min_gain=0``). Then a cached re-run (load, no training) and the merged vs
unmerged logit gap of the trained adapter. Results go to ``out/demo_alignment.json``::

    nice -n 10 .venv/bin/python benchmarks/demo_alignment.py [--steps 20 --lr 5e-4 ...]
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
from guardrails.policy import load_policy  # noqa: E402
from guardrails.training.alignment import (  # noqa: E402
    PreferenceExample,
    ensure_alignment_candidate,
    load_preference_pairs,
)
from guardrails.training.config import DPOConfig  # noqa: E402

DOMAINS = ("devices", "payments")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-per-domain", type=int, default=60)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--max-prompt-length", type=int, default=320)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--merge-prompts", type=int, default=8)
    return p.parse_args()


def split(n_train: int) -> tuple[list[PreferenceExample], list[PreferenceExample], list[str]]:
    """First ``n_train`` pairs of each domain to train, the rest (with ids) held out."""
    train, held, ids = [], [], []
    for domain in DOMAINS:
        pairs = load_preference_pairs(ROOT / "golden" / domain / "preferences.jsonl")
        train += pairs[:n_train]
        held += pairs[n_train:]
        ids += [f"{domain}:{i + 1}" for i in range(n_train, len(pairs))]
    return train, held, ids


def margins(base: Path, adapter: Path | None, pairs: list[PreferenceExample]) -> tuple[Any, float]:
    from guardrails.components.generator import Generator
    from guardrails.metrics.preference import preference_margins

    gen = Generator.load(base, adapter)
    start = time.perf_counter()
    return preference_margins(gen, pairs, batch_size=8), time.perf_counter() - start


def mean_ci(x: Any, seed: int = 0) -> dict[str, Any]:
    """Mean and a 95% percentile-bootstrap CI (10k resamples), for the report."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boot = rng.choice(x, size=(10000, len(x)), replace=True).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean": round(float(x.mean()), 3), "ci": [round(float(lo), 3), round(float(hi), 3)]}


def merge_gap(base: Path, adapter: Path, prompts: list[str]) -> tuple[float, float]:
    from guardrails.components.generator import Generator
    from guardrails.metrics.preference import merged_unmerged_gap

    start = time.perf_counter()
    gap = merged_unmerged_gap(Generator.load(base, adapter), prompts)
    return gap, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    from guardrails.components.generator import smollm2_path

    base = smollm2_path(ROOT / "adapters" / "models")
    config = DPOConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        beta=args.beta,
        max_length=args.max_length,
        max_prompt_length=args.max_prompt_length,
        lora_r=args.rank,
        lora_alpha=2 * args.rank,
        logging_steps=2,
    )
    train, held, ids = split(args.train_per_domain)
    start = time.perf_counter()
    artifact = ensure_alignment_candidate("dpo", base, train, config, root=ROOT / "adapters")
    first = time.perf_counter() - start
    start = time.perf_counter()
    ensure_alignment_candidate("dpo", base, train, config, root=ROOT / "adapters")
    cached = time.perf_counter() - start
    print(
        f"adapter {artifact.path} trained={artifact.trained} in {first:.1f}s; "
        f"training wall {artifact.record.wall_time_s:.1f}s; cached re-run {cached:.2f}s"
    )

    base_m, base_s = margins(base, None, held)
    dpo_m, dpo_s = margins(base, artifact.path, held)
    policy = load_policy(ROOT / "pyproject.toml")
    gate = evaluate_gate(
        "superior",
        "preference_margin",
        candidate=dpo_m,
        baseline=base_m,
        policy=policy,
        name="alignment-dpo:preference_margin",
        ids=ids,
        overrides={"min_gain": 0.0},
    )
    print(gate.message())
    gap, gap_s = merge_gap(base, artifact.path, [p.prompt for p in held[: args.merge_prompts]])
    by_domain = {
        d: {
            "base": mean_ci(base_m[[i.startswith(d) for i in ids]]),
            "dpo": mean_ci(dpo_m[[i.startswith(d) for i in ids]]),
        }
        for d in DOMAINS
    }
    result = {
        "config": asdict(config),
        "adapter": str(artifact.path),
        "fingerprint": artifact.fingerprint,
        "trained_now": artifact.trained,
        "n_train": len(train),
        "n_held_out": len(held),
        "training_wall_s": artifact.record.wall_time_s,
        "cached_rerun_s": round(cached, 3),
        "loss_curve": artifact.record.loss_curve,
        "scoring_s": {"base": round(base_s, 1), "dpo": round(dpo_s, 1)},
        "margin": {"base": mean_ci(base_m), "dpo": mean_ci(dpo_m)},
        "margin_by_domain": by_domain,
        "pairs_chosen_preferred": {
            "base": int((base_m > 0).sum()),
            "dpo": int((dpo_m > 0).sum()),
        },
        "gate": {
            "status": gate.status.value,
            "delta": gate.delta,
            "ci": list(gate.ci),
            "p_value": gate.p_value,
        },
        "merged_unmerged_max_logit_gap": gap,
        "merge_check_s": round(gap_s, 1),
    }
    out = ROOT / "out" / "demo_alignment.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    keys = (
        "margin",
        "margin_by_domain",
        "pairs_chosen_preferred",
        "gate",
        "training_wall_s",
        "cached_rerun_s",
        "scoring_s",
        "merged_unmerged_max_logit_gap",
    )
    print(json.dumps({k: result[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
