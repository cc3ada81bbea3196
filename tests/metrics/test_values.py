"""Typed values: each kind found and normalised, spellings equal, other kinds and bare numbers
left alone."""

from __future__ import annotations

import pytest

from guardrails.metrics.values import bare_number_spans, extract_values, parse_value


def _kinds(text: str) -> list[tuple[str, str]]:
    return [(v.kind, v.norm) for v in extract_values(text)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.5%", "1.5 %"),
        ("1.5%", "1.50%"),
        ("1.5%", "1.5 percent"),
        ("$15.00", "$15"),
        ("$15", "15 USD"),
        ("$0.30", "30¢"),
        ("$1,200", "$1200"),
        ("3 days", "72 hours"),
        ("2 weeks", "14 days"),
        ("1 year", "12 months"),
        ("v2.3", "version 2.3.0"),
        ("E-12", "E12"),
        ("HTTP 429", "status code 429"),
        ("$4.99 per month", "$4.99/mo"),
    ],
)
def test_spellings_of_one_value_are_equal(a: str, b: str) -> None:
    assert _kinds(a) == _kinds(b) != []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.5%", "2.5%"),
        ("1.5%", "11.5%"),
        ("$15", "€15"),
        ("$4.99 per month", "$4.99 per year"),
        ("3 days", "3 business days"),
        ("30 days", "1 month"),
        ("v2.3", "v2.30"),
        ("E12", "E13"),
    ],
)
def test_different_values_differ(a: str, b: str) -> None:
    assert _kinds(a) != _kinds(b)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fee 2.9% + 30¢", [("percent", "2.9"), ("money", "USD 0.3")]),
        (
            "$4.99 per month or $49 per year",
            [("money/month", "USD 4.99"), ("money/year", "USD 49")],
        ),
        ("$2.9%", [("percent", "2.9")]),
        ("error E1234 after 5 minutes", [("code", "E1234"), ("duration", "300 s")]),
        ("use a CR2477 cell", [("code", "CR2477")]),
    ],
)
def test_kinds_in_context(text: str, expected: list[tuple[str, str]]) -> None:
    assert _kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    ["on 2024-05-03", "score 85 or more", "step 1, step 2, step 3", "port 8883", "2.4 GHz"],
)
def test_bare_numbers_and_dates_have_no_kind(text: str) -> None:
    assert extract_values(text) == []


def test_parse_value_is_one_whole_value() -> None:
    assert parse_value("1.50 %") is not None
    assert parse_value("1.5% or 2%") is None
    assert parse_value("180") is None
    assert parse_value("refund") is None


def test_bare_number_spans_match_whole_numbers_only() -> None:
    assert bare_number_spans("within 180 days", "180") == [(7, 10)]
    assert bare_number_spans("1800 days, 0.180, 180.5", "180") == []
    assert bare_number_spans("$4.99 a month", "4.99") == [(1, 5)]
