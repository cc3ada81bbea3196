"""The installed ML stack checked against itself before its first use.

A pip install without the project's lock can combine releases that each install cleanly but do
not work together: transformers 5.24 and later refuse peft below 0.22 from inside their peft
integration (``ValueError: The version of PEFT you are using is not compatible``), in the middle
of training. :func:`check_ml_stack` finds such combinations up front, from two sources, and
raises one :class:`~guardrails.errors.DependencyError` naming both versions and the fix:

* the requirements each installed package declares on the others (its metadata), which pip
  does not re-check when a package is upgraded alone;
* the runtime-only minimum transformers keeps for peft (``MIN_PEFT_VERSION`` in
  ``transformers/integrations/peft.py``), read from the file without importing transformers.

Nothing here imports torch or the ML libraries. ``GUARDRAILS_SKIP_STACK_CHECK=1`` skips the check.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from guardrails.errors import DependencyError

__all__ = ["ML_PACKAGES", "Conflict", "check_ml_stack", "find_conflicts", "installed_stack"]

ML_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "sentence-transformers",
    "accelerate",
    "datasets",
)
_MIN_PEFT = re.compile(r"""^MIN_PEFT_VERSION\s*=\s*["']([^"']+)["']""", re.MULTILINE)


@dataclass(frozen=True)
class Conflict:
    """``package==version`` requires ``requirement``, but ``installed`` is what is there."""

    package: str
    version: str
    requirement: str
    installed: str
    source: str

    def message(self) -> str:
        target = Requirement(self.requirement)
        return (
            f"{self.package}=={self.version} requires {self.requirement} ({self.source}), "
            f"but {target.name}=={self.installed} is installed; fix: "
            f"pip install '{self.requirement}', or a {self.package} release that accepts "
            f"{target.name} {self.installed}"
        )


@dataclass(frozen=True)
class InstalledStack:
    """Versions, declared requirements and transformers' peft minimum of the installed stack."""

    versions: Mapping[str, str]
    requires: Mapping[str, Sequence[str]]
    min_peft: str | None


def installed_stack(packages: Sequence[str] = ML_PACKAGES) -> InstalledStack:
    """Read what is installed of ``packages`` from package metadata (imports none of them)."""
    versions: dict[str, str] = {}
    requires: dict[str, list[str]] = {}
    for name in packages:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        versions[canonicalize_name(name)] = dist.version
        requires[canonicalize_name(name)] = list(dist.requires or [])
    return InstalledStack(versions, requires, _min_peft() if "transformers" in versions else None)


def _min_peft() -> str | None:
    try:
        path = metadata.distribution("transformers").locate_file(
            "transformers/integrations/peft.py"
        )
        found = _MIN_PEFT.search(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, metadata.PackageNotFoundError):
        return None
    return found.group(1) if found else None


def _declared(stack: InstalledStack) -> list[Conflict]:
    conflicts = []
    for package, lines in sorted(stack.requires.items()):
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            target = canonicalize_name(req.name)
            have = stack.versions.get(target)
            if have is None or target == package or not req.specifier:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if not req.specifier.contains(have, prereleases=True):
                conflicts.append(
                    Conflict(
                        package,
                        stack.versions[package],
                        f"{target}{req.specifier}",
                        have,
                        "its declared requirement",
                    )
                )
    return conflicts


def _runtime(stack: InstalledStack) -> list[Conflict]:
    peft, transformers = stack.versions.get("peft"), stack.versions.get("transformers")
    if stack.min_peft is None or peft is None or transformers is None:
        return []
    try:
        if Version(peft) >= Version(stack.min_peft):
            return []
    except InvalidVersion:
        return []
    return [
        Conflict(
            "transformers",
            transformers,
            f"peft>={stack.min_peft}",
            peft,
            "its MIN_PEFT_VERSION, checked when a peft adapter is loaded or trained",
        )
    ]


def find_conflicts(stack: InstalledStack) -> list[Conflict]:
    """Every declared or runtime requirement among the stack's packages that does not hold."""
    return _declared(stack) + _runtime(stack)


@functools.cache
def check_ml_stack() -> None:
    """Raise :class:`DependencyError` if the installed ML packages do not work together.

    Called before the first model is loaded or trained; cached, so it runs once per process.
    """
    if os.environ.get("GUARDRAILS_SKIP_STACK_CHECK") == "1":
        return
    conflicts = find_conflicts(installed_stack())
    if conflicts:
        lines = "\n  ".join(c.message() for c in conflicts)
        raise DependencyError(
            f"the installed ML stack does not work together:\n  {lines}\n"
            "The versions this project is tested with are pinned in its .ci/requirements.lock; "
            "set GUARDRAILS_SKIP_STACK_CHECK=1 to go on at your own risk."
        )
