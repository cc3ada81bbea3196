"""ROUGE speed: guardrails.metrics.text vs rouge-score, identical scores required.

Generates seeded English-like (prediction, reference) pairs of 30-60 tokens from a word list
with inflected forms (-s, -ed, -ing, -ly, -ation) so the Porter stemmer matters, and the
reference is an edited copy of the prediction (drops, swaps, substitutions) so LCS and n-gram
overlaps are realistic. Times ROUGE-L alone and ROUGE-1/2/L together, best of 3; before every
run of ours the stem cache is cleared, so each timing includes stemming every distinct token.
The ratio is of CPU seconds (``process_time``: robust when other jobs share the cores); wall
seconds are printed too. Asserts the scores are identical and prints the max abs difference.

    python benchmarks/bench_rouge.py [--pairs 5000] [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import numpy as np

from guardrails.metrics import text

_STEMS = (
    "model index query answer train evaluate rank retrieve embed generate score release gate "
    "test measure compare improve report deploy monitor check compute return update load "
    "store search match filter sample label review open close start finish call play walk "
    "talk jump look help need want work learn teach build print read write run fix cache"
)
_SUFFIXES = ("", "", "s", "ed", "ing", "er", "ly", "ation", "ness")
_FUNCTION = "the a an of to in on for with and or but is was are be by as at from that this"
_EXTRA = "system data user result value paper people time year day way thing world life"


def _vocabulary() -> list[str]:
    words = [stem + suffix for stem in _STEMS.split() for suffix in _SUFFIXES]
    return (
        words + _EXTRA.split() + _FUNCTION.split() * 6
    )  # function words are frequent, as in English


def _sentence(rng: random.Random, vocab: list[str]) -> list[str]:
    words = [rng.choice(vocab) for _ in range(rng.randint(30, 60))]
    words[0] = words[0].capitalize()
    return words


def _edit(rng: random.Random, words: list[str], vocab: list[str]) -> list[str]:
    out = []
    for word in words:
        roll = rng.random()
        if roll < 0.15:
            continue  # dropped
        out.append(rng.choice(vocab) if roll < 0.35 else word)
        if roll > 0.95:
            out.append(rng.choice(vocab))  # inserted
    if len(out) > 4 and rng.random() < 0.5:
        i = rng.randrange(len(out) - 4)
        out[i : i + 4] = reversed(out[i : i + 4])
    return out


def make_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` seeded (prediction, reference) sentence pairs with punctuation."""
    rng = random.Random(seed)
    vocab = _vocabulary()
    preds, refs = [], []
    for _ in range(n):
        words = _sentence(rng, vocab)
        preds.append(" ".join(words) + rng.choice([".", "!", "?", ";", ""]))
        refs.append(", ".join(" ".join(_edit(rng, words, vocab)).split(" the ")) + ".")
    return preds, refs


def _best_of(repeats: int, run: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    """Best wall and best CPU seconds of ``repeats`` runs, and the scores of the last."""
    wall, cpu, scores = float("inf"), float("inf"), np.empty(0)
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        scores = run()
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start)
    return wall, cpu, scores


def _ours(preds: list[str], refs: list[str], names: list[str]) -> np.ndarray:
    text._stem.cache_clear()  # cold caches: every timing includes stemming
    text._clear_vocabulary()
    out = text.evaluate_text(preds, refs, names)
    return np.stack([out[name] for name in names])


def _rouge_score(preds: list[str], refs: list[str], types: list[str]) -> np.ndarray:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
    rows = [scorer.score(r, p) for p, r in zip(preds, refs, strict=True)]
    return np.array([[row[t].fmeasure for row in rows] for t in types], dtype=np.float64)


def compare(preds: list[str], refs: list[str], names: list[str], repeats: int) -> float:
    """Time both, assert identical scores, print one line; return the speed ratio."""
    types = [{"rouge_l": "rougeL"}.get(n, n) for n in names]
    wall_ours, cpu_ours, ours = _best_of(repeats, lambda: _ours(preds, refs, names))
    wall_ref, cpu_ref, ref = _best_of(repeats, lambda: _rouge_score(preds, refs, types))
    diff = float(np.max(np.abs(ours - ref)))
    ratio = cpu_ref / cpu_ours
    print(
        f"{'+'.join(names):<22} pairs={len(preds)} cpu: ours={cpu_ours:.3f}s "
        f"rouge-score={cpu_ref:.3f}s ratio={ratio:.1f}x | wall: ours={wall_ours:.3f}s "
        f"rouge-score={wall_ref:.3f}s ratio={wall_ref / wall_ours:.1f}x | "
        f"max_abs_diff={diff:.1e}"
    )
    assert np.array_equal(ours, ref), f"scores differ: max_abs_diff={diff}"
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    preds, refs = make_pairs(args.pairs, args.seed)
    lengths = [len(text.rouge_tokens(p)) for p in preds]
    print(
        f"tokens per prediction: min={min(lengths)} mean={np.mean(lengths):.1f} max={max(lengths)}"
    )
    compare(preds, refs, ["rouge_l"], args.repeats)
    compare(preds, refs, ["rouge1", "rouge2", "rouge_l"], args.repeats)


if __name__ == "__main__":
    main()
