"""[tool.guardrails.stack.mlflow] parsing (no mlflow needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guardrails.errors import PolicyError
from guardrails.stack import MlflowConfig, parse_stack

GOOD = {"tracking-uri": "sqlite:///mlflow.db", "models": {"embedder": "rag-embedder"}}


def test_defaults_and_custom_aliases() -> None:
    stack = parse_stack({"mlflow": GOOD}, Path("."))
    assert stack.mlflow == MlflowConfig("sqlite:///mlflow.db", {"embedder": "rag-embedder"})
    custom = {**GOOD, "production-alias": "champion", "previous-alias": "challenger"}
    cfg = parse_stack({"mlflow": custom}, Path(".")).mlflow
    assert cfg is not None and (cfg.production_alias, cfg.previous_alias) == (
        "champion",
        "challenger",
    )
    assert parse_stack({}, Path(".")).mlflow is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tracking-uri": ""}, "tracking-uri=''"),
        ({"registry-uri": 3}, "registry-uri=3"),
        ({"models": {}}, "models=\\{\\}"),
        ({"models": {"embedder": 1}}, "models="),
        ({"production-alias": "latest"}, "production-alias='latest' is not a valid"),
        ({"previous-alias": "v3"}, "previous-alias='v3'"),
        ({"previous-alias": "has space"}, "previous-alias='has space'"),
        ({"previous-alias": "production"}, "both 'production'"),
        ({"tracking_uri": "x"}, "unknown key\\(s\\) \\['tracking_uri'\\]"),
    ],
)
def test_mistakes_name_the_key(change: dict[str, Any], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        parse_stack({"mlflow": {**GOOD, **change}}, Path("."))
