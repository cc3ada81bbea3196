"""Processes the registry tests spawn: racing promoters and a switch loop to SIGKILL.

``python tests/registry_worker.py DB`` loops forever over ``COMPONENTS``: promote every component
to its other variant (fresh verdict dict each time), and every third round roll each one back.
It prints ``ready`` once the registry is open and ``switched N`` after each committed round.
Set ``GUARDRAILS_REGISTRY_TEST_SLEEP_IN_TXN`` to make it linger inside its transactions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrails.errors import RegistryError
from guardrails.fingerprint import fingerprint_json
from guardrails.registry import Registry

COMPONENTS = ("embedder", "reranker")
VARIANTS = ("A", "B")


def variant_fp(component: str, variant: str) -> str:
    """Deterministic fingerprint of one variant of one component."""
    return fingerprint_json({"component": component, "variant": variant})


def verdict_for(
    pairs: dict[str, tuple[str, str]], decision: str = "promote", reason: str = "gates passed"
) -> dict[str, Any]:
    """A minimal verdict dict: ``pairs`` maps component -> (candidate, baseline)."""
    arts = []
    for comp, (cand, base) in sorted(pairs.items()):
        arts.append({"component": comp, "role": "candidate", "fingerprint": cand})
        arts.append({"component": comp, "role": "baseline", "fingerprint": base})
    return {
        "schema_version": 1,
        "decision": decision,
        "reason": reason,
        "provenance": {"artifacts": arts},
    }


def seed(db: str | Path) -> None:
    """Register both variants of every component, bootstrap A, promote to B (so previous=A)."""
    with Registry(db) as reg:
        for comp in COMPONENTS:
            for v in VARIANTS:
                reg.register("adapter", comp, f"adapters/{comp}-{v}", variant_fp(comp, v))
            reg.set_alias(comp, "production", variant_fp(comp, "A"), actor="seed")
        pairs = {c: (variant_fp(c, "B"), variant_fp(c, "A")) for c in COMPONENTS}
        reg.promote(verdict_for(pairs, reason="seed"), actor="seed")


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
    reg.promote(verdict_for(pairs, reason=f"flip {nonce}"), actor="worker")


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
