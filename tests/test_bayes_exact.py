"""The exact (quadrature) path against independent integration and analytic results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import expit

from blinameta.bayes import (
    binomial_log_marginal,
    binomial_normal,
    fit_exact,
    normal_normal,
    prior_sensitivity,
)
from blinameta.bayes.exact import marginal_cdf
from blinameta.errors import UserError

#: Pediatric-like complete-remission counts.
CR = ([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14])
#: Zero-event studies among others.
ZERO = ([0, 1, 5, 8, 3, 2], [12, 15, 30, 25, 20, 18])
#: Large heterogeneity.
HETERO = ([2, 25, 8, 30, 1, 14], [40, 30, 45, 36, 25, 20])

#: Largest change of any summary when the grid and quadrature are refined.
GRID_TOL = 1e-4
#: ... of the study-specific 95% interval endpoints (a normal mixture over the grid whose CDF
#: has small steps when tau is near 0; documented as accurate to about 1e-3).
STUDY_CI_GRID_TOL = 1e-3


def _numbers(result) -> np.ndarray:
    frame = result.summary_frame()[["mean", "sd", "lb", "ub"]].to_numpy(dtype=float).ravel()
    studies = [s.mean for s in result.study]
    exceed = [v for e in result.exceedance for v in (e.p_median, e.p_mean, e.p_new)]
    return np.concatenate([frame, studies, exceed])


def _study_ci(result) -> np.ndarray:
    return np.array([v for s in result.study for v in (s.lb, s.ub)])


@pytest.mark.parametrize(
    ("x", "n", "mu", "tau"),
    [
        (12, 20, 0.2, 0.5),
        (0, 12, -1.5, 0.5),
        (1, 15, -2.0, 1.0),
        (15, 15, 1.0, 0.8),
        (41, 110, -0.5, 0.05),
        (200, 400, 0.0, 2.0),
        (0, 12, -2.0, 2.0),
        (3, 9, 0.5, 3.0),
    ],
)
def test_gauss_hermite_marginal_likelihood_against_quad(x, n, mu, tau):
    # fit_exact uses 12 adaptive nodes, 36 for studies with at most one event or non-event
    def integrand(theta):
        return stats.binom.pmf(x, n, expit(theta)) * stats.norm.pdf(theta, mu, tau)

    # split at the mode region so quad sees the peak
    centre = math.log((x + 0.5) / (n - x + 0.5))
    points = sorted({mu, centre})
    truth = sum(
        integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-13, limit=500)[0]
        for a, b in zip([-np.inf, *points], [*points, np.inf])
    )
    n_gh = 36 if (x <= 1 or x >= n - 1) else 12
    value = binomial_log_marginal([x], [n], mu, tau, n_gh=n_gh)[0]
    assert value == pytest.approx(math.log(truth), abs=5e-6)


@pytest.mark.parametrize("data", [CR, ZERO, HETERO], ids=["cr", "zero", "hetero"])
@pytest.mark.parametrize("prior_tau", ["half_normal:0.5", "half_cauchy:0.5", "uniform:0:5"])
def test_finer_grid_changes_summaries_by_less_than_1e4(data, prior_tau):
    spec = binomial_normal(*data, prior_tau=prior_tau)
    base = fit_exact(spec)
    fine = fit_exact(spec, n_mu=121, n_tau=121, n_gh=40, refine=6)
    assert np.max(np.abs(_numbers(base) - _numbers(fine))) < GRID_TOL
    assert np.max(np.abs(_study_ci(base) - _study_ci(fine))) < STUDY_CI_GRID_TOL


def test_normal_normal_finer_grid():
    spec = normal_normal([-0.3, -0.1, -0.5, 0.2, -0.8], [0.04, 0.09, 0.05, 0.1, 0.2])
    base = fit_exact(spec)
    fine = fit_exact(spec, n_mu=121, n_tau=121, refine=6)
    assert np.max(np.abs(_numbers(base) - _numbers(fine))) < GRID_TOL
    assert np.max(np.abs(_study_ci(base) - _study_ci(fine))) < STUDY_CI_GRID_TOL


def test_normal_normal_with_tau_near_zero_is_the_conjugate_normal():
    # tau ~ uniform(0, 1e-5) fixes tau at ~0: mu | y is then normal with
    # precision 1/s0^2 + sum(1/vi) and mean (m0/s0^2 + sum(yi/vi)) / precision.
    yi = np.array([-0.3, -0.1, -0.5, 0.2])
    vi = np.array([0.04, 0.09, 0.05, 0.1])
    spec = normal_normal(yi, vi, prior_mu="normal:0.1:2", prior_tau="uniform:0:1e-5")
    result = fit_exact(spec)
    prec = 1 / 2.0**2 + np.sum(1 / vi)
    mean = (0.1 / 2.0**2 + np.sum(yi / vi)) / prec
    sd = 1 / math.sqrt(prec)
    assert result.mu.mean == pytest.approx(mean, abs=1e-6)
    assert result.mu.sd == pytest.approx(sd, abs=1e-6)
    assert result.mu.lb == pytest.approx(mean - 1.959964 * sd, abs=1e-5)
    assert result.mu.ub == pytest.approx(mean + 1.959964 * sd, abs=1e-5)
    # with tau = 0 every study's effect equals mu
    for s in result.study:
        assert s.mean == pytest.approx(mean, abs=1e-5)


def _gauss_legendre_2d(log_post, mu_range, tau_range, n):
    """Posterior expectations by an independent product Gauss-Legendre rule on a box."""
    x, w = np.polynomial.legendre.leggauss(n)
    (a, b), (c, d) = mu_range, tau_range
    mu = 0.5 * (b - a) * x + 0.5 * (b + a)
    tau = 0.5 * (d - c) * x + 0.5 * (d + c)
    mm, tt = np.meshgrid(mu, tau, indexing="ij")
    lp = log_post(mm, tt)
    weight = np.exp(lp - lp.max()) * np.outer(w, w)
    weight /= weight.sum()
    return mm, tt, weight


def test_normal_normal_against_gauss_legendre_quadrature():
    yi = np.array([-0.3, 0.4, -0.5])
    vi = np.array([0.04, 0.09, 0.05])

    def log_post(mm, tt):
        v = vi + tt[..., None] ** 2
        ll = stats.norm.logpdf(yi, mm[..., None], np.sqrt(v)).sum(-1)
        return ll + stats.norm.logpdf(mm, 0, 2) + stats.halfnorm.logpdf(tt, scale=0.5)

    mm, tt, w = _gauss_legendre_2d(log_post, (-6, 6), (0, 6), 300)
    result = fit_exact(normal_normal(yi, vi))
    assert result.mu.mean == pytest.approx(float((w * mm).sum()), abs=1e-6)
    assert result.tau.mean == pytest.approx(float((w * tt).sum()), abs=1e-6)
    assert result.tau.sd == pytest.approx(float(np.sqrt((w * tt**2).sum()
                                                        - (w * tt).sum() ** 2)), abs=1e-6)


def test_binomial_against_gauss_legendre_quadrature():
    x, n = np.array([3, 9, 4]), np.array([20, 25, 15])

    def log_post(mm, tt):
        ll = binomial_log_marginal(x, n, mm, tt, n_gh=40).sum(-1)
        return ll + stats.norm.logpdf(mm, 0, 1.5) + stats.halfnorm.logpdf(tt, scale=0.5)

    mm, tt, w = _gauss_legendre_2d(log_post, (-5, 3), (0, 4), 200)
    result = fit_exact(binomial_normal(x, n))
    assert result.tau.mean == pytest.approx(float((w * tt).sum()), abs=1e-5)
    assert result.p_median.mean == pytest.approx(float((w * expit(mm)).sum()), abs=1e-5)
    assert result.mu.sd == pytest.approx(float(np.sqrt((w * mm**2).sum()
                                                       - (w * mm).sum() ** 2)), abs=1e-5)


def test_identities():
    result = fit_exact(binomial_normal(*CR))
    # the mean of the new-study rate equals the mean population-averaged rate
    assert result.p_new.mean == pytest.approx(result.p_mean.mean, abs=1e-12)
    # a new study is more uncertain than the average
    assert result.p_new.lb < result.p_mean.lb < result.p_mean.ub < result.p_new.ub
    # p_median is a monotone transform of mu
    assert result.p_median.lb == pytest.approx(expit(result.mu.lb), abs=1e-12)
    # p_mean > 0.5 exactly when mu > 0
    at_half = next(e for e in result.exceedance if e.threshold == 0.5)
    assert at_half.p_mean == pytest.approx(at_half.p_median, abs=1e-5)
    # exceedance probabilities fall with the threshold
    for a, b in zip(result.exceedance, result.exceedance[1:]):
        assert a.p_median >= b.p_median and a.p_mean >= b.p_mean and a.p_new >= b.p_new


def test_order_of_studies_does_not_matter():
    x, n = CR
    order = [3, 0, 5, 1, 4, 2]
    a = fit_exact(binomial_normal(x, n))
    b = fit_exact(binomial_normal([x[i] for i in order], [n[i] for i in order]))
    assert a.mu.mean == pytest.approx(b.mu.mean, abs=1e-9)
    assert a.tau.ub == pytest.approx(b.tau.ub, abs=1e-7)


def test_zero_event_studies_shrink_towards_the_mean():
    result = fit_exact(binomial_normal(*ZERO, study=list("ABCDEF")))
    first = result.study[0]
    assert 0.0 < first.lb < first.mean < first.ub
    assert first.mean > 0.02  # 0/12 is pulled up, not estimated as 0


def test_exact_rejects_moderators():
    spec = binomial_normal(*CR, mods={"age": [5, 8, 6, 10, 12, 4]})
    with pytest.raises(UserError, match="moderators"):
        fit_exact(spec)


def test_prior_sensitivity_table():
    table = prior_sensitivity(binomial_normal(*CR))
    assert list(table.index) == [
        "half_normal:0.5",
        "half_normal:1",
        "half_cauchy:0.5",
        "uniform:0:5",
    ]
    assert {"mu_mean", "tau_ub", "p_mean_lb", "p_new_ub"} <= set(table.columns)
    # wider heterogeneity priors give a larger tau and a wider predictive interval
    assert table.loc["half_normal:1", "tau_mean"] > table.loc["half_normal:0.5", "tau_mean"]
    width = table["p_new_ub"] - table["p_new_lb"]
    assert width["uniform:0:5"] > width["half_normal:0.5"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binomial_normal", "normal_normal"])
def test_simulation_based_calibration_of_the_exact_path(kind):
    # Talts et al. (2018): with (mu, tau) drawn from the prior and data from the model, the
    # posterior CDF at the true value is uniform. 1000 replications, KS test at 1%.
    rng = np.random.default_rng(20240611)
    sizes = np.array([12, 20, 35, 50, 80])
    u_mu, u_tau = [], []
    for _ in range(1000):
        mu = rng.normal(0.0, 1.5 if kind == "binomial_normal" else 2.0)
        tau = abs(rng.normal(0.0, 0.5))
        theta = mu + tau * rng.normal(size=sizes.size)
        if kind == "binomial_normal":
            spec = binomial_normal(rng.binomial(sizes, expit(theta)), sizes)
        else:
            vi = 4.0 / sizes
            spec = normal_normal(rng.normal(theta, np.sqrt(vi)), vi)
        cdf = marginal_cdf(spec, mu=[mu], tau=[tau])
        u_mu.append(cdf["mu"][0])
        u_tau.append(cdf["tau"][0])
    assert stats.kstest(u_mu, "uniform").pvalue > 0.01
    assert stats.kstest(u_tau, "uniform").pvalue > 0.01
