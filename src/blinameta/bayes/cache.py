"""On-disk cache of fitted posteriors (ArviZ inference data as netCDF-4, via h5netcdf).

The key is a SHA-256 of the data, the model, the priors, the sampler settings, the seed and the
versions of blinameta, pymc, pytensor, nutpie, arviz and numpy, so that any change refits. Files
are written to a temporary file in the cache directory and moved into place with
:func:`os.replace`, so a reader never sees half a file and concurrent writers do not clash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "cache_key", "load", "package_versions", "save"]

_PACKAGES = ("blinameta", "pymc", "pytensor", "nutpie", "arviz", "numpy")
#: Bump when the stored layout or the meaning of a cached file changes.
_FORMAT = 1


def package_versions() -> dict[str, str]:
    """Versions of the packages that can change a posterior (without importing them)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - source tree without metadata
            out[name] = "unknown"
    return out


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``path``, else ``$BLINAMETA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/blinameta``, else ``~/.cache/blinameta``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("BLINAMETA_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "blinameta"


def cache_key(spec_json: str, settings: dict[str, Any]) -> str:
    """SHA-256 hex digest of the model description, the settings and the package versions."""
    payload = json.dumps(
        {
            "format": _FORMAT,
            "spec": spec_json,
            "settings": settings,
            "versions": package_versions(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _path(directory: Path, key: str) -> Path:
    return directory / "bayes" / f"{key}.nc"


def load(key: str, directory: Path):
    """The cached inference data of ``key``, or ``None`` (also for an unreadable file)."""
    path = _path(directory, key)
    if not path.is_file():
        return None
    import xarray as xr

    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return tree.load().copy()
    except (OSError, ValueError, KeyError):
        return None


def save(key: str, directory: Path, idata) -> Path:
    """Write ``idata`` atomically; return its path. Non-numeric sample statistics are dropped."""
    path = _path(directory, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = idata.copy()
    if "sample_stats" in tree.children:
        stats = tree["sample_stats"].to_dataset()
        numeric = [n for n, v in stats.data_vars.items() if v.dtype.kind in "biuf"]
        tree["sample_stats"] = stats[numeric]
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".nc.tmp", dir=path.parent)
    os.close(fd)
    try:
        tree.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
