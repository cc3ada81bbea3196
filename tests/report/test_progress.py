"""Progress lines: visible live in a captured pytest run, quiet with -q, ETA arithmetic."""

from __future__ import annotations

import logging

import pytest

from guardrails.report.progress import Progress, track

CONFTEST = """
import pytest
from guardrails.report.progress import track

@pytest.fixture(scope="session")
def slow_thing():
    for _ in track(range(4), "building the thing", unit="batch", every=0.0):
        print("captured print: nobody sees this")
    return 4
"""

TEST = """
def test_uses_it(slow_thing):
    assert slow_thing == 4
"""


def test_progress_is_visible_under_capture_and_quiet_with_q(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_progress=TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0
    out = result.stdout.str()
    assert "[guardrails] building the thing: started of 4 batches" in out
    assert "[guardrails] building the thing: batch 2/4" in out and "ETA" in out
    assert "[guardrails] building the thing: done, 4 batches in" in out
    assert "captured print" not in out  # capture still works for everything else
    quiet = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert quiet.ret == 0 and "[guardrails]" not in quiet.stdout.str()


def test_progress_line_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="guardrails")
    p = Progress("generator LoRA-SFT", 45, every=1e9)
    p.started -= 40 * 6.0  # 40 steps took 240 s
    p.done = 40
    line = p.line(facts={"loss": 1.23456})
    assert line == "generator LoRA-SFT: step 40/45, 6 s/step, ETA 30 s, loss=1.235"
    assert list(track([], "nothing")) == []
    assert [r.getMessage() for r in caplog.records][-1].startswith("nothing: done, 0 batches")


def test_finished_tasks_are_recorded_as_phases(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from guardrails.report.progress import PHASES_ENV, chunks

    caplog.set_level(logging.INFO, logger="guardrails")
    phases = tmp_path / "phases.jsonl"
    monkeypatch.setenv(PHASES_ENV, str(phases))
    facts = {"tokens": 0}
    for part in chunks(list(range(10)), 4, "generator generate", facts=facts):
        sum(i * i for i in range(20000))  # some CPU work
        facts["tokens"] += len(part)
    rows = [json.loads(line) for line in phases.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert (row["task"], row["unit"], row["units"]) == ("generator generate", "batch", 3)
    assert row["facts"] == {"tokens": 10} and row["cpu_s"] > 0 and row["wall_s"] > 0
    assert "tokens=10" in caplog.records[-1].getMessage()
    assert "(CPU " in caplog.records[-1].getMessage()
    # not set: nothing is written anywhere
    monkeypatch.delenv(PHASES_ENV)
    list(chunks([1, 2, 3], 1, "other"))
    assert len(phases.read_text().splitlines()) == 1
