"""Extension points of the guardrails plugin (pytest hooks; implement them in a conftest.py or
a plugin, like any pytest hook).

``pytest_guardrails_decide`` may replace the verdict before it is written (first non-None
result wins): a team's own rule, e.g. "hold whenever a canary changed". What it returns is
recorded: the verdict's provenance says which hook implementation decided.
``pytest_guardrails_verdict_written`` runs after the verdict JSON (and the HTML report) are on
disk, on the controller only: post a PR comment, push to a model registry, page someone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pluggy import HookspecMarker

if TYPE_CHECKING:
    from guardrails.verdict import Verdict

hookspec = HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_guardrails_decide(verdict: Verdict, config: pytest.Config) -> Verdict | None:
    """Return a replacement :class:`~guardrails.verdict.Verdict`, or None to keep ``verdict``.

    Called once at session end on the controller, after the built-in rules decided.
    """


def pytest_guardrails_verdict_written(
    verdict: Verdict, path: Path | None, report: Path | None, config: pytest.Config
) -> None:
    """The final verdict, where its JSON was written (None without ``--guardrails-verdict``) and
    where its HTML report was written (None when not asked)."""
