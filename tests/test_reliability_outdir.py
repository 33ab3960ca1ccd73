"""Reliability: the report's output folder (issue 15, audit §1 and §9).

``report --out`` may write only what it owns: new, empty or report folders; never a folder
that is, contains or lies above evidence/, models/, the sources or the project; a user's files
inside the report folder survive a rebuild; an interrupted swap is recovered deterministically.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from reliability_support import (
    assert_clean_error,
    built_project,
    copy_project,
    leftovers,
    report_is_complete,
    run,
)

from blinameta.report import build_report
from blinameta.report.outdir import MANIFEST, read_manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_project(tmp_path_factory, "outdir")


@pytest.fixture
def project(built, tmp_path) -> Path:
    return copy_project(built, tmp_path)


def _report(capsys, root: Path, out, *extra) -> tuple[int, str, str]:
    return run(capsys, ["report", "-q", "--evidence", root / "evidence", "--models", root / "models",
                        "--out", out, *extra])


# ---------------------------------------------------------------------------------------------
# refused output folders: exit 2, nothing touched


REFUSED = {
    "the project folder": (lambda r: r, "would contain the project folder"),
    "a parent of the project": (lambda r: r.parent, "would contain"),
    "the evidence folder": (lambda r: r / "evidence", "would contain the evidence folder"),
    "the models folder": (lambda r: r / "models", "would contain the models folder"),
    "inside evidence": (lambda r: r / "evidence" / "out", "inside the evidence folder"),
    "inside models": (lambda r: r / "models" / "sub" / "out", "inside the models folder"),
    "models/..": (lambda r: r / "models" / "..", "would contain"),
    "the filesystem root": (lambda r: Path("/"), "may not be written"),
    "a file": (lambda r: r / "evidence" / ".." / "notes.txt", "is not a folder"),
    "a user's folder": (lambda r: r / "mydocs", "is not empty ('thesis.docx')"),
    "a folder with a foreign manifest": (lambda r: r / "other", "is not a report written by blinameta"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_output_folders(project, capsys, folder_digest, case):
    target, message = REFUSED[case]
    (project / "notes.txt").write_text("my notes\n")
    (project / "mydocs").mkdir()
    (project / "mydocs" / "thesis.docx").write_bytes(b"PK\x03\x04 thesis")
    (project / "other").mkdir()
    (project / "other" / MANIFEST).write_text('{"name": "some other tool"}')
    before = folder_digest(project)
    status, _, err = _report(capsys, project, target(project))
    assert_clean_error(status, err, message)
    assert folder_digest(project) == before


@pytest.mark.parametrize("out", [".", "..", "models/..", "evidence/../.."])
def test_current_folder_and_parents_are_refused(project, capsys, folder_digest, monkeypatch, out):
    monkeypatch.chdir(project)
    before = folder_digest(project)
    status, _, err = run(capsys, ["report", "-q", "--out", out])
    assert_clean_error(status, err, "current folder or one of its parents")
    assert folder_digest(project) == before


def test_sources_folder_is_protected(project, capsys, folder_digest):
    sources = project / "sources"
    sources.mkdir()
    (sources / "paper.txt").write_text("text\n")
    before = folder_digest(project)
    for out in (sources, sources / "sub"):
        status = main_report(project, out, sources)
        assert status.startswith("error") and "sources folder" in status
    assert folder_digest(project) == before


def main_report(project: Path, out: Path, sources: Path) -> str:
    from blinameta.errors import UserError

    try:
        build_report(project / "evidence", project / "models", out, sources_dir=sources)
    except UserError as exc:
        return f"error: {exc}"
    return "ok"


def test_a_symlink_to_a_report_folder_stays_a_symlink(project, capsys):
    real = project / "site"
    (project / "reports").rename(real)
    (project / "reports").symlink_to(real)
    status, _, err = _report(capsys, project, project / "reports", "--force")
    assert status == 0, err
    assert (project / "reports").is_symlink() and report_is_complete(real)
    assert not [p for p in project.iterdir() if p.name.startswith(".reports") or p.name.startswith(".site")]


# ---------------------------------------------------------------------------------------------
# a user's files inside reports/ are kept


def test_user_files_inside_the_report_survive_a_rebuild(project, capsys):
    out = project / "reports"
    (out / "CNAME").write_text("example.org\n")
    (out / ".nojekyll").write_text("")
    (out / "extra" / "deep").mkdir(parents=True)
    (out / "extra" / "deep" / "slides.pdf").write_bytes(b"%PDF-1.4")
    (out / "analyses" / "my_notes.txt").write_text("notes\n")
    status, _, err = _report(capsys, project, out, "--force")
    assert status == 0, err
    assert (out / "CNAME").read_text() == "example.org\n" and (out / ".nojekyll").exists()
    assert (out / "extra" / "deep" / "slides.pdf").read_bytes() == b"%PDF-1.4"
    assert (out / "analyses" / "my_notes.txt").read_text() == "notes\n"
    assert report_is_complete(out)
    # the manifest lists only the report's own files
    files = read_manifest(out)["files"]
    assert "CNAME" not in files and "analyses/my_notes.txt" not in files and "index.html" in files


def test_a_user_file_in_the_way_is_refused_and_the_old_report_kept(project, capsys, folder_digest):
    out = project / "reports"
    # a file the new report will write, but which the old report did not own
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["files"]["style.css"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = folder_digest(out)
    status, _, err = _report(capsys, project, out, "--force")
    assert_clean_error(status, err, "style.css", "did not write")
    assert folder_digest(out) == before
    assert not leftovers(project)


def test_a_report_from_an_older_blinameta_is_recognised(project, capsys):
    out = project / "reports"
    manifest = json.loads((out / MANIFEST).read_text())
    legacy = {k: manifest[k] for k in ("index_key", "format", "evidence_hash", "analyses")}
    (out / MANIFEST).write_text(json.dumps(legacy))
    (out / "CNAME").write_text("example.org\n")
    status, _, err = _report(capsys, project, out)
    assert status == 0, err
    assert (out / "CNAME").read_text() == "example.org\n" and report_is_complete(out)


def test_generated_files_are_world_readable(project):
    out = project / "reports"
    for path in out.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644) & ~_umask(), (path, oct(mode))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# interrupted swaps and leftovers


def test_missing_report_is_restored_from_the_newest_backup(project, capsys):
    out = project / "reports"
    older = project / ".reports.old-99999"
    newer = project / ".reports.old-100000"
    shutil.copytree(out, older)
    (older / "index.html").write_text("older")
    out.rename(newer)
    os.utime(older, (time.time() + 100, time.time() + 100))  # newest by time, though not by name
    os.utime(newer, (time.time() - 100, time.time() - 100))
    stale = project / ".reports.new-abc123"
    stale.mkdir()
    (stale / "half.html").write_text("half")
    status, _, err = _report(capsys, project, out)
    assert status == 0, err
    assert "restored the report from .reports.old-99999" in err
    assert report_is_complete(out)
    assert not leftovers(project)


def test_leftover_staging_folders_are_removed_at_the_next_run(project, capsys):
    for name in (".reports.new-x1", ".reports.new-x2", ".reports.old-7"):
        (project / name).mkdir()
        (project / name / "index.html").write_text("stale")
    status, _, err = _report(capsys, project, project / "reports")
    assert status == 0, err
    assert not leftovers(project)


def test_a_failed_write_keeps_the_old_report(project, capsys, monkeypatch, folder_digest):
    out = project / "reports"
    before = folder_digest(out)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(out / "index.html"))

    monkeypatch.setattr("blinameta.report.render.atomic_write_text", full)
    status, _, err = _report(capsys, project, out, "--force")
    assert_clean_error(status, err, "No space left on device", "previous report is kept")
    assert folder_digest(out) == before
    assert not leftovers(project)


# ---------------------------------------------------------------------------------------------
# the incremental report checks what it reuses


def test_a_deleted_figure_is_rebuilt(project, capsys):
    out = project / "reports"
    figure = next((out / "analyses" / "hr_os").glob("*.svg"))
    figure.unlink()
    status, out_text, err = _report(capsys, project, out)
    assert status == 0, err
    assert "1 analyses refitted (hr_os)" in out_text and f"{figure}: missing or changed" in err
    assert figure.is_file() and report_is_complete(out)


def test_a_deleted_page_is_rebuilt(project, capsys):
    out = project / "reports"
    (out / "analyses" / "hr_os.html").unlink()
    status, out_text, err = _report(capsys, project, out)
    assert status == 0, err
    assert "hr_os" in out_text and (out / "analyses" / "hr_os.html").is_file()


@pytest.mark.parametrize("content", ["{not json", "{}", pytest.param("[1, 2]", marks=pytest.mark.slow),
                                     pytest.param("", marks=pytest.mark.slow)])
def test_a_corrupt_summary_is_refitted_with_a_note(project, capsys, content):
    out = project / "reports"
    (out / "analyses" / "hr_os" / "summary.json").write_text(content)
    status, out_text, err = _report(capsys, project, out)
    assert status == 0, err
    assert "summary.json: missing or changed since the report wrote it; hr_os refitted" in err
    assert json.loads((out / "analyses" / "hr_os" / "summary.json").read_text())["id"] == "hr_os"
    assert 'href="analyses/.html"' not in (out / "index.html").read_text()
