"""Helpers shared by the reliability suite (tests/test_reliability_*.py).

Every case of the suite ends in one of two ways, as issue 15 asks: a clean error (exit status
2, a one-line message naming the file and line or the row and column, no traceback) or a
correct result; and evidence/ and models/ are byte-identical afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from blinameta.cli import main

ROOT = Path(__file__).parent.parent
SRC = ROOT / "src"


def make_project(root: Path, models: tuple[str, ...] = ("crs_any",)) -> Path:
    """A copy of the evidence and of a few model files under ``root``; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "evidence", root / "evidence")
    (root / "models").mkdir()
    for name in models:
        shutil.copy(ROOT / "models" / f"{name}.yaml", root / "models" / f"{name}.yaml")
    return root


def run(capsys, args: list[str]) -> tuple[int, str, str]:
    """Run the command line in-process; return (status, stdout, stderr), never a traceback."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return status, out, err


def assert_clean_error(status: int, err: str, *fragments: str) -> None:
    """Exit status 2 and a message containing every fragment."""
    assert status == 2, err
    assert err.startswith("error: ") or ": error: " in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def cli_process(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """Start ``blinameta ARGS`` as a real process (for kills, signals and concurrency)."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-m", "blinameta.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def report_is_complete(out: Path) -> bool:
    """A report folder whose manifest is ours and lists files that are all present and unchanged."""
    from blinameta.report.outdir import read_manifest, verify_files

    manifest = read_manifest(out)
    return manifest is not None and "files" in manifest and not verify_files(out, manifest["files"])


def leftovers(root: Path) -> list[str]:
    """Temporary or backup folders of a report run left in ``root``."""
    return [p.name for p in root.iterdir() if p.name.startswith(".reports.")]


def built_project(tmp_path_factory, name: str, models: tuple[str, ...] = ("hr_os",)) -> Path:
    """A project with one fast analysis and its report (for a module-scoped fixture)."""
    from blinameta.report import build_report

    root = make_project(tmp_path_factory.mktemp(name) / "p", models=models)
    build_report(root / "evidence", root / "models", root / "reports")
    return root


def copy_project(built: Path, tmp_path: Path) -> Path:
    """A private copy of a built project (symbolic links kept as links)."""
    root = tmp_path / "p"
    shutil.copytree(built, root, symlinks=True)
    return root
