"""Metric names, parsed once.

Metrics are strings in the style of ranx: ``"ndcg@10"``, ``"mrr"``, ``"recall@100"``,
``"rouge_l"``, ``"psi"``. :func:`parse_metric` turns one into a frozen :class:`MetricSpec`
(canonical name, base, cutoff, family, direction) or raises :class:`MetricError` with a
did-you-mean suggestion. Scoring lives in the family modules (``ranking``, ``text``,
``drift``, ``overlap``); importing this package imports none of them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from guardrails.errors import MetricError

__all__ = ["KNOWN_METRICS", "MetricSpec", "parse_metric", "register_metric"]


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name.

    ``higher_is_better`` orients deltas (candidate - baseline) so that a positive oriented
    delta is always an improvement; ``binary`` marks per-sample scores that are 0/1, for
    which a tolerance finer than one case (1/n) is refused and McNemar applies.
    """

    name: str
    base: str
    k: int | None
    family: str
    higher_is_better: bool = True
    binary: bool = False

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better."""
        return 1.0 if self.higher_is_better else -1.0


# base name -> (family, higher_is_better, binary, accepts @k)
KNOWN_METRICS: dict[str, tuple[str, bool, bool, bool]] = {
    "ndcg": ("ranking", True, False, True),
    "mrr": ("ranking", True, False, True),
    "recall": ("ranking", True, False, True),
    "precision": ("ranking", True, False, True),
    "map": ("ranking", True, False, True),
    "hit_rate": ("ranking", True, True, True),
    "rouge1": ("text", True, False, False),
    "rouge2": ("text", True, False, False),
    "rouge_l": ("text", True, False, False),
    "bleu": ("text", True, False, False),
    "chrf": ("text", True, False, False),
    "exact_match": ("text", True, True, False),
    "token_f1": ("text", True, False, False),
    "pass_rate": ("binary", True, True, False),
    "degenerate_rate": ("binary", False, True, False),
    "unsafe_rate": ("binary", False, True, False),
    "refusal_rate": ("binary", False, True, False),
    "groundedness": ("grounding", True, False, False),
    "psi": ("drift", False, False, False),
    "kl": ("drift", False, False, False),
    "js": ("drift", False, False, False),
    "ks": ("drift", False, False, False),
    "ks_binned": ("drift", False, False, False),
    "wasserstein": ("drift", False, False, False),
    "mmd": ("drift", False, False, False),
    "cosine_to_history": ("drift", True, False, False),
    "centroid_shift": ("drift", False, False, False),
    "norm_shift": ("drift", False, False, False),
    "top_k_overlap": ("overlap", True, False, True),
    "rbo": ("overlap", True, False, False),
    "latency": ("performance", False, False, False),
    "latency_p50": ("performance", False, False, False),
    "latency_p95": ("performance", False, False, False),
    "latency_p99": ("performance", False, False, False),
    "throughput": ("performance", True, False, False),
    "peak_memory": ("performance", False, False, False),
    "index_memory": ("performance", False, False, False),
    "preference_margin": ("alignment", True, False, False),
    "merged_logit_gap": ("alignment", False, False, False),
}

_ALIASES = {
    "rougel": "rouge_l",
    "rouge-l": "rouge_l",
    "rouge-1": "rouge1",
    "rouge-2": "rouge2",
    "recip_rank": "mrr",
    "mrr_cut": "mrr",
    "ndcg_cut": "ndcg",
    "p": "precision",
    "set_p": "precision",
    "set_recall": "recall",
    "hits": "hit_rate",
    "hitrate": "hit_rate",
    "success": "hit_rate",
    "em": "exact_match",
    "f1": "token_f1",
}


def register_metric(
    base: str,
    family: str,
    *,
    higher_is_better: bool = True,
    binary: bool = False,
    accepts_k: bool = False,
) -> None:
    """Make a user-defined metric name known to policies and gates."""
    KNOWN_METRICS[base] = (family, higher_is_better, binary, accepts_k)


# trec_eval / pytrec_eval measure names with a cutoff: P_5, recall_100, ndcg_cut_10, map_cut_10,
# success_1 (trec_eval writes the cutoff after an underscore, ranx after an '@')
_TREC_CUTOFF = re.compile(r"^(?P<base>[a-z]+(?:_[a-z]+)*?)(?:_cut)?_(?P<k>[0-9]+)$", re.IGNORECASE)


def _from_trec_eval(raw: str) -> str:
    """``"ndcg_cut_10"`` -> ``"ndcg@10"`` when the base is a ranking metric; else unchanged."""
    m = _TREC_CUTOFF.match(raw)
    if "@" in raw or m is None:
        return raw
    base = m.group("base").lower()
    base = _ALIASES.get(base, base)
    accepts_k = KNOWN_METRICS.get(base, ("", True, False, False))[3]
    return f"{base}@{m.group('k')}" if accepts_k else raw


def parse_metric(name: str) -> MetricSpec:
    """Parse ``"ndcg@10"`` into a :class:`MetricSpec`; raise :class:`MetricError` if unknown.

    trec_eval's measure names are accepted too: ``P_5``, ``recall_100``, ``ndcg_cut_10``,
    ``map_cut_10``, ``recip_rank``, ``success_1`` (hit rate at 1).
    """
    if not isinstance(name, str) or not name.strip():
        raise MetricError(f"metric name must be a non-empty string, got {name!r}")
    raw = _from_trec_eval(name.strip())
    base_raw, _, k_raw = raw.partition("@")
    base = base_raw.lower().replace(" ", "")
    base = _ALIASES.get(base, base)
    if base not in KNOWN_METRICS:
        close = difflib.get_close_matches(base, list(KNOWN_METRICS) + list(_ALIASES), n=1)
        suggestion = (
            _ALIASES.get(close[0], close[0]) + (f"@{k_raw}" if "@" in raw else "") if close else ""
        )
        hint = f"; did you mean {suggestion!r}?" if close else f"; known: {sorted(KNOWN_METRICS)}"
        raise MetricError(f"unknown metric {raw!r}{hint}")
    family, higher, binary, accepts_k = KNOWN_METRICS[base]
    k = _parse_cutoff(raw, k_raw, accepts_k) if "@" in raw else None
    canonical = f"{base}@{k}" if k is not None else base
    return MetricSpec(canonical, base, k, family, higher, binary)


def _parse_cutoff(raw: str, k_raw: str, accepts_k: bool) -> int:
    if not accepts_k:
        raise MetricError(f"metric {raw!r} takes no cutoff; drop the '@{k_raw}'")
    try:
        k = int(k_raw)
    except ValueError:
        raise MetricError(f"metric {raw!r}: cutoff k={k_raw!r} is not an integer") from None
    if k <= 0:
        raise MetricError(f"metric {raw!r}: cutoff k={k} must be positive")
    return k
