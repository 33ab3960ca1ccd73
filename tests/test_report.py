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
            # figures are SVG only (vector: sharp on a phone and in print)
            assert (reports / "analyses" / spec.stem / "forest.svg").is_file()
            assert not (reports / "analyses" / spec.stem / "forest.png").exists()
    assert "Summary of findings" in index and (reports / "evidence.html").is_file()


def _visible(html: str) -> str:
    """Page text a reader sees (tags dropped; the collapsed technical notes left out)."""
    html = re.sub(r'<details class="technical">.*?</details>', "", html, flags=re.S)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_report_numbers_trace_to_quotes(project):
    evidence_page = (project / "reports" / "evidence.html").read_text()
    ids = re.findall(r' id="([^"]+)"', evidence_page)
    assert len(ids) == len(set(ids)), "duplicate ids on evidence.html"
    for name in ("cr_overt", "hr_efs", "rr_mrd_response"):
        page = (project / "reports" / "analyses" / f"{name}.html").read_text()
        anchors = re.findall(r'href="\.\./evidence\.html#([A-Za-z0-9_\-]+)"', page)
        assert anchors and all(f'id="{a}"' in evidence_page for a in anchors), name
        # the quote is printed (in a <details>, readable by keyboard and touch), not hidden in a tooltip
        assert "<details><summary>" in page and "<q>" in page and ' title="' not in page
    # the hazard ratios have their own evidence rows, which link back to the analysis
    assert 'id="brown2021-' in evidence_page and 'href="analyses/hr_efs.html#included"' in evidence_page


def test_quotes_render_latex_as_text_but_yaml_keeps_it(project):
    page = (project / "reports" / "evidence.html").read_text()
    assert "$\\geq" not in page and "\\%" not in page
    assert "In the 13 patients with BM blasts ≥5%, CR was obtained in 6 (46.1%)" in page
    assert "with BM blasts $\\geq 5\\%$, CR" in (project / "evidence" / "beneduce2022.yaml").read_text()


@pytest.mark.parametrize("page", ["index.html", "evidence.html", "methods.html", "studies.html",
                                  "analyses/cr_overt.html", "analyses/hr_efs.html", "analyses/crs_any.html"])
def test_no_internal_codes_on_the_pages(project, page):
    text = _visible((project / "reports" / page).read_text())
    for code in ("ge5", "lt5", "PLO", "knha", "dfs_hr", "intrcpt", "&gt;=", ">=", "outcomes[", "blast_burden",
                 "relapse_line", "line_of_use", "short_course", "real_world", "normal:0"):
        assert code not in text, f"{page}: {code!r} on the page"


def test_index_is_a_summary_of_findings_table(project):
    html = (project / "reports" / "index.html").read_text()
    first = html.index('id="sof-cr_overt"')
    row = html[first:html.index("</tr>", first)]
    assert "109 / 206" in row and "per 100" in row and "%" in row
    assert 'href="analyses/cr_overt.html#included"' in row and 'href="analyses/cr_overt.html#results"' in row
    assert "What changed since the last version" in html
    assert html.index("What changed since the last version") < html.index('id="sof"')
    csv_text = (project / "reports" / "summary_of_findings.csv").read_text()
    assert csv_text.splitlines()[0].startswith("analysis,outcome,population,studies,patients,events")


def test_downloads_and_pages_exist_and_are_world_readable(project):
    reports = project / "reports"
    for name in ("methods.html", "studies.html", "history.json", "flow.svg", "summary_of_findings.csv"):
        assert (reports / name).is_file(), name
    csv_file = reports / "analyses" / "cr_overt" / "cr_overt_studies.csv"
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("row_type,study_id,label,year") and sum(ln.startswith("study,") for ln in lines) == 4
    for path in reports.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o644, path


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
    # the living review: a new version with its own entry, and the index says what changed
    history = json.loads((root / "reports" / "history.json").read_text())
    assert len(history["versions"]) == 2 and "newcohort2025" in history["versions"][1]["publications"]
    index = (root / "reports" / "index.html").read_text()
    changes = index[index.index("What changed since the last version"):index.index('id="sof"')]
    assert "1 publication added (Newman 2025)" in changes and "Cytokine release syndrome, any grade" in changes
    old = json.loads((project / "reports" / "history.json").read_text())["versions"][0]["analyses"]["crs_any"]
    assert old["k"] + 1 == history["versions"][1]["analyses"]["crs_any"]["k"]
    # removing it again is a third version that lists the removal
    (root / "evidence" / "newcohort2025.yaml").unlink()
    build_report(root / "evidence", root / "models", root / "reports")
    index = (root / "reports" / "index.html").read_text()
    assert "removed (Newman 2025)" in index
    assert len(json.loads((root / "reports" / "history.json").read_text())["versions"]) == 3


#: One analysis of each kind and every kind of figure: a proportion with subgroups, a
#: meta-regression, posterior and shrinkage plots; a hazard ratio; a single randomized trial.
FIGURE_KINDS = ("cr_overt", "hr_efs", "rr_mrd_response")


@pytest.fixture(scope="module")
def small_project(tmp_path_factory) -> Path:
    """evidence/ with the models of :data:`FIGURE_KINDS` and their report."""
    root = tmp_path_factory.mktemp("small")
    shutil.copytree(ROOT / "evidence", root / "evidence")
    (root / "models").mkdir()
    for name in FIGURE_KINDS:
        shutil.copy(ROOT / "models" / f"{name}.yaml", root / "models" / f"{name}.yaml")
    build_report(root / "evidence", root / "models", root / "reports")
    return root


def test_forced_rebuild_of_the_same_version_changes_nothing(small_project, tmp_path, folder_digest):
    root = tmp_path / "p"
    shutil.copytree(small_project, root)
    before = folder_digest(root / "reports")
    summary = build_report(root / "evidence", root / "models", root / "reports", force=True)
    assert sorted(summary.rebuilt) == sorted(FIGURE_KINDS)
    assert folder_digest(root / "reports") == before
    assert len(json.loads((root / "reports" / "history.json").read_text())["versions"]) == 1


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


def test_report_never_modifies_evidence_or_models(small_project, tmp_path, folder_digest):
    root = tmp_path / "p"
    shutil.copytree(small_project, root)
    before = folder_digest(root / "evidence"), folder_digest(root / "models")
    build_report(root / "evidence", root / "models", root / "reports", force=True)
    assert (folder_digest(root / "evidence"), folder_digest(root / "models")) == before


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
