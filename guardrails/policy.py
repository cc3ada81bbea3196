"""Named release policies from ``[tool.guardrails]`` -> frozen :class:`Policy`.

A policy says, per metric, how a candidate is judged against the baseline::

    [tool.guardrails]
    policy = "release"                  # the default; --guardrails-policy NAME overrides
    seed = 20261121
    n-resamples = 10000

    [tool.guardrails.components]        # optional: a decision per component (fnmatch patterns)
    embedder = ["retrieval-*", "shadow-*"]
    generator = ["generation-*", "canaries-*:candidate"]

    [tool.guardrails.policies.release]
    alpha = 0.05                        # error rate of each decision
    power = 0.8                         # for the minimum detectable effect warning
    required = ["retrieval-payments*"]  # gates that must run (fnmatch patterns), else HOLD

    [tool.guardrails.policies.release.metrics."ndcg@10"]
    max-drop = 0.02                     # non-inferiority margin (absolute, in metric units)
    min = 0.40                          # absolute floor on the candidate
    min-gain = 0.0                      # superiority requirement, used by gate.superior
    alpha = 0.05                        # per-metric override

    [tool.guardrails.policies.release.gates."retrieval-devices"]
    min-gain = 0.02                     # per-gate override of the metric's keys

    [tool.guardrails.policies.strict]
    extends = "release"                 # inherit and override

Every policy starts from built-in limits per metric family (:data:`BUILTIN_LIMITS`), so a gate
on a common metric works with no configuration at all; a policy's own metric table replaces them
key by key:

=================================================  ==========================================
metrics                                            built-in limits
=================================================  ==========================================
ranking (ndcg, mrr, recall, precision, map @k)     max-drop 0.02, min-gain 0 (scores on 0..1)
text (rouge1/2/l, bleu, chrf, token_f1) and        max-drop 0.02, min-gain 0 (scores on 0..1)
groundedness
binary per sample (pass_rate, exact_match, hit,    max-drop 0: no significant new failure
degenerate_rate, unsafe_rate, refusal_rate: the
last three lower-is-better)
psi / kl                                           max 0.2 / 0.1 (PSI >= 0.2: a real shift)
anything in units (latency, throughput, memory,    none: a gate on it needs its own limit
nats of preference margin) and other drift stats
=================================================  ==========================================

``direction`` defaults to the metric's natural one (``higher`` for nDCG, ``lower`` for latency
or PSI); for lower-is-better metrics ``max-drop`` is the allowed increase and ``max`` the
ceiling. ``components`` maps a component name to the gate names (fnmatch patterns) that judge
it (see :func:`guardrails.verdict.decide`); the top-level table is every policy's default, a
policy's own ``components`` table replaces the one it would inherit (``components = {}`` turns
per-component decisions off). Every mistake raises :class:`PolicyError` naming the key and the
allowed values.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from guardrails.errors import MetricError, PolicyError
from guardrails.metrics import parse_metric

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "BUILTIN_LIMITS",
    "DEFAULT_POLICY",
    "Policy",
    "Threshold",
    "builtin_threshold",
    "load_policies",
    "load_policy",
    "parse_policies",
    "policy_from_dict",
    "read_guardrails_table",
]

_TOP_KEYS = {
    "policy",
    "seed",
    "n-resamples",
    "policies",
    "triggers",
    "components",
    "stack",
    "training",  # per-component training methods and hyper-parameters (guardrails.stack)
}
_POLICY_KEYS = {
    "alpha",
    "power",
    "required",
    "components",
    "metrics",
    "gates",
    "extends",
    "description",
    "seed",
    "n-resamples",
}
_THRESHOLD_KEYS = {"direction", "max-drop", "min", "max", "min-gain", "alpha"}
_DIRECTIONS = ("higher", "lower")
MAX_RESAMPLES = 10_000_000  # beyond this a resampling test is a typo, not a policy


@dataclass(frozen=True)
class Threshold:
    """Limits for one metric (or one gate). ``None`` means "not set"."""

    metric: str
    direction: str = "higher"
    max_drop: float | None = None
    min: float | None = None
    max: float | None = None
    min_gain: float | None = None
    alpha: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def merged(self, other: Mapping[str, Any]) -> Threshold:
        """This threshold with the keys set in ``other`` (already validated) replaced."""
        return replace(self, **{k: v for k, v in other.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "direction": self.direction,
            "max-drop": self.max_drop,
            "min": self.min,
            "max": self.max,
            "min-gain": self.min_gain,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class Policy:
    """A named policy: global alpha/power, required gates and per-metric / per-gate limits."""

    name: str
    alpha: float = 0.05
    power: float = 0.8
    required: tuple[str, ...] = ()
    metrics: Mapping[str, Threshold] = field(default_factory=dict)
    gates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    n_resamples: int = 10000
    description: str = ""
    components: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def threshold(self, metric: str, gate: str | None = None) -> Threshold:
        """Limits for ``metric``, with the gate's overrides applied when ``gate`` has any."""
        spec = parse_metric(metric)
        base = builtin_threshold(spec.name)
        if spec.name in self.metrics:
            base = base.merged(vars(self.metrics[spec.name]))
        if gate is not None and gate in self.gates:
            base = base.merged(self.gates[gate])
        return base

    def alpha_for(self, metric: str, gate: str | None = None) -> float:
        t = self.threshold(metric, gate)
        return t.alpha if t.alpha is not None else self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alpha": self.alpha,
            "power": self.power,
            "required": list(self.required),
            "components": {name: list(patterns) for name, patterns in self.components},
            "seed": self.seed,
            "n-resamples": self.n_resamples,
            "metrics": {k: v.to_dict() for k, v in sorted(self.metrics.items())},
            "gates": {k: dict(v) for k, v in sorted(self.gates.items())},
        }


DEFAULT_POLICY = Policy(name="default")

_POLICY_RECORD_KEYS = {
    "name",
    "alpha",
    "power",
    "required",
    "components",
    "seed",
    "n-resamples",
    "metrics",
    "gates",
}
_GATE_KEYS = {"max_drop": "max-drop", "min_gain": "min-gain"}


def policy_from_dict(data: Any, *, source: str = "<verdict policy>") -> Policy:
    """The policy a verdict recorded (:meth:`Policy.to_dict`), rebuilt and validated by the
    same rules as a pyproject policy (a :class:`PolicyError` names the bad key)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) or not data["name"]:
        raise PolicyError(
            f"{source}: a recorded policy is an object with a 'name'; got {data!r:.80}"
        )
    _check_keys(data, _POLICY_RECORD_KEYS, "policy", source)
    name = data["name"]
    body: dict[str, Any] = {k: v for k, v in data.items() if k not in ("name", "metrics", "gates")}
    metrics, gates = data.get("metrics", {}), data.get("gates", {})
    if not isinstance(metrics, Mapping) or not isinstance(gates, Mapping):
        raise PolicyError(f"{source}: policy metrics and gates must be objects")
    body["metrics"] = {
        m: {k: v for k, v in t.items() if k != "metric" and v is not None}
        if isinstance(t, Mapping)
        else t
        for m, t in metrics.items()
    }
    body["gates"] = {
        g: {_GATE_KEYS.get(k, k): v for k, v in t.items() if v is not None}
        if isinstance(t, Mapping)
        else t
        for g, t in gates.items()
    }
    return parse_policies({"policies": {name: body}}, source=source)[name]


# Built-in limits every policy starts from (module docstring): by metric family, then by metric.
BUILTIN_LIMITS: Mapping[str, Mapping[str, float]] = {
    "ranking": {"max_drop": 0.02, "min_gain": 0.0},
    "text": {"max_drop": 0.02, "min_gain": 0.0},
    "grounding": {"max_drop": 0.02, "min_gain": 0.0},
    "binary": {"max_drop": 0.0},
    "psi": {"max": 0.2},
    "kl": {"max": 0.1},
}


def builtin_threshold(metric: str) -> Threshold:
    """The built-in limits for ``metric`` (its family's, a 0/1 metric's, or its own)."""
    spec = parse_metric(metric)
    limits = dict(BUILTIN_LIMITS.get(spec.family, {}))
    if spec.binary:
        limits = dict(BUILTIN_LIMITS["binary"])
    limits.update(BUILTIN_LIMITS.get(spec.base, {}))
    return Threshold(spec.name, "higher" if spec.higher_is_better else "lower").merged(limits)


def load_policy(pyproject: str | Path | None, name: str | None = None) -> Policy:
    """Load policy ``name`` (or the configured default) from a pyproject file.

    With no file or no ``[tool.guardrails]`` table the built-in ``default`` policy is
    returned (alpha 0.05, no limits: gates must then pass their limits explicitly).
    """
    table = read_guardrails_table(pyproject)
    policies = parse_policies(table, source=str(pyproject))
    configured = table.get("policy")
    if configured is not None and (not isinstance(configured, str) or not configured.strip()):
        raise PolicyError(
            f"{pyproject}: [tool.guardrails] policy={configured!r}; allowed values: the name "
            f"of a policy, one of {sorted(policies)}"
        )
    chosen = name or configured or ("default" if "default" in policies or not policies else None)
    if chosen is None:
        if len(policies) == 1:
            return next(iter(policies.values()))
        raise PolicyError(
            f"{pyproject}: several policies {sorted(policies)} and no default: set "
            "[tool.guardrails] policy = NAME or pass --guardrails-policy NAME"
        )
    if chosen == "default" and "default" not in policies:
        return replace(_root(table, str(pyproject)), name=DEFAULT_POLICY.name)
    if chosen not in policies:
        raise PolicyError(_unknown("policy", chosen, policies, where=str(pyproject)))
    return policies[chosen]


def load_policies(pyproject: str | Path | None) -> dict[str, Policy]:
    """All named policies of a pyproject file."""
    table = read_guardrails_table(pyproject)
    return parse_policies(table, source=str(pyproject))


def parse_policies(
    table: Mapping[str, Any], *, source: str = "[tool.guardrails]"
) -> dict[str, Policy]:
    """Validate a ``[tool.guardrails]`` table and build every named policy."""
    _check_keys(table, _TOP_KEYS, "[tool.guardrails]", source)
    raw = table.get("policies", {})
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{source}: [tool.guardrails] policies must be a table of named policies")
    root = _root(table, source)
    out: dict[str, Policy] = {}
    for name in raw:
        out[name] = _build(name, raw, source, root, chain=())
    return out


def _root(table: Mapping[str, Any], source: str) -> Policy:
    """The defaults every policy starts from: top-level seed, n-resamples and components."""
    return replace(
        DEFAULT_POLICY,
        seed=_seed(table.get("seed", DEFAULT_POLICY.seed), "[tool.guardrails]", source),
        n_resamples=_n_resamples(
            table.get("n-resamples", DEFAULT_POLICY.n_resamples), "[tool.guardrails]", source
        ),
        components=_components(table.get("components", {}), "[tool.guardrails]", source),
    )


def read_guardrails_table(pyproject: str | Path | None) -> Mapping[str, Any]:
    """The ``[tool.guardrails]`` table of a pyproject file ({} when the file or table is absent)."""
    if pyproject is None or not Path(pyproject).is_file():
        return {}
    try:
        with open(pyproject, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{pyproject}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"{pyproject}: not valid UTF-8 (byte offset {exc.start}); TOML files are UTF-8"
        ) from None
    tool = data.get("tool", {})
    if not isinstance(tool, Mapping):
        raise PolicyError(f"{pyproject}: tool={tool!r:.60} must be a table")
    table = tool.get("guardrails", {})
    if not isinstance(table, Mapping):
        raise PolicyError(f"{pyproject}: [tool.guardrails] must be a table")
    return table


def _build(
    name: str,
    raw: Mapping[str, Any],
    source: str,
    root: Policy,
    chain: tuple[str, ...],
) -> Policy:
    where = f"[tool.guardrails.policies.{name}]"
    body = raw[name]
    if not isinstance(body, Mapping):
        raise PolicyError(f"{source}: {where} must be a table")
    _check_keys(body, _POLICY_KEYS, where, source)
    parent = _parent(name, body, raw, source, root, chain)
    metrics = dict(parent.metrics)
    for metric, limits in _table(body, "metrics", where, source).items():
        metrics.update([_threshold(metric, limits, f"{where} metrics.{metric!r}", source, metrics)])
    gates = dict(parent.gates)
    for gate, limits in _table(body, "gates", where, source).items():
        gates[gate] = _overrides(limits, f"{where} gates.{gate!r}", source)
    return Policy(
        name=name,
        alpha=_prob(body.get("alpha", parent.alpha), "alpha", where, source),
        power=_prob(body.get("power", parent.power), "power", where, source, upper=1.0),
        required=_required(body.get("required", list(parent.required)), where, source),
        components=(
            _components(body["components"], where, source)
            if "components" in body
            else parent.components
        ),
        metrics=metrics,
        gates=gates,
        seed=_seed(body.get("seed", parent.seed), where, source),
        n_resamples=_n_resamples(body.get("n-resamples", parent.n_resamples), where, source),
        description=_description(body.get("description", ""), where, source),
    )


def _description(value: Any, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{source}: {where} description={value!r:.60}; allowed values: a string")
    return value


def _parent(
    name: str,
    body: Mapping[str, Any],
    raw: Mapping[str, Any],
    source: str,
    root: Policy,
    chain: tuple[str, ...],
) -> Policy:
    base = body.get("extends")
    if base is None:
        return replace(root, name=name)
    if not isinstance(base, str):
        raise PolicyError(
            f"{source}: policies.{name}.extends={base!r:.60}; allowed values: the name of "
            f"another policy, one of {sorted(raw)}"
        )
    if base not in raw:
        raise PolicyError(_unknown(f"policies.{name}.extends", base, raw, where=source))
    if base in chain or base == name:
        raise PolicyError(
            f"{source}: policies.{name}.extends={base!r} makes a cycle: "
            f"{' -> '.join((*chain, name, base))}"
        )
    return _build(base, raw, source, root, chain=(*chain, name))


def _threshold(
    metric: str, limits: Any, where: str, source: str, existing: Mapping[str, Threshold]
) -> tuple[str, Threshold]:
    try:
        spec = parse_metric(metric)
    except MetricError as exc:
        raise PolicyError(f"{source}: {where}: {exc}") from None
    natural = "higher" if spec.higher_is_better else "lower"
    base = existing.get(spec.name) or Threshold(spec.name, natural)
    return spec.name, base.merged(_overrides(limits, where, source))


def _overrides(limits: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(limits, Mapping):
        raise PolicyError(f"{source}: {where} must be a table with keys {sorted(_THRESHOLD_KEYS)}")
    _check_keys(limits, _THRESHOLD_KEYS, where, source)
    out: dict[str, Any] = {}
    if "direction" in limits:
        if limits["direction"] not in _DIRECTIONS:
            raise PolicyError(
                f"{source}: {where} direction={limits['direction']!r}; allowed "
                f"values: {list(_DIRECTIONS)}"
            )
        out["direction"] = limits["direction"]
    for key, attr in (("max-drop", "max_drop"), ("min-gain", "min_gain")):
        if key in limits:
            out[attr] = _number(limits[key], key, where, source, nonneg=True)
    for key in ("min", "max"):
        if key in limits:
            out[key] = _number(limits[key], key, where, source)
    if "alpha" in limits:
        out["alpha"] = _prob(limits["alpha"], "alpha", where, source)
    return out


def _table(body: Mapping[str, Any], key: str, where: str, source: str) -> Mapping[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"{source}: {where} {key} must be a table")
    return value


def _required(value: Any, where: str, source: str) -> tuple[str, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, list | tuple)
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise PolicyError(
            f"{source}: {where} required={value!r}; allowed values: a list of gate "
            'names or fnmatch patterns, e.g. ["retrieval-*"]'
        )
    return tuple(value)


def _components(value: Any, where: str, source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    allowed = (
        "allowed values: a table of component name -> non-empty list of gate-name fnmatch "
        'patterns, e.g. {embedder = ["retrieval-*", "shadow-*"]}'
    )
    if not isinstance(value, Mapping):
        raise PolicyError(f"{source}: {where} components={value!r}; {allowed}")
    out = []
    for name, patterns in value.items():
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(f"{source}: {where} components has a bad name {name!r}; {allowed}")
        if (
            isinstance(patterns, str)
            or not isinstance(patterns, list | tuple)
            or not patterns
            or not all(isinstance(p, str) and p for p in patterns)
        ):
            raise PolicyError(f"{source}: {where} components.{name}={patterns!r}; {allowed}")
        out.append((name, tuple(patterns)))
    return tuple(out)


def _number(value: Any, key: str, where: str, source: str, *, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"{source}: {where} {key}={value!r}; allowed values: a finite number")
    if nonneg and value < 0:
        raise PolicyError(
            f"{source}: {where} {key}={value!r}; allowed values: a number >= 0 "
            "(it is a size, the direction comes from the metric)"
        )
    return float(value)


def _prob(value: Any, key: str, where: str, source: str, *, upper: float = 0.5) -> float:
    number = _number(value, key, where, source)
    if not 0.0 < number < upper:
        raise PolicyError(f"{source}: {where} {key}={value!r}; allowed values: 0 < {key} < {upper}")
    return number


def _seed(seed: Any, where: str, source: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise PolicyError(f"{source}: {where} seed={seed!r}; allowed values: an integer >= 0")
    return seed


MIN_RESAMPLES = 200


def _n_resamples(n: Any, where: str, source: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_RESAMPLES <= n <= MAX_RESAMPLES:
        raise PolicyError(
            f"{source}: {where} n-resamples={n!r}; allowed values: an integer from "
            f"{MIN_RESAMPLES} to {MAX_RESAMPLES} (fewer resamples make the interval and the "
            "p-value too coarse to decide at alpha)"
        )
    return n


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, source: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PolicyError(
                f"{source}: {where} has unknown key {key!r}{hint}; allowed keys: {sorted(allowed)}"
            )


def _unknown(what: str, value: Any, known: Mapping[str, Any], *, where: str) -> str:
    close = difflib.get_close_matches(str(value), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown {what} {value!r}{hint}; allowed values: {sorted(known)}"
