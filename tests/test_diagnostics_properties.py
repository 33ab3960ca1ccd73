"""Identities of blinameta.frequentist.diagnostics (independent of the metafor fixtures)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from blinameta.frequentist import diagnostics as dg
from blinameta.errors import UserError
from blinameta.frequentist.rma import rma

YI = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79, -1.62, 0.01, -0.47, -1.37, -0.34, 0.45, -0.02])
VI = np.array([0.326, 0.195, 0.415, 0.020, 0.051, 0.007, 0.223, 0.004, 0.056, 0.073, 0.012, 0.532, 0.071])


def test_cumul_last_step_is_the_full_model():
    res = rma(YI, VI)
    cu = dg.cumul(res, order=np.arange(13)[::-1])
    assert cu.estimate[-1] == pytest.approx(res.beta[0], rel=1e-12)
    assert cu.tau2[-1] == pytest.approx(res.tau2, rel=1e-9)
    assert cu.order.tolist() == list(range(12, -1, -1))


def test_leave1out_is_permutation_equivariant():
    perm = np.random.default_rng(1).permutation(13)
    a = dg.leave1out(rma(YI, VI))
    b = dg.leave1out(rma(YI[perm], VI[perm]))
    np.testing.assert_allclose(b.estimate, a.estimate[perm], rtol=1e-9)
    np.testing.assert_allclose(b.tau2, a.tau2[perm], rtol=1e-7, atol=1e-12)


def test_rstudent_of_common_effect_model_has_closed_form():
    res = rma(YI, VI, method="EE")
    inf = dg.influence(res)
    w = 1 / VI
    for i in range(13):
        keep = np.arange(13) != i
        b = np.sum(w[keep] * YI[keep]) / w[keep].sum()
        z = (YI[i] - b) / math.sqrt(VI[i] + 1 / w[keep].sum())
        assert inf.rstudent[i] == pytest.approx(z, rel=1e-10)
    assert inf.tau2_del.tolist() == [0.0] * 13


@pytest.mark.parametrize("n", [3, 6, 9])
def test_exact_kendall_distribution(n):
    total = dg._kendall_exact_cdf(n * (n - 1) // 2, n)
    assert total == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=n), rng.normal(size=n)
    tau, p, exact = dg._kendall_test(x, y)
    ref = stats.kendalltau(x, y, method="exact")
    assert exact and tau == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-10)


@pytest.mark.parametrize("estimator", ["L0", "R0"])
def test_trimfill_is_reflection_equivariant(estimator):
    """Mirroring the data (y -> -y) mirrors the side, the filled studies and the estimate."""
    y = np.array([0.05, 0.10, 0.02, 0.30, 0.45, 0.60, 0.80, 0.15, 0.70, 0.95, 0.25, 0.08])
    v = np.array([0.010, 0.015, 0.012, 0.040, 0.060, 0.090, 0.120, 0.020, 0.100, 0.150, 0.030, 0.011])
    a = dg.trimfill(rma(y, v), estimator=estimator)
    b = dg.trimfill(rma(-y, v), estimator=estimator)
    assert a.k0 == b.k0 > 0 and {a.side, b.side} == {"left", "right"}
    np.testing.assert_allclose(b.yi, -a.yi, rtol=1e-12)
    assert b.fit.beta[0] == pytest.approx(-a.fit.beta[0], rel=1e-9)


def test_meta_regression_refuses_leave1out():
    with pytest.raises(UserError):
        dg.leave1out(rma(YI, VI, mods=np.arange(13.0)))
