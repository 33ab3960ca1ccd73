"""blinameta: evidence synthesis for blinatumomab in pediatric relapsed/refractory B-ALL."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from blinameta.errors import UserError

try:
    __version__ = version("blinameta")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["UserError", "__version__"]
