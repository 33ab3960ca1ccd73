"""blinameta.frequentist.diagnostics against metafor (fixtures from tests/r/glmm_diagnostics_fixtures.R).

Each fixture file quotes the R call of every block; the data sets are metafor's dat.bcg (log
risk ratios, Colditz et al. 1994), the pediatric proportions on the logit scale and an
asymmetric funnel built so that trim-and-fill imputes studies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blinameta.frequentist import diagnostics as dg
from blinameta.frequentist.rma import rma

FIXTURES = Path(__file__).parent / "fixtures" / "diagnostics"
#: One tolerance per kind of quantity (relative, with an absolute floor for values near 0).
RTOL = 1e-6
ATOL = 1e-8
#: I2 is in percent and near tau2 = 0 magnifies the REML stopping rule (|change| < 1e-10 here,
#: 1e-12 in R) by 100/vt; 1e-6 percentage points.
ATOL_I2 = 1e-6

CASES = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem != "ranktest_small")


def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _model(fx: dict):
    call = fx["call"]
    method = {"'REML'": "REML", "'DL'": "DL", "'EE'": "EE"}[call.split("method = ")[1].split(",")[0].rstrip(")")]
    test = "knha" if "test = 'knha'" in call else "z"
    mods = None if fx["mods"] is None else np.asarray(fx["mods"], dtype=float)
    return rma(fx["yi"], fx["vi"], mods=mods, method=method, test=test)


def _close(actual, expected, rtol: float = RTOL, atol: float = ATOL) -> None:
    expected = np.asarray([np.nan if e is None else e for e in np.atleast_1d(expected)], dtype=float)
    np.testing.assert_allclose(np.atleast_1d(np.asarray(actual, float)), expected, rtol=rtol, atol=atol, equal_nan=True)


@pytest.fixture(scope="module", params=CASES)
def case(request):
    fx = _load(request.param)
    return fx, _model(fx)


def test_model_matches_metafor(case):
    fx, res = case
    _close(res.beta, fx["beta"])
    _close(res.se, fx["se"])
    _close(res.tau2, fx["tau2"])
    _close(res.qe, fx["QE"])


def test_influence_against_metafor(case):
    fx, res = case
    inf = dg.influence(res)
    ref = fx["influence"]
    for ours, theirs in [
        (inf.rstudent, "rstudent"), (inf.dffits, "dffits"), (inf.cook_d, "cook_d"),
        (inf.cov_r, "cov_r"), (inf.tau2_del, "tau2_del"), (inf.qe_del, "QE_del"),
        (inf.hat, "hat"), (inf.weight, "weight"),
    ]:
        _close(ours, ref[theirs])
    for j, col in enumerate(ref["dfbs"].values()):
        _close(inf.dfbs[:, j], col)
    assert inf.is_infl.tolist() == ref["is_infl"]
    rs = fx["rstudent"]
    _close(inf.resid, rs["resid"])
    _close(inf.se_resid, rs["se"])


def test_baujat_against_metafor(case):
    fx, res = case
    bj = dg.baujat(res)
    _close(bj.x, fx["baujat"]["x"])
    _close(bj.y, fx["baujat"]["y"])


def test_regtest_against_metafor(case):
    fx, res = case
    rt = dg.regtest(res)
    ref = fx["regtest"]
    _close(rt.zval, ref["zval"])
    _close(rt.pval, ref["pval"])
    if ref["est"] is not None:
        _close([rt.est, rt.ci_lb, rt.ci_ub], [ref["est"], ref["ci_lb"], ref["ci_ub"]])
    else:
        assert np.isnan(rt.est)


def _check_series(ours, ref):
    for field, key in [
        ("estimate", "estimate"), ("se", "se"), ("zval", "zval"), ("pval", "pval"),
        ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("q", "Q"), ("qp", "Qp"), ("h2", "H2"),
    ]:
        _close(getattr(ours, field), ref[key])
    _close(ours.i2, ref["I2"], atol=ATOL_I2)
    if ref.get("tau2") is not None:
        _close(ours.tau2, ref["tau2"])


def test_leave1out_against_metafor(case):
    fx, res = case
    if "leave1out" not in fx:
        with pytest.raises(Exception):
            dg.leave1out(res)
        return
    _check_series(dg.leave1out(res), fx["leave1out"])


def test_cumul_against_metafor(case):
    fx, res = case
    if "cumul" not in fx:
        return
    ref = fx["cumul"]
    _check_series(dg.cumul(res, order=ref["order"]), ref)


def test_ranktest_against_metafor(case):
    fx, res = case
    if "ranktest" not in fx:
        return
    rk = dg.ranktest(res)
    _close([rk.tau, rk.pval], [fx["ranktest"]["tau"], fx["ranktest"]["pval"]])


@pytest.mark.parametrize("estimator", ["L0", "R0"])
@pytest.mark.parametrize("side", ["auto", "left", "right"])
def test_trimfill_against_metafor(case, estimator, side):
    fx, res = case
    key = f"trimfill_{estimator}_{side}"
    if key not in fx:
        return
    ref = fx[key]
    tf = dg.trimfill(res, side=None if side == "auto" else side, estimator=estimator)
    assert tf.k0 == ref["k0"]
    assert tf.side == ref["side"]
    _close(tf.se_k0, ref["se_k0"])
    if ref["p_k0"] is not None:
        _close(tf.p_k0, ref["p_k0"])
    assert tf.fill.tolist() == ref["fill"]
    _close(tf.yi, ref["yi"])
    _close(tf.vi, ref["vi"])
    _close(tf.fit.beta, ref["beta"])
    _close(tf.fit.se, ref["se"])
    _close(tf.fit.zval, ref["zval"])
    _close(tf.fit.pval, ref["pval"])
    _close([tf.fit.ci_lb[0], tf.fit.ci_ub[0]], [ref["ci_lb"], ref["ci_ub"]])
    _close([tf.fit.tau2, tf.fit.qe, tf.fit.qe_p, tf.fit.i2], [ref["tau2"], ref["QE"], ref["QEp"], ref["I2"]])


def test_exact_kendall_p_values_against_r():
    fx = _load("ranktest_small")
    assert fx["call"] == "ranktest(yi, vi)"
    for c in fx["cases"]:
        res = rma(c["yi"], c["vi"], method="EE")
        rk = dg.ranktest(res)
        assert rk.exact
        _close([rk.tau, rk.pval], [c["tau"], c["pval"]], rtol=1e-12)
