"""Scale-out on Ray Data: the drift statistics and the batch re-embed over blocks.

Nothing here runs unless asked: Ray is imported inside these functions only, and the default
path everywhere else stays in-process. The reduction is the in-process one, per block:
:func:`~guardrails.metrics.drift.summarize_embeddings_like` on the reference's edges gives
histograms (counts), vector sums, unit-vector sums and norm moments; blocks merge with
:func:`~guardrails.metrics.drift.merge_summaries` (counts and sums add; norm mean and squared
deviations combine by Chan et al., 1979), so :func:`ray_summarize_like` equals the in-process
summary (counts exactly, sums to float64 rounding) and :func:`ray_compare_embeddings` gives the
same PSI / KL / cosine to history / centroid shift / binned KS.

:func:`ray_reembed` runs ``map_batches`` with an actor that builds its embedder ONCE from a
picklable ``embedder_factory``; rows carry their position, so the output is in input order.

The command line and the configuration reach these through :func:`connect` (a
:class:`~guardrails.stack.ScaleoutConfig`: a local Ray, ``"auto"`` or ``"ray://host:10001"``),
:func:`summarizer` (the ``summarize`` hook of
:func:`~guardrails.monitoring.drift.compare_windows`) and :func:`encoder` (the ``encode`` hook of
:func:`~guardrails.components.reembed.apply_reembed` and ``batch_reembed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from guardrails.errors import ComponentError
from guardrails.metrics.drift import (
    EmbeddingDrift,
    EmbeddingSummary,
    Histogram,
    compare_embeddings,
    merge_summaries,
    summarize_embeddings_like,
)

__all__ = [
    "connect",
    "encoder",
    "ray_compare_embeddings",
    "ray_reembed",
    "ray_summarize_like",
    "summarizer",
]

_PARTS = ("vector_sum", "unit_sum", "norm_hist", "norm_fine", "ks_counts")
_MOMENTS = ("n", "norm_mean", "norm_m2", "norm_min", "norm_max")


def _ray() -> Any:
    """Ray, started locally on first use when nothing connected it before (see :func:`connect`)."""
    try:
        import ray
    except ImportError:
        raise ComponentError(
            "scale-out needs Ray: pip install 'ray[data]' (the in-process path needs nothing)"
        ) from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    return ray


def connect(config: Any) -> Any:
    """Connect to the Ray of ``config`` (a :class:`~guardrails.stack.ScaleoutConfig`) unless this
    process is already connected: ``address=None`` starts a local Ray (``num_cpus`` CPUs at
    most), ``"auto"`` joins the cluster this machine belongs to, ``"ray://host:10001"`` a remote
    one. A failed connection is a :class:`ComponentError` naming the address."""
    try:
        import ray
    except ImportError:
        raise ComponentError(
            "backend='ray' needs Ray: pip install 'ray[data]', or run in-process "
            "(--backend in-process)"
        ) from None
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if config.address is None:
        if config.num_cpus is not None:
            options["num_cpus"] = config.num_cpus
    else:
        options["address"] = config.address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = config.address or "a local Ray"
        raise ComponentError(
            f"cannot connect to Ray at address={where!r}: {exc}; check the address (e.g. "
            "'auto' or 'ray://head:10001') or run in-process (--backend in-process)"
        ) from None
    return ray


def summarizer(config: Any) -> Callable[[Any, EmbeddingSummary], EmbeddingSummary]:
    """The ``summarize`` hook of :func:`~guardrails.monitoring.drift.compare_windows` that
    reduces the current window on Ray in blocks of ``config.block_rows``."""
    connect(config)

    def summarize(vectors: Any, reference: EmbeddingSummary) -> EmbeddingSummary:
        return ray_summarize_like(vectors, reference, block_rows=config.block_rows)

    return summarize


def encoder(config: Any, embedder_factory: Callable[[], Any]) -> Callable[[list[str]], np.ndarray]:
    """The ``encode`` hook of :func:`~guardrails.components.reembed.apply_reembed`: texts
    embedded on ``config.concurrency`` Ray actors, each built once by ``embedder_factory``."""
    connect(config)

    def encode(texts: list[str]) -> np.ndarray:
        return ray_reembed(
            texts,
            embedder_factory,
            batch_size=config.batch_size,
            concurrency=config.concurrency,
        )

    return encode


def _dataset(ray: Any, vectors: Any, block_rows: int) -> Any:
    """A Ray dataset of rows ``{"vector": ...}``: an array (split in ``block_rows`` blocks),
    ``.npy`` paths, or a Ray dataset with a ``vector`` column."""
    if hasattr(vectors, "map_batches"):
        return vectors
    if isinstance(vectors, str | Sequence) and not isinstance(vectors, np.ndarray):
        paths = [vectors] if isinstance(vectors, str) else list(vectors)
        return ray.data.read_numpy(paths).rename_columns({"data": "vector"})
    x = np.asarray(vectors, dtype=np.float32)
    blocks = [x[i : i + block_rows] for i in range(0, x.shape[0], block_rows)]
    return ray.data.from_numpy(blocks).rename_columns({"data": "vector"})


def _block_summary(batch: dict[str, np.ndarray], reference: EmbeddingSummary, per_dim_ks: bool):
    """One block -> one row of summary parts (arrays flattened, moments as scalars)."""
    s = summarize_embeddings_like(
        np.stack(list(batch["vector"])), reference, per_dim_ks=per_dim_ks, chunk_rows=1 << 16
    )
    parts: dict[str, Any] = {
        "vector_sum": s.vector_sum,
        "unit_sum": s.unit_sum,
        "norm_hist": s.norm_hist.counts,
        "norm_fine": s.norm_fine.counts,
        "ks_counts": (s.ks_counts if s.ks_counts is not None else np.zeros((1, 1))).ravel(),
    }
    out = {k: np.asarray([v]) for k, v in parts.items()}
    out.update({k: np.asarray([getattr(s, k)]) for k in _MOMENTS})
    return out


def _summary_of(row: dict[str, Any], reference: EmbeddingSummary, per_dim_ks: bool):
    ks = None
    if per_dim_ks and reference.ks_counts is not None:
        ks = np.asarray(row["ks_counts"], np.int64).reshape(reference.ks_counts.shape)
    return EmbeddingSummary(
        int(row["n"]),
        reference.dim,
        np.asarray(row["vector_sum"], np.float64),
        np.asarray(row["unit_sum"], np.float64),
        float(row["norm_mean"]),
        float(row["norm_m2"]),
        float(row["norm_min"]),
        float(row["norm_max"]),
        Histogram(reference.norm_hist.edges, np.asarray(row["norm_hist"], np.int64)),
        Histogram(reference.norm_fine.edges, np.asarray(row["norm_fine"], np.int64)),
        reference.ks_edges if ks is not None else None,
        ks,
    )


def ray_summarize_like(
    vectors: Any,
    reference: EmbeddingSummary,
    *,
    block_rows: int = 65536,
    per_dim_ks: bool = True,
) -> EmbeddingSummary:
    """:func:`summarize_embeddings_like` over Ray Data blocks, merged on the driver."""
    ray = _ray()
    ds = _dataset(ray, vectors, block_rows)
    parts = ds.map_batches(
        _block_summary,
        fn_kwargs={"reference": reference, "per_dim_ks": per_dim_ks},
        batch_size=block_rows,
        batch_format="numpy",
    ).take_all()
    if not parts:
        raise ComponentError("ray_summarize_like: the dataset has no rows")
    summaries = [_summary_of(p, reference, per_dim_ks) for p in parts]
    total = summaries[0]
    for s in summaries[1:]:
        total = merge_summaries(total, s)
    return total


def ray_compare_embeddings(
    reference: EmbeddingSummary, vectors: Any, *, block_rows: int = 65536, per_dim_ks: bool = True
) -> EmbeddingDrift:
    """:func:`compare_embeddings` with the current side reduced on Ray."""
    current = ray_summarize_like(vectors, reference, block_rows=block_rows, per_dim_ks=per_dim_ks)
    return compare_embeddings(reference, current, per_dim_ks=per_dim_ks)


class _Embed:
    """Ray actor: builds the embedder once, then embeds each batch of texts."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.embedder = factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        documents = getattr(self.embedder, "encode_documents", None)
        if documents is not None:  # guardrails' Embedder: no progress log inside an actor
            vectors = documents(texts, progress=False)
        else:
            vectors = self.embedder.encode(texts)
        vectors = np.asarray(vectors, dtype=np.float32)
        return {"row": batch["row"], "vector": vectors}


def ray_reembed(
    texts: Sequence[str],
    embedder_factory: Callable[[], Any],
    *,
    batch_size: int = 256,
    concurrency: int = 1,
) -> np.ndarray:
    """Embed ``texts`` on Ray actors built by ``embedder_factory``; ``(n, dim)`` in input order."""
    ray = _ray()
    if not texts:
        raise ComponentError("ray_reembed: no texts to embed")
    items = [{"row": i, "text": t} for i, t in enumerate(texts)]
    ds = ray.data.from_items(items).map_batches(
        _Embed,
        fn_constructor_kwargs={"factory": embedder_factory},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
    )
    rows = ds.take_all()
    out = np.empty((len(texts), len(rows[0]["vector"])), dtype=np.float32)
    for r in rows:
        out[int(r["row"])] = r["vector"]
    return out
