"""Shared test settings: a fixed Hypothesis profile so that runs are reproducible."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("blinameta", derandomize=True, print_blob=True)
settings.load_profile("blinameta")


def _folder_digest(folder):
    """SHA-256 over the names and contents of every file below ``folder``."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


import pytest  # noqa: E402


@pytest.fixture
def folder_digest():
    """Function that hashes a folder, to show that a command left it untouched."""
    return _folder_digest
