"""Atomic file writes: a failed or interrupted run never leaves a half-written file."""

from __future__ import annotations

import math
import os
import stat
import tempfile
import threading
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "current_umask", "read_regular_file", "json_safe"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the mode an ordinary ``open(path, "w")`` would give it (0644 under the usual
    umask 022), not the 0600 of :func:`tempfile.mkstemp`.

    With ``exclusive=True`` the write fails with :class:`FileExistsError` if ``path`` exists
    (checked again at the moment of the rename, by a hard link, so two writers cannot race).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, *, exclusive: bool = False) -> None:
    """Write UTF-8 text atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def read_regular_file(path: Path, limit: int, *, root: Path | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Folders, devices (``/dev/zero``) and pipes are refused before they are opened for reading
    (a FIFO would block), and the read itself stops at ``limit + 1`` bytes whatever ``stat``
    said. With ``root``, a symbolic link that leads outside ``root`` is refused.

    Raises
    ------
    OSError
        With a message for the user (``strerror``) when the file cannot or may not be read.
    """
    path = Path(path)
    if root is not None:
        real, top = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise OSError(f"a symbolic link to {real}, outside {root}; copy the file into the folder instead")
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise OSError(f"not a regular file ({kind})")
    if info.st_size > limit:
        raise OSError(f"file is {info.st_size} bytes; the limit is {limit} bytes")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the stat
            raise OSError("not a regular file")
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise OSError(f"file is larger than the limit of {limit} bytes")
    return raw


def json_safe(value):
    """Strict-JSON form of a result: numpy scalars and arrays to Python numbers and lists,
    NaN and infinity to None (``json.dumps(..., allow_nan=False)`` then never fails)."""
    import numpy as np

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
