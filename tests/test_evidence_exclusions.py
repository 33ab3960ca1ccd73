"""The exclusions file (evidence/exclusions.yaml): schema, loader and validation."""

from __future__ import annotations

import shutil
from pathlib import Path

from blinameta.cli import main
from blinameta.evidence.loader import load_evidence

CASES = Path(__file__).parent / "evidence_cases"

GOOD = """excluded:
  - id: adult_trial
    citation: Doe J et al. An adult trial. J Ex 2019.
    reason: adult_population
    provenance: [{source: testdoc, location: Results, quote: "in total 40 patients"}]
"""


def _folder(tmp_path: Path, exclusions: str) -> Path:
    shutil.copy(CASES / "review.yaml", tmp_path / "review.yaml")
    shutil.copy(CASES / "pass" / "v2.yaml", tmp_path / "v2.yaml")
    (tmp_path / "exclusions.yaml").write_text(exclusions, encoding="utf-8")
    return tmp_path


def _problems(tmp_path: Path, exclusions: str) -> list[str]:
    evidence = load_evidence(_folder(tmp_path, exclusions))
    return [p.format() for p in evidence.problems if p.severity == "error" and p.file.name == "exclusions.yaml"]


def test_a_valid_exclusions_file_is_not_a_publication(tmp_path: Path):
    evidence = load_evidence(_folder(tmp_path, GOOD))
    assert [p.format() for p in evidence.problems if p.severity == "error"] == []
    assert {p.id for p in evidence.publications} == {"v2"}


def test_unknown_reason_and_missing_provenance_are_errors(tmp_path: Path):
    bad = GOOD.replace("reason: adult_population", "reason: too_old").replace(
        '    provenance: [{source: testdoc, location: Results, quote: "in total 40 patients"}]\n', "")
    problems = _problems(tmp_path, bad)
    assert any("exclusions.yaml:4: error: excluded[0].reason" in p for p in problems), problems
    assert any("excluded[0].provenance: required field is missing" in p for p in problems), problems


def test_duplicates_publication_ids_other_without_note_and_unknown_source(tmp_path: Path):
    body = GOOD + GOOD.split("\n", 1)[1] + """  - id: v2
    citation: The v2 example.
    reason: other
    provenance: [{source: nowhere, location: Results, quote: "an example quote"}]
"""
    problems = "\n".join(_problems(tmp_path, body))
    assert "excluded[1].id: 'adult_trial' is listed twice" in problems
    assert "excluded[2].id: 'v2' is a publication of this folder" in problems
    assert "excluded[2].note: reason 'other' needs a note" in problems
    assert "excluded[2].provenance[0].source: unknown source 'nowhere'" in problems


def test_validate_command_checks_the_exclusions_file_and_its_quotes(tmp_path: Path, capsys):
    folder = _folder(tmp_path, GOOD.replace("in total 40 patients", "in total 41 patients"))
    code = main(["validate", str(folder / "exclusions.yaml"), "--sources", str(CASES / "sources")])
    out = capsys.readouterr().out
    assert code == 2
    assert "exclusions.yaml:5: error: excluded[0].provenance[0].quote: quote not found verbatim" in out
