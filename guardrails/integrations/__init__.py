"""Bridges to other tools' registries and formats; each module imports its tool lazily."""
