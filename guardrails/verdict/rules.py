"""The verdict: gate results + test outcomes -> promote / rollback / hold (pure), as JSON.

Rules of :func:`decide`, in order:

1. a gate failed (after Holm adjustment of the failure p-values across the run's gates), or
   a test's assertion failed outside any gate ⇒ **rollback**;
2. no gate ran; a required gate is missing, skipped or errored; a test errored; a gate is
   inconclusive; two results carry the same gate name (a gate re-run after it failed, or two
   tests that collide: the evidence is ambiguous, and a failed one still rolls back by rule 1)
   ⇒ **hold** (absence of evidence is not a pass);
3. otherwise ⇒ **promote**.

When the policy has ``components`` (component name -> gate-name fnmatch patterns), the same
rules also decide **per component**, on its own gates (names matching one of its patterns) plus
the *shared* gates (matching no component's patterns, e.g. drift gates), with the run-wide Holm
adjustment. A ``required`` pattern belongs to the components with a pattern that matches it as a
name (``fnmatchcase(required, pattern)``), else it is shared; a test failing or erroring outside
a gate belongs to the components whose patterns match its test name (the node id after the last
``::``, or the whole node id), else it is shared. A component none of whose own gates ran is
held. The overall decision is computed as before: the components refine it, never override it.

The JSON carries every gate's per-sample scores so :func:`redecide` can judge the same run
under another policy without running any model. Files are written atomically.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from guardrails.errors import VerdictError
from guardrails.policy import Policy
from guardrails.verdict.schema import (
    COMPARATIVE,
    Decision,
    GateResult,
    Status,
    TestOutcome,
    Verdict,
)

__all__ = [
    "adjust",
    "decide",
    "redecide",
    "restatus",
]


def restatus(result: GateResult, p_adjusted: float | None) -> GateResult:
    """The result re-decided with a Holm-adjusted p-value (passes are unaffected)."""
    if result.kind not in COMPARATIVE and result.kind != "no_drift":
        return replace(result, p_adjusted=p_adjusted)
    if result.passed or p_adjusted is None:
        return replace(result, p_adjusted=p_adjusted)
    status = Status.FAILED if p_adjusted < result.alpha else Status.INCONCLUSIVE
    if result.kind == "no_drift" and status is Status.INCONCLUSIVE:
        status = Status.PASSED  # a drift alarm needs significance; without it, no alarm
    return replace(result, p_adjusted=p_adjusted, status=status)


def adjust(gates: Sequence[GateResult]) -> list[GateResult]:
    """Holm-adjust the failure p-values of the run's gates and re-derive their status."""
    from guardrails.stats import holm

    tested = [
        i
        for i, g in enumerate(gates)
        if g.p_value is not None and (g.kind in COMPARATIVE or g.kind == "no_drift")
    ]
    raw = [float(gates[i].p_value) for i in tested]  # type: ignore[arg-type]
    adjusted = holm(raw) if tested else np.array([])
    out = list(gates)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = restatus(gates[i], float(p))
    return out


def decide(
    gates: Sequence[GateResult],
    policy: Policy,
    tests: Sequence[TestOutcome] = (),
    provenance: Mapping[str, Any] | None = None,
) -> Verdict:
    """Decide promote / rollback / hold from gate results and test outcomes (pure).

    With ``policy.components`` the verdict also carries one decision per component.
    """
    adjusted = adjust(gates)
    missing = _missing_required(adjusted, policy)
    decision, reasons = _judge(
        adjusted,
        tests,
        missing,
        ran=bool(adjusted),
        no_gate="no gate ran: nothing shows the candidate is safe",
        passed=f"all {len(adjusted)} gates passed under policy {policy.name!r}",
    )
    return Verdict(
        decision,
        _summary(reasons),
        tuple(adjusted),
        policy.to_dict(),
        tuple(tests),
        dict(provenance or {}),
        tuple(reasons),
        _components(adjusted, policy, tests, missing),
    )


def _summary(reasons: Sequence[str]) -> str:
    return reasons[0] + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")


def _missing_required(gates: Sequence[GateResult], policy: Policy) -> list[str]:
    """``required`` patterns that no gate of the run matches."""
    names = [g.name for g in gates]
    return [p for p in policy.required if not any(fnmatch.fnmatchcase(n, p) for n in names)]


def _closest(pattern: str, gates: Sequence[GateResult]) -> str:
    """``"; did you mean 'name'?"`` when a gate that ran has a name close to the pattern (a
    typo in ``required`` otherwise holds every release with no hint why)."""
    names = sorted({g.name for g in gates})
    close = difflib.get_close_matches(pattern.rstrip("*?"), names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}? (no gate matches the pattern)" if close else ""


def _judge(
    gates: Sequence[GateResult],
    tests: Sequence[TestOutcome],
    missing: Sequence[str],
    *,
    ran: bool,
    no_gate: str,
    passed: str,
) -> tuple[Decision, list[str]]:
    """The rules of this module on one set of gates / tests / missing required patterns."""
    rollback = [
        f"gate {g.name} failed: {g.metric} {_short(g)}" for g in gates if g.status is Status.FAILED
    ]
    rollback += [
        f"test {t.nodeid} failed: {t.message}"
        for t in tests
        if t.outcome == "failed" and t.failure == "assertion"
    ]
    hold = [
        f"gate {g.name} inconclusive: {g.metric} {_short(g)}"
        for g in gates
        if g.status is Status.INCONCLUSIVE
    ]
    hold += [
        f"test {t.nodeid} errored: {t.message}"
        for t in tests
        if t.outcome == "error" or (t.outcome == "failed" and t.failure == "error")
    ]
    hold += [
        f"required gate {p!r} did not run (skipped, errored or missing){_closest(p, gates)}"
        for p in missing
    ]
    hold += [
        f"gate name {name!r} was recorded {count} times (tests: "
        f"{', '.join(sorted({g.nodeid or '?' for g in gates if g.name == name}))}): a gate's "
        "name must be unique in a run; re-running a gate does not replace its first result"
        for name, count in sorted(Counter(g.name for g in gates).items())
        if count > 1
    ]
    if not ran and not rollback:
        hold.insert(0, no_gate)
    if rollback:
        return Decision.ROLLBACK, rollback + hold
    if hold:
        return Decision.HOLD, hold
    return Decision.PROMOTE, [passed]


def _owners(name: str, components: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Components with a pattern matching ``name`` (empty: shared by every component)."""
    return {c for c, pats in components.items() if any(fnmatch.fnmatchcase(name, p) for p in pats)}


def _components(
    gates: Sequence[GateResult],
    policy: Policy,
    tests: Sequence[TestOutcome],
    missing: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """One decision per component of ``policy.components`` (see the module docstring)."""
    components = dict(policy.components)
    gate_owners = [_owners(g.name, components) for g in gates]
    test_owners = [
        _owners(t.nodeid.rsplit("::", 1)[-1], components) | _owners(t.nodeid, components)
        for t in tests
    ]
    missing_owners = [_owners(p, components) for p in missing]
    out: dict[str, dict[str, Any]] = {}
    for comp in components:
        own = [g for g, o in zip(gates, gate_owners, strict=True) if comp in o]
        mine = [g for g, o in zip(gates, gate_owners, strict=True) if comp in o or not o]
        decision, reasons = _judge(
            mine,
            [t for t, o in zip(tests, test_owners, strict=True) if comp in o or not o],
            [p for p, o in zip(missing, missing_owners, strict=True) if comp in o or not o],
            ran=bool(own),
            no_gate=f"no gate of component {comp!r} ran: nothing shows its candidate is safe",
            passed=(
                f"all {len(mine)} gates of component {comp!r} passed "
                f"({len(own)} its own, {len(mine) - len(own)} shared)"
            ),
        )
        out[comp] = {
            "decision": decision.value,
            "reason": _summary(reasons),
            "reasons": reasons,
            "gates": list(dict.fromkeys(g.name for g in mine)),
        }
    return out


def _short(g: GateResult) -> str:
    lo, hi = g.ci
    if g.kind == "no_drift":
        return f"= {g.candidate:.4g} ({g.limit}, p={g.p_value:.3g})"
    delta = "" if g.delta is None else f"delta {g.delta:+.4g} "
    return f"{delta}CI [{lo:+.4g}, {hi:+.4g}] vs {g.limit}"


def redecide(verdict: Verdict, policy: Policy) -> Verdict:
    """Judge a stored verdict's per-sample scores under ``policy`` (no model is run).

    Each gate is re-evaluated with the limits passed to its call (``overrides``), so under the
    verdict's own policy the result is the original verdict. A paired or one-sample gate
    without per-sample scores cannot be re-decided: :class:`VerdictError`.
    """
    from guardrails.gates.evaluate import evaluate_gate  # gates import this package

    gates = []
    for g in verdict.gates:
        if g.kind in COMPARATIVE:
            scores = g.per_sample.get("candidate")
            if not scores or (g.kind != "at_least" and not g.per_sample.get("baseline")):
                raise VerdictError(
                    f"gate {g.name!r} has no per-sample scores ('per_sample' with "
                    "'candidate'"
                    + ("" if g.kind == "at_least" else " and 'baseline'")
                    + "): its decision cannot be re-derived; re-run the gate"
                )
            fresh = evaluate_gate(
                g.kind,
                g.metric,
                candidate=scores,
                baseline=g.per_sample.get("baseline"),
                policy=policy,
                name=g.name,
                ids=g.per_sample.get("ids"),
                overrides=g.overrides,
            )
            extra = {**g.extra, **fresh.extra}  # the evidence recorded, the test statistics redone
            gates.append(replace(fresh, nodeid=g.nodeid, golden=g.golden, extra=extra))
        elif g.kind == "no_drift":
            limits = policy.threshold(g.metric, g.name)
            bound = g.overrides.get("max", limits.max if limits.max is not None else g.threshold)
            alpha = limits.alpha or policy.alpha
            failed = g.candidate > bound and (g.p_value if g.p_value is not None else 1.0) < alpha
            gates.append(
                replace(
                    g,
                    threshold=bound,
                    limit=f"max {bound:g} and significant at alpha={alpha:g}",
                    alpha=alpha,
                    p_adjusted=None,
                    status=Status.FAILED if failed else Status.PASSED,
                )
            )
        else:
            gates.append(g)
    provenance = {**verdict.provenance, "redecided_from": verdict.policy.get("name")}
    return decide(gates, policy, verdict.tests, provenance)
