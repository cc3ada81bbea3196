"""`guardrails check VERDICT`: verify, then exit with the decision (0 / 10 / 11), 2 if forged."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from guardrails.cli import main
from guardrails.verdict.integrity import SIGNING_KEY_ENV, sign_verdict
from guardrails.verdict.schema import EXIT_STATUS
from tests.registry_worker import verdict_for


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("decision", ["promote", "hold", "rollback"])
def test_check_exits_with_the_verified_decision(tmp_path: Path, decision: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps(verdict_for({"embedder": ("sha256:b", "sha256:a")}, decision)))
    code, out, _ = _run(["check", str(path)])
    assert code == EXIT_STATUS[decision]
    assert "verified" in out


def test_check_refuses_an_edited_or_unsigned_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verdict = verdict_for({"embedder": ("sha256:b", "sha256:a")}, "rollback")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**verdict, "decision": "promote"}))
    code, _, err = _run(["check", str(forged)])
    assert code == 2 and "gives 'rollback'" in err and err.count("\n") == 1
    monkeypatch.setenv(SIGNING_KEY_ENV, "k")
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(verdict))
    code, _, err = _run(["check", str(plain)])
    assert code == 2 and "not signed" in err
    signed = tmp_path / "signed.json"
    signed.write_text(json.dumps(sign_verdict(verdict, b"k")))
    assert _run(["check", str(signed), "--json"])[0] == EXIT_STATUS["rollback"]
