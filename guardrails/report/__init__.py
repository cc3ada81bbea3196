"""Renderings of a verdict for people: terminal / Markdown (``markdown``), HTML (``html``)."""
