"""Degenerate generations: the answer is not an answer, whatever it happens to contain.

:func:`degeneration` returns the reason a generated text is degenerate, or None:

* ``loop`` — a span repeated back to back: at least 4 times over 24+ characters
  ("above 1.5% above 1.5% above 1.5% above 1.5%", "token_token_token_token_"), or 3 times
  when the repeated span is a sentence of 20+ characters ("I'm not sure. I'm not sure. I'm not
  sure."). The repeated span must hold a letter: table rules ("|---|---|") and card numbers
  ("4242424242424242") are not loops.
* ``enumeration`` — many values of one kind (:mod:`guardrails.metrics.values`): 5 or more in
  arithmetic progression ("1.5% 2.5% 3.5% 4.5% 5.5%"), or 8 or more distinct ones — an answer
  that sprays candidates instead of stating one.
* ``truncated`` — the output stops inside a token or construct: an unclosed code fence or
  inline code span, or a last character that only joins (``_ - / \\ = ( [ { < $ @ #``).
  An answer cut at the end of a word ("You can also disable") is *not* flagged: nothing in the
  text tells a budget cut from a terse answer, and counting it would fail most short answers.

:func:`degenerate_scores` is the per-sample 0/1 score of the ``degenerate_rate`` metric
(lower is better). The thresholds were checked against every cached answer of the demo's
three generators (see ``tests/metrics/test_degeneration.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

import numpy as np

from guardrails.metrics.values import extract_values

__all__ = ["degenerate_scores", "degeneration"]

_LOOP = re.compile(r"(.{2,80}?)\1{2,}", re.S)
_JOINERS = "_-/\\=([{<$@#"
_AP_MIN = 5
_DISTINCT_MIN = 8


def _loop(text: str) -> str | None:
    flat = re.sub(r"\s+", " ", text)
    for m in _LOOP.finditer(flat):
        unit = m.group(1)
        reps = len(m.group(0)) // len(unit)
        if not re.search(r"[^\W\d_]", unit):
            continue
        if (reps >= 4 and len(m.group(0)) >= 24) or (reps >= 3 and len(unit) >= 20):
            if m.start() and flat[m.start() - 1].isalnum() and " " in unit:
                cut = unit.index(" ") + 1  # the loop began mid-word: quote it from a word
                unit = unit[cut:] + unit[:cut]
            return f"loop: {unit.strip()!r} repeated {reps} times"
    return None


def _progression(nums: list[Decimal]) -> int:
    """Length of the longest run of values with one equal, non-zero step."""
    if len(nums) < 3:
        return len(nums)
    best = run = 2
    for i in range(2, len(nums)):
        step = nums[i] - nums[i - 1]
        run = run + 1 if step and step == nums[i - 1] - nums[i - 2] else 2
        best = max(best, run)
    return best


def _enumeration(text: str) -> str | None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for v in extract_values(text):
        by_kind[v.kind].append(v.norm)
    for kind, norms in by_kind.items():
        numeric = [_number(n) for n in norms]
        nums = [n for n in numeric if n is not None]
        if len(nums) >= _AP_MIN and _progression(nums) >= _AP_MIN:
            return f"enumeration: {len(norms)} {kind} values in a progression ({norms[0]}, ...)"
        if len(set(norms)) >= _DISTINCT_MIN:
            return f"enumeration: {len(set(norms))} distinct {kind} values"
    return None


def _number(norm: str) -> Decimal | None:
    m = re.search(r"-?\d+(?:\.\d+)?", norm)
    return Decimal(m.group(0)) if m else None


def _truncated(text: str) -> str | None:
    if text.count("```") % 2:
        return "truncated: ends inside an unclosed code block"
    if re.sub(r"```.*?```", "", text, flags=re.S).count("`") % 2:
        return "truncated: ends inside an unclosed inline code span"
    if text and text[-1] in _JOINERS:
        return f"truncated: ends mid-token on {text[-1]!r}"
    return None


def degeneration(text: str) -> str | None:
    """Why ``text`` is a degenerate generation (``"loop: ..."``, ``"enumeration: ..."``,
    ``"truncated: ..."``), or None when it is not."""
    stripped = text.strip()
    if not stripped:
        return None
    return _loop(stripped) or _enumeration(stripped) or _truncated(stripped)


def degenerate_scores(texts: Iterable[str]) -> np.ndarray:
    """1.0 per degenerate text, 0.0 otherwise (the per-sample ``degenerate_rate``)."""
    return np.array([float(degeneration(t) is not None) for t in texts], dtype=np.float64)
