"""``blinameta report``: the pages, incremental rebuilds, atomic writes and HTML escaping."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from blinameta.cli import main
from blinameta.errors import UserError
from blinameta.report import build_report

ROOT = Path(__file__).parent.parent




@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of evidence/ and models/ with a report built once."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "evidence", root / "evidence")
    shutil.copytree(ROOT / "models", root / "models")
    summary = build_report(root / "evidence", root / "models", root / "reports")
    assert not summary.unchanged and len(summary.rebuilt) == len(list((root / "models").glob("*.yaml")))
    return root


def test_every_analysis_has_a_page_and_figures(project):
    reports = project / "reports"
    index = (reports / "index.html").read_text()
    for spec in (project / "models").glob("*.yaml"):
        page = reports / "analyses" / f"{spec.stem}.html"
        assert page.is_file() and f'href="analyses/{spec.stem}.html"' in index
        summary = json.loads((reports / "analyses" / spec.stem / "summary.json").read_text())
        if summary["k"] >= 1:
            assert (reports / "analyses" / spec.stem / "forest.png").is_file()
            assert (reports / "analyses" / spec.stem / "forest.svg").is_file()
    assert "Summary of findings" in index and (reports / "evidence.html").is_file()


def test_report_numbers_trace_to_quotes(project):
    page = (project / "reports" / "analyses" / "cr_overt.html").read_text()
    # each count links to its row on the evidence page and carries its quote as a tooltip
    links = re.findall(r'href="\.\./evidence\.html#([a-z0-9_\-]+)" title="([^"]+)"', page)
    assert links and all("“" in title for _, title in links)
    evidence_page = (project / "reports" / "evidence.html").read_text()
    for anchor, _ in links:
        assert f'id="{anchor}"' in evidence_page


def test_second_run_without_changes_reuses_everything(project, folder_digest):
    before = folder_digest(project / "reports")
    summary = build_report(project / "evidence", project / "models", project / "reports")
    assert summary.unchanged and summary.rebuilt == ()
    assert folder_digest(project / "reports") == before


def test_new_publication_changes_exactly_the_analyses_that_include_it(project, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(project, root)
    (root / "evidence" / "newcohort2025.yaml").write_text((ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text())
    summary = build_report(root / "evidence", root / "models", root / "reports")
    assert set(summary.rebuilt) == {"crs_any"}
    page = json.loads((root / "reports" / "analyses" / "crs_any" / "summary.json").read_text())
    assert "newcohort2025" in page["studies"]


def test_failed_run_leaves_the_previous_report_intact(project, tmp_path, monkeypatch, folder_digest):
    root = tmp_path / "p"
    shutil.copytree(project, root)
    before = folder_digest(root / "reports")
    (root / "evidence" / "newcohort2025.yaml").write_text((ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text())
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("blinameta.report.figures.draw_figures", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(root / "evidence", root / "models", root / "reports")
    assert folder_digest(root / "reports") == before
    assert not list(root.glob(".reports.*"))


def test_report_never_modifies_evidence_or_models(project, folder_digest):
    before = folder_digest(project / "evidence"), folder_digest(project / "models")
    build_report(project / "evidence", project / "models", project / "reports", force=True)
    assert (folder_digest(project / "evidence"), folder_digest(project / "models")) == before


def test_report_refuses_to_write_into_evidence(project):
    with pytest.raises(UserError, match="may not be written inside"):
        build_report(project / "evidence", project / "models", project / "evidence" / "out")


def test_strings_from_yaml_are_html_escaped(tmp_path):
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / "crs_any.yaml", tmp_path / "models" / "crs_any.yaml")
    text = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()
    text = text.replace("title: A new cohort", 'title: "<script>alert(1)</script> cohort"')
    text = text.replace("label: All treated", 'label: "<b>bold</b> & co"')
    (tmp_path / "evidence" / "newcohort2025.yaml").write_text(text)
    build_report(tmp_path / "evidence", tmp_path / "models", tmp_path / "reports")
    html = (tmp_path / "reports" / "evidence.html").read_text() + (tmp_path / "reports" / "analyses" / "crs_any.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html


def test_bad_model_file_is_a_clear_error(tmp_path, capsys):
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.yaml").write_text("id: bad\ntitle: Bad\noutcome: crr\nfilter:\n  blast_burden: [huge]\n")
    status = main(["report", "--evidence", str(tmp_path / "evidence"), "--models", str(tmp_path / "models"),
                   "--out", str(tmp_path / "reports"), "-q"])
    err = capsys.readouterr().err
    assert status == 2
    assert "bad.yaml:3: error: outcome: unknown outcome 'crr'" in err
    assert "bad.yaml:5: error: filter.blast_burden[0]: 'huge' is not a level of blast_burden" in err
    assert not (tmp_path / "reports").exists()
