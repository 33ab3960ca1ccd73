"""Identities and failure modes of blinameta.frequentist.glmm.rma_glmm (no R needed)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from blinameta.errors import UserError
from blinameta.frequentist.glmm import _Aghq, rma_glmm

XI = np.array([12, 30, 27, 19, 41, 9, 25])
NI = np.array([20, 70, 39, 33, 110, 14, 38])


def test_order_of_studies_does_not_matter():
    a = rma_glmm(XI, NI)
    perm = np.array([3, 0, 6, 2, 5, 1, 4])
    b = rma_glmm(XI[perm], NI[perm])
    np.testing.assert_allclose([b.beta[0], b.se[0], b.tau2], [a.beta[0], a.se[0], a.tau2], rtol=1e-7)


def test_quadrature_converges_to_the_integral():
    """AGHQ with 7 points equals a 60-point rule and brute-force integration to ~1e-6."""
    X = np.ones((XI.size, 1))
    psi = np.array([0.2, 0.42])
    d7 = _Aghq(XI.astype(float), NI.astype(float), X, 7).deviance(psi)
    d60 = _Aghq(XI.astype(float), NI.astype(float), X, 60).deviance(psi)
    u = np.linspace(-12, 12, 200001)
    from scipy.special import expit, gammaln
    from scipy.stats import norm

    ll = 0.0
    for x, n in zip(XI, NI):
        pr = expit(0.2 + 0.42 * u)
        dens = np.exp(gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1) + x * np.log(pr) + (n - x) * np.log1p(-pr)) * norm.pdf(u)
        ll += np.log(np.trapezoid(dens, u))
    assert abs(d60 - (-2 * ll)) < 1e-8
    assert abs(d7 - d60) < 1e-5


def test_boundary_fit_equals_logistic_regression():
    """With tau2 = 0 at the boundary the model is the fixed-effects logistic regression."""
    xi = np.array([10, 21, 15, 29, 12, 40])
    ni = np.array([50, 100, 75, 150, 60, 200])
    res = rma_glmm(xi, ni)
    assert res.tau2 == 0.0
    glm = sm.GLM(np.column_stack([xi, ni - xi]), np.ones((6, 1)), family=sm.families.Binomial()).fit()
    np.testing.assert_allclose([res.beta[0], res.se[0]], [glm.params[0], glm.bse[0]], rtol=1e-6)
    assert res.loglik == pytest.approx(glm.llf, rel=1e-10)


def test_moderator_scaling_is_invisible():
    age = np.array([8.5, 10.2, 6.1, 12.0, 9.4, 5.5, 7.8])
    a = rma_glmm(XI, NI, mods=age)
    b = rma_glmm(XI, NI, mods=age * 100.0)
    np.testing.assert_allclose(b.beta * [1, 100], a.beta, rtol=1e-6)
    np.testing.assert_allclose(b.tau2, a.tau2, rtol=1e-6)


@pytest.mark.parametrize(
    "xi, ni, fragment",
    [
        ([0, 0, 0, 0], [10, 20, 15, 30], "0 events"),
        ([10, 20, 15, 30], [10, 20, 15, 30], "events = total"),
        ([3], [10], "too few"),
        ([3, 11], [10, 10], "between 0 and total"),
        ([3, 2.5], [10, 10], "whole numbers"),
    ],
)
def test_impossible_fits_raise_user_error(xi, ni, fragment):
    with pytest.raises(UserError, match=fragment):
        rma_glmm(xi, ni)


def test_separation_by_a_moderator_raises_user_error():
    xi = [0, 0, 0, 5, 8, 7]
    ni = [10, 12, 9, 20, 25, 22]
    grp = np.array([1, 1, 1, 0, 0, 0], float)
    with pytest.raises(UserError, match="separated"):
        rma_glmm(xi, ni, mods=grp)


def test_sparse_data_with_zero_and_all_event_studies_fit():
    res = rma_glmm([0, 1, 0, 2, 5, 5], [5, 8, 4, 9, 5, 6])
    assert res.converged and np.isfinite(res.beta[0]) and np.isfinite(res.se[0])


def test_to_dict_is_plain():
    d = rma_glmm(XI, NI).to_dict()
    assert isinstance(d["beta"], list) and isinstance(d["tau2"], float)
