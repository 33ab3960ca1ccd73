"""Shared test settings: a fixed Hypothesis profile so that runs are reproducible."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("blinameta", derandomize=True, print_blob=True)
settings.load_profile("blinameta")
