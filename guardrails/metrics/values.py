"""Typed values in answer text: percentages, money, durations, versions, codes, HTTP statuses.

:func:`extract_values` finds each value with its kind and a normalised form, so that two
spellings of one value compare equal and two values of one kind can be told apart:

=========  ===================================  ==========================================
kind       spellings                            normalised as
=========  ===================================  ==========================================
percent    ``1.5%``, ``1.50 %``, ``1.5 percent``  the number: ``1.5``
money      ``$15``, ``$15.00``, ``15 USD``, ``30¢``  currency + amount: ``USD 15``; a rate
           ``$4.99 per month``, ``$49/yr``      keeps its period as part of the kind
                                                (``money/month`` vs ``money/year``)
duration   ``3 days``, ``72 hours``, ``2 weeks``  seconds (days, weeks, hours, minutes,
                                                seconds); months and years in months;
                                                business days on their own
version    ``v2.3``, ``version 2.3.0``          ``2.3`` (trailing ``.0`` dropped)
code       ``E1234``, ``E-12``, ``CR2477``      upper case, no hyphen
status     ``HTTP 429``, ``status code 404``    the three digits
=========  ===================================  ==========================================

Bare numbers ("85", "2024") have no kind: a count, a step number or a date is not evidence
of a conflicting answer. Numbers compare as :class:`decimal.Decimal`, so ``1.5 == 1.50``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["Value", "bare_number_spans", "extract_values", "parse_value"]

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_RATE = (
    r"(?:\s*(?:/|per|a|an|each)\s*(?P<per>month|mo|year|yr|annum|week|day|hour|"
    r"transaction|payment|charge|payout|dispute|invoice|user|seat|sensor|home)\b)?"
)
_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP", "usd": "USD", "eur": "EUR", "gbp": "GBP"}
_CURRENCY |= {"dollar": "USD", "dollars": "USD", "euro": "EUR", "euros": "EUR"}
_PERIOD = {"mo": "month", "yr": "year", "annum": "year"}
_SECONDS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600}
_SECONDS |= {"day": 86400, "week": 604800}
_MONTHS = {"month": 1, "year": 12}

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "percent",
        re.compile(rf"(?<![\w.])(?P<num>{_NUM})\s?(?:%|percent\b|per cent\b)", re.IGNORECASE),
    ),
    (
        "money",
        re.compile(
            rf"(?P<cur>[$€£])\s?(?P<num>{_NUM}){_RATE}"
            rf"|(?<![\w.])(?P<num2>{_NUM})\s?(?P<cur2>(?:USD|EUR|GBP|dollars?|euros?|cents?)\b|¢)"
            + _RATE.replace("per>", "per2>"),
            re.IGNORECASE,
        ),
    ),
    (
        "duration",
        re.compile(
            rf"(?<![\w.])(?P<num>{_NUM})[\s-]?(?P<unit>business days?|working days?|seconds?|"
            r"secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "version",
        re.compile(r"(?:\bv|\bversion\s?)(?P<num>\d+(?:\.\d+)*)\b", re.IGNORECASE),
    ),
    (
        "status",
        re.compile(
            r"\b(?:HTTP(?:\s?status)?|status(?:\s?code)?|error(?:\s?code)?|response(?:\s?code)?)"
            r"\s?(?:code\s?)?(?P<num>[1-5]\d\d)\b",
            re.IGNORECASE,
        ),
    ),
    ("code", re.compile(r"(?<![\w-])(?P<code>[A-Z]{1,3}-?\d{1,6})(?![\w-])")),
)


@dataclass(frozen=True)
class Value:
    """One typed value: ``kind`` (e.g. ``percent``, ``money/month``), ``norm`` (comparable)
    and ``text`` / ``start`` / ``end`` where it was found."""

    kind: str
    norm: str
    text: str
    start: int = 0
    end: int = 0


def _decimal(raw: str) -> Decimal:
    try:
        return Decimal(raw.replace(",", "")).normalize()
    except InvalidOperation:  # pragma: no cover - the patterns only capture digits
        return Decimal(0)


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _money(m: re.Match[str]) -> tuple[str, str]:
    num = m.group("num") or m.group("num2")
    cur_raw = (m.group("cur") or m.group("cur2") or "").lower()
    per = (m.group("per") or m.group("per2") or "").lower()
    amount = _decimal(num)
    if cur_raw in ("¢", "cent", "cents"):
        currency, amount = "USD", amount / 100
    else:
        currency = _CURRENCY.get(cur_raw, cur_raw.upper())
    kind = f"money/{_PERIOD.get(per, per)}" if per else "money"
    return kind, f"{currency} {_fmt(amount)}"


def _duration(m: re.Match[str]) -> tuple[str, str]:
    unit = m.group("unit").lower()
    amount = _decimal(m.group("num"))
    if unit.startswith(("business", "working")):
        return "duration", f"{_fmt(amount)} business-days"
    stem = unit.rstrip("s")
    if stem in _MONTHS:
        return "duration", f"{_fmt(amount * _MONTHS[stem])} months"
    return "duration", f"{_fmt(amount * _SECONDS[stem])} s"


def _version(m: re.Match[str]) -> tuple[str, str]:
    parts = m.group("num").split(".")
    while len(parts) > 1 and int(parts[-1]) == 0:
        parts.pop()
    return "version", ".".join(str(int(p)) for p in parts)


def _normalise(kind: str, m: re.Match[str]) -> tuple[str, str]:
    if kind == "money":
        return _money(m)
    if kind == "duration":
        return _duration(m)
    if kind == "version":
        return _version(m)
    if kind == "code":
        return kind, m.group("code").upper().replace("-", "")
    return kind, _fmt(_decimal(m.group("num")))


def extract_values(text: str) -> list[Value]:
    """Every typed value in ``text``, in reading order; a span claimed by an earlier kind
    (``$4.99 per month`` is money, not a duration; ``$2.9%`` is a percentage) is not read
    twice."""
    taken: list[tuple[int, int]] = []
    found: list[Value] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            k, norm = _normalise(kind, m)
            found.append(Value(k, norm, m.group(0), m.start(), m.end()))
    return sorted(found, key=lambda v: v.start)


def parse_value(text: str) -> Value | None:
    """The one value ``text`` consists of (``"1.5%"``, ``"$15.00"``), else None."""
    values = extract_values(text.strip())
    if len(values) == 1 and len(values[0].text) >= len(text.strip()) - 1:
        return values[0]
    return None


def bare_number_spans(text: str, number: str) -> list[tuple[int, int]]:
    """Where ``number`` ("180", "4.99") occurs in ``text`` as a whole number: not inside
    "1800", "0.180" or "4.995"; "4.990" does not count either (bare numbers carry no kind to
    normalise by)."""
    rx = re.compile(rf"(?<![\d.,]){re.escape(number)}(?!\d|[.,]\d)")
    return [(m.start(), m.end()) for m in rx.finditer(text)]
