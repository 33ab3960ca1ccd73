"""``rma``, ``predict`` and ``confint_tau2`` against metafor 3.8 (``rma.uni``, ``predict.rma``,
``confint.rma.uni``), for every estimator x measure x test on five proportion data sets and on
``dat.bcg`` (log risk ratios; meta-regression on ``ablat`` and the factor ``alloc``).

Golden values: tests/fixtures/frequentist/rma.json (``Rscript tests/r/frequentist_fixtures.R``);
each block quotes its R call. R was run with ``control=list(threshold=1e-12, tol=1e-12,
maxiter=10000)`` and ``confint(res, control=list(tol=1e-12))``; the same tolerances are used here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blinameta.frequentist.confint import confint_tau2
from blinameta.frequentist.escalc import transf_proportion
from blinameta.frequentist.predict import predict
from blinameta.frequentist.rma import rma

FIXTURES = Path(__file__).parent / "fixtures" / "frequentist"
BLOCKS = json.loads((FIXTURES / "rma.json").read_text())["blocks"]
HR_BLOCK = next(b for b in json.loads((FIXTURES / "escalc.json").read_text())["blocks"]
                if b["kind"] == "hr")
CONTROL = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 10000}

#: (rtol, atol) per kind of quantity. atol only matters for values that are 0 in exact
#: arithmetic (tau2 at the boundary, I2 of ~1e-10 percent, p-values of 1e-20).
TOL = {
    "estimate": (1e-6, 1e-12),
    "se": (1e-6, 1e-12),
    "ci": (1e-6, 1e-12),
    "pval": (1e-6, 1e-14),
    "tau2": (1e-6, 1e-10),
    "q": (1e-6, 1e-10),
    "i2": (1e-6, 1e-8),
    "ll": (1e-6, 1e-10),
    "r2": (1e-6, 1e-8),
}


def _arr(values) -> np.ndarray:
    """JSON from R: scalars are unboxed, NA is null, NULL (no PI for EE models) is []."""
    values = [values] if not isinstance(values, list) or values == [] else values
    return np.array([np.nan if (v is None or v == []) else v for v in values], dtype=float)


def check(name, ours, theirs, kind) -> None:
    rtol, atol = TOL[kind]
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    theirs = _arr(theirs)
    assert ours.shape == theirs.shape, name
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)


def _mods(block):
    if block.get("mods", "none") == "none":
        return None
    frame = pd.DataFrame({"alloc": block["alloc"], "ablat": block["ablat"]})
    return {"ablat": frame[["ablat"]], "alloc": frame[["alloc"]],
            "alloc_ablat": frame[["alloc", "ablat"]]}[block["mods"]]


def _id(block):
    return "-".join(str(block.get(k)) for k in ("data", "measure", "mods", "method", "test")
                    if block.get(k) is not None)


def check_fit(res, fit):
    check("beta", res.beta, fit["beta"], "estimate")
    check("se", res.se, fit["se"], "se")
    check("zval", res.zval, fit["zval"], "estimate")
    check("pval", res.pval, fit["pval"], "pval")
    check("ci_lb", res.ci_lb, fit["ci_lb"], "ci")
    check("ci_ub", res.ci_ub, fit["ci_ub"], "ci")
    check("tau2", res.tau2, fit["tau2"], "tau2")
    check("se_tau2", res.se_tau2, fit["se_tau2"], "tau2")
    check("qe", res.qe, fit["qe"], "q")
    check("qe_p", res.qe_p, fit["qe_p"], "pval")
    check("i2", res.i2, fit["i2"], "i2")
    check("h2", res.h2, fit["h2"], "i2")
    check("vt", res.vt, fit["vt"], "tau2")
    check("qm", res.qm, fit["qm"], "q")
    check("qm_p", res.qm_p, fit["qm_p"], "pval")
    check("s2w", res.s2w, fit["s2w"], "se")
    check("ll_ml", res.fit_stats["ML"]["ll"], fit["ll_ml"], "ll")
    check("ll_reml", res.fit_stats["REML"]["ll"], fit["ll_reml"], "ll")
    check("aic_reml", res.fit_stats["REML"]["AIC"], fit["aic_reml"], "ll")
    check("r2", np.nan if res.r2 is None else res.r2, fit["r2"], "r2")
    names = fit["coef_names"] if isinstance(fit["coef_names"], list) else [fit["coef_names"]]
    assert list(res.coef_names) == names


def check_pred(pred, theirs, ci_only=False):
    for key in ("pred", "ci_lb", "ci_ub") + (() if ci_only else ("pi_lb", "pi_ub")):
        if theirs[key] == []:  # metafor gives no prediction interval for EE models
            assert np.all(np.isnan(getattr(pred, key)))
            continue
        check(key, getattr(pred, key), theirs[key], "ci")


@pytest.mark.parametrize("block", BLOCKS, ids=_id)
def test_rma_against_metafor(block):
    assert "error" not in block, block.get("error")
    res = rma(block["yi"], block["vi"], mods=_mods(block), method=block["method"],
              test=block["test"], control=CONTROL)
    check_fit(res, block["fit"])
    if "predict" in block:
        check_pred(predict(res), block["predict"])
        check("se", predict(res).se, block["predict"]["se"], "se")
    if "predict_transf" in block:
        if block["data"] == "bcg":
            transf = np.exp
        else:
            measure, ni = block["measure"], np.asarray(block["ni"], dtype=float)
            def transf(x):
                return transf_proportion(measure, x, ni)
        check_pred(predict(res, transf=transf), block["predict_transf"])
    if "predict_new" in block:
        newmods = pd.DataFrame(block["newmods_df"])
        check_pred(predict(res, newmods=newmods), block["predict_new"])
    if "confint" in block:
        theirs = block["confint"]
        assert "error" not in theirs
        ci = confint_tau2(res)
        check("tau2 CI", [ci.tau2, ci.tau2_lb, ci.tau2_ub], theirs["tau2"], "tau2")
        check("I2 CI", [ci.i2, ci.i2_lb, ci.i2_ub], theirs["i2"], "i2")
        check("H2 CI", [ci.h2, ci.h2_lb, ci.h2_ub], theirs["h2"], "i2")
        assert ci.ci_null == theirs["ci_null"]
        assert (ci.lb_sign, ci.ub_sign) == (theirs["lb_sign"], theirs["ub_sign"])


def test_log_hr_pooling_against_metafor():
    res = rma(HR_BLOCK["yi"], HR_BLOCK["vi"], method="REML", control=CONTROL)
    check_fit(res, HR_BLOCK["fit"])
    check_pred(predict(res, transf=np.exp), HR_BLOCK["pred_hr"])


def test_fixture_covers_the_required_grid():
    seen = {(b["data"], b.get("measure"), b["method"], b["test"]) for b in BLOCKS}
    for data in ("peds", "k2", "zeros", "homog", "large"):
        for measure in ("PR", "PLN", "PLO", "PAS", "PFT"):
            for method in ("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"):
                for test in ("z", "knha"):
                    assert (data, measure, method, test) in seen
    # the homogeneous data set really has tau2 = 0 for the truncating estimators
    assert any(b["data"] == "homog" and b["fit"]["tau2"] == 0 for b in BLOCKS)
    # and some Q-profile intervals are the null set / start at 0
    assert any(b.get("confint", {}).get("ci_null") for b in BLOCKS)
