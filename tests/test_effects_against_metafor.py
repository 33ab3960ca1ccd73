"""Effect sizes, back-transformations and study-level CIs against R (metafor ``escalc``,
``transf.*``, ``binom.test``, ``prop.test``).

Golden values: tests/fixtures/frequentist/escalc.json, written by
``Rscript tests/r/frequentist_fixtures.R``; each block quotes the R call that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blinameta.frequentist.escalc import (
    ci_clopper_pearson,
    ci_wilson,
    escalc_2x2,
    escalc_proportion,
    log_hr_from_ci,
    transf_ipft,
    transf_ipft_hm,
    transf_pft,
    transf_proportion,
)

FIXTURE = Path(__file__).parent / "fixtures" / "frequentist" / "escalc.json"
DATA = json.loads(FIXTURE.read_text())
BLOCKS = DATA["blocks"]

#: named tolerances (relative) per kind of quantity, as in metafor's own tests
TOL = {"yi": 1e-10, "vi": 1e-10, "transf": 1e-10, "ci": 1e-8}


def _arr(values) -> np.ndarray:
    """R's NA/NaN/Inf recoded to NA arrive as null; compare them as non-finite."""
    return np.array([np.nan if v is None else v for v in np.atleast_1d(values)], dtype=float)


def _close(ours, theirs, rtol, atol=1e-14) -> None:
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    theirs = _arr(theirs)
    finite = np.isfinite(theirs)
    assert np.array_equal(finite, np.isfinite(ours)), (ours, theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=rtol, atol=atol)


def _ids(kind):
    return [b for b in BLOCKS if b["kind"] == kind]


def test_fixture_records_versions():
    assert DATA["metafor_version"] and DATA["r_version"].startswith("R version")


@pytest.mark.parametrize(
    "block", _ids("proportion"), ids=lambda b: f"{b['data']}-{b['measure']}-{b['to']}-{b['add']}"
)
def test_escalc_proportion_against_R(block):
    add = None if block["add"] is None else block["add"]
    es = escalc_proportion(block["measure"], block["xi"], block["ni"], add=add, to=block["to"])
    _close(es.yi, block["yi"], TOL["yi"])
    _close(es.vi, block["vi"], TOL["vi"])


@pytest.mark.parametrize(
    "block", _ids("2x2"), ids=lambda b: f"{b['data']}-{b['measure']}-{b['to']}"
)
def test_escalc_2x2_against_R(block):
    es = escalc_2x2(block["measure"], block["ai"], block["n1i"], block["ci"], block["n2i"],
                    to=block["to"])
    _close(es.yi, block["yi"], TOL["yi"])
    _close(es.vi, block["vi"], TOL["vi"])


def test_log_hr_against_R():
    (block,) = _ids("hr")
    es = log_hr_from_ci(block["hr"], block["ci_lb"], block["ci_ub"])
    _close(es.yi, block["yi"], TOL["yi"])
    _close(es.vi, block["vi"], TOL["vi"])


def test_back_transformations_against_R():
    (block,) = _ids("transf")
    y = np.array(block["y"])
    _close(transf_ipft_hm(y, block["ni"]), block["ipft_hm"], TOL["transf"])
    _close(transf_ipft(y, 25), block["ipft_25"], TOL["transf"])
    _close(transf_proportion("PAS", y), block["iarcsin"], TOL["transf"])
    _close(transf_proportion("PLO", y), block["ilogit"], TOL["transf"])
    _close(transf_proportion("PFT", y, block["ni"]), block["ipft_hm"], TOL["transf"])


def test_study_cis_against_R():
    (block,) = _ids("study_ci")
    lb, ub = ci_clopper_pearson(block["xi"], block["ni"])
    _close(lb, block["cp_lb"], TOL["ci"])
    _close(ub, block["cp_ub"], TOL["ci"])
    lb, ub = ci_wilson(block["xi"], block["ni"])
    _close(lb, block["wilson_lb"], TOL["ci"])
    _close(ub, block["wilson_ub"], TOL["ci"])


@pytest.mark.parametrize("n", [1, 7, 40, 1000, 25_000])
def test_pft_back_transform_inverts_transform(n):
    p = np.linspace(0, 1, 101)
    np.testing.assert_allclose(transf_ipft(transf_pft(p, n), n), p, atol=1e-9)


def test_pft_hm_with_equal_totals_equals_per_study_inverse():
    y = np.linspace(0.1, 1.4, 9)
    np.testing.assert_allclose(transf_ipft_hm(y, [30, 30, 30]), transf_ipft(y, 30), rtol=1e-14)


def test_logit_and_log_back_transformations_invert():
    p = np.array([0.05, 0.3, 0.5, 0.9])
    es = escalc_proportion("PLO", p * 100, np.full(4, 100))
    np.testing.assert_allclose(transf_proportion("PLO", es.yi), p, rtol=1e-12)
    es = escalc_proportion("PLN", p * 100, np.full(4, 100))
    np.testing.assert_allclose(transf_proportion("PLN", es.yi), p, rtol=1e-12)


def test_continuity_correction_only_for_zero_or_all_events():
    es = escalc_proportion("PLO", [0, 5, 10], [10, 10, 10])
    assert es.corrected.tolist() == [True, False, True]
    assert escalc_proportion("PFT", [0, 5], [10, 10]).corrected.tolist() == [False, False]


@pytest.mark.parametrize(
    "events, total, message",
    [([3, -1], [10, 10], "negative"), ([11], [10], "larger"), ([0], [0], "> 0")],
)
def test_bad_counts_raise(events, total, message):
    with pytest.raises(ValueError, match=message):
        escalc_proportion("PR", events, total)
