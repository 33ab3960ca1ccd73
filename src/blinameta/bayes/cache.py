"""On-disk cache of fitted posteriors (ArviZ inference data as netCDF-4, via h5netcdf).

The key is a SHA-256 of the data, the model, the priors, the sampler settings, the seed and the
versions of blinameta, pymc, pytensor, nutpie, arviz and numpy, so that any change refits. Files
are written to a temporary file in the cache directory and moved into place with
:func:`os.replace`, so a reader never sees half a file and concurrent writers do not clash.

The cache is a convenience, never a reason to fail: a cache folder that cannot be used (a file
where the folder should be, no permission) is reported with a :class:`CacheWarning` *before*
sampling and bypassed; a cached file that cannot be read, was stored under another key, or whose
stored summaries are not sane (a mean outside its own interval, a non-finite number) is reported
and refitted; a failed write after sampling is a warning, and the result is still returned.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from blinameta.io import current_umask

__all__ = ["cache_dir", "cache_key", "load", "package_versions", "save", "CacheWarning", "usable"]


class CacheWarning(UserWarning):
    """The posterior cache was bypassed (unusable folder, corrupt or foreign file, failed write)."""

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


def usable(directory: Path) -> bool:
    """Whether the cache folder can be used; warns (once per call) and returns ``False`` if not."""
    folder = Path(directory) / "bayes"
    for path in (Path(directory), folder):
        if os.path.lexists(path) and not path.is_dir():
            warnings.warn(f"posterior cache bypassed: {path} is not a folder", CacheWarning, stacklevel=3)
            return False
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        warnings.warn(f"posterior cache bypassed: {folder} is not writable", CacheWarning, stacklevel=3)
        return False
    return True


_SUMMARIES = ("mu", "tau", "p_median", "p_mean", "p_new", "theta_new")


def _sane(result_json: str) -> str | None:
    """Why the stored summaries cannot be trusted, or ``None`` if they can."""
    try:
        data = json.loads(result_json)
    except (TypeError, ValueError):
        return "its stored result is not valid JSON"
    if not isinstance(data, dict):
        return "its stored result is not a JSON object"
    rows = [(name, data.get(name)) for name in _SUMMARIES if data.get(name) is not None]
    rows += [(f"study[{i}]", s) for i, s in enumerate(data.get("study") or [])]
    if not any(name == "mu" for name, _ in rows):
        return "its stored result has no summary of mu"
    from blinameta.bayes.fit import _fields_from_json

    try:
        _fields_from_json(result_json)
    except Exception:  # noqa: BLE001 - whatever is missing or mistyped
        return "its stored result is incomplete"
    for name, summary in rows:
        try:
            mean, lb, ub = (float(summary[k]) for k in ("mean", "lb", "ub"))
        except (TypeError, KeyError, ValueError):
            return f"the stored summary of {name} is incomplete"
        if not all(math.isfinite(v) for v in (mean, lb, ub)) or not lb <= mean <= ub:
            return f"the stored summary of {name} is not sane (mean {mean:g} outside [{lb:g}, {ub:g}])"
    return None


def load(key: str, directory: Path):
    """The cached inference data of ``key``, or ``None`` (unusable folder, unreadable, foreign or
    insane file; each but a plain miss is reported with a :class:`CacheWarning`)."""
    if not usable(directory):
        return None
    path = _path(directory, key)
    if not os.path.lexists(path):
        return None
    import xarray as xr

    try:
        if not path.is_file():
            raise OSError("not a regular file")
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            idata = tree.load().copy()
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a cache miss
        warnings.warn(f"posterior cache file {path} cannot be read ({type(exc).__name__}); refitting",
                      CacheWarning, stacklevel=2)
        return None
    stored_key = idata.attrs.get("blinameta_key")
    if stored_key is not None and stored_key != key:
        problem = "it was stored under another key"
    elif "blinameta_result" in idata.attrs:
        problem = _sane(idata.attrs["blinameta_result"])
    else:
        problem = None
    if problem is not None:
        warnings.warn(f"posterior cache file {path} is not used: {problem}; refitting", CacheWarning, stacklevel=2)
        return None
    return idata


def save(key: str, directory: Path, idata) -> Path | None:
    """Write ``idata`` atomically; return its path, or ``None`` (with a :class:`CacheWarning`) if
    it cannot be written. Non-numeric sample statistics are dropped."""
    try:
        return _save(key, Path(directory), idata)
    except (OSError, ValueError, RuntimeError) as exc:
        warnings.warn(f"posterior not cached in {directory}: {exc}", CacheWarning, stacklevel=2)
        return None


def _save(key: str, directory: Path, idata) -> Path:
    path = _path(directory, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = idata.copy()
    tree.attrs["blinameta_key"] = key
    if "sample_stats" in tree.children:
        stats = tree["sample_stats"].to_dataset()
        numeric = [n for n, v in stats.data_vars.items() if v.dtype.kind in "biuf"]
        tree["sample_stats"] = stats[numeric]
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".nc.tmp", dir=path.parent)
    os.close(fd)
    try:
        tree.to_netcdf(tmp, engine="h5netcdf")
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
