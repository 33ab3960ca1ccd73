"""The small-study tests and the funnel plot appear together, from ten studies on
(Cochrane Handbook 13.3.5.4), with Peters' test for proportions (Peters et al., JAMA 2006)."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from blinameta.report import build_report

ROOT = Path(__file__).parent.parent
CASE = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()


def _project(tmp_path: Path, extra: int) -> Path:
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / "crs_any.yaml", tmp_path / "models" / "crs_any.yaml")
    for i, events in enumerate((3, 9, 14)[:extra]):
        text = CASE.replace("id: newcohort2025", f"id: newcohort{i}").replace("events: 4", f"events: {events}")
        text = text.replace("year: 2025", f"year: {2022 + i}").replace("first_author: Newman N", f"first_author: Newman{i} N")
        (tmp_path / "evidence" / f"newcohort{i}.yaml").write_text(text)
    build_report(tmp_path / "evidence", tmp_path / "models", tmp_path / "reports")
    return tmp_path / "reports"


def test_ten_studies_give_peters_test_and_a_funnel_plot(tmp_path):
    reports = _project(tmp_path, 3)
    page = html.unescape((reports / "analyses" / "crs_any.html").read_text())
    assert re.search(r"Peters' test \(inverse sample size as predictor\): t = -?\d+\.\d{3}, p = \d\.\d{4}", page)
    assert 'src="crs_any/funnel.svg"' in page and (reports / "analyses" / "crs_any" / "funnel.svg").is_file()


def test_fewer_than_ten_studies_give_neither(tmp_path):
    reports = _project(tmp_path, 0)
    page = html.unescape((reports / "analyses" / "crs_any.html").read_text())
    assert "Peters' test" not in page and "funnel" not in page
    assert not (reports / "analyses" / "crs_any" / "funnel.svg").exists()
