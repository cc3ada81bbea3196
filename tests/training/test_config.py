"""Training configs: defaults keep the fingerprints of the adapters already cached, the peft
method enters the fingerprint only when it is not LoRA, and ``config_from_dict`` refuses unknown
keys and wrong types with the key and the value."""

from __future__ import annotations

import pytest

from guardrails.artifacts import fingerprint_json
from guardrails.errors import TrainingError
from guardrails.training.cache import _config_dict
from guardrails.training.config import (
    CONFIG_TYPES,
    GeneratorSFTConfig,
    RerankerTrainingConfig,
    RetrieverTrainingConfig,
    config_from_dict,
)

# fingerprint_json(_config_dict(cls())) of every default config, recorded before the `method`
# and `feedforward_modules` fields existed (commit 5aec781): the demo's cached adapters are
# keyed on these, so a change here retrains every candidate.
FROZEN = {
    "retriever": "sha256:efd39f8d8d4cac682a4c6d6783487bc647cb6e3d30c94158cf4eab97383ce9b7",
    "reranker": "sha256:31c23034e3e68e968277789a60ee2f7bef16d6f5ce3f4c305e3ad341786b3f6c",
    "generator-sft": "sha256:c21f628768e6df11317f50b5d3a0a0ce194b065754017919dd43ea29d90f90bc",
    "generator-cpt": "sha256:1f671ccc83ff09e14f87a1cfab36329eb8813eb32d09f84a11b9d476e35be650",
    "dpo": "sha256:bc0a92361f29dc61d96a976b35b66f409075e020f1f37dce177c6826bd008ab3",
    "kto": "sha256:429f4570f52c64cdaa2e19c745a24bb6f277fd3cafb1f0cd76b8b61d18f8a5af",
    "grpo": "sha256:3e02450d56818f3b243cfb7235b26802dd2b00c720bca118ff5365dbdb1af5bd",
}


@pytest.mark.parametrize("kind", sorted(FROZEN))
def test_default_configs_keep_their_fingerprints(kind: str) -> None:
    assert fingerprint_json(_config_dict(CONFIG_TYPES[kind]())) == FROZEN[kind]


def test_demo_reranker_configs_keep_their_fingerprints() -> None:
    from guardrails.training.reranker import PRODUCTION_RERANKER_CONFIG, RERANKER_CANDIDATE_CONFIG

    assert fingerprint_json(_config_dict(PRODUCTION_RERANKER_CONFIG)) == (
        "sha256:ad0a8c4f1df714b0efc70ca6aa0f0936fe3bbbc816606306ea8c57b1c0feecbc"
    )
    assert "method" not in _config_dict(RERANKER_CANDIDATE_CONFIG)


def test_a_non_default_method_enters_the_identity() -> None:
    lora, ia3 = RetrieverTrainingConfig(), RetrieverTrainingConfig(method="ia3")
    assert "method" not in _config_dict(lora) and _config_dict(ia3)["method"] == "ia3"
    assert fingerprint_json(_config_dict(ia3)) != fingerprint_json(_config_dict(lora))
    ff = RetrieverTrainingConfig(method="ia3", feedforward_modules=["value"])
    assert _config_dict(ff)["feedforward_modules"] == ("value",)


def test_config_from_dict_reads_kebab_case_over_a_base() -> None:
    config = config_from_dict(
        "retriever", {"method": "loha", "learning-rate": 2e-3, "target-modules": ["query"]}
    )
    assert config == RetrieverTrainingConfig(
        method="loha", learning_rate=2e-3, target_modules=("query",)
    )
    base = RerankerTrainingConfig(loss="listwise", lora_r=16)
    assert config_from_dict("reranker", {"epochs": 3}, base) == base.with_(epochs=3.0)
    assert config_from_dict("generator-sft", {}) == GeneratorSFTConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning-rte": 1e-3}, r"unknown field\(s\) \['learning_rte'\]"),
        ({"learning-rate": "fast"}, r"learning-rate='fast'; allowed values: a number"),
        ({"batch-size": 8.5}, r"batch-size=8.5; allowed values: an integer"),
        ({"batch-size": True}, r"batch-size=True; allowed values: an integer"),
        ({"use-hard-negatives": 1}, r"use-hard-negatives=1; allowed values: true or false"),
        ({"target-modules": "query"}, r"target-modules='query'; allowed values: a list of str"),
        ({"method": "prefix"}, r"method='prefix' is not a peft method"),
        ({"lora-r": 0}, r"lora_r=0 must be > 0"),
    ],
)
def test_config_from_dict_errors_name_the_key_and_value(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        config_from_dict("retriever", values)


def test_config_from_dict_refuses_an_unknown_kind_and_a_wrong_base() -> None:
    with pytest.raises(TrainingError, match="kind='ppo'"):
        config_from_dict("ppo", {})
    with pytest.raises(TrainingError, match="base is a GeneratorSFTConfig"):
        config_from_dict("retriever", {}, GeneratorSFTConfig())
