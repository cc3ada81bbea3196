"""Root conftest: only what no configuration can say. The machines this runs on have no model
hub, so every Hugging Face library is told to stay offline before any test imports one. The
bundled demo's fixtures live in ``suites/conftest.py``; the library's own in ``tests/``."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
