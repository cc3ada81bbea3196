"""Generation golden gates: grounded QA per domain, candidate generator vs production.

Each held-out question is answered from its golden context passages by production and by the
candidate (greedy, so runs are repeatable); ROUGE-L and token F1 against the references are
compared per question. The candidate must improve the new domain and not hurt the
established one (cross-evaluation: catastrophic forgetting shows up here).
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def qa_answers(
    qa_golden: dict[str, Any],
    retrieval_golden: dict[str, Any],
    production_generator: Any,
    candidate_generator: Any,
) -> dict[str, tuple]:
    """``{domain: (production answers, candidate answers, contexts)}``."""
    out = {}
    for domain, qa in qa_golden.items():
        corpus = retrieval_golden[domain].corpus
        questions = [e.question for e in qa.examples]
        contexts = [[corpus[d].full_text for d in e.context if d in corpus] for e in qa.examples]
        prod = production_generator.generate(questions, contexts=contexts)
        cand = (
            prod
            if candidate_generator is production_generator
            else candidate_generator.generate(questions, contexts=contexts)
        )
        out[domain] = (prod, cand, contexts)
    return out


def _record(gate: Any, production: Any, candidate: Any, qa: Any, answers: tuple) -> None:
    for role, gen in (("baseline", production), ("candidate", candidate)):
        gate.record(
            artifact={"component": "generator", "role": role, "fingerprint": gen.fingerprint}
        )
    prod, cand, _ = answers
    gate.record(
        examples={
            e.id: {"input": e.question, "baseline": p, "candidate": c}
            for e, p, c in zip(qa.examples, prod, cand, strict=True)
        }
    )


@pytest.mark.parametrize("metric", ["rouge_l", "token_f1"])
def test_generation_quality(
    gate: Any,
    qa_golden: dict[str, Any],
    qa_answers: dict,
    production_generator: Any,
    candidate_generator: Any,
    guardrails_stack: Any,
    domain: str,
    metric: str,
) -> None:
    """Superior on a new domain (the candidate was trained for it), non-inferior on an
    established one."""
    qa = qa_golden[domain]
    prod, cand, _ = qa_answers[domain]
    _record(gate, production_generator, candidate_generator, qa, qa_answers[domain])
    name = f"generation-{domain}:{metric}"
    new = guardrails_stack.domains[domain].is_new
    if new and candidate_generator is not production_generator:
        gate.superior(metric, candidate=cand, baseline=prod, references=qa, name=name)
    else:
        gate.noninferior(metric, candidate=cand, baseline=prod, references=qa, name=name)


def test_generation_degeneration(
    gate: Any,
    qa_golden: dict[str, Any],
    qa_answers: dict,
    production_generator: Any,
    candidate_generator: Any,
    domain: str,
) -> None:
    """No more degenerate answers (loops, value sprays, output cut mid-token) than
    production's, paired per question; each changed answer shows its reason."""
    from guardrails.metrics.degeneration import degenerate_scores, degeneration

    qa = qa_golden[domain]
    prod, cand, _ = qa_answers[domain]
    _record(gate, production_generator, candidate_generator, qa, qa_answers[domain])
    gate.record(
        examples={
            e.id: {
                "input": e.question,
                "baseline": p,
                "candidate": c,
                "baseline_rule": degeneration(p) or "not degenerate",
                "candidate_rule": degeneration(c) or "not degenerate",
            }
            for e, p, c in zip(qa.examples, prod, cand, strict=True)
        }
    )
    gate.noninferior(
        "degenerate_rate",
        candidate=degenerate_scores(cand),
        baseline=degenerate_scores(prod),
        ids=qa.ids,
        name=f"generation-{domain}:degenerate_rate",
    )


@pytest.mark.parametrize("which", ["candidate_generator", "alignment_generator"])
def test_merged_lora_matches_unmerged(
    request: pytest.FixtureRequest, production_generator: Any, qa_golden: dict[str, Any], which: str
) -> None:
    """Serving a merged LoRA must give the unmerged model's logits (peft#1836): a merge that
    drifts is a regression of the deployment, not of the adapter."""
    from guardrails.metrics.preference import MERGE_TOLERANCE, merged_unmerged_gap

    generator = request.getfixturevalue(which)
    if generator is production_generator:
        pytest.skip("no adapter under test (production has none to merge)")
    prompts = [e.question for qa in qa_golden.values() for e in qa.examples[:4]]
    gap = merged_unmerged_gap(generator, prompts)
    assert gap <= MERGE_TOLERANCE, f"merged vs unmerged max |Δlogit|={gap:.3g} > {MERGE_TOLERANCE}"
