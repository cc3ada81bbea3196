"""Degeneration: loops, value sprays and mid-token cuts flagged with their reason; ordinary
answers (lists, tables, code, card numbers, answers cut at a word) are not."""

from __future__ import annotations

import numpy as np
import pytest

from guardrails.metrics.degeneration import degenerate_scores, degeneration

# the demo's own degenerate answers (issue 16), verbatim
SPRAY = "1.5%\n2.5%\n3.5%\n4.5%\n5.5%\n6.5%\n7.5%\n8.5%\n9.5%\n10."
LOOP = (
    "The dispute rate threshold for the Dispute Watch program is 0.75% above 1.5% above 1.5% "
    "above 1.5% above 1.5% above 1.5% above"
)
UNSURE = "I'm not sure. " * 9 + "I'm not"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (LOOP, "loop: 'above 1.5%' repeated 5 times"),
        (UNSURE, 'loop: "I\'m not sure." repeated 9 times'),
        ('if token == "token_token_token_token_', "loop: 'token_' repeated 4 times"),
        ("Go to Settings > Accessibility > Accessibility > Accessibility > Accessibility", "loop"),
        ("the server that runs " * 3 + "it", "loop"),
        (SPRAY, "enumeration: 9 percent values in a progression"),
        ("$1 $2 $3 $4 $5", "enumeration: 5 money values in a progression"),
        ("Fees: 1%, 7%, 2.2%, 9%, 4.1%, 3%, 12%, 0.5%", "enumeration: 8 distinct percent values"),
        ("Run:\n```python\nimport os\nos.remove(", "truncated: ends inside an unclosed code"),
        ("use the command `", "truncated: ends inside an unclosed inline code span"),
        ("disable the server and disabling the server-", "truncated: ends mid-token on '-'"),
        ("set the value to my_", "truncated: ends mid-token on '_'"),
    ],
)
def test_degenerate_with_reason(text: str, reason: str) -> None:
    found = degeneration(text)
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Switch off the breaker",
        "Larkspur Pay charges 1.5% for Instant Payouts. Yes, 1.5%.",
        "No, no, no: a refund cannot be canceled once it has succeeded.",
        "Starter charges 2.9% + $0.30, Growth 2.6% + $0.25 and Scale 2.3% + $0.20.",
        "1. Open Settings.\n2. Tap Devices.\n3. Tap Add device.\n4. Scan the QR code.",
        "| plan | fee |\n|---|---|\n|---|---|\n| Starter | 2.9% |",
        "Use the test card 4242424242424242 with any CVC.",
        "Run `lark listen --forward-to localhost:4242` and keep it open.",
        "```bash\nlsof -i :4242\n```\nThen kill the PID it prints.",
        "You can also disable",  # cut at a word: not flagged (documented)
        "very very good",
    ],
)
def test_not_degenerate(text: str) -> None:
    assert degeneration(text) is None


def test_degenerate_scores_are_per_sample_zero_one() -> None:
    np.testing.assert_array_equal(degenerate_scores([LOOP, "Fine.", SPRAY]), [1.0, 0.0, 1.0])
