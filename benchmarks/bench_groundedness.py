"""Agreement of the groundedness scores with labels built from SQuAD 2.0 (public sample).

    python benchmarks/bench_groundedness.py [--embedding]

The labelled set is built on the fly from ``../shared/data/squad_v2_sample/small.json`` (never
copied into the project). A *claim* is ``question + " " + answer``, the shape of a short RAG
answer that restates the question. Three families of pairs:

* ``supported``   the claim with a gold answer against its own paragraph;
* ``swapped``     the same claim against another paragraph of the same article (seeded
                  choice) that does not contain the gold answer text: topical, same vocabulary,
                  not supporting;
* ``plausible``   an unanswerable question + its annotated plausible answer against its own
                  paragraph: SQuAD 2.0's adversarial negatives (the plausible answer IS a span
                  of the paragraph; the question asks something the paragraph does not say).
                  Token overlap cannot see these; they are reported to say so.

And one easy family per the classic set-up (``sentence``): the paragraph sentence that contains
the gold answer, against its own paragraph (positive) and a paragraph of the other article
(negative).

Pairs are split in two halves by paragraph (sha256 of ``title/index`` parity), so no context is
in both halves. For each task the threshold that maximises balanced accuracy on one half is
measured on the other (both directions are printed); accuracy, balanced accuracy and Cohen's
kappa of ``score >= threshold`` against the labels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_v2_sample" / "small.json"
SEED = 13


@dataclass(frozen=True)
class Pair:
    """One labelled (answer, context) pair; ``label`` 1 = supported."""

    family: str
    answer: str
    context: str
    label: int
    half: int


def _half(title: str, index: int) -> int:
    return hashlib.sha256(f"{title}/{index}".encode()).digest()[0] % 2


def _answer_sentence(context: str, start: int) -> str:
    from guardrails.metrics.groundedness import split_sentences

    at = 0
    for sentence in split_sentences(context):
        at = context.find(sentence, at)
        if at <= start < at + len(sentence):
            return sentence
        at += len(sentence)
    return ""


def build_pairs(path: Path = DATA, seed: int = SEED) -> list[Pair]:
    """The labelled pairs (see the module docstring), deterministic for a seed."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    for a, article in enumerate(articles):
        paragraphs = [p["context"] for p in article["paragraphs"]]
        other = [p["context"] for p in articles[1 - a]["paragraphs"]] if len(articles) > 1 else []
        for i, para in enumerate(article["paragraphs"]):
            half = _half(article["title"], i)
            for qa in para["qas"]:
                pairs += _qa_pairs(qa, paragraphs, i, other, half, rng)
    return pairs


def _qa_pairs(qa: dict, paragraphs: list[str], i: int, other: list[str], half: int, rng) -> list:
    context = paragraphs[i]
    if qa.get("is_impossible"):
        plausible = qa.get("plausible_answers") or []
        if not plausible:
            return []
        return [Pair("plausible", f"{qa['question']} {plausible[0]['text']}", context, 0, half)]
    gold = qa["answers"][0]
    claim = f"{qa['question']} {gold['text']}"
    out = [Pair("supported", claim, context, 1, half)]
    lacks = [
        j for j, p in enumerate(paragraphs) if j != i and gold["text"].lower() not in p.lower()
    ]
    if lacks:
        out.append(Pair("swapped", claim, paragraphs[int(rng.choice(lacks))], 0, half))
    sentence = _answer_sentence(context, gold["answer_start"])
    if sentence and other:
        out.append(Pair("sentence+", sentence, context, 1, half))
        out.append(Pair("sentence-", sentence, other[int(rng.integers(len(other)))], 0, half))
    return out


TASKS = {
    "claim vs another paragraph": ("supported", "swapped"),
    "claim vs plausible (adversarial)": ("supported", "plausible"),
    "claim vs both negatives": ("supported", "swapped", "plausible"),
    "answer sentence vs other article": ("sentence+", "sentence-"),
}


def kappa(y: np.ndarray, pred: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 label vectors: (p_o - p_e) / (1 - p_e)."""
    p_o = float(np.mean(y == pred))
    p_e = float(np.mean(y) * np.mean(pred) + (1 - np.mean(y)) * (1 - np.mean(pred)))
    return 1.0 if p_e == 1.0 else (p_o - p_e) / (1 - p_e)


def agreement(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, balanced accuracy and kappa of ``scores >= threshold`` against ``y``."""
    pred = (scores >= threshold).astype(int)
    tpr = float(np.mean(pred[y == 1] == 1)) if np.any(y == 1) else float("nan")
    tnr = float(np.mean(pred[y == 0] == 0)) if np.any(y == 0) else float("nan")
    return {
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": (tpr + tnr) / 2,
        "kappa": kappa(y, pred),
        "threshold": float(threshold),
        "n": int(y.size),
    }


def choose_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The cut (a midpoint between distinct scores) maximising balanced accuracy; the
    lowest such cut on ties."""
    values = np.unique(scores)
    cuts = np.concatenate([[values[0]], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-9]])
    best = max(cuts, key=lambda c: (agreement(scores, y, c)["balanced_accuracy"], -c))
    return float(best)


def held_out(pairs: Sequence[Pair], scores: np.ndarray, families: Sequence[str]) -> list[dict]:
    """Per direction (tune on half h, measure on 1 - h): the agreement on the measured half."""
    keep = np.array([p.family in families for p in pairs])
    y = np.array([p.label for p in pairs])
    halves = np.array([p.half for p in pairs])
    out = []
    for tune in (0, 1):
        t_mask, m_mask = keep & (halves == tune), keep & (halves != tune)
        threshold = choose_threshold(scores[t_mask], y[t_mask])
        out.append({"tuned_on": tune, **agreement(scores[m_mask], y[m_mask], threshold)})
    return out


def token_scores(pairs: Sequence[Pair], max_n: int = 2) -> np.ndarray:
    from guardrails.metrics.groundedness import groundedness_scores

    return groundedness_scores([p.answer for p in pairs], [p.context for p in pairs], max_n=max_n)


def embedding_scores(pairs: Sequence[Pair]) -> np.ndarray:
    from guardrails.components.embedder import Embedder, minilm_path
    from guardrails.metrics.groundedness import embedding_groundedness

    embedder = Embedder.load(minilm_path())

    class _Quiet:
        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return embedder.encode(texts, progress=False)

    return embedding_groundedness([p.answer for p in pairs], [p.context for p in pairs], _Quiet())


def report(
    name: str, pairs: Sequence[Pair], scorer: Callable[[Sequence[Pair]], np.ndarray]
) -> None:
    scores = scorer(pairs)
    for task, families in TASKS.items():
        for r in held_out(pairs, scores, families):
            print(
                f"{name:<14} {task:<34} tuned on half {r['tuned_on']}: n={r['n']:4d} "
                f"thr={r['threshold']:.3f} acc={r['accuracy']:.3f} "
                f"bal_acc={r['balanced_accuracy']:.3f} kappa={r['kappa']:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding", action="store_true", help="also MiniLM sentence cosine")
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"{DATA} not found (public data beside the checkout)")
    pairs = build_pairs()
    counts = {f: sum(p.family == f for p in pairs) for f in sorted({p.family for p in pairs})}
    print(f"pairs: {counts} (seed {SEED})")
    report("token uni+bi", pairs, token_scores)
    report("token unigram", pairs, lambda ps: token_scores(ps, max_n=1))
    if args.embedding:
        report("minilm cosine", pairs, embedding_scores)


if __name__ == "__main__":
    main()
