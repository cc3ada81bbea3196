"""peft adapter methods a config can name: one builder from our config to peft's own config.

``method`` (a field of :class:`~guardrails.training.config.RetrieverTrainingConfig` and
:class:`~guardrails.training.config.RerankerTrainingConfig`) picks the parameter-efficient
update of each targeted linear layer ``W`` (``d × k``); the shape fields ``lora_r``,
``lora_alpha``, ``lora_dropout``, ``target_modules`` and ``lora_layers`` mean the same for every
method that has a rank:

* ``"lora"`` (Hu et al., 2021, arXiv:2106.09685): ``ΔW = (α/r) · B A``, ``B ∈ R^{d×r}``,
  ``A ∈ R^{r×k}``; ``r (d + k)`` trainable numbers per layer.
* ``"ia3"`` (Liu et al., 2022, arXiv:2205.05638): a learned vector ``l`` rescales the layer's
  output (``l ⊙ W x``) or, for the ``feedforward_modules``, its input (``W (l ⊙ x)``);
  ``d`` (or ``k``) numbers per layer, no rank, no dropout; starts at ``l = 1`` (identity).
* ``"loha"`` (Hyeon-Woo et al., 2022, "FedPara", arXiv:2108.06098): a Hadamard product of two
  low-rank products, ``ΔW = (α/r) · (B₁ A₁) ⊙ (B₂ A₂)``; ``2 r (d + k)`` numbers, rank up to
  ``r²``. ``lora_dropout`` is its rank dropout.
* ``"lokr"`` (Yeh et al., 2023, "LyCORIS", arXiv:2309.14859): a Kronecker product
  ``ΔW = (α/r) · C ⊗ (B A)`` with a small full ``C``; ``lora_dropout`` is its rank dropout.

All four are saved by peft as ``adapter_config.json`` + ``adapter_model.safetensors`` and load
through the same ``load_adapter`` as a LoRA (``Embedder.load(base, adapter=...)``,
``Reranker.load``); each can be merged into the base weights for serving.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from guardrails.errors import TrainingError

__all__ = [
    "PEFT_METHODS",
    "adapter_config",
    "adapter_parameter_count",
    "check_method",
    "count_trainable",
]

PEFT_METHODS = ("lora", "ia3", "loha", "lokr")


def check_method(owner: str, method: str) -> None:
    """Raise :class:`TrainingError` unless ``method`` is one of :data:`PEFT_METHODS`."""
    if method not in PEFT_METHODS:
        raise TrainingError(
            f"{owner}: method={method!r} is not a peft method we build; "
            f"allowed values: {list(PEFT_METHODS)}"
        )


def adapter_config(config: Any, *, modules_to_save: list[str] | None = None) -> Any:
    """peft's config for ``config.method`` with ``config``'s shape fields.

    ``config`` has ``method``, ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``
    and optionally ``lora_layers`` (``()`` = every layer) and ``feedforward_modules`` (IA3).
    """
    method = getattr(config, "method", "lora")
    owner = type(config).__name__
    check_method(owner, method)
    targets = list(config.target_modules)
    layers = list(getattr(config, "lora_layers", ())) or None
    if method == "lora":
        from peft import LoraConfig

        return LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            layers_to_transform=layers,
            modules_to_save=modules_to_save,
        )
    if method == "ia3":
        from peft import IA3Config

        feedforward = list(getattr(config, "feedforward_modules", ()))
        if not set(feedforward) <= set(targets):
            raise TrainingError(
                f"{owner}: feedforward_modules={feedforward} must be a subset of "
                f"target_modules={targets} (IA3 rescales the input of those layers)"
            )
        if layers is not None:
            raise TrainingError(
                f"{owner}: method='ia3' cannot restrict lora_layers={layers} (peft's IA3 has "
                "no layers_to_transform); leave lora_layers empty"
            )
        return IA3Config(
            target_modules=targets,
            feedforward_modules=feedforward,
            modules_to_save=modules_to_save,
        )
    from peft import LoHaConfig, LoKrConfig

    cls = LoHaConfig if method == "loha" else LoKrConfig
    return cls(
        r=config.lora_r,
        alpha=config.lora_alpha,
        rank_dropout=config.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        modules_to_save=modules_to_save,
    )


def count_trainable(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of a torch module."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def adapter_parameter_count(folder: str | Path) -> int:
    """Numbers stored in ``<folder>/adapter_model.safetensors`` (the trained parameters of a
    peft adapter), read from the safetensors header without loading a tensor."""
    path = Path(folder) / "adapter_model.safetensors"
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError) as exc:
        raise TrainingError(f"cannot read the adapter weights path={str(path)!r}: {exc}") from exc
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
