"""Text metrics, one score per sample: ROUGE-1/2/L, BLEU, chrF, exact match, token F1.

:func:`evaluate_text` is the contract: it maps each requested metric name (parsed by
:func:`guardrails.metrics.parse_metric`, family ``"text"``) to a float64 array with one score
per (prediction, references) sample. Every value equals its reference implementation:

- **ROUGE** (Lin, 2004) equals ``rouge_score.rouge_scorer.RougeScorer(types,
  use_stemmer=True).score_multi(refs, pred)[type].fmeasure``. Tokens: lowercase, every run of
  characters outside ``[a-z0-9]`` becomes a space, tokens longer than 3 characters are Porter
  stemmed (NLTK extensions, the stemmer rouge-score uses). With ``P = hits / |pred|`` and
  ``R = hits / |ref|``, ``F = 2PR / (P + R)`` (0 when ``P + R = 0``), where ``hits`` is the
  clipped n-gram overlap ``sum_g min(c_ref(g), c_pred(g))`` for ROUGE-N and the length of the
  longest common subsequence for ROUGE-L. Several references: the maximum F over them.
- **BLEU** (Papineni et al., 2002) equals ``sacrebleu.sentence_bleu(pred, refs).score / 100``
  (13a tokenizer, exp smoothing, effective order) and **chrF** (Popović, 2015) equals
  ``sacrebleu.sentence_chrf(pred, refs).score / 100`` (char order 6, beta 2, word order 0).
  Both are reported on 0..1, not sacrebleu's 0..100 (and clipped to it: sacrebleu may say
  100 + 1 ulp for a perfect match); all references are used at once.
- **exact_match** and **token_f1** follow the official SQuAD v2.0 evaluation script
  (Rajpurkar et al., 2018): normalise by lowercasing, removing ASCII punctuation, the articles
  a/an/the and extra whitespace; ``F1 = 2PR / (P + R)`` on the clipped bag-of-token overlap,
  1 when both sides are empty, 0 when only one is. References that normalise to empty are
  ignored unless all of them do (then the gold answer is ``""``); the maximum is taken.

ROUGE-L is the hot spot. The LCS length is computed bit-parallel (Allison & Dix, 1986;
Hyyrö, 2004): one machine-word-style integer operation per token of the prediction instead of
the ``|ref| x |pred|`` table rouge-score fills in pure Python; stems are cached per distinct
token and texts are tokenised once per call.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrails.errors import MetricError
from guardrails.metrics import parse_metric

__all__ = [
    "evaluate_text",
    "exact_match",
    "lcs_length",
    "normalize_answer",
    "rouge_tokens",
    "token_f1",
]

_WORD = re.compile(r"[a-z0-9]+")
_WORD_OR_SEP = re.compile(r"[a-z0-9]+|\x00")
_ASCII_SPACES = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not re.match(r"[a-z0-9\x00]", c)}
)
_CUBE = 1 << 22  # cells of one chunk's match cube in _lcs_lanes (bytes of bool)
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ROUGE_N = {"rouge1": 1, "rouge2": 2}

References = Sequence[Sequence[str]] | Sequence[str]


# ---------------------------------------------------------------- ROUGE tokens

# word -> integer id of its stem (0: rouge-score drops the token; -1: our text separator).
# Kept across calls, cleared only at the start of a call, so ids are consistent within one.
_SEP = "\x00"
_WORD_IDS: dict[str, int] = {_SEP: -1}
_STEM_IDS: dict[str, int] = {"": 0}
_MAX_WORDS = 1 << 18
_VOCABULARY_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _porter_stemmer() -> Any:
    try:
        from nltk.stem import porter  # the stemmer rouge-score itself uses
    except ImportError:  # pragma: no cover - nltk ships with rouge-score
        raise MetricError(
            "ROUGE metrics need the Porter stemmer from nltk; run `pip install nltk`"
        ) from None
    return porter.PorterStemmer()


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """Stem ``word`` exactly like rouge-score: only words longer than 3 characters."""
    stemmed: str = _porter_stemmer().stem(word) if len(word) > 3 else word
    return stemmed if _VALID_TOKEN.match(stemmed) else ""


def rouge_tokens(text: str) -> tuple[str, ...]:
    """Tokenise ``text`` as rouge-score's default tokenizer with ``use_stemmer=True``.

    rouge-score lowercases, replaces runs outside ``[a-z0-9]`` by spaces and splits;
    ``findall`` of the runs inside gives the same words in one pass.
    """
    return tuple(filter(None, map(_stem, _WORD.findall(text.lower()))))


def _clear_vocabulary() -> None:
    """Forget all word and stem ids (the separator keeps its id -1)."""
    _WORD_IDS.clear()
    _WORD_IDS[_SEP] = -1
    _STEM_IDS.clear()
    _STEM_IDS[""] = 0


def _reset_vocabulary_if_large() -> None:
    if len(_WORD_IDS) > _MAX_WORDS:  # bound memory on open vocabularies
        _clear_vocabulary()


def _word_ids(words: list[str]) -> np.ndarray:
    """Stem id of each word (C-level dict lookups; unseen words are stemmed once)."""
    try:
        return np.fromiter(map(_WORD_IDS.__getitem__, words), dtype=np.int64, count=len(words))
    except KeyError:
        for word in set(words).difference(_WORD_IDS):
            _WORD_IDS[word] = _STEM_IDS.setdefault(_stem(word), len(_STEM_IDS))
        return np.fromiter(map(_WORD_IDS.__getitem__, words), dtype=np.int64, count=len(words))


@dataclass(frozen=True)
class _Texts:
    """Stem ids of many texts, concatenated: text ``t`` is ``ids[offsets[t]:][:lengths[t]]``."""

    ids: np.ndarray
    owner: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray

    def tokens(self, t: int) -> list[int]:
        return self.ids[self.offsets[t] : self.offsets[t] + self.lengths[t]].tolist()


def _words(texts: list[str]) -> list[str]:
    """rouge-score's words of all texts, texts separated by a NUL-character word.

    NUL is outside ``[a-z0-9]``, so rouge-score treats it as a space: replacing it inside a
    text changes nothing. ASCII input (the usual case) takes ``str.translate`` +
    ``split``, about 2.5x faster than the regex the rest takes.
    """
    joined = f" {_SEP} ".join(t.replace(_SEP, " ") for t in texts).lower()
    if joined.isascii():
        return joined.translate(_ASCII_SPACES).split()
    return _WORD_OR_SEP.findall(joined)


def _tokenize_texts(texts: list[str]) -> _Texts:
    """:func:`rouge_tokens` of all texts, as stem ids, in one pass over their join."""
    raw = _word_ids(_words(texts))
    keep = raw > 0
    owner = np.cumsum(raw == -1)[keep]
    lengths = np.bincount(owner, minlength=len(texts))
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return _Texts(raw[keep], owner, offsets, lengths)


@dataclass(frozen=True)
class _RougeBatch:
    """Every (prediction, reference) pair as text indices; sample ``i`` starts at ``starts[i]``."""

    texts: _Texts
    pred: np.ndarray
    ref: np.ndarray
    starts: np.ndarray


def _tokenize_samples(predictions: Sequence[str], refs: list[tuple[str, ...]]) -> _RougeBatch:
    """Tokenise every distinct text once (golden references repeat a lot), index the pairs."""
    index: dict[str, int] = {}
    pred = [index.setdefault(p, len(index)) for p in predictions]
    ref = [index.setdefault(r, len(index)) for rs in refs for r in rs]
    with _VOCABULARY_LOCK:  # a reset by another thread must not split one call's ids
        _reset_vocabulary_if_large()
        texts = _tokenize_texts(list(index))
    counts = np.fromiter(map(len, refs), dtype=np.int64, count=len(refs))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    pairs_pred = np.repeat(np.asarray(pred, dtype=np.int64), counts)
    return _RougeBatch(texts, pairs_pred, np.asarray(ref, np.int64), starts)


# ---------------------------------------------------------------- LCS, bit-parallel


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``, bit-parallel.

    Hyyrö (2004), after Allison & Dix (1986): with ``M[t]`` the bit mask of the positions of
    token ``t`` in ``a`` and ``V = 1^|a|``, each token ``t`` of ``b`` does
    ``U = V & M[t]; V = (V + U) | (V - U)``; the LCS length is the number of zero bits in the
    low ``|a|`` bits of ``V``. Carries above bit ``|a|`` never flow back down, so ``V`` is
    masked once at the end.
    """
    masks: dict[Hashable, int] = {}
    bit = 1
    for token in a:
        masks[token] = masks.get(token, 0) | bit
        bit <<= 1
    v = bit - 1
    get = masks.get
    for token in b:
        m = get(token)
        if m:
            u = v & m
            v = (v + u) | (v - u)
    return len(a) - (v & (bit - 1)).bit_count()


def _pad(texts: _Texts, rows: np.ndarray, width: int, fill: int) -> np.ndarray:
    """Token ids of texts ``rows`` as a ``(len(rows), width)`` array padded with ``fill``."""
    column = np.arange(width)
    position = texts.offsets[rows, None] + column
    tokens = np.take(texts.ids, position, mode="clip") if len(texts.ids) else position
    return np.where(column < texts.lengths[rows, None], tokens, fill)


def _lcs_lanes(texts: _Texts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hyyrö's recurrence with one uint64 lane per pair (texts ``a`` have 1..64 tokens).

    ``M`` for each token of ``b`` is packed from the ``|b| x 64`` match matrix; uint64
    wrap-around only drops carries out of bit 63, which never affect lower bits.
    """
    a_ids = _pad(texts, a, 64, -1)
    b_ids = _pad(texts, b, int(texts.lengths[b].max()), -2)
    match = a_ids[:, None, :] == b_ids[:, :, None]
    packed = np.packbits(match, axis=2, bitorder="little").view("<u8")[:, :, 0]
    v = np.full(len(a), np.iinfo(np.uint64).max, dtype=np.uint64)
    for m in np.ascontiguousarray(packed.T, dtype=np.uint64):
        u = v & m
        v = (v + u) | (v - u)
    bits = np.unpackbits(v.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return ((bits == 0) & (a_ids >= 0)).sum(axis=1)


def _lane_chunks(rows: np.ndarray, b_lengths: np.ndarray) -> list[np.ndarray]:
    """``rows`` sorted by ``|b|`` and cut so each chunk's match cube stays under ``_CUBE``."""
    rows = rows[np.argsort(b_lengths[rows], kind="stable")]
    cuts, size = [], 0
    for k, width in enumerate(b_lengths[rows].tolist()):
        if size and (size + 1) * max(width, 1) * 64 > _CUBE:
            cuts.append(k)
            size = 0
        size += 1
    return np.split(rows, cuts) if len(rows) else []


def _lcs_lengths(texts: _Texts, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LCS length per pair (x[i], y[i]): lanes when the shorter has 1..64 tokens, else ints."""
    swap = texts.lengths[y] < texts.lengths[x]
    a, b = np.where(swap, y, x), np.where(swap, x, y)
    out = np.zeros(len(a), dtype=np.int64)
    a_lengths = texts.lengths[a]
    lanes = np.flatnonzero((a_lengths > 0) & (a_lengths <= 64))
    for rows in _lane_chunks(lanes, texts.lengths[b]):
        out[rows] = _lcs_lanes(texts, a[rows], b[rows])
    for i in np.flatnonzero(a_lengths > 64):
        out[i] = lcs_length(texts.tokens(a[i]), texts.tokens(b[i]))
    return out


# ---------------------------------------------------------------- ROUGE-N and F-measure


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), vectorised."""
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - ends + counts, counts)


def _text_grams(texts: _Texts, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense n-gram ids (n in {1, 2}) of all texts, concatenated, with offsets and counts."""
    ids, owner = texts.ids, texts.owner
    if n == 2:
        first = np.flatnonzero(owner[:-1] == owner[1:])  # bigrams never cross texts
        ids, owner = ids[first] * (int(ids.max(initial=0)) + 1) + ids[first + 1], owner[first]
    dense = np.unique(ids, return_inverse=True)[1].ravel()
    counts = np.bincount(owner, minlength=len(texts.lengths))
    return dense, np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64), counts


def _pair_keys(grams: tuple[np.ndarray, np.ndarray, np.ndarray], text: np.ndarray) -> np.ndarray:
    """``pair * width + gram`` for every n-gram of text ``text[pair]``, for all pairs."""
    dense, offsets, counts = grams
    width = int(dense.max(initial=0)) + 1
    pair = np.repeat(np.arange(len(text)), counts[text])
    return pair * width + dense[_ranges(offsets[text], counts[text])]


def _clipped_hits(
    grams: tuple[np.ndarray, np.ndarray, np.ndarray], batch: _RougeBatch
) -> np.ndarray:
    """Per pair ``sum_g min(c_pred(g), c_ref(g))``, by counting unique (pair, n-gram) keys."""
    width = int(grams[0].max(initial=0)) + 1
    pred_keys, pred_counts = np.unique(_pair_keys(grams, batch.pred), return_counts=True)
    ref_keys, ref_counts = np.unique(_pair_keys(grams, batch.ref), return_counts=True)
    common, i, j = np.intersect1d(pred_keys, ref_keys, assume_unique=True, return_indices=True)
    hits = np.minimum(pred_counts[i], ref_counts[j])
    return np.bincount(common // width, weights=hits, minlength=len(batch.pred))


def _fmeasure(hits: np.ndarray, n_pred: np.ndarray, n_ref: np.ndarray) -> np.ndarray:
    """rouge-score's ``P = hits/n_pred``, ``R = hits/n_ref``, ``2*P*R/(P+R)`` (0 if ``P+R=0``).

    Elementwise with the same float64 operations in the same order, hence bit-identical;
    an empty side gives ``0/0 = nan``, whose ``P+R > 0`` is false, hence 0 as rouge-score.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = hits / n_pred
        recall = hits / n_ref
        f = 2 * precision * recall / (precision + recall)
    return np.where(precision + recall > 0, f, 0.0)


def _rouge_pairs(base: str, batch: _RougeBatch) -> np.ndarray:
    n_pred, n_ref = batch.texts.lengths[batch.pred], batch.texts.lengths[batch.ref]
    if base == "rouge_l":
        return _fmeasure(_lcs_lengths(batch.texts, batch.ref, batch.pred), n_pred, n_ref)
    n = _ROUGE_N[base]
    hits = _clipped_hits(_text_grams(batch.texts, n), batch)
    return _fmeasure(hits, np.maximum(n_pred - n + 1, 1), np.maximum(n_ref - n + 1, 1))


def _rouge_scores(base: str, batch: _RougeBatch) -> np.ndarray:
    """Per sample, the maximum F over its references (rouge-score's ``score_multi``)."""
    f = _rouge_pairs(base, batch)
    return np.maximum.reduceat(f, batch.starts) if len(f) else f


# ---------------------------------------------------------------- BLEU and chrF (sacrebleu)


@functools.lru_cache(maxsize=1)
def _sacrebleu_metrics() -> tuple[Any, Any]:
    """``BLEU``/``CHRF`` objects with ``sentence_bleu``/``sentence_chrf`` defaults, built once."""
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError:
        raise MetricError(
            "metrics 'bleu' and 'chrf' need sacrebleu; run `pip install sacrebleu`"
        ) from None
    bleu = BLEU(smooth_method="exp", tokenize="13a", effective_order=True)
    chrf = CHRF(char_order=6, word_order=0, beta=2, whitespace=False, eps_smoothing=False)
    return bleu, chrf


def _sacrebleu_scores(
    base: str, predictions: Sequence[str], refs: list[tuple[str, ...]]
) -> np.ndarray:
    bleu, chrf = _sacrebleu_metrics()
    metric = bleu if base == "bleu" else chrf
    scores = [
        metric.sentence_score(p, list(rs)).score for p, rs in zip(predictions, refs, strict=True)
    ]
    # sacrebleu can return 100 + 1 ulp for a perfect match; a score above 1 means nothing
    return np.clip(np.asarray(scores, dtype=np.float64) / 100.0, 0.0, 1.0)


# ---------------------------------------------------------------- SQuAD v2 exact match / F1


def normalize_answer(text: str) -> str:
    """SQuAD v2 normalisation: lowercase, drop punctuation, articles, extra whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _gold_answers(references: Sequence[str]) -> list[str]:
    """References as the official script keeps them: non-empty after normalisation, or ``""``."""
    return [r for r in references if normalize_answer(r)] or [""]


def _f1_pair(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision = 1.0 * same / len(pred_tokens)
    recall = 1.0 * same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if ``prediction`` equals some reference after SQuAD normalisation, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) == pred for g in _gold_answers(references)))


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """Maximum SQuAD v2 token F1 of ``prediction`` over ``references``."""
    pred = normalize_answer(prediction).split()
    return max(_f1_pair(pred, normalize_answer(g).split()) for g in _gold_answers(references))


def _squad_scores(base: str, predictions: Sequence[str], refs: list[tuple[str, ...]]) -> np.ndarray:
    score = exact_match if base == "exact_match" else token_f1
    return np.asarray(
        [score(p, rs) for p, rs in zip(predictions, refs, strict=True)], dtype=np.float64
    )


# ---------------------------------------------------------------- the arrays API

_ROUGE_BASES = ("rouge1", "rouge2", "rouge_l")
_STRING_SCORERS: dict[str, Callable[[str, Sequence[str], list[tuple[str, ...]]], np.ndarray]] = {
    "bleu": _sacrebleu_scores,
    "chrf": _sacrebleu_scores,
    "exact_match": _squad_scores,
    "token_f1": _squad_scores,
}


def _reference_lists(predictions: Sequence[str], references: References) -> list[tuple[str, ...]]:
    """One tuple of reference strings per sample; a bare ``str`` is a single reference."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise MetricError("predictions and references must be sequences of samples, not one str")
    if len(predictions) != len(references):
        raise MetricError(
            f"len(predictions)={len(predictions)} != len(references)={len(references)}; "
            "pass one reference (or list of references) per prediction"
        )
    refs = [(r,) if isinstance(r, str) else tuple(r) for r in references]
    for i, (pred, rs) in enumerate(zip(predictions, refs, strict=True)):
        if not rs:
            raise MetricError(f"sample {i}: no reference; give at least one reference string")
        if not isinstance(pred, str) or not all(isinstance(r, str) for r in rs):
            raise MetricError(f"sample {i}: predictions and references must be str")
    return refs


def _text_bases(metrics: Sequence[str]) -> dict[str, str]:
    """Canonical name -> base for each requested metric; non-text metrics are refused."""
    bases: dict[str, str] = {}
    for name in [metrics] if isinstance(metrics, str) else metrics:
        spec = parse_metric(name)
        if spec.family != "text":
            raise MetricError(
                f"metric {name!r} is a {spec.family} metric, not a text metric; "
                "use the module of its family"
            )
        if spec.base not in _ROUGE_BASES and spec.base not in _STRING_SCORERS:
            raise MetricError(f"text metric {name!r} has no scorer in guardrails.metrics.text")
        bases[spec.name] = spec.base
    return bases


def evaluate_text(
    predictions: Sequence[str], references: References, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Score each prediction against its reference(s): ``{canonical name: float64 array}``.

    ``references[i]`` is a ``str`` (one reference) or a sequence of ``str`` (several; the
    combination rule per metric is in the module docstring). Names are parsed by
    :func:`~guardrails.metrics.parse_metric` (so ``"rougeL"`` comes back as ``"rouge_l"``).
    BLEU and chrF are on 0..1 (sacrebleu's value / 100). Raises :class:`MetricError` for
    unknown or non-text metrics, a length mismatch, or a sample without references.
    """
    bases = _text_bases(metrics)
    refs = _reference_lists(predictions, references)
    tokens = None
    out: dict[str, np.ndarray] = {}
    for name, base in bases.items():
        if base in _ROUGE_BASES:
            tokens = tokens or _tokenize_samples(predictions, refs)
            out[name] = _rouge_scores(base, tokens)
        else:
            out[name] = _STRING_SCORERS[base](base, predictions, refs)
    return out
