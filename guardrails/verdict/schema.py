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

from guardrails.artifacts import atomic_write_text, parse_json_line
from guardrails.errors import (
    VerdictError,
)

__all__ = [
    "COMPARATIVE",
    "EXIT_BAD_INPUT",
    "EXIT_STATUS",
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
        """Rebuild a gate from its JSON form; every field is type-checked (:class:`VerdictError`
        naming the field and value), so a hand-edited verdict cannot crash a report."""
        if not isinstance(data, Mapping):
            raise VerdictError(f"a gate is a JSON object, got {_short(data)}")
        fields: dict[str, Any] = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("name", "kind", "metric", "limit"):
            fields[key] = _typed(data, key, str)
        for key in ("method", "nodeid"):
            if key in data:
                fields[key] = _typed(data, key, str)
        try:
            fields["status"] = Status(data.get("status"))
        except ValueError:
            raise VerdictError(
                f"status={_short(data.get('status'))}; allowed values: {[s.value for s in Status]}"
            ) from None
        ci = data.get("ci")
        if not isinstance(ci, list | tuple) or len(ci) != 2:
            raise VerdictError(f"ci={_short(ci)} must be a list [low, high]")
        fields["ci"] = tuple(_nan(_number("ci", v, optional=True)) for v in ci)
        for key in ("candidate", "threshold"):
            fields[key] = _nan(_number(key, data.get(key), optional=True))
        for key in ("baseline", "delta", "p_value"):
            fields[key] = _number(key, _required(data, key), optional=True)
        for key in ("mde", "p_adjusted"):
            fields[key] = _number(key, data.get(key), optional=True)
        fields["alpha"] = _number("alpha", _required(data, "alpha"))
        fields["n"] = _integer("n", _required(data, "n"))
        if "seed" in data:
            fields["seed"] = _integer("seed", data["seed"])
        for key in ("higher_is_better", "binary"):
            if key in data:
                fields[key] = _typed(data, key, bool)
        fields["per_sample"] = _per_sample(data.get("per_sample", {}))
        fields["worst"] = tuple(_worst(w) for w in _typed(data, "worst", list | tuple, default=[]))
        fields["warnings"] = tuple(_strings("warnings", data.get("warnings", [])))
        fields["golden"] = _string_map("golden", data.get("golden", {}))
        fields["extra"] = _extra(data.get("extra", {}))
        fields["overrides"] = {
            str(k): _number(f"overrides.{k}", v)
            for k, v in _typed(data, "overrides", dict, default={}).items()
        }
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
                f"    {w['id']}: {_g(w.get('baseline'))} -> {_g(w.get('candidate'))}"
                for w in self.worst
            ]
        return "\n".join(lines)


def _json_float(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _g(x: Any) -> str:
    return "—" if x is None else f"{x:.4g}"


# ---- typed reading of a verdict's JSON (the messages name the field and the value) ----------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _required(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise VerdictError(f"missing key {key!r}")
    return data[key]


def _typed(data: Mapping[str, Any], key: str, kind: Any, default: Any = ...) -> Any:
    value = _required(data, key) if default is ... else data.get(key, default)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise VerdictError(f"{key}={_short(value)} must be a {_KIND_NAMES.get(kind, kind)}")
    return value


_KIND_NAMES: dict[Any, str] = {str: "string", bool: "boolean", list | tuple: "list"}


def _number(key: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VerdictError(
            f"{key}={_short(value)} must be a number{' or null' if optional else ''}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise VerdictError(f"{key} has {len(str(abs(value)))} digits: out of range") from None
    # a file cannot hold NaN / inf (load_verdict refuses them); in process, NaN is "no value"
    return number


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VerdictError(f"{key}={_short(value)} must be an integer")
    return value


def _strings(key: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise VerdictError(f"{key}={_short(value)} must be a list of strings")
    return list(value)


def _string_map(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise VerdictError(f"{key}={_short(value)} must be an object of strings")
    return dict(value)


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VerdictError(f"{key}={_short(value)} must be an object")
    return value


def _numbers(key: str, value: Any, *, optional: bool = True) -> list[float | None]:
    if not isinstance(value, list | tuple):
        raise VerdictError(f"{key}={_short(value)} must be a list of numbers")
    return [_number(f"{key}[{i}]", v, optional=optional) for i, v in enumerate(value)]


def _per_sample(value: Any) -> dict[str, list[Any]]:
    out = dict(_mapping("per_sample", value))
    for key, column in out.items():
        if key in ("candidate", "baseline"):
            out[key] = _numbers(f"per_sample.{key}", column)
        elif key == "ids":
            if not isinstance(column, list | tuple) or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in column
            ):
                raise VerdictError(f"per_sample.ids={_short(column)} must be a list of ids")
            out[key] = [str(v) for v in column]
        elif not isinstance(column, list | tuple):
            raise VerdictError(f"per_sample.{key}={_short(column)} must be a list")
    return out


def _worst(value: Any) -> dict[str, Any]:
    entry = dict(_mapping("worst[]", value))
    sample_id = entry.get("id")
    if isinstance(sample_id, bool) or not isinstance(sample_id, str | int):
        raise VerdictError(f"worst[].id={_short(sample_id)} must be a sample id")
    for key in ("baseline", "candidate"):
        entry[key] = _number(f"worst[].{key}", entry.get(key), optional=True)
    return entry


def _extra(value: Any) -> dict[str, Any]:
    """The keys the reports draw from are checked: ``examples``, ``norm_hist``, ``pca``."""
    extra = dict(_mapping("extra", value))
    examples = _mapping("extra.examples", extra.get("examples", {}))
    for sample_id, example in examples.items():
        _mapping(f"extra.examples.{sample_id}", example)
    hist = extra.get("norm_hist")
    if hist:
        hist = _mapping("extra.norm_hist", hist)
        if len(_numbers("extra.norm_hist.edges", _required(hist, "edges"), optional=False)) < 2:
            raise VerdictError("extra.norm_hist.edges needs at least two bin edges")
        for side in ("reference", "current"):
            _numbers(f"extra.norm_hist.{side}", _required(hist, side), optional=False)
    pca = extra.get("pca")
    if pca:
        pca = _mapping("extra.pca", pca)
        for side in ("reference", "current"):
            points = _required(pca, side)
            if not isinstance(points, list | tuple) or not all(
                isinstance(p, list | tuple) and len(p) == 2 for p in points
            ):
                raise VerdictError(f"extra.pca.{side}={_short(points)} must be a list of [x, y]")
            for p in points:
                _numbers(f"extra.pca.{side}[]", p, optional=False)
    return extra


def _test(value: Any) -> TestOutcome:
    entry = _mapping("tests[]", value)
    unknown = sorted(set(entry) - set(TestOutcome.__dataclass_fields__))
    if unknown:
        raise VerdictError(f"tests[] has unknown keys {unknown}")
    return TestOutcome(
        nodeid=_typed(entry, "nodeid", str),
        outcome=_typed(entry, "outcome", str),
        failure=_typed(entry, "failure", str, default=""),
        message=_typed(entry, "message", str, default=""),
        duration=_number("tests[].duration", entry.get("duration", 0.0)) or 0.0,
        gate_names=tuple(_strings("tests[].gate_names", entry.get("gate_names", []))),
    )


def _provenance(value: Any) -> dict[str, Any]:
    """The provenance is free-form, but the containers the reports walk are checked."""
    provenance = dict(_mapping("provenance", value))
    for key in ("git", "golden", "libraries", "timings"):
        _mapping(f"provenance.{key}", provenance.get(key, {}))
    artifacts = provenance.get("artifacts", [])
    if not isinstance(artifacts, list | tuple):
        raise VerdictError(f"provenance.artifacts={_short(artifacts)} must be a list of objects")
    for artifact in artifacts:
        _mapping("provenance.artifacts[]", artifact)
    return provenance


SCHEMA_VERSION = 1

# the kinds of paired / one-sample gate (drift gates are "no_drift")
COMPARATIVE = ("noninferior", "superior", "at_least")


class Decision(str, Enum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    HOLD = "hold"


# The exit status of a decision, the same for `pytest` with the plugin, `guardrails compare`,
# `guardrails check` and `guardrails redecide --exit-code`. 10 and 11 collide with no status
# pytest uses (0 ok, 1 tests failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests),
# so "could not decide" keeps pytest's own 2-5 and the CLI's 2 (bad input or usage).
EXIT_STATUS: Mapping[str, int] = {"promote": 0, "hold": 10, "rollback": 11}
EXIT_BAD_INPUT = 2


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
            gates = tuple(
                _at(i, "gates", GateResult.from_dict, g) for i, g in enumerate(data["gates"])
            )
            tests = tuple(_at(i, "tests", _test, t) for i, t in enumerate(data.get("tests", [])))
            policy = dict(_mapping("policy", data.get("policy", {})))
            provenance = _provenance(data.get("provenance", {}))
            reasons = tuple(_strings("reasons", data.get("reasons", [])))
        except VerdictError as exc:
            raise VerdictError(f"{source}: {exc}") from None
        return cls(
            Decision(data["decision"]),
            data["reason"],
            gates,
            policy,
            tests,
            provenance,
            reasons,
            {name: dict(c) for name, c in data.get("components", {}).items()},
        )


def _at(index: int, key: str, read: Any, value: Any) -> Any:
    """``read(value)`` with the entry's place (``gates[3]``) prefixed to any error."""
    if key == "tests" and not isinstance(value, Mapping):
        raise VerdictError(f"{key}[{index}]={_short(value)} must be an object")
    try:
        return read(value)
    except VerdictError as exc:
        name = value.get("name") if isinstance(value, Mapping) else None
        label = f"{key}[{index}]" + (f" ({name!r:.40})" if isinstance(name, str) else "")
        raise VerdictError(f"{label}: {exc}") from None


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
        for field_ in ("reasons", "gates"):
            if not all(isinstance(v, str) for v in entry[field_]):
                raise VerdictError(f"{source}: key '{key}.{field_}' must be a list of strings")


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
    """Read and validate a verdict JSON file; anything malformed (not UTF-8, not JSON, a
    field of the wrong type) raises :class:`VerdictError` naming the file and the field."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise VerdictError(f"{p}: verdict file not found") from None
    except OSError as exc:
        raise VerdictError(f"{p}: cannot read the verdict ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise VerdictError(f"{p}:{line}: not valid UTF-8 (byte offset {exc.start})") from None
    try:
        data = parse_json_line(text)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise VerdictError(f"{p}: not valid JSON ({problem})") from None
    return Verdict.from_dict(data, str(p))
