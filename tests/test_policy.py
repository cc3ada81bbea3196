from __future__ import annotations

import pytest

from guardrails.errors import PolicyError
from guardrails.policy import DEFAULT_POLICY, load_policy, parse_policies

TABLE = {
    "policy": "release",
    "seed": 7,
    "policies": {
        "release": {
            "alpha": 0.05,
            "required": ["retrieval-*"],
            "metrics": {"ndcg@10": {"max-drop": 0.02, "min": 0.3}, "latency_p95": {"max-drop": 5}},
            "gates": {"retrieval-devices": {"min-gain": 0.01}},
        },
        "strict": {
            "extends": "release",
            "alpha": 0.01,
            "metrics": {"NDCG@10": {"max-drop": 0.005}},
        },
    },
}


def test_named_policies_extend_and_override() -> None:
    policies = parse_policies(TABLE)
    strict = policies["strict"]
    assert strict.alpha == 0.01 and strict.seed == 7
    assert strict.required == ("retrieval-*",)
    t = strict.threshold("ndcg@10")
    assert (t.max_drop, t.min, t.direction) == (0.005, 0.3, "higher")
    assert strict.threshold("ndcg@10", gate="retrieval-devices").min_gain == 0.01
    assert policies["release"].threshold("latency_p95").direction == "lower"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"alpah": 0.1}, "unknown key 'alpah' (did you mean 'alpha'?)"),
        ({"alpha": 0.7}, "alpha=0.7; allowed values: 0 < alpha < 0.5"),
        ({"required": "x"}, "required='x'; allowed values: a list"),
        ({"metrics": {"ndgc@10": {}}}, "did you mean 'ndcg@10'"),
        ({"metrics": {"ndcg@10": {"direction": "up"}}}, "allowed values: ['higher', 'lower']"),
        ({"metrics": {"ndcg@10": {"max-drop": -1}}}, "max-drop=-1; allowed values: a number >= 0"),
        ({"metrics": {"ndcg@10": {"maxdrop": 1}}}, "unknown key 'maxdrop'"),
        ({"extends": "nope"}, "unknown policies.p.extends 'nope'"),
        ({"extends": "p"}, "makes a cycle"),
        ({"n-resamples": 2}, "n-resamples=2; allowed values: an integer from 200"),
        ({"n-resamples": 3.5}, "n-resamples=3.5; allowed values"),
        ({"n-resamples": True}, "n-resamples=True; allowed values"),
        ({"seed": -1}, "seed=-1; allowed values: an integer >= 0"),
        ({"seed": "7"}, "seed='7'; allowed values"),
        ({"description": 3}, "description=3; allowed values: a string"),
    ],
)
def test_bad_policy_names_key_and_allowed_values(body: dict, needle: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policies({"policies": {"p": body}})
    assert needle in str(err.value)


def test_load_policy_from_file_and_unknown_name(tmp_path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.guardrails]\npolicy = "a"\n[tool.guardrails.policies.a]\nalpha = 0.1\n'
        "[tool.guardrails.policies.b]\nalpha = 0.01\n"
    )
    assert load_policy(path).name == "a"
    assert load_policy(path, "b").alpha == 0.01
    with pytest.raises(PolicyError, match=r"unknown policy 'c'.*allowed values: \['a', 'b'\]"):
        load_policy(path, "c")


def test_no_config_gives_default_policy(tmp_path) -> None:
    policy = load_policy(tmp_path / "missing.toml")
    assert policy.name == "default" and policy.alpha == 0.05


def test_invalid_toml_is_a_policy_error(tmp_path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.guardrails\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


COMPONENTS = {"embedder": ["retrieval-*", "shadow-*"], "generator": ["generation-*"]}


def test_components_top_level_default_override_and_inheritance() -> None:
    table = {
        "components": COMPONENTS,
        "policies": {
            "release": {},
            "gen-only": {"components": {"generator": ["generation-*", "canaries-*"]}},
            "child": {"extends": "gen-only"},
            "off": {"extends": "release", "components": {}},
        },
    }
    policies = parse_policies(table)
    expected = (("embedder", ("retrieval-*", "shadow-*")), ("generator", ("generation-*",)))
    assert policies["release"].components == expected
    assert policies["gen-only"].components == (("generator", ("generation-*", "canaries-*")),)
    assert policies["child"].components == policies["gen-only"].components  # through extends
    assert policies["off"].components == ()
    assert policies["release"].to_dict()["components"] == COMPONENTS
    hash(policies["release"].components)  # frozen: hashable


def test_no_components_by_default_and_default_policy_gets_the_table(tmp_path) -> None:
    assert parse_policies({"policies": {"p": {}}})["p"].components == ()
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.guardrails.components]\nreranker = ["reranker-*"]\n')
    policy = load_policy(path)
    assert policy.name == "default" and policy.components == (("reranker", ("reranker-*",)),)


@pytest.mark.parametrize(
    ("components", "needle"),
    [
        ("retrieval-*", "components='retrieval-*'; allowed values: a table"),
        ({"embedder": "retrieval-*"}, "components.embedder='retrieval-*'; allowed values"),
        ({"embedder": []}, "components.embedder=[]; allowed values"),
        ({"embedder": ["retrieval-*", ""]}, "components.embedder=['retrieval-*', '']"),
        ({"embedder": [3]}, "components.embedder=[3]; allowed values: a table"),
        ({"": ["x"]}, "components has a bad name ''"),
    ],
)
def test_bad_components_name_key_and_allowed_values(components: object, needle: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policies({"policies": {"p": {"components": components}}})
    assert "[tool.guardrails.policies.p]" in str(err.value) and needle in str(err.value)
    with pytest.raises(PolicyError) as err:
        parse_policies({"components": components, "policies": {"p": {}}})
    assert "[tool.guardrails] " in str(err.value) and needle in str(err.value)


def test_unknown_top_level_key_still_refused() -> None:
    with pytest.raises(PolicyError, match=r"unknown key 'component'.*did you mean 'components'"):
        parse_policies({"component": COMPONENTS})


# ------------------------------------------------------------------------- built-in limits


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("ndcg@10", {"max_drop": 0.02, "min_gain": 0.0}),
        ("recall_100", {"max_drop": 0.02, "min_gain": 0.0}),  # trec_eval name, same limits
        ("rouge_l", {"max_drop": 0.02, "min_gain": 0.0}),
        ("pass_rate", {"max_drop": 0.0, "min_gain": None}),
        ("exact_match", {"max_drop": 0.0, "min_gain": None}),  # 0/1 text metric: binary
        ("hit_rate@5", {"max_drop": 0.0, "min_gain": None}),  # 0/1 ranking metric: binary
        ("psi", {"max": 0.2, "max_drop": None}),
        ("latency", {"max_drop": None, "max": None}),  # in units: no default is honest
    ],
)
def test_builtin_limits_by_family(metric: str, expected: dict) -> None:
    t = DEFAULT_POLICY.threshold(metric)
    assert {k: getattr(t, k) for k in expected} == expected


def test_configured_keys_replace_builtin_ones_key_by_key() -> None:
    policy = parse_policies(
        {"policies": {"p": {"metrics": {"ndcg@10": {"min": 0.4}, "mrr": {"max-drop": 0.05}}}}}
    )["p"]
    ndcg = policy.threshold("ndcg@10")
    assert (ndcg.min, ndcg.max_drop) == (0.4, 0.02)  # own floor, built-in margin
    assert policy.threshold("mrr").max_drop == 0.05


def test_a_gate_with_no_configuration_uses_the_builtin_margin() -> None:
    import numpy as np

    from guardrails.gates import evaluate_gate

    base = np.random.default_rng(0).uniform(0, 1, 400)
    result = evaluate_gate(
        "noninferior",
        "ndcg@10",
        candidate=base - 0.1,
        baseline=base,
        policy=DEFAULT_POLICY,
        name="g",
    )
    assert result.limit == "max-drop 0.02" and result.status.value == "failed"


@pytest.mark.parametrize("key", ["seed", "n-resamples"])
def test_top_level_and_policy_level_keys_share_one_rule(key: str) -> None:
    """The same bad value is refused at [tool.guardrails] and in a policy, with the same rule."""
    bad = 2 if key == "n-resamples" else -3
    with pytest.raises(PolicyError) as top:
        parse_policies({key: bad, "policies": {"p": {}}})
    with pytest.raises(PolicyError) as inner:
        parse_policies({"policies": {"p": {key: bad}}})
    rule = str(top.value).split("allowed values:")[1]
    assert rule == str(inner.value).split("allowed values:")[1]
    assert "[tool.guardrails.policies.p]" in str(inner.value)


def test_a_recorded_policy_rebuilds_exactly_and_is_validated() -> None:
    from guardrails.policy import policy_from_dict

    policy = parse_policies(
        {
            "seed": 5,
            "n-resamples": 3000,
            "components": {"embedder": ["retrieval-*"]},
            "policies": {
                "p": {
                    "alpha": 0.01,
                    "required": ["retrieval-*"],
                    "metrics": {"ndcg@10": {"max-drop": 0.03, "min": 0.2}},
                    "gates": {"retrieval-x": {"min-gain": 0.01, "max-drop": 0.001}},
                }
            },
        }
    )["p"]
    again = policy_from_dict(policy.to_dict())
    assert again.to_dict() == policy.to_dict()
    assert again.threshold("ndcg@10", "retrieval-x") == policy.threshold("ndcg@10", "retrieval-x")
    forged = {**policy.to_dict(), "n-resamples": 2}
    with pytest.raises(PolicyError, match="n-resamples=2"):
        policy_from_dict(forged)
    with pytest.raises(PolicyError, match="unknown key 'sneaky'"):
        policy_from_dict({**policy.to_dict(), "sneaky": 1})
