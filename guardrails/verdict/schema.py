"""The verdict's records and its one reader / writer (standard library only).

:class:`GateResult` (one gate's evidence), :class:`TestOutcome`, :class:`Verdict` and the
closed sets :class:`Status` and :class:`Decision`; :func:`write_verdict` / :func:`load_verdict`
are the only code that turns a verdict into bytes and back (the registry, the CLI and the
reports read it here), and :func:`atomic_write_text` is the one atomic write of the package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from guardrails.atomic import atomic_write_text
from guardrails.errors import (
    VerdictError,
)

__all__ = [
    "COMPARATIVE",
    "SCHEMA_VERSION",
    "Decision",
    "GateResult",
    "Status",
    "TestOutcome",
    "Verdict",
    "atomic_write_text",
    "load_verdict",
    "verdict_document",
    "write_verdict",
]


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class GateResult:
    """One gate's evidence; every field is JSON-able (see :meth:`to_dict`)."""

    name: str
    kind: str
    metric: str
    status: Status
    candidate: float
    baseline: float | None
    delta: float | None
    ci: tuple[float, float]
    p_value: float | None
    threshold: float
    limit: str
    alpha: float
    n: int
    higher_is_better: bool = True
    binary: bool = False
    mde: float | None = None
    method: str = ""
    seed: int = 0
    p_adjusted: float | None = None
    per_sample: Mapping[str, list[Any]] = field(default_factory=dict)
    worst: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    nodeid: str = ""
    golden: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, float] = field(default_factory=dict)
    """Limits passed to this gate call (``max_drop=``...), so re-deciding reproduces it."""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def changed(self) -> list[str]:
        """Ids whose 0/1 outcome differs between baseline and candidate (binary metrics with
        per-sample scores; else empty): the discordant samples McNemar counts."""
        per = self.per_sample or {}
        if not self.binary or "baseline" not in per:
            return []
        pairs = zip(per.get("ids", ()), per["baseline"], per["candidate"], strict=False)
        return [str(i) for i, b, c in pairs if b != c]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["passed"] = self.passed
        out["ci"] = [_json_float(v) for v in self.ci]
        for key in ("candidate", "baseline", "delta", "p_value", "p_adjusted", "mde", "threshold"):
            out[key] = _json_float(out[key])
        out["worst"] = [dict(w) for w in self.worst]
        out["overrides"] = dict(self.overrides)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["status"] = Status(data["status"])
        fields["ci"] = tuple(_nan(v) for v in data["ci"])
        for key in ("candidate", "threshold"):
            fields[key] = _nan(data[key])
        fields["worst"] = tuple(data.get("worst", ()))
        fields["warnings"] = tuple(data.get("warnings", ()))
        fields["overrides"] = dict(data.get("overrides") or {})
        return cls(**fields)

    def message(self) -> str:
        """The failure text: what moved, by how much, the CI, p, the limit, worst samples."""
        lo, hi = self.ci
        level = f"{100 * (1 - self.alpha):g}%"
        if self.kind in ("noninferior", "superior"):
            moved = "rose" if (self.delta or 0) >= 0 else "dropped"
            head = (
                f"gate {self.name}: {self.metric} {moved} {abs(self.delta or 0):.4g} "
                f"({level} CI {lo:+.4g}..{hi:+.4g}); policy: {self.limit}."
            )
            nums = f"baseline={self.baseline:.4g} candidate={self.candidate:.4g} n={self.n}"
        elif self.kind == "at_least":
            head = (
                f"gate {self.name}: {self.metric}={self.candidate:.4g} ({level} CI "
                f"{lo:.4g}..{hi:.4g}); policy: {self.limit}."
            )
            nums = f"candidate={self.candidate:.4g} n={self.n}"
        else:
            head = f"gate {self.name}: {self.metric}={self.candidate:.4g}; policy: {self.limit}."
            nums = f"n={self.n}"
        p = "" if self.p_value is None else f" p={self.p_value:.3g} ({self.method})"
        lines = [head, f"  status={self.status.value}: {nums}{p}"]
        if self.status is Status.INCONCLUSIVE:
            lines.append(
                "  not enough evidence either way: the release is held. Add golden "
                "cases or widen the margin (see the MDE)."
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.worst:
            lines.append("  worst samples (id: baseline -> candidate):")
            lines += [
                f"    {w['id']}: {w['baseline']:.4g} -> {w['candidate']:.4g}" for w in self.worst
            ]
        return "\n".join(lines)


def _json_float(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


SCHEMA_VERSION = 1

# the kinds of paired / one-sample gate (drift gates are "no_drift")
COMPARATIVE = ("noninferior", "superior", "at_least")


class Decision(str, Enum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    HOLD = "hold"


@dataclass(frozen=True)
class TestOutcome:
    """What happened to one test: ``outcome`` is passed / failed / error / skipped;
    ``failure`` says why it failed: ``gate`` (a gate's status carries it), ``assertion`` (a
    plain regression test failed) or ``error`` (it crashed: no evidence either way)."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    outcome: str
    failure: str = ""
    message: str = ""
    duration: float = 0.0
    gate_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    gates: tuple[GateResult, ...]
    policy: Mapping[str, Any]
    tests: tuple[TestOutcome, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    components: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """``{component: {"decision", "reason", "reasons", "gates"}}``; empty without components."""

    def promotable(self) -> list[str]:
        """Components whose own decision is promote (in the policy's order)."""
        return [c for c, d in self.components.items() if d["decision"] == Decision.PROMOTE.value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "decision": self.decision.value,
            "reason": self.reason,
            "reasons": list(self.reasons),
            "components": {
                name: {**c, "reasons": list(c["reasons"]), "gates": list(c["gates"])}
                for name, c in self.components.items()
            },
            "policy": dict(self.policy),
            "seed": self.policy.get("seed"),
            "gates": [_finite(g.to_dict()) for g in self.gates],
            "tests": [t.__dict__ | {"gate_names": list(t.gate_names)} for t in self.tests],
            "provenance": _finite(dict(self.provenance)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<verdict>") -> Verdict:
        _validate(data, source)
        try:
            gates = tuple(GateResult.from_dict(g) for g in data["gates"])
            tests = tuple(
                TestOutcome(**{**t, "gate_names": tuple(t.get("gate_names", ()))})
                for t in data.get("tests", [])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerdictError(f"{source}: malformed gate or test entry: {exc}") from None
        return cls(
            Decision(data["decision"]),
            data["reason"],
            gates,
            data.get("policy", {}),
            tests,
            data.get("provenance", {}),
            tuple(data.get("reasons", ())),
            {name: dict(c) for name, c in data.get("components", {}).items()},
        )


def _finite(obj: Any) -> Any:
    """JSON has no NaN / inf: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _validate(data: Any, source: str) -> None:
    if not isinstance(data, Mapping):
        raise VerdictError(f"{source}: a verdict is a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise VerdictError(
            f"{source}: schema_version={version!r}; this guardrails reads "
            f"schema_version={SCHEMA_VERSION}"
        )
    for key, kind in (("decision", str), ("reason", str), ("gates", list)):
        if not isinstance(data.get(key), kind):
            raise VerdictError(f"{source}: key {key!r} missing or not a {kind.__name__}")
    if data["decision"] not in {d.value for d in Decision}:
        raise VerdictError(
            f"{source}: decision={data['decision']!r}; allowed values: "
            f"{[d.value for d in Decision]}"
        )
    shapes: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
        ("policy", Mapping, "an object"),
        ("provenance", Mapping, "an object"),
        ("tests", list, "a list"),
        ("reasons", list, "a list"),
    )
    for key, shape, what in shapes:
        if key in data and not isinstance(data[key], shape):
            raise VerdictError(f"{source}: key {key!r} must be {what}; got {data[key]!r:.80}")
    components = data.get("components", {})  # optional: older verdicts have none
    if not isinstance(components, Mapping):
        raise VerdictError(f"{source}: key 'components' must be an object of component -> entry")
    for name, entry in components.items():
        key = f"components.{name}"
        if not isinstance(entry, Mapping):
            raise VerdictError(f"{source}: key {key!r} must be an object")
        if entry.get("decision") not in {d.value for d in Decision}:
            raise VerdictError(
                f"{source}: {key}.decision={entry.get('decision')!r}; allowed values: "
                f"{[d.value for d in Decision]}"
            )
        for field_, kind in (("reason", str), ("reasons", list), ("gates", list)):
            if not isinstance(entry.get(field_), kind):
                raise VerdictError(
                    f"{source}: key '{key}.{field_}' missing or not a {kind.__name__}"
                )


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the JSON object written to disk: signed (an HMAC over its canonical
    form, see :mod:`guardrails.verdict.integrity`) when ``$GUARDRAILS_VERDICT_KEY`` is set."""
    from guardrails.verdict.integrity import sign_verdict, signing_key

    data = verdict.to_dict()
    key = signing_key()
    return sign_verdict(data, key) if key is not None else data


def write_verdict(verdict: Verdict, path: str | Path) -> Path:
    """Write the verdict JSON atomically (sorted keys, so equal verdicts are equal bytes)."""
    text = json.dumps(verdict_document(verdict), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return Path(path)


def load_verdict(path: str | Path) -> Verdict:
    """Read and validate a verdict JSON file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerdictError(f"{p}: verdict file not found") from None
    except json.JSONDecodeError as exc:
        raise VerdictError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return Verdict.from_dict(data, str(p))
