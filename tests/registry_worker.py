"""Processes the registry tests spawn: racing promoters and a switch loop to SIGKILL.

``python tests/registry_worker.py DB`` loops forever over ``COMPONENTS``: promote every component
to its other variant (fresh verdict dict each time), and every third round roll each one back.
It prints ``ready`` once the registry is open and ``switched N`` after each committed round.
Set ``GUARDRAILS_REGISTRY_TEST_SLEEP_IN_TXN`` to make it linger inside its transactions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrails.artifacts import fingerprint_json
from guardrails.errors import RegistryError
from guardrails.registry import Registry

COMPONENTS = ("embedder", "reranker")
VARIANTS = ("A", "B")


def variant_fp(component: str, variant: str) -> str:
    """Deterministic fingerprint of one variant of one component."""
    return fingerprint_json({"component": component, "variant": variant})


_SCORES = {  # per-sample (baseline, candidate) scores that make a gate decide each way
    "promote": [(0.5 + 0.01 * (i % 7), 0.55 + 0.01 * (i % 7)) for i in range(20)],
    "rollback": [(0.5 + 0.01 * (i % 7), 0.3 + 0.01 * (i % 7)) for i in range(20)],
    "hold": [(0.5, 0.55), (0.6, 0.65)],  # two samples prove nothing: inconclusive
}


def verdict_for(
    pairs: dict[str, tuple[str, str]],
    decision: str = "promote",
    *,
    components: dict[str, str] | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A real verdict dict (gates with per-sample scores, decided by the rules) whose
    ``provenance.artifacts`` list ``pairs`` (component -> (candidate, baseline)).

    Without ``components`` one gate per component decides ``decision``; with ``components``
    (component -> decision) each component gets its own gate and the overall decision is
    what the rules derive (``decision`` must then match it)."""
    from guardrails.gates.evaluate import evaluate_gate
    from guardrails.policy import parse_policies
    from guardrails.verdict import decide

    wanted = components or {c: decision for c in pairs}
    table: dict[str, Any] = {"n-resamples": 1000, "policies": {"test": {}}}
    if components:
        table["components"] = {c: [f"{c}-*"] for c in components}
    policy = parse_policies(table)["test"]
    gates = []
    for comp, want in sorted(wanted.items()):
        base, cand = zip(*_SCORES[want], strict=True)
        gates.append(
            evaluate_gate(
                "noninferior",
                "ndcg@10",
                candidate=cand,
                baseline=base,
                policy=policy,
                name=f"{comp}-quality",
            )
        )
    arts = []
    for comp, (cand_fp, base_fp) in sorted(pairs.items()):
        arts.append({"component": comp, "role": "candidate", "fingerprint": cand_fp})
        arts.append({"component": comp, "role": "baseline", "fingerprint": base_fp})
    provenance: dict[str, Any] = {"artifacts": arts}
    if nonce is not None:
        provenance["run"] = nonce
    verdict = decide(gates, policy, provenance=provenance)
    if verdict.decision.value != decision:
        raise AssertionError(f"components {wanted} decide {verdict.decision.value}, not {decision}")
    return json.loads(json.dumps(verdict.to_dict()))


def seed(db: str | Path) -> None:
    """Register both variants of every component, bootstrap A, promote to B (so previous=A)."""
    with Registry(db) as reg:
        for comp in COMPONENTS:
            for v in VARIANTS:
                reg.register("adapter", comp, f"adapters/{comp}-{v}", variant_fp(comp, v))
            reg.set_alias(comp, "production", variant_fp(comp, "A"), actor="seed")
        pairs = {c: (variant_fp(c, "B"), variant_fp(c, "A")) for c in COMPONENTS}
        reg.promote(verdict_for(pairs, nonce="seed"), actor="seed")


def _other(component: str, fp: str) -> str:
    a, b = (variant_fp(component, v) for v in VARIANTS)
    return b if fp == a else a


def flip_all(reg: Registry, nonce: str) -> None:
    """Promote every component to its other variant through a fresh verdict."""
    pairs = {}
    for comp in COMPONENTS:
        prod = reg.resolve(comp, "production")
        assert prod is not None
        pairs[comp] = (_other(comp, prod.fingerprint), prod.fingerprint)
        reg.set_alias(comp, "candidate", pairs[comp][0], actor="worker")
    reg.promote(verdict_for(pairs, nonce=f"flip {nonce}"), actor="worker")


def churn(db: str | Path) -> None:
    """Switch forever (until killed)."""
    reg = Registry(db)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        if n % 3 == 0:
            for comp in COMPONENTS:
                reg.rollback(comp, actor="worker")
        else:
            flip_all(reg, f"{os.getpid()}-{n}")
        print(f"switched {n}", flush=True)


def race_promote(db: str, verdicts: list[dict[str, Any]], barrier: Any, results: Any) -> None:
    """For each verdict: wait for all racers, try to promote, report ``(round, outcome)``."""
    reg = Registry(db)
    for i, verdict in enumerate(verdicts):
        barrier.wait()
        try:
            reg.promote(verdict, actor=f"racer-{os.getpid()}")
            results.put((i, "ok"))
        except RegistryError as exc:
            results.put((i, f"RegistryError: {exc}"))
        except Exception as exc:  # reported, and the test fails on it
            results.put((i, f"{type(exc).__name__}: {exc}"))
    reg.close()


if __name__ == "__main__":
    churn(sys.argv[1])
