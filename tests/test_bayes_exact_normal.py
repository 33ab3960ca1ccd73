"""The exact path of the normal-normal model against an independent computation (audit D1).

The reference conditions the joint Gaussian of ``(mu, theta_i, theta_new, y)`` given ``tau``
directly (``Cov(y) = s0^2 J + diag(tau^2 + v)``; no conjugate-update formulas), weights ``tau``
by the marginal likelihood ``N(y | m0 1, Cov(y))`` (scipy's multivariate normal) times the
prior and integrates over ``tau`` with ``scipy.integrate.quad``; a reported quantile ``q`` of
probability ``p`` is checked by the size of the Newton step ``(F(q) - p)/f(q)``.
The audit's numbers for rr_mrd_response (Brown 2021, Locatelli 2021; normal:0:1.5,
half_normal:0.5) are checked as printed there.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from blinameta.bayes import fit_exact, normal_normal
from blinameta.frequentist.escalc import escalc_2x2

# rr_mrd_response: MRD response, blinatumomab vs chemotherapy (log risk ratios)
RR = escalc_2x2("RR", [79, 44], [105, 49], [33, 26], [103, 48])
HR = (np.log([0.7, 1.2, 0.45, 0.62]), np.array([0.029, 0.036, 0.043, 0.046]))
CASES = {
    "rr_mrd_response": (RR.yi, RR.vi, "normal:0:1.5", "half_normal:0.5"),
    "hr4_hn1": (*HR, "normal:0:2", "half_normal:1"),
    "hr4_hc": (*HR, "normal:0:2", "half_cauchy:0.5"),
}
TOL = 2e-6


class Reference:
    """Posterior quantities by direct Gaussian conditioning and quad over tau."""

    def __init__(self, y, v, prior_mu, prior_tau):
        spec = normal_normal(y, v, prior_mu=prior_mu, prior_tau=prior_tau)
        self.y, self.v = np.asarray(y, float), np.asarray(v, float)
        self.m0, self.s0 = spec.prior_mu.params
        self.prior_tau = spec.prior_tau
        self.k = self.y.size
        self.z = self._quad(lambda t: 1.0)

    def cov_y(self, tau):
        return self.s0**2 * np.ones((self.k, self.k)) + np.diag(tau**2 + self.v)

    def density(self, tau):
        ll = stats.multivariate_normal.logpdf(self.y, np.full(self.k, self.m0), self.cov_y(tau))
        return math.exp(ll + float(self.prior_tau.logpdf(tau)) + 20.0)

    def _quad(self, f):
        return integrate.quad(lambda t: self.density(t) * f(t), 0.0, np.inf, limit=400,
                              epsabs=0, epsrel=1e-10)[0]

    def conditional(self, tau, which):
        """Mean and sd of ``which`` ("mu", "new" or study index) given tau and y."""
        S = self.cov_y(tau)
        if which == "mu":
            c, var0 = np.full(self.k, self.s0**2), self.s0**2
        elif which == "new":
            c, var0 = np.full(self.k, self.s0**2), self.s0**2 + tau**2
        else:
            c = np.full(self.k, self.s0**2)
            c[which] += tau**2
            var0 = self.s0**2 + tau**2
        sol = np.linalg.solve(S, c)
        return self.m0 + sol @ (self.y - self.m0), math.sqrt(var0 - c @ sol)

    def cdf(self, which, q):
        def f(t):
            m, s = self.conditional(t, which)
            return stats.norm.cdf((q - m) / s)
        return self._quad(f) / self.z

    def pdf(self, which, q):
        def f(t):
            m, s = self.conditional(t, which)
            return stats.norm.pdf((q - m) / s) / s
        return self._quad(f) / self.z

    def mean(self, which):
        return self._quad(lambda t: self.conditional(t, which)[0]) / self.z

    def quantile_error(self, which, p, q):
        """Distance from ``q`` to the ``p`` quantile, by one Newton step (F(q) - p)/f(q)."""
        return (self.cdf(which, q) - p) / self.pdf(which, q)


@pytest.fixture(scope="module", params=list(CASES))
def pair(request):
    y, v, pm, pt = CASES[request.param]
    return fit_exact(normal_normal(y, v, prior_mu=pm, prior_tau=pt)), Reference(y, v, pm, pt)


def test_study_intervals_are_exact(pair):
    res, ref = pair
    for i, s in enumerate(res.study):
        assert s.mean == pytest.approx(ref.mean(i), abs=TOL)
        assert abs(ref.quantile_error(i, 0.025, s.lb)) < TOL
        assert abs(ref.quantile_error(i, 0.975, s.ub)) < TOL


def test_mu_new_and_probabilities(pair):
    res, ref = pair
    for name, which in (("mu", "mu"), ("theta_new", "new")):
        summ = getattr(res, name)
        assert summ.mean == pytest.approx(ref.mean(which), abs=TOL)
        for p, q in ((0.025, summ.lb), (0.975, summ.ub), (0.5, summ.median)):
            assert abs(ref.quantile_error(which, p, q)) < TOL
    assert res.prob_mu_negative == pytest.approx(ref.cdf("mu", 0.0), abs=TOL)
    assert res.prob_new_negative == pytest.approx(ref.cdf("new", 0.0), abs=TOL)


def test_tau_quantiles(pair):
    res, ref = pair

    def cdf(t):
        return integrate.quad(ref.density, 0.0, t, limit=400, epsabs=0, epsrel=1e-11)[0] / ref.z

    for p, value in ((0.025, res.tau.lb), (0.5, res.tau.median), (0.975, res.tau.ub)):
        assert cdf(value) == pytest.approx(p, abs=1e-7)


def test_audit_numbers_rr_mrd_response():
    """audit D1: study 1 lb 0.50647 (the grid gave 0.49868), mean 0.787902; study 2 ub 0.81718."""
    y, v, pm, pt = CASES["rr_mrd_response"]
    res = fit_exact(normal_normal(y, v, prior_mu=pm, prior_tau=pt))
    assert res.study[0].lb == pytest.approx(0.50647, abs=5e-6)
    assert res.study[0].mean == pytest.approx(0.787902, abs=5e-7)
    assert res.study[1].ub == pytest.approx(0.81718, abs=5e-6)
    d = res.to_dict()
    assert d["prob_mu_negative"] == res.prob_mu_negative
    assert d["mu"]["median"] == res.mu.median


def test_other_heterogeneity_prior_is_cheap_and_changes_tau():
    y, v, pm, _ = CASES["rr_mrd_response"]
    spec = normal_normal(y, v, prior_mu=pm, prior_tau="half_normal:0.5")
    a = fit_exact(spec)
    b = fit_exact(spec.with_priors(prior_tau="half_normal:1"))
    assert b.tau.ub > a.tau.ub
    assert b.settings["seconds"] < 10
