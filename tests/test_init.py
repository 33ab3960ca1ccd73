"""``blinameta init``: a new review in one command, and the whole reviewer workflow on it
(add a source document, ``new``, fill in, ``validate``, ``report``, ``query``), on a small
constructed review with its own sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blinameta.cli import main

def _publication(pid: str, source: str, author: str, year: int, n: int, outcomes: list[tuple[str, int, str]]) -> str:
    lines = [
        f"id: {pid}", f"first_author: {author}", f"year: {year}", f"title: A cohort of {n} patients",
        "design: retrospective_cohort", "setting: real_world",
        f"population: {n} adults treated in routine care.", f"reported_in: [{source}]",
        "cohorts:", "  - id: all", "    label: All treated patients", f"    n: {n}",
        "    provenance:", f"      - source: {source}", "        location: Methods",
        f'        quote: "We treated {n} patients"', "outcomes:",
    ]
    for code, events, quote in outcomes:
        lines += [f"  - code: {code}", "    cohort: all", f"    events: {events}", f"    total: {n}",
                  "    denominator: all_treated", "    provenance:", f"      - source: {source}",
                  "        location: Results", f'        quote: "{quote}"']
    lines += ["risk_of_bias:", "  tool: jbi_case_series", "  items:"]
    lines += [f"    - {{item: q{i}, judgement: unclear, reason: not reported in the abstract}}" for i in range(1, 11)]
    lines += ["  overall: high", "  overall_reason: ten items unclear in an abstract-only report"]
    return "\n".join(lines) + "\n"


def _register(review: Path, key: str, file: str, citation: str) -> None:
    text = review.read_text()
    entry = f"sources:\n  {key}:\n    file: {file}\n    citation: {citation}\n"
    if "sources: {}" in text:
        text = text.replace("sources: {}\n", entry)
    else:
        text = text.replace("sources:\n", entry, 1)
    review.write_text(text)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_refuses_a_folder_with_files(tmp_path, capsys):
    (tmp_path / "thesis.docx").write_text("mine")
    code, _, err = _run(capsys, "init", str(tmp_path))
    assert code == 2 and "not an empty folder" in err
    assert (tmp_path / "thesis.docx").read_text() == "mine"


@pytest.mark.slow
def test_new_review_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BLINAMETA_SOURCES", raising=False)
    monkeypatch.setenv("BLINAMETA_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "myreview"
    code, out, _ = _run(capsys, "init", str(root), "--title", "Drug X in adults")
    assert code == 0, out
    ev, models, reports = root / "evidence", root / "models", root / "reports"
    assert _run(capsys, "validate", str(ev))[0] == 0  # the empty review is valid

    # a template fails until its placeholders are replaced
    assert _run(capsys, "new", "draft2024", "--evidence", str(ev))[0] == 0
    code, out, _ = _run(capsys, "validate", str(ev / "draft2024.yaml"))
    assert code == 2 and "placeholder" in out
    (ev / "draft2024.yaml").unlink()

    # two source documents and their publications
    docs = {
        "smith2024": ("Smith 2024", "We treated 40 patients. Overall, 22 of 40 patients responded. "
                      "Grade 3 or higher adverse events occurred in 9 of 40 patients."),
        "jones2023": ("Jones 2023", "We treated 25 patients. In total 10 of 25 patients responded."),
    }
    for key, (cite, text) in docs.items():
        (root / "sources" / f"{key}.txt").write_text(text + "\n")
        _register(ev / "review.yaml", key, f"{key}.txt", cite)
    (ev / "smith2024.yaml").write_text(_publication("smith2024", "smith2024", "Smith A", 2024, 40, [
        ("response", 22, "22 of 40 patients responded"), ("ae_grade3plus", 9, "9 of 40 patients")]))
    (ev / "jones2023.yaml").write_text(_publication("jones2023", "jones2023", "Jones B", 2023, 25, [
        ("response", 10, "10 of 25 patients responded")]))
    code, out, err = _run(capsys, "validate", str(ev))
    assert code == 0, out + err
    assert "quotes checked against" in err

    code, out, err = _run(capsys, "report", "--evidence", str(ev), "--models", str(models), "--out", str(reports))
    assert code == 0, err
    assert (reports / "index.html").is_file()
    summary = json.loads((reports / "analyses" / "response" / "summary.json").read_text())
    assert sorted(summary["studies"]) == ["jones2023", "smith2024"]

    code, out, err = _run(capsys, "query", "--outcome", "response", "--evidence", str(ev),
                          "--models", str(models), "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["k"] == 2

    # a new source document quoted by a publication without 'response' rows refits nothing
    (root / "sources" / "lee2022.txt").write_text("Of 30 patients, 4 of 30 had grade 3 adverse events.\n")
    _register(ev / "review.yaml", "lee2022", "lee2022.txt", "Lee 2022")
    text = _publication("lee2022", "lee2022", "Lee C", 2022, 30, [("ae_grade3plus", 4, "4 of 30 had grade 3")])
    (ev / "lee2022.yaml").write_text(text.replace('"We treated 30 patients"', '"Of 30 patients"'))
    assert _run(capsys, "validate", str(ev))[0] == 0
    code, out, err = _run(capsys, "report", "--evidence", str(ev), "--models", str(models), "--out", str(reports))
    assert code == 0, err
    assert "0 analyses refitted" in out or "up to date" in out, out
