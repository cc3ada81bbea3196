"""Alignment: the DPO candidate prefers the chosen answer over the rejected one on held-out
preference pairs more than production does (the implicit-reward margin, paired per pair).
Its canaries are gated in ``test_canaries.py``."""

from __future__ import annotations

from typing import Any


def test_preference_margin(
    gate: Any,
    alignment_production: Any,
    alignment_generator: Any,
    alignment_baseline: str,
    preference_sets: dict,
    domain: str,
) -> None:
    from guardrails.metrics.preference import preference_margins
    from guardrails.training.alignment import load_preference_pairs

    held_out = load_preference_pairs(preference_sets[domain][1])
    prod = preference_margins(alignment_production, held_out)
    cand = (
        prod
        if alignment_generator is alignment_production
        else preference_margins(alignment_generator, held_out)
    )
    same = alignment_generator is alignment_production  # no candidate: an A/A run
    fingerprints = {
        "baseline": alignment_baseline,
        "candidate": alignment_baseline if same else alignment_generator.fingerprint,
    }
    for role, fingerprint in fingerprints.items():
        gate.record(artifact={"component": "alignment", "role": role, "fingerprint": fingerprint})
    name = f"alignment-{domain}:preference_margin"
    if alignment_generator is alignment_production:
        gate.noninferior("preference_margin", candidate=cand, baseline=prod, name=name)
    else:
        gate.superior("preference_margin", candidate=cand, baseline=prod, name=name)
