"""The embedding-geometry drift gates of ``suites/test_drift.py`` can fire on unit vectors.

Production = unit vectors of 400 queries and 300 documents in 12 topics (dim 32). The
candidate is the same texts under another embedder: a collapsed space (every vector pulled
toward one direction, the anisotropy a bad fine-tune gives) must fail both gates; a rotation
of the space (same geometry, different coordinates) and a small per-vector perturbation (a
retrain that changed nothing that matters) must pass both. The old norm gate could not tell
any of these apart: every norm is 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from guardrails.errors import MetricError
from guardrails.gates import evaluate_drift_gate
from guardrails.metrics.drift import nearest_neighbour_cosine, top1_cosine
from guardrails.policy import parse_policies
from guardrails.verdict.schema import Status

POLICY = parse_policies({"policies": {"p": {"alpha": 0.05}}})["p"]
TOP1_PSI_MAX = NEIGHBOUR_KS_MAX = 0.2  # the suite's limits


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _space(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = _unit(rng.normal(size=(12, 32)))

    def draw(n: int) -> np.ndarray:
        return _unit(topics[rng.integers(0, 12, n)] + 0.35 * rng.normal(size=(n, 32)))

    return draw(400), draw(300)


def _gates(production, candidate) -> tuple[Status, Status, float, float]:
    (q0, d0), (q1, d1) = production, candidate
    top1 = evaluate_drift_gate(
        "psi",
        reference=top1_cosine(q0, d0),
        current=top1_cosine(q1, d1),
        policy=POLICY,
        name="drift-retrieval-top1-score",
        maximum=TOP1_PSI_MAX,
    )
    neighbours = evaluate_drift_gate(
        "ks",
        reference=nearest_neighbour_cosine(q0),
        current=nearest_neighbour_cosine(q1),
        policy=POLICY,
        name="drift-query-neighbour-cosine",
        maximum=NEIGHBOUR_KS_MAX,
    )
    return top1.status, neighbours.status, top1.candidate, neighbours.candidate


def test_a_collapsed_candidate_space_fails_both_gates() -> None:
    queries, docs = _space()
    u = _unit(np.random.default_rng(7).normal(size=(1, 32)))

    def collapse(x: np.ndarray) -> np.ndarray:
        return _unit(x + 0.3 * u)

    top1, neighbours, psi, ks = _gates((queries, docs), (collapse(queries), collapse(docs)))
    assert (top1, neighbours) == (Status.FAILED, Status.FAILED), (psi, ks)
    assert np.allclose(np.linalg.norm(collapse(queries), axis=1), 1.0)  # norms say nothing


def test_a_rotated_or_slightly_perturbed_candidate_passes_both_gates() -> None:
    queries, docs = _space()
    rng = np.random.default_rng(3)
    rotation, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    rotated = (queries @ rotation, docs @ rotation)
    top1, neighbours, psi, ks = _gates((queries, docs), rotated)
    assert (top1, neighbours) == (Status.PASSED, Status.PASSED)
    assert psi < 1e-6 and ks < 0.01  # rotation-invariant: same statistics up to rounding

    def perturb(x: np.ndarray) -> np.ndarray:
        return _unit(x + 0.03 * rng.normal(size=x.shape))

    top1, neighbours, psi, ks = _gates((queries, docs), (perturb(queries), perturb(docs)))
    assert (top1, neighbours) == (Status.PASSED, Status.PASSED), (psi, ks)


def test_mmd_of_the_raw_vectors_calls_a_rotation_drift() -> None:
    """Why the suite does not gate on MMD between production and candidate embeddings: a
    rotation, which changes no retrieval result, is a significant MMD."""
    queries, _ = _space()
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(32, 32)))
    mmd = evaluate_drift_gate(
        "mmd", reference=queries, current=queries @ rotation, policy=POLICY, name="x", maximum=0
    )
    assert mmd.status is Status.FAILED and mmd.p_value < 0.01


def test_geometry_statistics_by_hand() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 0.0]])
    assert np.allclose(nearest_neighbour_cosine(x), [1.0, 2**-0.5, 2**-0.5, 1.0])
    docs = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert np.allclose(top1_cosine(x[:3], docs), [2**-0.5, 1.0, 1.0])
    with pytest.raises(MetricError, match="zero or non-finite row"):
        nearest_neighbour_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(MetricError, match="at least 2 rows"):
        nearest_neighbour_cosine(np.array([[1.0, 0.0]]))
    with pytest.raises(MetricError, match="dim=2 but documents dim=3"):
        top1_cosine(x, np.ones((2, 3)))
