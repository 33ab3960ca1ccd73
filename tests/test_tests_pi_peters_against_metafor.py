"""``rma(test=)`` variants, ``predict(pi_type=)``, Peters' test and the GLMM behind
``pool --method GLMM --mods`` against metafor 3.8.

Golden values: tests/fixtures/engine/{tests_pi,peters,glmm_pool}.json, written by
``Rscript tests/r/engine_fixtures.R`` (each block quotes its R call; rma.uni with
``control=list(threshold=1e-12, tol=1e-12)``).

- ``test`` in z / t / knha / adhoc (the ad hoc Hartung-Knapp variant truncates the scaling factor
  at 1) x REML/DL/PM/EE on five logit data sets (k = 2 to 8) and a meta-regression (dat.bcg on
  ``ablat``), with every ``pi.type`` (default, riley = t on k - p - 1 df, t, simple);
- Peters' test = ``regtest(model="lm", predictor="ninv")`` on proportions (with zero-event
  studies) and on dat.bcg odds ratios;
- rma.glmm with a moderator and ``predict(newmods=, pi.type=)``, through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blinameta.frequentist.diagnostics import peters_test, regtest
from blinameta.frequentist.escalc import escalc_proportion
from blinameta.frequentist.glmm import rma_glmm
from blinameta.frequentist.predict import predict
from blinameta.frequentist.rma import rma, rma_batch

HERE = Path(__file__).parent / "fixtures" / "engine"
TESTS_PI = json.loads((HERE / "tests_pi.json").read_text())["blocks"]
PETERS = json.loads((HERE / "peters.json").read_text())["blocks"]
GLMM = json.loads((HERE / "glmm_pool.json").read_text())["blocks"]
CONTROL = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 10000}
RTOL, ATOL = 1e-9, 1e-11
#: Paule-Mandel is a root of Q(tau2) = k - 1 found by uniroot in R (tol 1e-12 on tau2):
#: the estimates then agree to about 1e-9 relative.
RTOL_PM = 1e-7
#: rma.glmm: both sides optimise the same AGHQ deviance (lme4 with tight nloptwrap settings),
#: to about 1e-5 relative in the coefficients (see tests/test_glmm_against_lme4.py).
RTOL_GLMM = 1e-4
PI_TYPES = ("default", "riley", "t", "simple")


def _arr(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(float).ravel()
    if not isinstance(values, list):
        values = [values]
    return np.array([np.nan if v is None or (isinstance(v, list) and not v) else v
                     for v in values], dtype=float)


def _close(ours, theirs, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(_arr(ours), _arr(theirs), rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


@pytest.mark.parametrize("block", TESTS_PI, ids=lambda b: f"{b['data']}-{b['method']}-{b['test']}")
def test_rma_tests_and_pi_types(block):
    mods = None if "ablat" not in block else pd.DataFrame({"ablat": block["ablat"]})
    res = rma(block["yi"], block["vi"], mods=mods, method=block["method"], test=block["test"],
              control=CONTROL)
    f = block["fit"]
    rtol = RTOL_PM if block["method"] == "PM" else RTOL
    for name in ("beta", "se", "zval", "pval", "ci_lb", "ci_ub", "tau2", "s2w", "qm", "qm_p"):
        _close(getattr(res, name), f[name], name, rtol=rtol)
    newmods = None if mods is None else pd.DataFrame({"ablat": block["newmods"]})
    for pt in PI_TYPES:
        pr = predict(res, newmods, pi_type=pt)
        for name in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            _close(getattr(pr, name), block["pred"][pt][name], f"{pt}:{name}", rtol=rtol)


@pytest.mark.parametrize("test", ["t", "adhoc"])
def test_batch_matches_single_fits(test):
    block = next(b for b in TESTS_PI if b["data"] == "homog" and b["method"] == "REML")
    y = np.array(block["yi"])
    v = np.array(block["vi"])
    Y = np.stack([y, y[::-1] * 1.3, y + 0.1])
    batch = rma_batch(Y, v, method="REML", test=test, control=CONTROL)
    for b in range(3):
        one = rma(Y[b], v, method="REML", test=test, control=CONTROL)
        for name in ("beta", "se", "ci_lb", "ci_ub", "s2w", "pval"):
            _close(getattr(batch, name)[b], getattr(one, name), name, rtol=1e-12, atol=1e-14)


def test_adhoc_is_never_narrower_than_t():
    block = next(b for b in TESTS_PI if b["data"] == "homog" and b["method"] == "REML")
    knha = rma(block["yi"], block["vi"], test="knha", control=CONTROL)
    adhoc = rma(block["yi"], block["vi"], test="adhoc", control=CONTROL)
    t = rma(block["yi"], block["vi"], test="t", control=CONTROL)
    assert knha.s2w < 1  # the case where the variants differ
    assert adhoc.se[0] == pytest.approx(t.se[0], rel=1e-14)
    assert adhoc.ci_ub[0] - adhoc.ci_lb[0] > knha.ci_ub[0] - knha.ci_lb[0]


def test_unknown_test_and_pi_type():
    with pytest.raises(ValueError, match="unknown test"):
        rma([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], test="hksj")
    res = rma([0.1, 0.2, 0.3], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="pi_type"):
        predict(res, pi_type="hts")


@pytest.mark.parametrize("block", PETERS, ids=lambda b: f"{b['data']}-{b['method']}")
def test_peters_test(block):
    res = rma(block["yi"], block["vi"], method=block["method"], control=CONTROL)
    ni = block["ni"]
    out = peters_test(res, ni)
    ref = regtest(res, model="lm", predictor="ninv", ni=ni)
    for name in ("zval", "pval", "est", "ci_lb", "ci_ub"):
        _close(getattr(out, name), block[name], name)
        assert getattr(out, name) == getattr(ref, name)
    assert out.ddf == block["dfs"]


def test_peters_test_from_counts_uses_uncorrected_totals():
    block = next(b for b in PETERS if b["data"] == "zeros" and b["method"] == "REML")
    es = escalc_proportion("PLO", block["xi"], block["ni"])
    _close(es.yi, block["yi"], "yi", rtol=1e-14, atol=0)
    res = rma(es.yi, es.vi, control=CONTROL)
    _close(peters_test(res, es.ni).pval, block["pval"], "pval")


@pytest.mark.parametrize("block", GLMM, ids=lambda b: b["test"])
def test_glmm_predictions_with_pi_types(block):
    data = pd.read_csv(HERE / "glmm_pool.csv")
    fit = rma_glmm(data.events, data.total, mods=data[["x"]], test=block["test"])
    fit0 = rma_glmm(data.events, data.total, test=block["test"])
    _close(fit.beta, block["beta"], "beta", rtol=RTOL_GLMM, atol=1e-7)
    _close(fit.se, block["se"], "se", rtol=RTOL_GLMM, atol=1e-7)
    _close(fit.tau2, block["tau2"], "tau2", rtol=RTOL_GLMM, atol=1e-7)
    for pt in PI_TYPES:
        pr = fit.predict(np.array(block["newmods"])[:, None], pi_type=pt)
        pr0 = fit0.predict(pi_type=pt)
        for name in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            _close(getattr(pr, name), block["pred"][pt][name], f"{pt}:{name}", rtol=RTOL_GLMM, atol=1e-4)
            _close(getattr(pr0, name), block["pred0"][pt][name], f"{pt}:{name}", rtol=RTOL_GLMM, atol=1e-4)


def test_glmm_loglik_conventions():
    """D6: ``loglik`` is the exact marginal log-likelihood; glmer's ``logLik`` (nAGQ = 7) is it
    minus the saturated log-likelihood; ``loglik_metafor`` is metafor's
    ``fit.stats["ll", "ML"]`` (ll_saturated - conditional deviance / 2)."""
    data = pd.read_csv(HERE / "glmm_pool.csv")
    fit0 = rma_glmm(data.events, data.total)
    block = GLMM[0]
    _close(fit0.loglik - fit0.loglik_saturated, block["ll_glmer"], "loglik", rtol=1e-6, atol=0)
    _close(fit0.loglik_metafor, block["ll_metafor"], "loglik_metafor", rtol=1e-6, atol=0)


def test_pool_glmm_with_mods_and_newmods(tmp_path, capsys):
    """D4: ``pool --method GLMM --mods`` crashed; predictions match metafor's predict()."""
    from blinameta.cli import main

    block = GLMM[0]
    new = tmp_path / "new.csv"
    new.write_text("x\n" + "\n".join(str(v) for v in block["newmods"]) + "\n")
    argv = ["pool", str(HERE / "glmm_pool.csv"), "--events", "events", "--total", "total",
            "--method", "GLMM", "--mods", "x"]
    assert main(argv + ["--newmods", str(new), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["r2"] is None
    _close(out["coef"], block["beta"], "coef", rtol=RTOL_GLMM, atol=1e-7)
    for i, row in enumerate(out["predictions"]):
        for name in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
            _close(row[name], block["pred"]["default"][name][i], name, rtol=RTOL_GLMM, atol=1e-4)
    assert main(argv) == 0
    assert "Test of Moderators" in capsys.readouterr().out


@pytest.mark.parametrize("block", GLMM, ids=lambda b: b["test"])
def test_glmm_proportion_on_the_proportion_scale(block):
    from scipy.special import expit

    from blinameta.frequentist.glmm import glmm_proportion

    data = pd.read_csv(HERE / "glmm_pool.csv")
    for pt in PI_TYPES:
        out = glmm_proportion(data.events, data.total, test=block["test"], pi_type=pt)
        ref = block["pred0"][pt]
        for ours, theirs in (("estimate", "pred"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"),
                             ("pi_lb", "pi_lb"), ("pi_ub", "pi_ub")):
            _close(getattr(out, ours), expit(ref[theirs]), ours, rtol=RTOL_GLMM, atol=1e-5)
    d = out.to_dict()
    assert d["k"] == 7 and d["events"] == int(data.events.sum()) and "fit" not in d
