"""A seeded production simulator: realistic interaction logs from the demo's golden data.

Traffic: sessions arrive as a Poisson process (``sessions_per_hour``, with a daily cycle of
relative ``diurnal`` amplitude, sampled by thinning). A session asks a golden query (test
queries with their qrels, or ``train.jsonl`` queries with ``{positive: 2, negative: 0}``),
then may repeat a near-duplicate reformulation (when nothing relevant was clicked) or move on
to a new query. Behaviour, per interaction:

* **retrieval**: each relevant document enters the top-k with probability ``quality[domain]``
  (x0.8 for grade 1), scored above same-topic confusers and random documents; the
  **reranker** scores ``2.5·grade - 1 + N(0, 1.2)`` and reorders;
* **clicks** follow a cascade model (Craswell et al., WSDM 2008): the user examines ranks in
  order, clicks with P(click | grade) = (0.06, 0.35, 0.75), stops satisfied with
  P(stop | grade) = (0.05, 0.4, 0.85), else goes on with probability 0.8; examined unclicked
  results above the last click are *skipped*; dwell is log-normal around (6, 20, 45) s;
* **answers** quote the top passage; unsupported sentences are added (a hallucination) with
  probability (0.35, 0.15, 0.04) by the top passage's grade; likes, dislikes, flags and
  complaints (templates per topic, our own text) follow answer quality;
* **latency** is log-normal per stage, **memory** drifts slowly with a daily cycle; a fraction
  ``ab_fraction`` of interactions carries an A/B comparison.

Events change the world at a time ``at`` (epoch seconds, an aware datetime, or a timedelta
after ``start``): :class:`NewDomainLaunch`, :class:`LatencyRegression`,
:class:`EmbeddingShift`, :class:`ComplaintSurge`. Scalar draws use :class:`random.Random`
(fast, reproducible for a seed); the same config and seed give the same records.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from guardrails.artifacts import fingerprint_json
from guardrails.errors import GoldenDataError
from guardrails.golden import read_jsonl
from guardrails.monitoring.logs import Feedback, Hit, LogRecord, write_logs

__all__ = [
    "COMPLAINT_TEMPLATES",
    "ComplaintSurge",
    "EmbeddingShift",
    "LSAEmbedder",
    "LatencyRegression",
    "NewDomainLaunch",
    "SimulationConfig",
    "demo_config",
    "simulate",
    "write_simulated_logs",
]

When = float | datetime | timedelta
STAGES = ("embed", "search", "rerank", "generate")
START = 1772323200.0  # 2026-03-01T00:00:00Z


@dataclass(frozen=True)
class NewDomainLaunch:
    """No ``domain`` traffic before ``at``; then its share ramps linearly to ``final_share``."""

    domain: str = "devices"
    at: When = timedelta(hours=24)
    final_share: float = 0.4
    ramp_hours: float = 12.0


@dataclass(frozen=True)
class LatencyRegression:
    """From ``at`` on, stage ``component`` (embed/search/rerank/generate) is ``factor`` x slower."""

    component: str
    factor: float
    at: When


@dataclass(frozen=True)
class EmbeddingShift:
    """A model update: from ``at`` on, logged query vectors are ``norm_scale · R v``.

    ``R = expm(angle · A)``, ``A`` a fixed random skew-symmetric matrix with entry variance
    1/dim, so its eigenvalues ±iλ spread over λ ∈ [-2, 2] and the mean cosine between ``v`` and
    ``Rv`` is about E[cos(angle · λ)] (0.88 at angle 0.5). The embedder version changes too.
    """

    at: When
    angle: float = 0.5
    norm_scale: float = 1.15
    seed: int = 0


@dataclass(frozen=True)
class ComplaintSurge:
    """From ``at`` on, each interaction also complains about ``topic`` with probability ``rate``."""

    topic: str
    rate: float
    at: When


Event = NewDomainLaunch | LatencyRegression | EmbeddingShift | ComplaintSurge


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; every number is a knob of the behaviour described in the module doc."""

    seed: int = 0
    start: float = START
    hours: float = 48.0
    sessions_per_hour: float = 60.0
    diurnal: float = 0.3
    events: tuple[Event, ...] = ()
    domains: tuple[str, ...] = ("payments", "devices")
    k: int = 10
    quality: Mapping[str, float] = field(default_factory=lambda: {"payments": 0.85, "devices": 0.5})
    latency_ms: Mapping[str, float] = field(
        default_factory=lambda: {"embed": 8.0, "search": 4.0, "rerank": 35.0, "generate": 600.0}
    )
    latency_sigma: float = 0.3
    memory_mb: float = 2100.0
    ab_fraction: float = 0.1
    error_rate: float = 0.003
    repeat_probability: float = 0.55
    follow_up_probability: float = 0.35


def demo_config(seed: int = 0) -> SimulationConfig:
    """Two days; ``devices`` launches after the first day (the demo's story)."""
    return SimulationConfig(seed=seed, events=(NewDomainLaunch("devices", timedelta(hours=24)),))


class QueryEmbedder(Protocol):
    def encode(self, texts: Sequence[str]) -> Any: ...


# ----------------------------------------------------------------------------- text we write

COMPLAINT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "payouts": (
        "my payout still has not arrived and the assistant keeps telling me to wait",
        "the bot could not explain why my payout is late again",
        "payout missing for three days and the help answer was useless",
        "asked where my payout money is, the answer made no sense",
    ),
    "fees": (
        "the fee the assistant quoted is not what I was charged",
        "wrong processing fee in the answer, I checked my statement",
        "the bot gave me the fee of a different plan",
        "confusing answer about the fee, numbers do not add up",
    ),
    "refunds": (
        "the refund steps from the assistant did not work for me",
        "customer refund is stuck pending and the answer did not help",
        "bot told me to refund from a menu that does not exist",
    ),
    "disputes": (
        "the dispute advice was wrong and I lost the chargeback",
        "assistant did not tell me which evidence to send for the dispute",
        "dispute deadline in the answer was wrong",
    ),
    "connectivity": (
        "thermostat keeps going offline and the assistant just says restart the wifi",
        "wifi pairing instructions from the bot do not match my app",
        "my thermostat will not reconnect to wifi and the help answer was useless",
        "device dropped off the wifi again, answer did not fix it",
    ),
    "firmware": (
        "the firmware update failed and the assistant had no idea why",
        "bot told me to update firmware from a screen that does not exist",
        "thermostat stuck on the firmware update and the answer did not help",
    ),
    "error-codes": (
        "the error code on my thermostat is not what the assistant described",
        "bot explained the wrong error code",
        "display shows an error code and the help answer was about something else",
    ),
    "installation": (
        "the install answer skipped the wiring step and now nothing works",
        "the assistant told me the wrong wire for the C terminal during install",
        "install guide from the bot did not match my wiring",
    ),
    "slow": (
        "the assistant is slow and takes forever to answer",
        "answers are so slow I gave up waiting",
        "help chat is really slow today",
    ),
    "made-up": (
        "the assistant made up a feature that does not exist",
        "the answer invented a policy I cannot find anywhere, made up",
        "bot invented numbers that are not in your documentation",
    ),
    "wrong-answer": (
        "the answer was unrelated to my question",
        "assistant answered a different question, unrelated",
        "not helpful, the answer was unrelated to what I asked",
    ),
    "unsafe": (
        "the assistant suggested something unsafe to do",
        "bot told me to bypass a security check, that is unsafe",
    ),
}
_COMPLAINT_PREFIX = ("", "", "honestly ", "again, ", "seriously, ", "fyi ")
_COMPLAINT_SUFFIX = ("", "", ".", "!", " please fix this", " very frustrating")
_FABRICATIONS = (
    "This limit is waived automatically for accounts older than 90 days.",
    "You can also call the priority hotline, which is free on every plan.",
    "The change takes effect within 5 minutes in all regions.",
    "Older versions handle this automatically after a restart.",
    "A one-time credit of $25 is applied when this happens.",
)
_REFORMULATION_WORDS = ("please", "help", "again", "still", "how", "now")


# ----------------------------------------------------------------------------- golden data


@dataclass(frozen=True)
class _Query:
    qid: str | None
    text: str
    topic: str
    grades: Mapping[str, int]


@dataclass(frozen=True)
class _Domain:
    name: str
    queries: tuple[_Query, ...]
    doc_ids: tuple[str, ...]
    texts: Mapping[str, str]
    n_words: Mapping[str, int]
    by_topic: Mapping[str, tuple[str, ...]]


def _load_domain(folder: Path) -> _Domain:
    from guardrails.golden import load_beir

    golden = load_beir(folder)
    doc_topic = {d: str(doc.metadata.get("topic", "")) for d, doc in golden.corpus.items()}
    queries = [
        _Query(
            q,
            golden.queries[q],
            str(golden.query_metadata.get(q, {}).get("topic", "")),
            dict(golden.qrels[q]),
        )
        for q in golden.query_ids
    ]
    queries += _train_queries(folder / "train.jsonl", doc_topic)
    by_topic: dict[str, list[str]] = {}
    for doc_id, topic in doc_topic.items():
        by_topic.setdefault(topic, []).append(doc_id)
    texts = {d: doc.text for d, doc in golden.corpus.items()}
    return _Domain(
        folder.name,
        tuple(queries),
        tuple(golden.corpus),
        texts,
        {d: len(text.split()) for d, text in texts.items()},
        {t: tuple(ids) for t, ids in by_topic.items()},
    )


def _train_queries(path: Path, doc_topic: Mapping[str, str]) -> list[_Query]:
    if not path.is_file():
        return []
    out = []
    for lineno, obj in read_jsonl(path):
        pos: Any = obj.get("positive")
        neg: Any = obj.get("negative")
        if pos not in doc_topic:
            raise GoldenDataError(path, lineno, f"positive={pos!r} is not in the corpus")
        grades = {pos: 2, **({neg: 0} if neg in doc_topic else {})}
        out.append(_Query(None, obj["query"], doc_topic[pos], grades))
    return out


# ----------------------------------------------------------------------------- one interaction


class _World:
    """The simulation state: config, resolved events, data, rng."""

    def __init__(self, config: SimulationConfig, domains: Mapping[str, _Domain]) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.domains = domains
        self.launches = {e.domain: e for e in config.events if isinstance(e, NewDomainLaunch)}
        self.slowdowns = [e for e in config.events if isinstance(e, LatencyRegression)]
        self.shifts = [e for e in config.events if isinstance(e, EmbeddingShift)]
        self.surges = [e for e in config.events if isinstance(e, ComplaintSurge)]

    def at(self, when: When) -> float:
        return resolve_time(when, self.c.start)

    # -- traffic
    def pick_domain(self, t: float) -> str:
        shares = {}
        for name, launch in self.launches.items():
            since = (t - self.at(launch.at)) / 3600.0
            ramp = 1.0 if launch.ramp_hours <= 0 else min(1.0, max(since, 0) / launch.ramp_hours)
            shares[name] = launch.final_share * ramp if since >= 0 else 0.0
        base = [d for d in self.domains if d not in self.launches]
        rest = max(0.0, 1.0 - sum(shares.values()))
        shares.update({d: rest / len(base) for d in base})
        names = sorted(shares)
        return self.rng.choices(names, weights=[shares[n] for n in names])[0]

    # -- retrieval
    def retrieve(self, domain: _Domain, query: _Query) -> tuple[Hit, ...]:
        r, q = self.rng, self.c.quality.get(domain.name, 0.7)
        scores: dict[str, float] = {}
        for doc_id, grade in query.grades.items():
            found = grade == 0 or r.random() < (q if grade >= 2 else 0.8 * q)
            if found:
                scores[doc_id] = 0.5 + 0.06 * grade + r.gauss(0.0, 0.07)
        confusers = domain.by_topic.get(query.topic, ())
        for doc_id in r.sample(confusers, min(4, len(confusers))):
            scores.setdefault(doc_id, 0.5 + r.gauss(0.0, 0.06))
        for doc_id in r.sample(domain.doc_ids, self.c.k):
            scores.setdefault(doc_id, 0.4 + r.gauss(0.0, 0.07))
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[: self.c.k]
        return tuple(Hit(d, round(s, 4)) for d, s in ranked)

    def rerank(self, hits: Sequence[Hit], grades: Mapping[str, int]) -> tuple[Hit, ...]:
        scored = [
            (h.doc_id, 2.5 * grades.get(h.doc_id, 0) - 1 + self.rng.gauss(0, 1.2)) for h in hits
        ]
        return tuple(Hit(d, round(s, 4)) for d, s in sorted(scored, key=lambda kv: -kv[1]))

    # -- behaviour
    def browse(self, shown: Sequence[Hit], grades: Mapping[str, int]) -> dict[str, Any]:
        """Cascade model: clicks, skips above the last click, dwell, scroll depth."""
        r, clicked, examined = self.rng, [], 0
        for i, hit in enumerate(shown):
            examined = i + 1
            g = min(max(grades.get(hit.doc_id, 0), 0), 2)
            if r.random() < (0.06, 0.35, 0.75)[g]:
                clicked.append(hit.doc_id)
                if r.random() < (0.05, 0.4, 0.85)[g]:
                    break
            elif r.random() > 0.8:
                break
        last = max((i for i, h in enumerate(shown) if h.doc_id in clicked), default=-1)
        skipped = [h.doc_id for h in shown[:last] if h.doc_id not in clicked]
        dwell = {
            d: round((6.0, 20.0, 45.0)[min(grades.get(d, 0), 2)] * r.lognormvariate(0, 0.5), 2)
            for d in clicked
        }
        depth = round(examined / len(shown), 3) if shown else 0.0
        return {
            "clicked": tuple(clicked),
            "skipped": tuple(skipped),
            "dwell_s": dwell,
            "scroll_depth": depth,
        }

    def answer(
        self, domain: _Domain, shown: Sequence[Hit], grades: Mapping[str, int]
    ) -> tuple[str, int, bool]:
        """(answer text, grade of the quoted passage, hallucinated?)."""
        top = shown[0].doc_id if shown else ""
        grade = min(grades.get(top, 0), 2)
        text = _first_sentences(domain.texts.get(top, ""), 1 + (self.rng.random() < 0.4))
        hallucinated = self.rng.random() < (0.35, 0.15, 0.04)[grade]
        if hallucinated:
            text = f"{text} {self.rng.choice(_FABRICATIONS)}".strip()
        return text, grade, hallucinated

    def feedback(self, grade: int, hallucinated: bool) -> tuple[Feedback | None, str | None]:
        u = self.rng.random()
        if u < 0.003:
            return Feedback.FLAG, "unsafe"
        if hallucinated and u < 0.25:
            return Feedback.FLAG, "hallucination"
        if grade == 0 and u < 0.06:
            return Feedback.FLAG, "wrong"
        like, dislike = {2: (0.2, 0.02), 1: (0.08, 0.1), 0: (0.02, 0.22)}[grade]
        v = self.rng.random()
        if v < like and not hallucinated:
            return Feedback.LIKE, None
        if v < like + dislike or (hallucinated and v < 0.2):
            return Feedback.DISLIKE, None
        return None, None

    def complaint(
        self, t: float, query: _Query, feedback: Feedback | None, flag: str | None, slow: bool
    ) -> str | None:
        for surge in self.surges:
            if t >= self.at(surge.at) and self.rng.random() < surge.rate:
                return self.complaint_text(surge.topic)
        if feedback not in (Feedback.DISLIKE, Feedback.FLAG) or self.rng.random() > 0.35:
            return None
        topic = {"hallucination": "made-up", "unsafe": "unsafe"}.get(flag or "")
        topic = topic or ("slow" if slow else None)
        topic = topic or (query.topic if query.topic in COMPLAINT_TEMPLATES else "wrong-answer")
        return self.complaint_text(topic)

    def complaint_text(self, topic: str) -> str:
        r = self.rng
        body = r.choice(COMPLAINT_TEMPLATES[topic])
        return f"{r.choice(_COMPLAINT_PREFIX)}{body}{r.choice(_COMPLAINT_SUFFIX)}"

    def latency(self, t: float, completion_tokens: int) -> dict[str, float]:
        out = {}
        for stage in STAGES:
            base = self.c.latency_ms[stage] * self.rng.lognormvariate(0.0, self.c.latency_sigma)
            if stage == "generate":
                base *= max(completion_tokens, 8) / 40.0
            for e in self.slowdowns:
                base *= e.factor if e.component == stage and t >= self.at(e.at) else 1.0
            out[stage] = round(base, 3)
        out["total"] = round(sum(out.values()) + 2.0 * self.rng.lognormvariate(0, 0.3), 3)
        return out

    def memory(self, t: float) -> float:
        hours = (t - self.c.start) / 3600.0
        daily = 40.0 * math.sin(2 * math.pi * hours / 24.0)
        return round(self.c.memory_mb + 0.5 * hours + daily + self.rng.gauss(0, 15), 1)

    def versions(self, t: float) -> dict[str, str]:
        shifted = sum(t >= self.at(e.at) for e in self.shifts)
        launched = tuple(sorted(d for d, e in self.launches.items() if t >= self.at(e.at)))
        return dict(_versions(shifted, launched))


@functools.lru_cache(maxsize=64)
def _versions(shifted: int, launched: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Component fingerprints: an embedding shift is a new embedder (and index) version."""
    names = {
        "embedder": f"embedder-v{1 + shifted}",
        "index": f"index-v{1 + shifted}+{'+'.join(launched)}",
        "reranker": "reranker-v1",
        "generator": "generator-v1",
    }
    return tuple((k, fingerprint_json(v)) for k, v in names.items())


def resolve_time(when: When, start: float) -> float:
    """Epoch seconds of an event time: epoch seconds, an aware datetime, or start + timedelta."""
    if isinstance(when, timedelta):
        return start + when.total_seconds()
    if isinstance(when, datetime):
        return when.timestamp()
    return float(when)


def _first_sentences(text: str, n: int) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(parts[:n])


def _reformulate(text: str, rng: random.Random) -> str:
    """A near-duplicate retry: drop, add or swap one word (token Jaccard stays >= 0.6 mostly)."""
    words = text.split()
    op = rng.randrange(3)
    if op == 0 and len(words) >= 4:
        del words[rng.randrange(len(words))]
    elif op == 1 or len(words) < 2:
        words.append(rng.choice(_REFORMULATION_WORDS))
    else:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


# ----------------------------------------------------------------------------- sessions


def _arrivals(world: _World) -> list[float]:
    """Session start times: a Poisson process with a daily cycle, by thinning."""
    c, r = world.c, world.rng
    peak = c.sessions_per_hour * (1 + abs(c.diurnal)) / 3600.0
    t, end = c.start, c.start + c.hours * 3600.0
    out: list[float] = []
    while True:
        t += r.expovariate(peak)
        if t >= end:
            return out
        phase = math.sin(2 * math.pi * (t - c.start) / 86400.0)
        if r.random() < (1 + c.diurnal * phase) / (1 + abs(c.diurnal)):
            out.append(t)


def _session(world: _World, sid: str, t: float) -> list[dict[str, Any]]:
    r = world.rng
    domain = world.domains[world.pick_domain(t)]
    query, text, out = r.choice(domain.queries), None, []
    repeats = 0
    while True:
        text = text or query.text
        fields = _interaction(world, domain, query, text, t)
        out.append({"session_id": sid, **fields})
        relevant = any(query.grades.get(d, 0) > 0 for d in fields["clicked"])
        if not relevant and repeats < 2 and r.random() < world.c.repeat_probability:
            repeats += 1
            text, t = _reformulate(text, r), t + r.uniform(8.0, 90.0)
        elif r.random() < world.c.follow_up_probability:
            query, text, repeats = r.choice(domain.queries), None, 0
            t += r.uniform(30.0, 300.0)
        else:
            return out


def _interaction(world: _World, domain: _Domain, query: _Query, text: str, t: float):
    retrieved = world.retrieve(domain, query)
    shown = world.rerank(retrieved, query.grades)
    behaviour = world.browse(shown, query.grades)
    answer, grade, hallucinated = world.answer(domain, shown, query.grades)
    completion = int(1.3 * len(answer.split()))
    latency = world.latency(t, completion)
    slow = latency["total"] > 2.0 * sum(world.c.latency_ms.values())
    feedback, flag = world.feedback(grade, hallucinated)
    error = (
        "TimeoutError: generator did not answer"
        if world.rng.random() < world.c.error_rate
        else None
    )
    prompt_words = len(text.split()) + sum(domain.n_words[h.doc_id] for h in shown[:3])
    return {
        "timestamp": round(t, 3),
        "query": text,
        "query_id": query.qid,
        "domain": domain.name,
        "retrieved": retrieved,
        "reranked": shown,
        "answer": None if error else answer,
        "latency_ms": latency,
        "memory_mb": world.memory(t),
        "error": error,
        "tokens": {"prompt": int(1.3 * prompt_words) + 60, "completion": completion},
        "feedback": feedback,
        "flag_reason": flag,
        "complaint": world.complaint(t, query, feedback, flag, slow),
        "ab": _ab(world, domain, shown, query.grades, answer, grade, hallucinated),
        "versions": world.versions(t),
        **behaviour,
    }


def _ab(world: _World, domain: _Domain, shown, grades, answer: str, grade: int, halluc: bool):
    r = world.rng
    if r.random() >= world.c.ab_fraction or len(shown) < 2:
        return None
    alt = shown[1].doc_id
    b = _first_sentences(domain.texts[alt], 1)
    score_a = grade - 1.5 * halluc + r.gauss(0, 0.7)
    score_b = min(grades.get(alt, 0), 2) + r.gauss(0, 0.7)
    winner = "tie" if abs(score_a - score_b) < 0.3 else ("a" if score_a > score_b else "b")
    return {"a": answer, "b": b, "winner": winner}


# ----------------------------------------------------------------------------- entry points


def simulate(
    config: SimulationConfig,
    golden_dir: str | Path = "golden",
    embedder: QueryEmbedder | None = None,
) -> list[LogRecord]:
    """Simulated interaction records in ``[start, start + hours)``, sorted by time (a session
    running past the end is cut); the same config and seed give the same records."""
    _check_config(config)
    domains = {d: _load_domain(Path(golden_dir) / d) for d in config.domains}
    world = _World(config, domains)
    rows = []
    for i, t in enumerate(_arrivals(world)):
        rows += _session(world, f"s{config.seed}-{i:06d}", t)
    end = config.start + config.hours * 3600.0
    rows = sorted((row for row in rows if row["timestamp"] < end), key=lambda row: row["timestamp"])
    vectors = _query_vectors(world, rows, embedder)
    return [LogRecord(query_embedding=v, **row) for row, v in zip(rows, vectors, strict=True)]


def _check_config(config: SimulationConfig) -> None:
    for e in config.events:
        if isinstance(e, LatencyRegression) and e.component not in STAGES:
            raise ValueError(f"LatencyRegression component={e.component!r}; use one of {STAGES}")
        if isinstance(e, ComplaintSurge) and e.topic not in COMPLAINT_TEMPLATES:
            raise ValueError(
                f"ComplaintSurge topic={e.topic!r}; use one of {sorted(COMPLAINT_TEMPLATES)}"
            )
        if isinstance(e, NewDomainLaunch) and e.domain not in config.domains:
            raise ValueError(f"NewDomainLaunch domain={e.domain!r} is not in {config.domains}")


def _query_vectors(
    world: _World, rows: Sequence[Mapping[str, Any]], embedder: Any
) -> list[tuple[float, ...] | None]:
    """Embed each distinct query once; apply every embedding shift active at its time."""
    if embedder is None:
        return [None] * len(rows)
    texts = sorted({row["query"] for row in rows})
    encode = getattr(embedder, "encode_queries", None) or embedder.encode
    table = dict(zip(texts, np.asarray(encode(texts), dtype=np.float64), strict=True))
    rotations = [(world.at(e.at), e, _rotation(table[texts[0]].size, e)) for e in world.shifts]
    out: list[tuple[float, ...] | None] = []
    for row in rows:
        v = table[row["query"]]
        for at, e, rotation in rotations:
            v = e.norm_scale * (rotation @ v) if row["timestamp"] >= at else v
        out.append(tuple(np.round(np.asarray(v, dtype=np.float64), 6).tolist()))
    return out


def _rotation(dim: int, shift: EmbeddingShift) -> np.ndarray:
    from scipy.linalg import expm

    g = np.random.default_rng(shift.seed).standard_normal((dim, dim))
    return expm(shift.angle * (g - g.T) / math.sqrt(2 * dim))


def write_simulated_logs(
    out_dir: str | Path,
    config: SimulationConfig | None = None,
    golden_dir: str | Path = "golden",
    embedder: QueryEmbedder | None = None,
) -> tuple[Path, Path]:
    """Write ``reference.jsonl`` (before the first event) and ``current.jsonl`` (from it on).

    Without events the split is the middle of the simulated span. Returns both paths.
    """
    from guardrails.report.progress import timed

    config = config or demo_config()
    with timed("log simulation") as facts:
        records = simulate(config, golden_dir, embedder)
        times = [resolve_time(e.at, config.start) for e in config.events]
        split = min(times) if times else config.start + config.hours * 1800.0
        out = Path(out_dir)
        before = [r for r in records if r.timestamp < split]
        reference = write_logs(before, out / "reference.jsonl")
        current = write_logs([r for r in records if r.timestamp >= split], out / "current.jsonl")
        facts["records"] = len(records)
    return reference, current


class LSAEmbedder:
    """Latent semantic analysis (TF-IDF + truncated SVD) fitted on the corpora of the domains in
    ``golden``: a tiny, deterministic stand-in for a sentence embedder that still separates the
    domains (the simulator's tests and the drift calibration benchmark embed logs with it)."""

    def __init__(self, golden: str | Path, domains: Sequence[str], dim: int = 48) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [
            str(obj.get("text", ""))
            for d in domains
            for _, obj in read_jsonl(Path(golden) / d / "corpus.jsonl")
        ]
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(texts)
        self.svd = TruncatedSVD(dim, random_state=0).fit(self.vectorizer.transform(texts))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        x = self.svd.transform(self.vectorizer.transform(list(texts)))
        return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
