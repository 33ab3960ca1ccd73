"""The validator on pass/fail example files: each fail file names the rule it breaks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blinameta.evidence.loader import load_evidence
from blinameta.evidence.sources import check_sources

CASES = Path(__file__).parent / "evidence_cases"
SOURCES = CASES / "sources"


def _problems(files: list[Path]):
    evidence = load_evidence(CASES, files)
    return list(evidence.problems) + check_sources(evidence, SOURCES), evidence


def _header(path: Path, key: str) -> str:
    match = re.search(rf"^# {key}: (.+)$", path.read_text(encoding="utf-8", errors="replace"), re.M)
    assert match, f"{path.name} lacks a '# {key}:' line"
    return match.group(1).strip()


def test_pass_files_have_no_errors():
    files = sorted((CASES / "pass").glob("*.yaml"))
    assert files
    for path in files:
        _header(path, "why")
    problems, evidence = _problems(files)
    errors = [p.format() for p in problems if p.severity == "error"]
    assert errors == []
    assert {p.id for p in evidence.publications} == {"full", "minimal", "v2"}


def test_pass_files_flag_their_discrepancies():
    problems, _ = _problems(sorted((CASES / "pass").glob("*.yaml")))
    flagged = [p for p in problems if p.severity == "discrepancy"]
    # the alternative CR reading and the patient table (2 rows vs n = 30)
    assert any("alternative 17/30" in p.message for p in flagged)
    assert any("patient table has 2 rows" in p.message for p in flagged)


@pytest.mark.parametrize("path", sorted((CASES / "fail").glob("*.yaml")), ids=lambda p: p.stem)
def test_fail_file_reports_its_rule(path: Path):
    expect = _header(path, "expect")
    problems, _ = _problems([path])
    errors = [p for p in problems if p.severity == "error"]
    assert errors, f"{path.name} should fail: {_header(path, 'why')}"
    lines = [p.format() for p in errors]
    assert any(expect in line for line in lines), lines
    for problem in errors:
        assert problem.file == path
        # every problem names a line, except file-level ones (size, encoding, several documents)
        if "document" not in problem.message:
            assert problem.line is not None, problem.format()


def test_problem_line_points_at_the_field():
    path = CASES / "fail" / "events_exceed_total.yaml"
    problems, _ = _problems([path])
    text = path.read_text().splitlines()
    (problem,) = [p for p in problems if "exceed total" in p.message]
    assert "events" in text[problem.line - 1] or "code" in text[problem.line - 1]


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path):
    (tmp_path / "review.yaml").write_text((CASES / "review.yaml").read_text())
    body = (CASES / "pass" / "minimal.yaml").read_text().replace("id: minimal", "id: multi")
    body = body.replace("year: 2020", "year: soon").replace("design: case_series", "design: anecdote")
    (tmp_path / "multi.yaml").write_text(body)
    evidence = load_evidence(tmp_path)
    fields = {p.field for p in evidence.problems}
    assert {"year", "design"} <= fields


def test_one_file_resolves_its_overlaps_against_its_folder():
    # newcomer audit B2: validating one file must not reject overlaps with its neighbours
    evidence_dir = Path(__file__).parent.parent / "evidence"
    evidence = load_evidence(evidence_dir, [evidence_dir / "gore2018.yaml"])
    assert [p.format() for p in evidence.problems if p.severity == "error"] == []
    assert len(evidence.publications) == 1


def _tmp_folder(tmp_path: Path, bodies: dict[str, str]) -> None:
    (tmp_path / "review.yaml").write_text((CASES / "review.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    minimal = (CASES / "pass" / "minimal.yaml").read_text(encoding="utf-8")
    for pid, overlaps in bodies.items():
        body = minimal.replace("id: minimal", f"id: {pid}").split("overlaps:")[0]
        body += "overlaps:\n" + overlaps + minimal[minimal.index("cohorts:"):]
        (tmp_path / f"{pid}.yaml").write_text(body, encoding="utf-8")


def test_overlaps_that_are_not_transitively_declared_are_warned(tmp_path: Path):
    # a ⊃ b ⊃ ... : c overlaps a, b is a subset of a, but c does not declare b
    _tmp_folder(tmp_path, {
        "a": "  - {with: b, relation: superset, note: x}\n  - {with: c, relation: partial, note: x}\n",
        "b": "  - {with: a, relation: subset, note: x}\n",
        "c": "  - {with: a, relation: partial, note: x}\n",
    })
    evidence = load_evidence(tmp_path)
    assert [p for p in evidence.problems if p.severity == "error"] == []
    (warning,) = [p for p in evidence.problems if p.severity == "warning" and "within" in p.message]
    assert warning.file.name == "c.yaml" and "b is within a" in warning.message


def test_a_source_document_is_the_own_report_of_one_publication_only(tmp_path: Path):
    (tmp_path / "review.yaml").write_text((CASES / "review.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    body = (CASES / "pass" / "v2.yaml").read_text(encoding="utf-8")
    (tmp_path / "v2.yaml").write_text(body, encoding="utf-8")
    (tmp_path / "twin.yaml").write_text(body.replace("id: v2", "id: twin"), encoding="utf-8")
    evidence = load_evidence(tmp_path)
    errors = [p for p in evidence.problems if p.severity == "error"]
    assert {p.file.name for p in errors} == {"v2.yaml", "twin.yaml"}
    assert all("own_source" == p.field and "own report of" in p.message for p in errors)
