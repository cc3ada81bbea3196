"""``[tool.guardrails.stack]``: domains parsed in order with their files, mistakes named, and
the plugin parametrizing ``domain`` from it (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.errors import PolicyError
from guardrails.policy import parse_policies
from guardrails.stack import load_stack, parse_stack

TABLE = {
    "artifacts": "out/artifacts",
    "domains": {
        "zeta": {"golden": "g/zeta", "role": "new", "qa": "elsewhere/qa.jsonl"},
        "alpha": {"golden": "g/alpha"},
    },
}


def test_domains_keep_their_order_roles_and_default_files(tmp_path: Path) -> None:
    stack = parse_stack(TABLE, tmp_path)
    assert stack.names() == ("zeta", "alpha")  # configuration order, not sorted
    assert stack.names("new") == ("zeta",) and stack.names("established") == ("alpha",)
    zeta, alpha = stack.domains["zeta"], stack.domains["alpha"]
    assert zeta.qa == tmp_path / "elsewhere" / "qa.jsonl"
    assert zeta.canaries == tmp_path / "g" / "zeta" / "canaries.jsonl"
    assert alpha.golden == tmp_path / "g" / "alpha" and not alpha.is_new
    assert stack.artifacts == tmp_path / "out" / "artifacts"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"domains": {"a": {"role": "new"}}}, "golden=None: give the BEIR folder's path"),
        ({"domains": {"a": {"golden": "g", "role": "old"}}}, "role='old'; allowed values"),
        ({"domains": {"a": {"golden": "g", "gold": 1}}}, "unknown key(s) ['gold']"),
        ({"domain": {}}, "unknown key(s) ['domain']"),
        ({"domains": ["a"]}, "domains must be a table"),
        ({"domains": {"a": {"golden": "g", "qa": 3}}}, "qa=3 must be a file path"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, table: dict, needle: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_stack(table, tmp_path)
    assert needle in str(err.value)


def test_the_stack_table_is_allowed_beside_the_policies(tmp_path: Path) -> None:
    parse_policies({"stack": TABLE, "policies": {}})  # not an unknown top-level key
    assert load_stack(tmp_path / "absent.toml").domains == {}


PYPROJECT = """
[tool.guardrails.stack.domains.billing]
golden = "golden/billing"
[tool.guardrails.stack.domains.devices]
golden = "golden/devices"
role = "new"
"""

SUITE = """
import pytest

@pytest.mark.parametrize("metric", ["ndcg@10", "mrr"])
def test_each_domain(domain, metric, guardrails_stack):
    assert domain in guardrails_stack.domains

@pytest.mark.parametrize("domain", ["only-this"])
def test_explicit(domain):
    assert domain == "only-this"
"""


def test_the_plugin_runs_a_domain_test_once_per_configured_domain(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml(PYPROJECT)
    pytester.makepyfile(test_domains=SUITE)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_each_domain[[]ndcg@10-billing[]] PASSED*",
            "*test_each_domain[[]ndcg@10-devices[]] PASSED*",
            "*test_explicit[[]only-this[]] PASSED*",
        ]
    )


def test_a_domain_test_without_domains_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.guardrails]\n")
    pytester.makepyfile(test_domains="def test_x(domain):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*takes a 'domain' but [[]tool.guardrails.stack.domains[]]*"])


def test_a_bad_stack_section_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.guardrails.stack.domains.a]\nrole = "new"\n')
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*golden=None: give the BEIR folder's path*"])


def test_index_kind_is_checked(tmp_path: Path) -> None:
    assert parse_stack({}, tmp_path).index_kind == "flat"
    assert parse_stack({"index": {"kind": "hnsw"}}, tmp_path).index_kind == "hnsw"
    with pytest.raises(
        PolicyError, match=r"kind='annoy'; allowed values: \['flat', 'hnsw', 'ivf'\]"
    ):
        parse_stack({"index": {"kind": "annoy"}}, tmp_path)
