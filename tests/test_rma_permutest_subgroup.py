"""Permutation tests and subgroup analyses against metafor.

Exact permutation p-values (metafor's ``permutest(..., exact=TRUE)`` enumerates every sign
flip / distinct row order) are compared at 1e-6; random permutation p-values cannot match R
draw for draw, so they are compared with the exact p-value within Monte-Carlo error.
Golden values: tests/fixtures/frequentist/{permutest,subgroup}.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blinameta.frequentist.permutest import n_distinct_permutations, permutest
from blinameta.frequentist.rma import rma
from blinameta.frequentist.subgroup import subgroup

FIXTURES = Path(__file__).parent / "fixtures" / "frequentist"
PERM = json.loads((FIXTURES / "permutest.json").read_text())["blocks"]
SUB = json.loads((FIXTURES / "subgroup.json").read_text())["blocks"]
CONTROL = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 10000}
TOL = {"pval": 1e-6, "q": 1e-6, "estimate": 1e-6, "se": 1e-6, "tau2": 1e-6}


def _mods(block):
    return {
        "intercept_only": None,
        "group_factor": pd.DataFrame({"group": block["group"]}),
        "dose_k7": pd.DataFrame({"dose": block["dose"]}),
    }[block["name"]]


def _fit(block):
    return rma(block["yi"], block["vi"], mods=_mods(block), method=block["method"],
               test=block["test"], control=CONTROL)


@pytest.mark.parametrize("block", PERM, ids=lambda b: f"{b['name']}-{b['method']}-{b['test']}")
def test_exact_permutest_against_metafor(block):
    res = _fit(block)
    pt = permutest(res, exact=True)
    assert pt.exact and pt.n_perm == block["exact_iter"] and pt.n_failed == 0
    np.testing.assert_allclose(pt.pval, np.atleast_1d(block["pval"]), rtol=TOL["pval"])
    np.testing.assert_allclose(pt.qm_p, block["qm_p"], rtol=TOL["pval"])


def test_auto_rule_is_exact_when_few_permutations():
    block = next(b for b in PERM if b["name"] == "group_factor" and b["method"] == "REML")
    res = _fit(block)
    assert n_distinct_permutations(res.X) == 560
    assert permutest(res, n_perm=1000).exact
    assert not permutest(res, n_perm=500, seed=1).exact


@pytest.mark.parametrize("name", ["intercept_only", "group_factor", "dose_k7"])
def test_random_permutest_within_monte_carlo_error_of_exact(name):
    block = next(b for b in PERM if b["name"] == name and b["method"] == "REML"
                 and b["test"] == "z")
    res = _fit(block)
    n = 4000
    pt = permutest(res, n_perm=n, seed=20240611, exact=False)
    assert not pt.exact and pt.n_perm == n
    exact = np.atleast_1d(block["pval"])
    mc_se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(pt.pval - exact) <= 4 * mc_se + 1 / n)
    qm_se = np.sqrt(block["qm_p"] * (1 - block["qm_p"]) / n)
    assert abs(pt.qm_p - block["qm_p"]) <= 4 * qm_se + 1 / n


def test_random_permutest_is_reproducible_with_seed():
    block = next(b for b in PERM if b["name"] == "dose_k7" and b["method"] == "DL")
    res = _fit(block)
    a = permutest(res, n_perm=300, seed=7, exact=False)
    b = permutest(res, n_perm=300, seed=7, exact=False)
    np.testing.assert_array_equal(a.pval, b.pval)


@pytest.mark.parametrize("block", SUB, ids=lambda b: f"{b['measure']}-{b['method']}-{b['test']}")
def test_subgroup_against_metafor(block):
    common = subgroup(block["yi"], block["vi"], block["group"], tau2="common",
                      method=block["method"], test=block["test"], control=CONTROL)
    np.testing.assert_allclose(common.qb, block["common_qm"], rtol=TOL["q"])
    np.testing.assert_allclose(common.qb_p, block["common_qm_p"], rtol=TOL["pval"])
    np.testing.assert_allclose(common.tau2[0], block["common_tau2"], rtol=TOL["tau2"], atol=1e-10)
    df = [common.qb_df[0]] + ([common.qb_df[1]] if block["test"] == "knha" else [])
    np.testing.assert_allclose(df, [d for d in block["common_qm_df"] if d is not None])

    sep = subgroup(block["yi"], block["vi"], block["group"], tau2="separate",
                   method=block["method"], test=block["test"], control=CONTROL)
    assert list(sep.groups) == block["groups"]
    np.testing.assert_allclose(sep.estimate, block["separate_est"], rtol=TOL["estimate"])
    np.testing.assert_allclose(sep.se, block["separate_se"], rtol=TOL["se"])
    np.testing.assert_allclose(sep.tau2, block["separate_tau2"], rtol=TOL["tau2"], atol=1e-10)
    np.testing.assert_allclose(sep.ci_lb, block["separate_ci_lb"], rtol=TOL["estimate"])
    np.testing.assert_allclose(sep.ci_ub, block["separate_ci_ub"], rtol=TOL["estimate"])
    np.testing.assert_allclose(sep.qb, block["qb"], rtol=TOL["q"])
    np.testing.assert_allclose(sep.qb_p, block["qb_p"], rtol=TOL["pval"])
