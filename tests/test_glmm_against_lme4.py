"""blinameta.frequentist.glmm.rma_glmm against metafor::rma.glmm / lme4::glmer (nAGQ = 7).

Fixtures: tests/fixtures/glmm/*.json, written by tests/r/glmm_diagnostics_fixtures.R (each file
quotes its R call; glmer run with nloptwrap at tight tolerances so that lme4 sits at its optimum).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blinameta.errors import UserError
from blinameta.frequentist.glmm import rma_glmm

FIXTURES = Path(__file__).parent / "fixtures" / "glmm"
#: Named tolerances (relative). lme4's nAGQ = 7 deviance is the same AGHQ as ours; its standard
#: errors come from a finite-difference Hessian, hence 1e-4 rather than tighter.
RTOL_EST = 1e-4
RTOL_SE = 1e-4
RTOL_TAU2 = 1e-4
ATOL_TAU2 = 1e-6  # tau2 at the boundary: lme4 stops at theta ~ 1e-8
RTOL_TEST = 1e-4  # QE, QM statistics and their p-values
#: lme4's Laplace (nAGQ = 1) path solves the conditional modes only to tolPwrss = 1e-7, which
#: moves its finite-difference Hessian by ~2e-4 (our modes are solved to 1e-11; our deviance at
#: our optimum is below lme4's at its own).
RTOL_SE_LAPLACE = 1e-3

CASES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def _fit(fx: dict):
    dat, call = fx["data"], fx["call"]
    mods = None
    if "factor(design)" in call:
        mods = pd.DataFrame({"age": dat["age"], "design": dat["design"]})
    elif "mods = ~ age" in call:
        mods = pd.DataFrame({"age": dat["age"]})
    kw = {}
    if "nAGQ = 1" in call:
        kw["nagq"] = 1
    if "test = 't'" in call:
        kw["test"] = "t"
    if "level = 90" in call:
        kw["level"] = 90
    return rma_glmm(dat["xi"], dat["ni"], mods=mods, **kw)


@pytest.fixture(scope="module", params=CASES)
def case(request):
    fx = json.loads((FIXTURES / f"{request.param}.json").read_text())
    return fx, _fit(fx)


def _close(a, b, rtol, atol=0.0):
    np.testing.assert_allclose(np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float)), rtol=rtol, atol=atol)


def test_coefficients_against_lme4(case):
    fx, res = case
    laplace = res.nagq == 1
    assert res.converged
    if res.p > 1:
        assert list(res.coef_names)[1:] == [n.replace("factor(design)", "design") for n in fx["coef_names"][1:]]
    _close(res.beta, fx["beta"], RTOL_EST, 1e-8)
    _close(res.se, fx["se"], RTOL_SE_LAPLACE if laplace else RTOL_SE)
    _close(res.tau2, fx["tau2"], RTOL_TAU2, ATOL_TAU2)
    _close(res.vb, fx["vb"], RTOL_SE_LAPLACE * 2 if laplace else RTOL_SE * 2, 1e-10)
    _close(res.zval, fx["zval"], RTOL_SE_LAPLACE if laplace else RTOL_SE, 1e-8)
    _close(res.pval, fx["pval"], RTOL_SE_LAPLACE * 10 if laplace else RTOL_TEST, 1e-10)
    _close(np.concatenate([res.ci_lb, res.ci_ub]), np.r_[fx["ci_lb"], fx["ci_ub"]], RTOL_SE_LAPLACE if laplace else RTOL_EST, 1e-7)


def test_heterogeneity_against_metafor(case):
    fx, res = case
    _close([res.i2, res.h2, res.vt], [fx["I2"], fx["H2"], fx["vt"]], RTOL_TAU2, 1e-4)
    _close([res.qe_lrt, res.qe_lrt_p], [fx["QE_LRT"], fx["QEp_LRT"]], 1e-8)
    # The saturated-model Wald test: R's glm drives a 0-event study's logit to about -25 with
    # variance ~1e10 instead of -inf; we use the limit (contribution 0).
    _close([res.qe_wld, res.qe_wld_p], [fx["QE_Wld"], fx["QEp_Wld"]], RTOL_TEST)
    assert res.qe_df == fx["QE_df"]


def test_omnibus_and_likelihood_against_lme4(case):
    fx, res = case
    laplace = res.nagq == 1
    tol = RTOL_SE_LAPLACE if laplace else RTOL_TEST
    _close([res.qm, res.qm_p], [fx["QM"], fx["QMp"]], tol * 3)
    # lme4's -2 logLik is the deviance from the saturated model for nAGQ > 1 and the full
    # -2 log-likelihood for the Laplace approximation.
    target = -2 * res.loglik if laplace else res.deviance
    _close(target, fx["lme4_minus2loglik"], 1e-8)


def test_predict_against_metafor(case):
    fx, res = case
    pr = res.predict(None if fx["newmods"] is None else np.asarray(fx["newmods"], float))
    tol = RTOL_SE_LAPLACE if res.nagq == 1 else RTOL_SE
    _close(pr.pred, fx["pred"], RTOL_EST, 1e-8)
    _close(pr.se, fx["pred_se"], tol)
    for ours, key in [(pr.ci_lb, "pred_ci_lb"), (pr.ci_ub, "pred_ci_ub"), (pr.pi_lb, "pred_pi_lb"), (pr.pi_ub, "pred_pi_ub")]:
        _close(ours, fx[key], tol, 1e-7)


def test_categorical_prediction_by_label_equals_dummy_row():
    fx = json.loads((FIXTURES / "moderators.json").read_text())
    res = _fit(fx)
    by_label = res.predict(pd.DataFrame({"age": [9.0, 12.0], "design": ["multi", "single"]}))
    _close(by_label.pred, fx["pred"], RTOL_EST, 1e-8)


def test_boundary_is_reported():
    fx = json.loads((FIXTURES / "homogeneous.json").read_text())
    res = _fit(fx)
    assert res.tau2 == 0.0 and res.boundary
    assert "boundary" in res.message
