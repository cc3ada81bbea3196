"""MLflow aliases follow promote / rollback: a real MLflow registry (SQLite backend) in a temp
dir, real verdicts, the real guardrails registry. Skips without mlflow (the `mlflow` extra)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from guardrails.cli import main
from guardrails.errors import MirrorError
from guardrails.registry import Registry
from guardrails.stack import MlflowConfig
from tests.registry_worker import verdict_for
from tests.test_registry import _alias_map, _stack

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")  # MLflow's SQLite backend (the file store is deprecated)
from guardrails.integrations.mlflow import MlflowMirror, sync_mlflow  # noqa: E402

FP_TAG = "guardrails.fingerprint"  # the tag naming a version's guardrails artifact


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow SQLite store per module (creating its tables takes seconds); every test
    uses its own model names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"embedder": f"rag-embedder-{tag}", "generator": f"rag-generator-{tag}"}


def _client(store: str) -> Any:
    return mlflow.MlflowClient(store, store)


def _by_alias(store: str, model: str, alias: str) -> Any:
    return _client(store).get_model_version_by_alias(model, alias)


def test_promote_then_rollback_moves_aliases_and_tags(
    store: str, names: dict[str, str], tmp_path: Path
) -> None:
    mirror = MlflowMirror(MlflowConfig(store, {"embedder": names["embedder"]}))
    with Registry(tmp_path / "registry.sqlite", mirror=mirror) as reg:
        fps = _stack(reg, "embedder", "reranker")
        path = tmp_path / "verdict.json"
        path.write_text(json.dumps(verdict_for({c: (fps[c][1], fps[c][0]) for c in fps})))
        reg.promote(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        prod = _by_alias(store, names["embedder"], "production")
        prev = _by_alias(store, names["embedder"], "previous")
        assert prod.tags[FP_TAG] == fps["embedder"][1]
        assert prod.tags["guardrails.decision"] == "promote"
        assert prod.tags["guardrails.verdict_sha256"] == sha
        assert prod.source.endswith("adapters/embedder-1")  # the resolved registered path
        assert prev.tags[FP_TAG] == fps["embedder"][0]
        assert "guardrails.decision" not in prev.tags

        reg.rollback("embedder")
        back = _by_alias(store, names["embedder"], "production")
        assert (back.version, back.tags["guardrails.decision"]) == (prev.version, "rollback")
        assert _by_alias(store, names["embedder"], "previous").version == prod.version
        versions = _client(store).search_model_versions(f"name = '{names['embedder']}'")
        assert len(versions) == 2  # found again by fingerprint, not created twice
    # the reranker has no model name: not mirrored
    assert not _client(store).search_registered_models("name LIKE '%reranker%'")


def test_custom_alias_names(store: str, names: dict[str, str], tmp_path: Path) -> None:
    cfg = MlflowConfig(store, {"generator": names["generator"]}, None, "champion", "challenger")
    with Registry(tmp_path / "registry.sqlite", mirror=MlflowMirror(cfg)) as reg:
        fps = _stack(reg, "generator")["generator"]
        reg.promote(verdict_for({"generator": (fps[2], fps[0])}))
    champion = _by_alias(store, names["generator"], "champion")
    assert champion.tags[FP_TAG] == fps[2]
    assert _by_alias(store, names["generator"], "challenger").tags[FP_TAG] == fps[0]
    assert set(champion.aliases) == {"champion"}


def test_failed_mirror_keeps_the_sqlite_switch_and_sync_repairs_it(
    store: str, names: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    broken = MlflowMirror(MlflowConfig(f"sqlite:///{blocker}/mlflow.db", dict(names)))
    with Registry(tmp_path / "registry.sqlite", mirror=broken) as reg:
        fps = _stack(reg, "embedder")["embedder"]
        with pytest.raises(MirrorError, match="production switched in the guardrails registry"):
            reg.promote(verdict_for({"embedder": (fps[1], fps[0])}))
        assert _alias_map(reg)[("embedder", "production")] == fps[1]  # the source of truth
        lines = sync_mlflow(reg, MlflowMirror(MlflowConfig(store, dict(names))))
    assert lines == [f"embedder: {names['embedder']} v1 is production"]
    prod = _by_alias(store, names["embedder"], "production")
    assert prod.tags[FP_TAG] == fps[1]
    assert prod.tags["guardrails.decision"] == "promote"


def test_cli_promote_and_sync_read_the_config(
    store: str, names: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "registry.sqlite"
    with Registry(db) as reg:
        fps = _stack(reg, "embedder")["embedder"]
    verdict = tmp_path / "verdict.json"
    verdict.write_text(json.dumps(verdict_for({"embedder": (fps[1], fps[0])})))
    config = tmp_path / "pyproject.toml"
    config.write_text(
        f'[tool.guardrails.stack.mlflow]\ntracking-uri = "{store}"\n'
        f'models = {{embedder = "{names["embedder"]}"}}\n'
    )
    args = ["--registry", str(db), "--config", str(config)]
    assert main(["promote", str(verdict), *args]) == 0
    assert "promoted embedder" in capsys.readouterr().out
    assert _by_alias(store, names["embedder"], "production").tags[FP_TAG] == fps[1]
    assert main(["mlflow-sync", *args]) == 0
    assert capsys.readouterr().out.strip() == f"embedder: {names['embedder']} v1 is production"
    assert main(["rollback", "embedder", *args]) == 0
    assert _by_alias(store, names["embedder"], "production").tags[FP_TAG] == fps[0]
    assert main(["mlflow-sync", "--registry", str(db), "--config", str(tmp_path / "none")]) == 2
