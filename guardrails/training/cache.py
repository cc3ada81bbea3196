"""A fingerprint-keyed cache of trained adapters, safe under ``pytest -n``.

An adapter lands in ``<root>/<component>/<fingerprint>/`` in peft's own format, beside
``training_record.json`` (config, data fingerprint, seed, versions, loss curve, wall time, and
the curated datasets' datasheets the data came from: path + sha256, see
:mod:`guardrails.training.mix`).
The fingerprint covers the config, the training data, the base model and the library versions,
so a changed config or data set can never reuse a stale adapter, and an unchanged one is never
retrained. A file lock makes concurrent workers train once: the first trains into a temp folder
and renames it into place; the others wait and load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from guardrails.artifacts import atomic_folder, fingerprint_json
from guardrails.errors import TrainingError
from guardrails.verdict.provenance import library_versions

__all__ = [
    "RECORD_FILE",
    "TRAINING_LIBRARIES",
    "CandidateArtifact",
    "TrainingRecord",
    "candidate_fingerprint",
    "ensure_candidate",
]

RECORD_FILE = "training_record.json"
TRAINING_LIBRARIES = ("torch", "transformers", "sentence-transformers", "peft", "trl", "accelerate")
LossCurve = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class TrainingRecord:
    component: str
    fingerprint: str
    config: Mapping[str, Any]
    data_fingerprint: str
    base_fingerprint: str
    seed: int
    versions: Mapping[str, str]
    loss_curve: tuple[tuple[int, float], ...]
    wall_time_s: float
    created_at: str
    extra: Mapping[str, Any]
    # one mapping per curated set mixed into the data (DatasheetRef.as_record(): the datasheet's
    # path and sha256, the rows file's path and sha256, rows available / used); () = golden only
    datasheets: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class CandidateArtifact:
    """A trained (or loaded) adapter: where it is, what it is, and whether this call trained."""

    component: str
    path: Path
    fingerprint: str
    record: TrainingRecord
    trained: bool


def _config_dict(config: Any) -> dict[str, Any]:
    """The config's identity: every field but those marked ``identity=False`` (the device),
    and those marked ``identity="unless-default"`` while they hold their default (fields added
    after adapters were cached: a default config keeps the fingerprint it had before)."""
    if is_dataclass(config) and not isinstance(config, type):
        values = asdict(config)
        for f in fields(config):
            mark = f.metadata.get("identity")
            if mark is False or (mark == "unless-default" and values[f.name] == f.default):
                values.pop(f.name)
        return values
    if isinstance(config, Mapping):
        return dict(config)
    raise TrainingError(f"training config must be a dataclass or a mapping, got {config!r:.80}")


def candidate_fingerprint(
    component: str, config: Any, data_fingerprint: str, base_fingerprint: str
) -> str:
    """Identity of the adapter these inputs would train (config + data + base + versions)."""
    return fingerprint_json(
        {
            "component": component,
            "config": _config_dict(config),
            "data": data_fingerprint,
            "base": base_fingerprint,
            "versions": library_versions(TRAINING_LIBRARIES),
        }
    )


def _short(fingerprint: str) -> str:
    return fingerprint.split(":", 1)[-1][:16]


def load_record(folder: Path) -> TrainingRecord:
    data = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    data["loss_curve"] = tuple(tuple(x) for x in data["loss_curve"])
    data["datasheets"] = tuple(data.get("datasheets", ()))
    return TrainingRecord(**data)


def ensure_candidate(
    component: str,
    config: Any,
    *,
    data_fingerprint: str,
    base_fingerprint: str,
    train: Callable[[Path], LossCurve | tuple[LossCurve, Mapping[str, Any]]],
    root: str | Path = "adapters",
    seed: int | None = None,
    timeout_s: float = 6 * 3600,
    datasheets: Sequence[Any] = (),
) -> CandidateArtifact:
    """Load the adapter for these inputs, or train it once (under a file lock).

    ``train(out_dir)`` writes the adapter into ``out_dir`` and returns its loss curve
    (``[(step, loss), ...]``), optionally with a dict of extra facts for the record.
    ``datasheets`` (:class:`~guardrails.training.mix.DatasheetRef` items) name the curated sets
    in the data; their sha256 are part of the fingerprint, so the record of a cached adapter
    always names the datasheets it was trained with.
    """
    from filelock import FileLock

    sheets = tuple(_sheet(d) for d in datasheets)
    if sheets:  # how the rows were curated joins the rows' identity (paths do not: a moved
        # checkout keeps its adapters)
        identity = [{k: s[k] for k in sorted(s) if k.endswith("sha256")} for s in sheets]
        data_fingerprint = fingerprint_json({"data": data_fingerprint, "datasheets": identity})
    fingerprint = candidate_fingerprint(component, config, data_fingerprint, base_fingerprint)
    folder = Path(root) / component / _short(fingerprint)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=timeout_s):
        if (folder / RECORD_FILE).is_file():
            return CandidateArtifact(component, folder, fingerprint, load_record(folder), False)
        record = _train_into(
            folder,
            component,
            config,
            (fingerprint, data_fingerprint, base_fingerprint),
            train,
            seed,
            sheets,
        )
    return CandidateArtifact(component, folder, fingerprint, record, True)


def _sheet(ref: Any) -> dict[str, Any]:
    record = ref.as_record() if hasattr(ref, "as_record") else ref
    if not isinstance(record, Mapping) or not {"datasheet", "datasheet_sha256"} <= set(record):
        raise TrainingError(
            f"datasheets item {ref!r:.80} names no datasheet; pass "
            "guardrails.training.mix.DatasheetRef items (datasheet_ref(path, ...))"
        )
    return dict(record)


def _train_into(
    folder: Path,
    component: str,
    config: Any,
    fingerprints: tuple[str, str, str],
    train: Callable[[Path], Any],
    seed: int | None,
    sheets: tuple[dict[str, Any], ...],
) -> TrainingRecord:
    fingerprint, data_fp, base_fp = fingerprints
    with atomic_folder(folder) as tmp:  # a partial folder of a crashed run is replaced whole
        start = time.perf_counter()
        out = train(tmp)
        curve, extra = (
            out
            if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)
            else (out, {})
        )
        cfg = _config_dict(config)
        record = TrainingRecord(
            component=component,
            fingerprint=fingerprint,
            config=cfg,
            data_fingerprint=data_fp,
            base_fingerprint=base_fp,
            seed=int(seed if seed is not None else cfg.get("seed", 0)),
            versions=library_versions(TRAINING_LIBRARIES),
            loss_curve=tuple((int(s), float(v)) for s, v in curve),
            wall_time_s=round(time.perf_counter() - start, 3),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            extra=dict(extra),
            datasheets=sheets,
        )
        (tmp / RECORD_FILE).write_text(
            json.dumps(asdict(record), indent=2, sort_keys=True), encoding="utf-8"
        )
    return load_record(folder)  # as a later load sees it (JSON: tuples become lists)
