"""Reliability: hostile evidence, review and model files (issue 15, audit §2-§6, §12).

Each case is a clean error (exit 2, ``file:line`` in the message, no traceback) and leaves the
evidence and models folders byte-identical; a few are correct results (a symbolic link inside
the folder is read). Model files are mutated at random too, like the evidence files in
tests/test_evidence_hostile.py.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import ROOT, assert_clean_error, run
from test_evidence_hostile import _paths  # the same walk over a YAML document's fields

from blinameta.analysis.spec import load_specs
from blinameta.evidence.loader import load_evidence

BASE = (ROOT / "tests" / "report_cases" / "newcohort2025.yaml").read_text()
MODEL = (ROOT / "models" / "crs_any.yaml").read_text()


@pytest.fixture
def folders(tmp_path) -> Path:
    """evidence/ with the review and one small publication; models/ with one model."""
    (tmp_path / "evidence").mkdir()
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "evidence" / "review.yaml")
    (tmp_path / "evidence" / "newcohort2025.yaml").write_text(BASE)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "crs_any.yaml").write_text(MODEL)
    return tmp_path


def _validate(capsys, root: Path) -> tuple[int, str]:
    status, out, err = run(capsys, ["validate", "--no-sources", root / "evidence"])
    return status, out + err


def _report(capsys, root: Path) -> tuple[int, str]:
    """``report`` stops at the specification check, before anything is fitted."""
    status, out, err = run(capsys, ["report", "-q", "--evidence", root / "evidence", "--models", root / "models",
                                    "--out", root / "reports"])
    return status, out + err


def _untouched(folder_digest, root: Path):
    before = folder_digest(root / "evidence"), folder_digest(root / "models")
    return lambda: (folder_digest(root / "evidence"), folder_digest(root / "models")) == before


# ---------------------------------------------------------------------------------------------
# strict types in evidence files: counts are integers, years integers, text is text

PUBLICATION_CASES = {
    "boolean count": ("    events: 4\n", "    events: true\n", ":20: error: outcomes[0].events"),
    "quoted count": ("    events: 4\n", "    events: '4'\n", ":20: error: outcomes[0].events"),
    "float count": ("    events: 4\n", "    events: 4.0\n", ":20: error: outcomes[0].events"),
    "exponent count": ("    events: 4\n", "    events: 4e0\n", ":20: error: outcomes[0].events"),
    "octal count": ("    events: 4\n", "    events: 04\n", ":20: error: outcomes[0].events"),
    "padded count": ("    events: 4\n", "    events: ' 4 '\n", ":20: error: outcomes[0].events"),
    "underscored count": ("    total: 20\n", "    total: 2_0\n", ":21: error: outcomes[0].total"),
    "tagged count": ("    events: 4\n", "    events: !!int 4\n", ":20: error: explicit YAML tag"),
    "str-tagged count": ("    events: 4\n", "    events: !!str 4\n", ":20: error: explicit YAML tag"),
    "quoted year": ("year: 2025\n", "year: '2025'\n", ":4: error: year"),
    "float year": ("year: 2025\n", "year: 2025.0\n", ":4: error: year"),
    "control characters": ("first_author: Newman N\n", 'first_author: "Evil\\vVT\\eESC\\a A"\n',
                           ":3: error: first_author: U+000B (control character)"),
    "ANSI escape": ("title: A new cohort\n", 'title: "\\e[31mred\\e[0m"\n', ":5: error: title: U+001B"),
    "bidi override": ("title: A new cohort\n", 'title: "abc\\u202Edcba"\n',
                      ":5: error: title: U+202E (bidirectional control"),
    "lone surrogate": ("title: A new cohort\n", 'title: "a\\ud800b"\n', ":5: error: title: U+D800"),
    "one-character quote": ('quote: "They observed a response with morphological CR in 6/9 patients"}]\n    derived: {fields: [events',
                            'quote: "6"}]\n    derived: {fields: [events', "a quote needs at least 8 characters"),
    "deep nesting": ("population: Children with relapsed B-ALL.\n",
                     "population: " + "[" * 20000 + "]" * 20000 + "\n", ":8: error: nested more than 50 levels"),
}


@pytest.mark.parametrize("case", sorted(PUBLICATION_CASES))
def test_hostile_publication_values_are_clean_errors(folders, capsys, folder_digest, case):
    old, new, message = PUBLICATION_CASES[case]
    assert old in BASE
    (folders / "evidence" / "newcohort2025.yaml").write_text(BASE.replace(old, new, 1))
    untouched = _untouched(folder_digest, folders)
    start = time.monotonic()
    status, text = _validate(capsys, folders)
    assert_clean_error(status, text, "newcohort2025.yaml" + (message if message.startswith(":") else ""))
    assert message in text
    assert time.monotonic() - start < 20
    assert untouched()


REVIEW_CASES = {
    "YAML 1.1 boolean": ("    higher_is_better: false\n", "    higher_is_better: no\n", "higher_is_better"),
    "source outside the sources folder": ("    file: 000_113999912be86c4e.txt\n", "    file: ../../../../etc/passwd\n",
                                          "must be a path inside the sources folder"),
    "absolute source path": ("    file: 000_113999912be86c4e.txt\n", "    file: /etc/passwd\n",
                             "must be a path inside the sources folder"),
}


@pytest.mark.parametrize("case", sorted(REVIEW_CASES))
def test_hostile_review_values_are_clean_errors(folders, capsys, folder_digest, case):
    old, new, message = REVIEW_CASES[case]
    review = folders / "evidence" / "review.yaml"
    assert old in review.read_text()
    review.write_text(review.read_text().replace(old, new, 1))
    untouched = _untouched(folder_digest, folders)
    status, text = _validate(capsys, folders)
    assert_clean_error(status, text, "review.yaml:", message)
    assert untouched()


# ---------------------------------------------------------------------------------------------
# files and trees: only regular *.yaml files inside the folder are read


def _make_dir(folder: Path) -> None:
    (folder / "zz.yaml").mkdir()


def _make_fifo(folder: Path) -> None:
    os.mkfifo(folder / "zz.yaml")


def _make_dev_zero(folder: Path) -> None:
    (folder / "zz.yaml").symlink_to("/dev/zero")


def _make_outside_link(folder: Path) -> None:
    outside = folder.parent / "outside.yaml"
    outside.write_text(BASE.replace("newcohort2025", "zz"))
    (folder / "zz.yaml").symlink_to(outside)


def _make_dangling(folder: Path) -> None:
    (folder / "zz.yaml").symlink_to("/nowhere/zz.yaml")


def _make_yml(folder: Path) -> None:
    (folder / "zz.yml").write_text(BASE.replace("newcohort2025", "zz"))


def _make_upper(folder: Path) -> None:
    (folder / "zz.YAML").write_text(BASE.replace("newcohort2025", "zz"))


TREE_CASES = {
    "a folder named *.yaml": (_make_dir, "not a regular file (a folder)"),
    "a FIFO": (_make_fifo, "not a regular file (a device, pipe or socket)"),
    "a link to /dev/zero": (_make_dev_zero, "a symbolic link to /dev/zero, outside"),
    "a link outside the folder": (_make_outside_link, "outside"),
    "a dangling link": (_make_dangling, "cannot read the file"),
    "a .yml file": (_make_yml, "only *.yaml files are read; rename it to zz.yaml"),
    "a .YAML file": (_make_upper, "only *.yaml files are read; rename it to zz.yaml"),
}


@pytest.mark.parametrize("where", ["evidence", "models"])
@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_odd_files_in_the_folders_are_clean_errors(folders, capsys, folder_digest, case, where):
    make, message = TREE_CASES[case]
    make(folders / where)
    untouched = _untouched(folder_digest, folders)
    start = time.monotonic()
    status, text = _validate(capsys, folders) if where == "evidence" else _report(capsys, folders)
    assert_clean_error(status, text, f"{where}/zz.", message)
    assert time.monotonic() - start < 30  # a FIFO or /dev/zero never hangs
    assert untouched()


def test_a_symbolic_link_inside_the_folder_is_read(folders, capsys):
    (folders / "evidence" / "zz.yaml").symlink_to("newcohort2025.yaml")
    status, text = _validate(capsys, folders)
    # read, and reported like any other file: its id does not match its file name
    assert status == 2 and "zz.yaml" in text and "Traceback" not in text


# ---------------------------------------------------------------------------------------------
# model files: strict types, priors and thresholds checked when the model is read

MODEL_CASES = {
    "enabled: off": ("prior_tau:", "enabled: off, prior_tau:", "bayes.enabled"),
    "glmm: no": ("test: knha}", "test: knha, glmm: no}", "frequentist.glmm"),
    "quoted level": ("test: knha}", "test: knha, level: '90'}", "frequentist.level"),
    "exponent permutations": ("test: knha}", "test: knha, permutations: 1e3}", "frequentist.permutations"),
    "threshold above 1": ("thresholds: [0.1, 0.2]", "thresholds: [1.5]", "bayes.thresholds[0]"),
    "negative threshold": ("thresholds: [0.1, 0.2]", "thresholds: [-0.5]", "bayes.thresholds[0]"),
    "prior: negative sd": ('prior_mu: "normal:-1.5:1.5"', 'prior_mu: "normal:0:-1"', "bayes.prior_mu: the sd"),
    "prior: unknown family": ('prior_mu: "normal:-1.5:1.5"', 'prior_mu: "cauchy:0:1"', "bayes.prior_mu: unknown prior"),
    "prior: missing parameter": ('prior_mu: "normal:-1.5:1.5"', 'prior_mu: "normal:0"', "bayes.prior_mu: normal takes 2"),
    "prior: not a number": ('prior_mu: "normal:-1.5:1.5"', 'prior_mu: "normal:a:b"', "is not a number"),
    "prior: NaN": ('prior_mu: "normal:-1.5:1.5"', 'prior_mu: "normal:nan:1"', "not a finite number"),
    "prior: infinite scale": ('prior_tau: "half_normal:1"', 'prior_tau: "half_normal:inf"', "not a finite number"),
    "prior: zero scale": ('prior_tau: "half_normal:1"', 'prior_tau: "half_normal:0"', "bayes.prior_tau: the scale"),
    "prior: empty": ('prior_tau: "half_normal:1"', 'prior_tau: ""', "bayes.prior_tau: unknown prior"),
    "endpoints on a proportion": ("subgroups:", "endpoints: [os]\nsubgroups:", "endpoints: endpoints apply to hazard_ratio"),
    "study_id typo": ("subgroups:", "filter: {study_id: [xie2032]}\nsubgroups:", "filter.study_id[0]: no publication 'xie2032'"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_hostile_model_values_are_clean_errors(folders, capsys, folder_digest, case):
    old, new, message = MODEL_CASES[case]
    assert old in MODEL, old
    (folders / "models" / "crs_any.yaml").write_text(MODEL.replace(old, new, 1))
    untouched = _untouched(folder_digest, folders)
    status, text = _report(capsys, folders)
    assert_clean_error(status, text, "crs_any.yaml:", message)
    assert not (folders / "reports").exists()
    assert untouched()


# ---------------------------------------------------------------------------------------------
# random mutations of model files never crash the loader

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["normal:0:1", "half_normal:-1", "off", "no", "1e3", "03", "$x$"]),
    st.lists(st.floats(-2, 2), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def review_and_ids():
    evidence = load_evidence(ROOT / "evidence")
    return evidence.review, {p.id for p in evidence.publications}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_model_mutations_never_crash(tmp_path_factory, review_and_ids, data):
    review, ids = review_and_ids
    document = yaml.safe_load((ROOT / "models" / data.draw(st.sampled_from(["cr_overt.yaml", "hr_os.yaml"]))).read_text())
    paths = [p for p in _paths(document) if p]
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        *where, last = path
        parent = document
        for key in where:
            parent = parent[key] if isinstance(parent, (dict, list)) and (
                key in parent if isinstance(parent, dict) else key < len(parent)) else None
        if isinstance(parent, dict) and data.draw(st.booleans()):
            parent.pop(last, None)
        elif isinstance(parent, dict) or (isinstance(parent, list) and last < len(parent)):
            parent[last] = data.draw(_VALUES)
    text = yaml.safe_dump(document, allow_unicode=True)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut] + data.draw(st.sampled_from(["\t", ":", "&a ", "*a", "- ", "{", "\x00", "'", "!!str "])) + text[cut:]
    folder = tmp_path_factory.mktemp("models")
    name = str(document.get("id", "x")) if isinstance(document, dict) else "x"
    target = folder / (f"{name}.yaml" if name.isidentifier() and name.islower() else "x.yaml")
    target.write_text(text, encoding="utf-8")
    loaded = load_specs(folder, review, ids)  # must not raise
    for problem in loaded.problems:
        assert problem.message and problem.file == target
