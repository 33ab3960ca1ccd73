"""The report's output folder: which folders may be written, and how they are replaced.

Rules (issue 15, "the report writes only what it owns"):

- ``--out`` must be a folder that does not exist yet, is empty, or carries the report's own
  marker: a ``manifest.json`` written by ``blinameta report``. Anything else is refused.
- ``--out`` may not be, contain or lie above the evidence folder, the models folder, the
  source documents' folder or the project root (the folder holding ``evidence/``), and may not
  be the current folder or one of its parents; it may not lie inside evidence/, models/ or the
  sources either.
- The new report is built in a hidden sibling folder ``.<name>.new-*`` and swapped in with one
  atomic ``renameat2(RENAME_EXCHANGE)`` where the kernel offers it (else two renames, recovered
  at the next run), so a kill at any moment leaves a complete report.
- Files a user put inside the report folder (anything the manifest does not list) are carried
  into the new report; if one stands where the new report writes a file, the run is refused.
- One run at a time per parent folder (``flock`` on the parent folder, released by the kernel
  if the process dies), so at the start of a run every ``.<name>.new-*`` / ``.<name>.old-*``
  left in the parent belongs to a dead run: the newest backup (by modification time) is
  restored if the report is missing, and the rest are removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

from blinameta.errors import UserError

__all__ = [
    "MANIFEST",
    "GENERATOR",
    "check_out_dir",
    "read_manifest",
    "owned_files",
    "file_digests",
    "verify_files",
    "output_lock",
    "recover",
    "carry_user_files",
    "user_files",
    "refuse_in_the_way",
    "swap_in",
    "interrupts",
    "signals_blocked",
    "Interrupted",
]

#: The report's marker: a JSON manifest with ``"generator": GENERATOR``.
MANIFEST = "manifest.json"
GENERATOR = "blinameta report"
#: Top-level names a report folder made by an older blinameta (manifest without a file list) owns.
_LEGACY_TOP = ("index.html", "evidence.html", "style.css", MANIFEST, "methods.html", "studies.html", "history.json",
               "summary_of_findings.csv", "flow.svg", "flow.png")


def _is_relative_to(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The report's manifest in ``out_dir``, or ``None`` if there is no valid one."""
    path = out_dir / MANIFEST
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 50_000_000:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("generator") == GENERATOR and isinstance(data.get("files"), dict):
        return data
    # a report written before the manifest named its generator and files (format <= 3)
    if isinstance(data.get("index_key"), str) and isinstance(data.get("analyses"), dict):
        return data
    return None


def check_out_dir(out_dir: Path, *, protected: dict[str, Path], project_root: Path | None) -> Path:
    """Return the real path of ``out_dir`` after checking that the report may write it.

    Parameters
    ----------
    out_dir
        The ``--out`` folder as given.
    protected
        Folders the report may not be, contain or lie inside (name -> path), e.g. evidence/.
    project_root
        The folder holding evidence/: the report may lie inside it but may not be it or above it.

    Raises
    ------
    UserError
        With the reason, if the folder is refused.
    """
    given = out_dir
    real = Path(os.path.realpath(out_dir))
    cwd = Path(os.path.realpath(Path.cwd()))
    if real == Path(real.anchor) or _is_relative_to(cwd, real):
        raise UserError(f"--out {given}: the report may not be written into the current folder or one of its "
                        "parents; give a folder of its own, e.g. reports")
    if project_root is not None and _is_relative_to(Path(os.path.realpath(project_root)), real):
        raise UserError(f"--out {given}: the report folder would contain the project folder "
                        f"{os.path.realpath(project_root)}; give a folder of its own, e.g. reports")
    for name, folder in protected.items():
        folder = Path(os.path.realpath(folder))
        if _is_relative_to(folder, real):
            raise UserError(f"--out {given}: the report folder would contain the {name} folder {folder}; "
                            "give a folder of its own, e.g. reports")
        if _is_relative_to(real, folder):
            raise UserError(f"--out {given}: the report may not be written inside the {name} folder {folder}")
    if os.path.lexists(real) and not real.is_dir():
        raise UserError(f"--out {given}: is not a folder")
    if real.is_dir() and read_manifest(real) is None:
        try:
            entries = sorted(p.name for p in real.iterdir())
        except OSError as exc:
            raise UserError(f"--out {given}: cannot read the folder ({exc.strerror})") from None
        if entries:
            shown = ", ".join(repr(e) for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise UserError(f"--out {given}: the folder is not empty ({shown}) and is not a report written by "
                            f"blinameta (no {MANIFEST} of ours); give a new or empty folder")
    return real


def owned_files(out_dir: Path, manifest: dict[str, Any] | None) -> set[str]:
    """Relative paths (POSIX) of the files the report in ``out_dir`` wrote, its manifest included."""
    if manifest is None:
        return set()
    if isinstance(manifest.get("files"), dict):
        return {str(p) for p in manifest["files"]} | {MANIFEST}
    owned = set(_LEGACY_TOP)
    owned.update(p.name for p in out_dir.glob("rob_*_*.*") if p.is_file() and p.suffix in (".png", ".svg"))
    for aid in manifest.get("analyses", {}):
        if not isinstance(aid, str) or "/" in aid or aid.startswith("."):
            continue
        owned.add(f"analyses/{aid}.html")
        folder = out_dir / "analyses" / aid
        if folder.is_dir() and not folder.is_symlink():
            owned.update(p.relative_to(out_dir).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return owned


def _walk(folder: Path) -> Iterator[Path]:
    """Every file, symbolic link and empty folder below ``folder`` (links are not followed)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        for name in list(dirnames):
            path = base / name
            if path.is_symlink():
                dirnames.remove(name)
                yield path
            elif not any(path.iterdir()):
                yield path
        for name in filenames:
            yield base / name


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file below ``folder`` but the manifest, by relative POSIX path."""
    out = {}
    for path in sorted(_walk(folder)):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST and path.is_file() and not path.is_symlink():
            out[rel] = _sha256(path)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(out_dir: Path, digests: dict[str, str]) -> list[str]:
    """Relative paths among ``digests`` that are missing or changed in ``out_dir``."""
    bad = []
    for rel, digest in sorted(digests.items()):
        path = out_dir / rel
        try:
            ok = path.is_file() and not path.is_symlink() and _sha256(path) == digest
        except OSError:
            ok = False
        if not ok:
            bad.append(rel)
    return bad


@contextlib.contextmanager
def output_lock(parent: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder ``parent`` (blocking; released on exit or death)."""
    fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _leftovers(out_dir: Path, kind: str) -> list[Path]:
    return [p for p in out_dir.parent.glob(f".{out_dir.name}.{kind}-*") if p.is_dir() and not p.is_symlink()]


def recover(out_dir: Path) -> list[str]:
    """Finish what a dead run left (call with :func:`output_lock` held); return notes.

    If the report folder is missing, the newest backup (``.<name>.old-*``, by modification time,
    then name) becomes the report again; every other backup and staging folder is removed.
    """
    notes = []
    backups = sorted(_leftovers(out_dir, "old"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not os.path.lexists(out_dir) and backups:
        newest = backups.pop()
        os.rename(newest, out_dir)
        notes.append(f"{out_dir}: restored the report from {newest.name}, left by an interrupted run")
    for stale in backups + _leftovers(out_dir, "new"):
        _remove(stale)
    return notes


def user_files(out_dir: Path, owned: set[str]) -> list[str]:
    """Relative paths below ``out_dir`` that the report does not own (files, links, empty folders)."""
    if not out_dir.is_dir():
        return []
    return [rel for rel in (p.relative_to(out_dir).as_posix() for p in sorted(_walk(out_dir))) if rel not in owned]


def refuse_in_the_way(out_dir: Path, in_the_way: list[str]) -> None:
    """Raise a :class:`UserError` naming the user's files that stand where the report writes."""
    if in_the_way:
        shown = ", ".join(str(out_dir / rel) for rel in in_the_way[:5])
        more = f" and {len(in_the_way) - 5} more" if len(in_the_way) > 5 else ""
        raise UserError(f"files the report did not write stand where it writes its own: {shown}{more}; "
                        "move them elsewhere (the previous report is kept)")


def carry_user_files(out_dir: Path, staging: Path, owned: set[str]) -> list[str]:
    """Copy (hard-link where possible) the files in ``out_dir`` that the report does not own.

    Raises
    ------
    UserError
        If a user's file stands where the new report wrote one.
    """
    carried, in_the_way = [], []
    for rel in user_files(out_dir, owned):
        path, target = out_dir / rel, staging / rel
        if os.path.lexists(target) and not (path.is_dir() and target.is_dir()):
            in_the_way.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        elif path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
        carried.append(rel)
    refuse_in_the_way(out_dir, in_the_way)
    return carried


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); ``False`` if not supported here."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(staging: Path, out_dir: Path) -> None:
    """Put the complete report ``staging`` at ``out_dir`` and remove the old one."""
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
        return
    if _exchange(staging, out_dir):
        _remove(staging)  # now the old report
        return
    backup = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    os.utime(out_dir)  # the newest backup is the one recovered
    os.rename(out_dir, backup)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(backup, out_dir)
        raise
    _remove(backup)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived during a report run."""


@contextlib.contextmanager
def interrupts() -> Iterator[threading.Event]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` and remember that they came.

    The event stays set even if a library swallows the exception (matplotlib ignores exceptions
    raised in weakref callbacks), so the caller checks it before the swap.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):  # noqa: ARG001
        event.set()
        raise Interrupted()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Defer SIGINT and SIGTERM for the few system calls of the swap."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
