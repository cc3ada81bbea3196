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


def _rule(outcome: Any) -> str:
    verdict = "pass" if outcome.passed else "fail"
    return f"{verdict} by {outcome.rule}" + (f": {outcome.detail}" if outcome.detail else "")


@pytest.mark.parametrize("role", ["candidate", "alignment"])
def test_canaries(
    gate: Any, canaries: dict[str, Any], canary_results: dict, domain: str, role: str
) -> None:
    """No canary may newly fail beyond the policy (McNemar on discordant canaries); the
    report shows, for each canary that changed, the rule that decided each side."""
    cs = canaries[domain]
    answers = canary_results[domain]
    outcomes = {
        r: [c.outcome(a) for c, a in zip(cs.canaries, answers[r], strict=True)]
        for r in ("production", role)
    }
    gate.record(
        golden=cs,
        examples={
            c.id: {
                "input": f"[{c.kind.value}] {c.prompt}",
                "baseline": p,
                "candidate": q,
                "baseline_rule": _rule(po),
                "candidate_rule": _rule(qo),
            }
            for c, p, q, po, qo in zip(
                cs.canaries,
                answers["production"],
                answers[role],
                outcomes["production"],
                outcomes[role],
                strict=True,
            )
        },
    )
    gate.noninferior(
        "pass_rate",
        candidate=np.array([o.passed for o in outcomes[role]], dtype=float),
        baseline=np.array([o.passed for o in outcomes["production"]], dtype=float),
        ids=[c.id for c in cs.canaries],
        name=f"canaries-{domain}:{role}",
    )


@pytest.mark.parametrize("role", ["candidate", "alignment"])
def test_canary_degeneration(
    gate: Any, canaries: dict[str, Any], canary_results: dict, domain: str, role: str
) -> None:
    """No more degenerate canary answers (loops, value sprays, cut mid-token) than
    production's, paired per canary."""
    from guardrails.metrics.degeneration import degenerate_scores

    cs = canaries[domain]
    answers = canary_results[domain]
    gate.record(golden=cs, examples=_degenerate_examples(cs, answers, role))
    gate.noninferior(
        "degenerate_rate",
        candidate=degenerate_scores(answers[role]),
        baseline=degenerate_scores(answers["production"]),
        ids=[c.id for c in cs.canaries],
        name=f"canaries-degenerate-{domain}:{role}",
    )


def _degenerate_examples(cs: Any, answers: dict, role: str) -> dict[str, dict[str, str]]:
    from guardrails.metrics.degeneration import degeneration

    return {
        c.id: {
            "input": f"[{c.kind.value}] {c.prompt}",
            "baseline": p,
            "candidate": q,
            "baseline_rule": degeneration(p) or "not degenerate",
            "candidate_rule": degeneration(q) or "not degenerate",
        }
        for c, p, q in zip(cs.canaries, answers["production"], answers[role], strict=True)
    }
