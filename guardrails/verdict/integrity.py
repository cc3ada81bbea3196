"""Whether a verdict can be acted on: re-derived from its own evidence, optionally signed.

A verdict file is a claim; :func:`verify_verdict` checks it before the registry switches
production on it:

1. it parses as a full verdict (:meth:`Verdict.from_dict`, the one reader);
2. with a signing key configured (``$GUARDRAILS_VERDICT_KEY``), it carries a valid HMAC-SHA256
   over its canonical JSON (:func:`canonical_bytes`): an unsigned or altered file is refused;
3. its recorded policy rebuilds under the same validation as a pyproject policy, and every
   gate's status and numbers, the overall decision and each component's decision are what
   :func:`~guardrails.verdict.rules.redecide` derives from the per-sample scores under that
   policy (a gate without per-sample scores cannot be re-derived: refused). A decision made by
   a ``pytest_guardrails_decide`` hook differs from the rules by design, so it is accepted only
   from a signed verdict (the signature vouches for the run that applied the hook).

Without a key, point 3 still catches an edited decision, edited gate numbers, dropped gates
under a ``required`` policy and a verdict with no evidence; only a forger who recomputes
every number consistently gets past it, which is what the signature is for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from guardrails.errors import GuardrailsError, PolicyError, VerdictError
from guardrails.verdict.schema import GateResult, Verdict

__all__ = [
    "SIGNATURE_ALGORITHM",
    "SIGNING_KEY_ENV",
    "canonical_bytes",
    "sign_verdict",
    "signing_key",
    "verify_verdict",
]

SIGNING_KEY_ENV = "GUARDRAILS_VERDICT_KEY"
SIGNATURE_ALGORITHM = "hmac-sha256"
_NUMBERS = ("candidate", "baseline", "delta", "p_value", "p_adjusted", "threshold", "alpha")


def signing_key() -> bytes | None:
    """The key in ``$GUARDRAILS_VERDICT_KEY`` (None when unset or empty)."""
    value = os.environ.get(SIGNING_KEY_ENV, "")
    return value.encode("utf-8") if value else None


def canonical_bytes(data: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the verdict without ``signature``, sorted, compact."""
    body = {k: v for k, v in data.items() if k != "signature"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True
    ).encode("ascii")


def sign_verdict(data: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """``data`` with a ``signature`` entry: HMAC-SHA256 of :func:`canonical_bytes`."""
    digest = hmac.new(key, canonical_bytes(data), hashlib.sha256).hexdigest()
    return {**data, "signature": {"algorithm": SIGNATURE_ALGORITHM, "value": digest}}


def _check_signature(data: Mapping[str, Any], source: str, key: bytes) -> None:
    sig = data.get("signature")
    if sig is None:
        raise VerdictError(
            f"{source}: the verdict is not signed, but {SIGNING_KEY_ENV} is set: only verdicts "
            "written by a run with the same key are accepted; re-run the gates."
        )
    if (
        not isinstance(sig, Mapping)
        or sig.get("algorithm") != SIGNATURE_ALGORITHM
        or not isinstance(sig.get("value"), str)
    ):
        raise VerdictError(
            f"{source}: signature={sig!r:.120} is not "
            f'{{"algorithm": "{SIGNATURE_ALGORITHM}", "value": HEX}}.'
        )
    expected = hmac.new(key, canonical_bytes(data), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig["value"]):
        raise VerdictError(
            f"{source}: the signature does not match the content: the verdict was altered "
            f"after it was written, or signed with another {SIGNING_KEY_ENV}."
        )


def verify_verdict(
    data: Any, source: str = "<verdict>", *, key: bytes | str | None = "env"
) -> Verdict:
    """The verdict in ``data`` after the checks of the module docstring; VerdictError if any
    fails. ``key="env"`` reads :func:`signing_key`; ``None`` skips the signature check."""
    from guardrails.policy import policy_from_dict
    from guardrails.verdict.rules import redecide

    verdict = Verdict.from_dict(data, source)
    secret = signing_key() if key == "env" else key
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if secret is not None:
        _check_signature(data, source, secret)
    try:
        policy = policy_from_dict(verdict.policy, source=f"{source}: policy")
        again = redecide(verdict, policy)
    except VerdictError as exc:
        raise VerdictError(f"{source}: {exc}") from None
    except (PolicyError, GuardrailsError, ValueError, TypeError) as exc:
        raise VerdictError(
            f"{source}: the decision cannot be re-derived from the recorded evidence: {exc}"
        ) from None
    for old, new in zip(verdict.gates, again.gates, strict=True):
        _same_gate(old, new, source)
    hook = verdict.provenance.get("decided_by_hook")
    if hook:
        rules = verdict.provenance.get("rules_decided")
        if secret is None:
            raise VerdictError(
                f"{source}: the decision was made by the pytest_guardrails_decide hook of "
                f"{hook!r}, which cannot be re-derived; only a signed verdict (set "
                f"{SIGNING_KEY_ENV} for the run and for promote) can carry a hook's decision."
            )
        if not isinstance(rules, Mapping) or rules.get("decision") != again.decision.value:
            raise VerdictError(
                f"{source}: provenance.rules_decided={rules!r:.120} differs from what the "
                f"rules re-derive ({again.decision.value!r})."
            )
        return verdict
    if again.decision is not verdict.decision:
        raise VerdictError(
            f"{source}: decision={verdict.decision.value!r} in the file, but its own evidence "
            f"under its recorded policy {policy.name!r} gives {again.decision.value!r} "
            f"({again.reason}); refusing a verdict that does not follow from its gates."
        )
    mine = {c: e.get("decision") for c, e in verdict.components.items()}
    derived = {c: e["decision"] for c, e in again.components.items()}
    if mine != derived:
        raise VerdictError(
            f"{source}: per-component decisions {mine} in the file, but the evidence gives "
            f"{derived}; refusing a verdict that does not follow from its gates."
        )
    return verdict


def _same_gate(old: GateResult, new: GateResult, source: str) -> None:
    where = f"{source}: gate {old.name!r}"
    if old.status is not new.status:
        raise VerdictError(
            f"{where}: status={old.status.value!r} in the file, {new.status.value!r} "
            "re-derived from its per-sample scores."
        )
    if old.n != new.n:
        raise VerdictError(f"{where}: n={old.n} in the file, {new.n} in its per-sample scores.")
    pairs = [(k, getattr(old, k), getattr(new, k)) for k in _NUMBERS]
    pairs += [("ci", old.ci[0], new.ci[0]), ("ci", old.ci[1], new.ci[1])]
    for name, a, b in pairs:
        if not _close(a, b):
            raise VerdictError(
                f"{where}: {name}={a!r} in the file, {b!r} re-derived from its per-sample "
                "scores: the file was edited (or written before gates recorded their limits)."
            )


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
