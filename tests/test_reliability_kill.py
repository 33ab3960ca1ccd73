"""Reliability: kill -9, Ctrl-C and two runs at once during ``blinameta report`` (audit §9).

Real processes are killed at spread-out moments of a run; after every kill the report folder
must hold a complete report (every file of its manifest present and unchanged), without any
recovery step, and the next run must finish cleanly and leave no temporary folder behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from reliability_support import built_project, cli_process, copy_project, leftovers, report_is_complete

from blinameta.report import build_report


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_project(tmp_path_factory, "kill")


@pytest.fixture
def project(built, tmp_path) -> Path:
    return copy_project(built, tmp_path)


def _start(root: Path, *extra: str):
    return cli_process(["report", "-q", "--force", *extra], cwd=root)


def _children(pid: int) -> list[int]:
    """The process' children (Linux /proc), e.g. the report's worker processes."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_a_complete_report(project, folder_digest):
    evidence_before, models_before = folder_digest(project / "evidence"), folder_digest(project / "models")
    t0 = time.monotonic()
    proc = _start(project)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    duration = time.monotonic() - t0
    kills = 0
    orphans_checked = 0
    for fraction in (0.15, 0.35, 0.55, 0.7, 0.8, 0.88, 0.94, 0.98):
        proc = _start(project)
        time.sleep(duration * fraction)
        if proc.poll() is None:
            kills += 1
        workers = _children(proc.pid) if proc.poll() is None else []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # the workers die with the report (an orphan would hold its output lock: the next run hung)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), f"worker processes outlived a kill at {fraction:.0%}"
        orphans_checked += bool(workers)
        proc.stdout.close()
        proc.stderr.close()
        assert report_is_complete(project / "reports"), f"incomplete report after a kill at {fraction:.0%} of a run"
    assert kills >= 4 and orphans_checked >= 1
    proc = cli_process(["report", "-q"], cwd=project)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert report_is_complete(project / "reports") and not leftovers(project)
    assert (folder_digest(project / "evidence"), folder_digest(project / "models")) == (evidence_before, models_before)


def _wait_for_staging(root: Path, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not leftovers(root):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_ctrl_c_exits_non_zero_and_keeps_the_old_report(project, folder_digest, sig):
    before = folder_digest(project / "reports")
    proc = _start(project)
    _wait_for_staging(project, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    status = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert status != 0, err
    assert "Traceback" not in err and "aborted" in err
    assert folder_digest(project / "reports") == before
    assert not leftovers(project)


@pytest.mark.slow
def test_two_reports_at_once_both_finish_and_leave_a_complete_report(project):
    procs = [_start(project), _start(project)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert report_is_complete(project / "reports") and not leftovers(project)


def test_a_crash_between_the_two_renames_is_recovered(project, monkeypatch, capsys):
    """Where the kernel has no atomic exchange, a crash between the renames loses nothing."""
    from blinameta.report import outdir

    monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    renames = []
    real_rename = os.rename

    def rename(src, dst):
        renames.append((src, dst))
        if len(renames) == 2:  # the process "dies" right after moving the old report aside
            raise SystemExit("killed")
        real_rename(src, dst)

    monkeypatch.setattr(outdir.os, "rename", rename)
    monkeypatch.setattr(outdir, "_remove", lambda path: None)  # a dead process removes nothing
    with pytest.raises(SystemExit):
        build_report(project / "evidence", project / "models", project / "reports", force=True)
    monkeypatch.undo()
    assert report_is_complete(project / "reports")  # rolled back by the failed swap itself
    # and if the rollback never ran (kill -9): the report is missing, the backup is restored next time
    backup = project / ".reports.old-1"
    (project / "reports").rename(backup)
    summary = build_report(project / "evidence", project / "models", project / "reports")
    assert summary.unchanged and any("restored the report" in n for n in summary.notes)
    assert report_is_complete(project / "reports") and not leftovers(project)
    assert json.loads((project / "reports" / "manifest.json").read_text())["generator"] == "blinameta report"
