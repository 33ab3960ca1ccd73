"""Exploratory moderator models (issue 11, item 4): the quadrature against a brute-force grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit, gammaln

from blinameta.analysis import AnalysisSpec
from blinameta.analysis.moderators import bayes_metareg_exact, moderator_models

EVENTS = np.array([27, 58, 6, 18])
TOTAL = np.array([70, 98, 13, 25])
SHARE = np.array([0.3, 0.6, 0.1, 0.9])


def _brute_force():
    """Plain trapezoid grid over (a, b, tau); random effects by Gauss-Legendre on z in [-8, 8]."""
    xc = SHARE - SHARE.mean()
    a = np.linspace(-2.5, 2.5, 61)
    b = np.linspace(-4.0, 6.0, 61)
    tau = np.linspace(0.0, 4.5, 61)
    z, zw = np.polynomial.legendre.leggauss(120)
    z, zw = 8 * z, 8 * zw * stats.norm.pdf(8 * z)
    aa, bb, tt = np.meshgrid(a, b, tau, indexing="ij")
    logpost = stats.norm.logpdf(aa, 0, 1.5) + stats.norm.logpdf(bb, 0, 1) + stats.halfnorm.logpdf(tt, scale=1.0)
    for x, n, s in zip(EVENTS, TOTAL, xc):
        theta = (aa + bb * s)[..., None] + tt[..., None] * z
        logc = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
        lik = np.exp(logc + x * theta - n * np.logaddexp(0, theta)) @ zw
        logpost += np.log(lik)
    w = np.exp(logpost - logpost.max())
    for axis, grid in enumerate((a, b, tau)):
        trap = np.ones(len(grid))
        trap[[0, -1]] = 0.5
        w *= trap.reshape([-1 if i == axis else 1 for i in range(3)])
    w /= w.sum()
    eta1 = (aa + bb * (1.0 - SHARE.mean())).ravel()
    order = np.argsort(eta1)
    cdf = np.cumsum(w.ravel()[order])
    median1 = expit(np.interp(0.5, cdf, eta1[order]))
    return float((w * bb).sum()), float(np.sqrt((w * bb**2).sum() - (w * bb).sum() ** 2)), float(median1)


def test_quadrature_matches_a_brute_force_grid():
    mean_b, sd_b, median1 = _brute_force()
    fit = bayes_metareg_exact(EVENTS, TOTAL, SHARE, prior_mu="normal:0:1.5", prior_tau="half_normal:1")
    assert fit["coef"]["mean"] == pytest.approx(mean_b, abs=5e-3)
    assert fit["coef"]["sd"] == pytest.approx(sd_b, abs=5e-3)
    assert fit["predictions"][0]["x"] == 1.0
    assert fit["predictions"][0]["estimate"] == pytest.approx(median1, abs=5e-3)
    assert fit["predictions"][0]["pi"][0] < fit["predictions"][0]["ci"][0]


def _rows(shares):
    return pd.DataFrame({"study_id": list("abcd"), "events": EVENTS, "total": TOTAL, "share_first_relapse": shares})


def test_pure_populations_flag_extrapolation_and_thin_data_is_not_fitted():
    spec = AnalysisSpec(id="t", title="t", outcome="cr", filter={"blast_burden": ["ge5"]},
                        exploratory_moderators=["share_first_relapse", "share_ge5"])
    models = {m.moderator: m for m in moderator_models(spec, _rows([0.3, 0.6, 0.1, 0.7]))}
    m = models["share_first_relapse"]
    assert m.available and m.k == 4 and "ecological" in m.warning
    pops = {p["x"]: p for p in m.predictions}
    assert pops[1.0]["extrapolation"] and not pops[0.0]["extrapolation"]  # nearest shares 0.7 and 0.1
    assert pops[1.0]["population"] == "first relapse, >=5% marrow blasts"
    assert m.glmm["available"] and np.sign(m.glmm["coef"]) == np.sign(m.coef["mean"])
    assert not models["share_ge5"].available and "not in the evidence table" in models["share_ge5"].note
    flat = moderator_models(spec, _rows([0.5, 0.55, 0.6, np.nan]))[0]
    assert not flat.available and flat.k_missing == 1
