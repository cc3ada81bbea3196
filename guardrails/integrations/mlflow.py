"""MLflow Model Registry aliases that follow the SQLite registry's promote / rollback.

The SQLite registry (:mod:`guardrails.registry`) stays the source of truth: this mirror runs
after its transaction commits. For every switched component named in
``[tool.guardrails.stack.mlflow] models`` it

1. finds the registered model's version whose tag ``guardrails.fingerprint`` is the artifact's
   fingerprint, creating the registered model and the version (``source`` = the artifact's
   registered path, tags ``guardrails.fingerprint`` / ``guardrails.component``) when missing;
2. points the production alias (default ``production``) at the new production's version and
   the previous alias (default ``previous``) at the old one's;
3. tags the new production's version ``guardrails.decision`` (``promote`` / ``rollback``: the
   action that put it there) and ``guardrails.verdict_sha256`` (when a verdict was given).

Every step is idempotent, so a failed mirror is repaired by running it again:
:func:`sync_mlflow` re-applies the current SQLite aliases (``guardrails mlflow-sync``).
A failure raises :class:`~guardrails.errors.MirrorError` naming the switches that were
committed; components without a model name are not mirrored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardrails.errors import DependencyError, MirrorError
from guardrails.stack import MlflowConfig

if TYPE_CHECKING:
    from guardrails.registry import Registry, Switch

__all__ = ["FINGERPRINT_TAG", "MlflowMirror", "sync_mlflow"]

FINGERPRINT_TAG = "guardrails.fingerprint"


class MlflowMirror:
    """A :data:`guardrails.registry.Mirror`: ``Registry(path, mirror=MlflowMirror(config))``."""

    def __init__(self, config: MlflowConfig) -> None:
        self.config = config
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                from mlflow import MlflowClient
            except ImportError as exc:
                raise DependencyError(
                    f"[tool.guardrails.stack.mlflow] is configured but mlflow cannot be "
                    f"imported ({exc}); pip install 'pytest-guardrails[mlflow]'."
                ) from None
            cfg = self.config
            self._client = MlflowClient(cfg.tracking_uri, cfg.registry_uri or cfg.tracking_uri)
        return self._client

    def __call__(self, registry: Registry, switches: Sequence[Switch]) -> None:
        done: list[str] = []
        for switch in switches:
            model = self.config.models.get(switch.component)
            if model is None:
                continue
            try:
                self._mirror(registry, model, switch)
            except Exception as exc:  # any MLflow / network failure: SQLite already switched
                raise MirrorError(_failure(switches, done, model, exc), switches) from exc
            done.append(switch.component)

    def _mirror(self, registry: Registry, model: str, switch: Switch) -> None:
        cfg = self.config
        new = self.version(registry, model, switch.component, switch.to_fingerprint)
        old = self.version(registry, model, switch.component, switch.from_fingerprint)
        self.client.set_registered_model_alias(model, cfg.production_alias, new)
        self.client.set_registered_model_alias(model, cfg.previous_alias, old)
        self.client.set_model_version_tag(model, new, "guardrails.decision", switch.action)
        if switch.verdict_sha256:
            self.client.set_model_version_tag(
                model, new, "guardrails.verdict_sha256", switch.verdict_sha256
            )

    def version(self, registry: Registry, model: str, component: str, fingerprint: str) -> str:
        """The version of ``model`` tagged with ``fingerprint``, created when missing."""
        found = self.client.search_model_versions(
            f"name = '{_quoted(model)}' and tags.`{FINGERPRINT_TAG}` = '{_quoted(fingerprint)}'"
        )
        if found:
            return str(min(int(v.version) for v in found))
        artifact = registry.get(fingerprint, component)
        if artifact is None:  # the registry only switches to registered artifacts
            raise MirrorError(f"fingerprint={fingerprint!r} is not in {registry.path}")
        self._ensure_model(model)
        tags = {FINGERPRINT_TAG: fingerprint, "guardrails.component": component}
        created = self.client.create_model_version(model, source=artifact.path, tags=tags)
        return str(created.version)

    def _ensure_model(self, model: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model)
        except MlflowException:
            self.client.create_registered_model(model, tags={"guardrails.managed": "true"})


def sync_mlflow(registry: Registry, mirror: MlflowMirror) -> list[str]:
    """Re-apply every configured component's current production / previous to MLflow (the
    repair after a :class:`MirrorError`); returns ``"component: model vN"`` lines."""
    from guardrails.registry import AliasName, Switch

    lines = []
    for component, model in sorted(mirror.config.models.items()):
        prod = registry.resolve(component, AliasName.PRODUCTION)
        prev = registry.resolve(component, AliasName.PREVIOUS)
        if prod is None or prev is None:
            continue
        last = registry.history(component, limit=1)
        action = last[0].action if last and last[0].action in ("promote", "rollback") else "promote"
        sha = next(
            (
                a.verdict_sha256
                for a in registry.aliases()
                if (a.component, a.alias) == (component, "production")
            ),
            None,
        )
        mirror(registry, [Switch(component, action, prev.fingerprint, prod.fingerprint, sha)])
        version = mirror.version(registry, model, component, prod.fingerprint)
        lines.append(f"{component}: {model} v{version} is {mirror.config.production_alias}")
    return lines


def _quoted(value: str) -> str:
    return value.replace("'", "\\'")


def _failure(switches: Sequence[Switch], done: list[str], model: str, exc: Exception) -> str:
    switched = ", ".join(s.component for s in switches)
    return (
        f"production switched in the guardrails registry ({switched}) but MLflow model "
        f"{model!r} was not updated: {type(exc).__name__}: {str(exc)[:300]}"
        f"{f' (already mirrored: {done})' if done else ''}; the SQLite registry is the source "
        "of truth: fix MLflow and run `guardrails mlflow-sync`."
    )
