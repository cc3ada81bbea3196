"""Which device a model runs or trains on: ``auto`` (CUDA when present, else Apple MPS, else
CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; resolved once per load, checked against what
torch can see, so a config asking for a GPU on a machine without one fails with the reason
instead of silently training on the CPU."""

from __future__ import annotations

import re

from guardrails.errors import ComponentError

__all__ = ["DEVICE_CHOICES", "check_device", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?|mps)$")


def check_device(device: str) -> str:
    """``device`` unchanged if it is one of :data:`DEVICE_CHOICES`, else :class:`ComponentError`."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ComponentError(f"device={device!r} is not one of {', '.join(DEVICE_CHOICES)}")
    return device


def resolve_device(device: str = "auto") -> str:
    """The torch device string for ``device``: ``auto`` picks CUDA, then MPS, then the CPU."""
    import torch

    check_device(device)
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "mps" if has_mps else "cpu"
    if device.startswith("cuda") and not has_cuda:
        raise ComponentError(
            f"device={device!r} but torch sees no CUDA device (torch {torch.__version__}, "
            "a CPU build?): use device='auto' or 'cpu'"
        )
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ComponentError(
            f"device={device!r} but torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    if device == "mps" and not has_mps:
        raise ComponentError("device='mps' but torch sees no Apple MPS device: use 'auto'")
    return device
