"""What every component checks before loading a peft adapter folder."""

from __future__ import annotations

from pathlib import Path

from guardrails.errors import ComponentError

__all__ = ["ADAPTER_FILES", "check_adapter_dir"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def check_adapter_dir(path: Path) -> None:
    """Raise :class:`ComponentError` naming ``path`` unless it is a saved peft adapter."""
    if not path.is_dir():
        raise ComponentError(f"adapter path={str(path)!r} does not exist or is not a folder")
    missing = [name for name in ADAPTER_FILES if not (path / name).is_file()]
    if missing:
        raise ComponentError(
            f"adapter path={str(path)!r} is not a peft adapter folder: missing "
            f"{', '.join(missing)} (save it with PeftModel.save_pretrained(path))"
        )
