"""Shared fixtures for the library's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data beside the checkout (``../shared/data``); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for a module: tiny models train ~20x faster on one thread than on
    two contended ones (pytest-xdist runs two workers on two cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def local_ray() -> Iterator[object]:
    """A local Ray on one CPU for the session (scale-out tests); skips when Ray is not
    installed or cannot start here."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        try:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # any failure to start means "cannot test here"
            pytest.skip(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    yield ray
    ray.shutdown()
