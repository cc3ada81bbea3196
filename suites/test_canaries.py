"""Canary prompts: must-answer, must-refuse (over-refusal and refusal both count), format and
factual cases, production vs candidate generator, paired with exact McNemar.

A canary is binary; ``max-drop`` for ``pass_rate`` is 0 or at least one case (1/n), and a
canary that newly fails is listed with both answers in the verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def _answers(generator: Any, canaries: Any, corpus: Any) -> list[str]:
    prompts = [c.prompt for c in canaries.canaries]
    contexts = [[corpus[d].full_text for d in c.context if d in corpus] for c in canaries.canaries]
    return generator.generate(prompts, contexts=contexts)


@pytest.fixture(scope="session")
def canary_results(
    canaries: dict[str, Any],
    retrieval_golden: dict[str, Any],
    production_generator: Any,
    candidate_generator: Any,
    alignment_generator: Any,
) -> dict[str, dict[str, list[str]]]:
    """``{domain: {"production"|"candidate"|"alignment": answers}}`` (each model once)."""
    out: dict[str, dict[str, list[str]]] = {}
    for domain, cs in canaries.items():
        corpus = retrieval_golden[domain].corpus
        seen: dict[int, list[str]] = {}
        out[domain] = {}
        for role, gen in (
            ("production", production_generator),
            ("candidate", candidate_generator),
            ("alignment", alignment_generator),
        ):
            if id(gen) not in seen:
                seen[id(gen)] = _answers(gen, cs, corpus)
            out[domain][role] = seen[id(gen)]
    return out


@pytest.mark.parametrize("role", ["candidate", "alignment"])
def test_canaries(
    gate: Any, canaries: dict[str, Any], canary_results: dict, domain: str, role: str
) -> None:
    """No canary may newly fail beyond the policy (McNemar on discordant canaries)."""
    cs = canaries[domain]
    answers = canary_results[domain]
    ok = {
        r: np.array([c.check(a) for c, a in zip(cs.canaries, answers[r], strict=True)], dtype=float)
        for r in ("production", role)
    }
    gate.record(
        golden=cs,
        examples={
            c.id: {"input": f"[{c.kind.value}] {c.prompt}", "baseline": p, "candidate": q}
            for c, p, q in zip(cs.canaries, answers["production"], answers[role], strict=True)
        },
    )
    gate.noninferior(
        "pass_rate",
        candidate=ok[role],
        baseline=ok["production"],
        ids=[c.id for c in cs.canaries],
        name=f"canaries-{domain}:{role}",
    )
