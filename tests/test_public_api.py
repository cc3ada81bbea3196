"""The public surface: every name in ``guardrails.__all__`` resolves, lazily, and importing the
package imports neither numpy nor any ML library until a name is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import guardrails


@pytest.mark.parametrize("name", guardrails.__all__)
def test_every_public_name_resolves_to_its_home(name: str) -> None:
    value = getattr(guardrails, name)
    module = guardrails._HOME.get(name, "guardrails.errors")
    assert value is getattr(sys.modules[module], name)


def test_all_is_exactly_the_errors_and_the_lazy_names() -> None:
    import guardrails.errors

    assert sorted(guardrails.__all__) == sorted([*guardrails.errors.__all__, *guardrails._HOME])


def test_importing_the_package_is_cheap_and_an_unknown_name_is_an_attribute_error() -> None:
    code = (
        "import sys, guardrails; "
        "print(sorted(m for m in ('numpy', 'torch', 'guardrails.gates') if m in sys.modules)); "
        "guardrails.evaluate_gate; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "False"]
    with pytest.raises(AttributeError, match="no attribute 'evaluate_gates'"):
        guardrails.evaluate_gates  # noqa: B018
