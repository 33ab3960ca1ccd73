"""Exact (sampling-free) posterior of the random-effects models by numerical integration.

The joint posterior of ``(mu, tau)`` is evaluated on a rectangular grid whose box is found
adaptively (expanded until the marginal densities at open edges are below 1e-6 of their
maxima, then shrunk to the region above that level). Each study's random effect is integrated
out

* binomial-normal: by adaptive Gauss–Hermite quadrature (Liu & Pierce 1994, *Biometrika*
  81:624): centred at the mode of ``Binomial(x | n, invlogit(theta)) N(theta | mu, tau^2)``
  (Newton steps) and scaled by its curvature, vectorised over grid × studies × nodes;
* normal-normal: analytically, ``yi ~ N(mu, vi + tau^2)``.

The grid is uniform in ``mu`` and in ``s`` with ``tau = c sinh(s)``: linear near 0 and
logarithmic in the tail, so heavy-tailed priors (half-Cauchy) are covered with few nodes. The
log posterior is interpolated by a bicubic spline onto a finer grid and integrated with the
trapezoidal rule. In ``s`` the integrand is even and smooth (the marginal likelihood depends on
``tau^2``, the half-normal, -Cauchy and -t priors are even and ``sinh`` is odd), so the
trapezoidal rule on ``[0, S]`` with half weight at 0 converges as fast as on the whole line.
Quantiles solve ``CDF = p`` with the density a cubic Hermite interpolant along ``mu`` (or ``s``)
in each column of the fine grid, so they are as smooth as the means; ``p_new`` quantiles solve
the normal-mixture predictive CDF ``sum_g w_g Phi((logit q - mu_g) / tau_g) = p``.
Refining the grid and the quadrature changes the summaries by less than 1e-4
(``tests/test_bayes_exact.py``); studies with at most one event or non-event get three times as
many Gauss–Hermite nodes, as their integrand is close to a half-plateau when ``tau`` is large.

Normal-normal model: conditional on ``tau``, ``mu`` and every ``theta_i`` are normal (the prior
of ``mu`` is normal: conjugate), so ``mu``, ``theta_new``, the shrunken study effects and
``P(mu < 0)`` are ``tau``-mixtures of normals with closed-form components, and the marginal
posterior of ``tau`` is known in closed form up to its constant. These are computed by exact
1-D integration over ``tau`` (:class:`NormalNormalTau`: trapezoidal rule in ``s`` with
``tau = c sinh(s)``, whose integrand is even and smooth, so the rule converges geometrically;
``tau`` quantiles by adaptive quadrature of its density and root finding) and quantiles by root
finding on the mixture CDF. The 2-D grid is then used only for ranging (audit D1: the grid's
study intervals were widened by a floor on the component sd).

Binomial-normal shrunken study estimates: posterior means are exact. Their 95% intervals mix,
over the grid, the conditional distributions of ``theta_i | mu, tau``: a second-order Edgeworth
expansion with the conditional
mean, variance, skewness and kurtosis from the Gauss–Hermite nodes. Against 4 × 10,000 NUTS
draws the endpoints agreed within 0.003 on the proportion scale (about the Monte Carlo error of
the reference) on the CR, zero-event and large-heterogeneity sets, where a plain normal was off
by up to 0.017 with large heterogeneity; they are stable to 1e-3 under grid refinement.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.polynomial.hermite import hermgauss
from scipy.interpolate import RectBivariateSpline
from scipy.special import expit, gammaln, logit, ndtr

from blinameta.bayes._numerics import (
    mixture_cdf,
    mixture_quantile,
    population_mean,
    population_mean_sq,
    weighted_quantile,
)
from blinameta.bayes.models import ModelSpec
from blinameta.bayes.results import (
    _Q,
    DEFAULT_THRESHOLDS,
    BayesResult,
    Exceedance,
    ParamSummary,
    StudySummary,
)
from blinameta.errors import UserError

__all__ = [
    "NormalNormalTau",
    "PosteriorGrid",
    "binomial_log_marginal",
    "fit_exact",
    "marginal_cdf",
    "posterior_grid",
]

_EPS = 1e-6
_N_NEWTON = 6
_TAU_FLOOR = 1e-10
_SCALE = 1.0
_EXTREME_GH_FACTOR = 3


def binomial_log_marginal(
    events, total, mu, tau, *, n_gh: int = 12, return_nodes: bool = False
):
    """Log marginal likelihood of binomial studies with a normal random effect.

    ``log ∫ Binomial(x | n, invlogit(theta)) N(theta | mu, tau^2) dtheta`` by adaptive
    Gauss–Hermite quadrature with ``n_gh`` nodes.

    Parameters
    ----------
    events, total : array_like, shape (k,)
    mu, tau : array_like
        Broadcastable to each other; the result has shape ``broadcast(mu, tau).shape + (k,)``.
    n_gh : int
    return_nodes : bool
        Also return the nodes ``theta`` and normalised weights (shape ``(..., k, n_gh)``) of
        the conditional posterior of each ``theta_i`` given ``(mu, tau)``.
    """
    x = np.asarray(events, dtype=float)
    n = np.asarray(total, dtype=float)
    mu = np.asarray(mu, dtype=float)[..., None]
    tau = np.maximum(np.asarray(tau, dtype=float), _TAU_FLOOR)[..., None]
    prec = 1.0 / tau**2
    t, w = hermgauss(n_gh)
    # Newton from the precision-weighted mean of mu and the empirical logit.
    th_hat = np.log((x + 0.5) / (n - x + 0.5))
    p_hat = 1.0 / (x + 0.5) + 1.0 / (n - x + 0.5)
    m = (mu * prec + th_hat / p_hat) / (prec + 1.0 / p_hat)
    for _ in range(_N_NEWTON):
        p = expit(m)
        grad = x - n * p - (m - mu) * prec
        m = m + grad / (n * p * (1.0 - p) + prec)
    p = expit(m)
    s = _SCALE * math.sqrt(2.0) / np.sqrt(n * p * (1.0 - p) + prec)
    theta = m[..., None] + s[..., None] * t
    log_f = (
        x[:, None] * theta
        - n[:, None] * np.logaddexp(0.0, theta)
        - 0.5 * (theta - mu[..., None]) ** 2 * prec[..., None]
    )
    log_terms = log_f + t**2 + np.log(w)
    top = log_terms.max(axis=-1)
    lse = top + np.log(np.exp(log_terms - top[..., None]).sum(axis=-1))
    logc = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
    out = logc + np.log(s) - 0.5 * math.log(2.0 * math.pi) - np.log(tau) + lse
    if return_nodes:
        return out, theta, np.exp(log_terms - lse[..., None])
    return out


class PosteriorGrid:
    """The joint posterior of ``(mu, tau)`` on a grid.

    Attributes
    ----------
    mu, s : ndarray
        Uniform grid nodes; ``s[0] == 0``.
    tau_scale : float
        ``c`` in ``tau = c sinh(s)``.
    tau : ndarray
        ``tau_scale * sinh(s)``.
    log_post : ndarray, shape (len(mu), len(s))
        Unnormalised log posterior density of ``(mu, s)`` (Jacobian included).
    weight : ndarray
        Normalised quadrature weights (trapezoidal rule × posterior density).
    theta, pi : ndarray or None
        Binomial-normal: adaptive Gauss–Hermite nodes of each ``theta_i`` and their
        normalised conditional posterior weights, shape ``(len(mu), len(tau), k, n_gh)``.
    """

    def __init__(self, mu, s, tau_scale, log_post, theta=None, pi=None):
        self.mu, self.s, self.tau_scale, self.log_post = mu, s, tau_scale, log_post
        self.tau = tau_scale * np.sinh(s)
        self.theta, self.pi = theta, pi
        self.weight = _weights(mu, s, log_post)


def _trap(n: int) -> np.ndarray:
    w = np.ones(n)
    w[0] = w[-1] = 0.5
    return w


def _weights(mu, tau, log_post):
    w = np.exp(log_post - np.max(log_post)) * _trap(len(mu))[:, None] * _trap(len(tau))[None, :]
    return w / w.sum()


def _log_post(
    spec: ModelSpec,
    mu: np.ndarray,
    s: np.ndarray,
    c: float,
    n_gh: int,
    nodes: list | None = None,
) -> np.ndarray:
    mm, ss = np.meshgrid(mu, s, indexing="ij")
    tt = c * np.sinh(ss)
    k = spec.n_studies
    binomial = spec.kind == "binomial_normal"
    chunks = _study_chunks(k, mm.size * (_EXTREME_GH_FACTOR * n_gh if binomial else 1))
    loglik = np.zeros(mm.shape)
    for chunk in chunks:  # bounded memory: grid x (a chunk of studies) x nodes at a time
        if binomial:
            ll, theta, pi = _binomial_all(np.asarray(spec.events)[chunk], np.asarray(spec.total)[chunk], mm, tt, n_gh)
            loglik += ll.sum(-1)
            if nodes is not None and len(chunks) == 1:
                nodes.extend([theta, pi])  # kept for the study summaries when they fit in one chunk
        else:
            y = np.asarray(spec.yi)[chunk]
            v = np.asarray(spec.vi)[chunk] + tt[..., None] ** 2
            loglik += -0.5 * (np.log(2 * math.pi * v) + (y - mm[..., None]) ** 2 / v).sum(-1)
    lp = loglik + spec.prior_mu.logpdf(mm) + spec.prior_tau.logpdf(tt) + np.log(c * np.cosh(ss))
    return np.where(np.isfinite(lp), lp, -np.inf)


#: Largest number of float64 values in one (grid x studies x nodes) array: about 200 MB.
_CHUNK_VALUES = 25_000_000
#: Largest number of studies the exact path accepts (the study summaries are one root search
#: per study; beyond this use NUTS). Memory is bounded by chunking at any k below it.
MAX_EXACT_STUDIES = 20_000


def _study_chunks(k: int, per_study: int) -> list[slice]:
    """Slices of the studies such that a chunk's (grid x studies x nodes) array stays small."""
    size = max(1, _CHUNK_VALUES // max(1, per_study))
    return [slice(i, min(i + size, k)) for i in range(0, k, size)] or [slice(0, 0)]


def _binomial_all(x, n, mm, tt, n_gh: int):
    """Marginal likelihoods and nodes of the studies with ``x`` events of ``n``; studies with at
    most one event or non-event get ``_EXTREME_GH_FACTOR`` times more nodes (their integrand is
    close to a half-plateau when ``tau`` is large, which a Gaussian rule fits less well)."""
    x, n = np.asarray(x), np.asarray(n)
    extreme = (x <= 1) | (x >= n - 1)
    if not extreme.any() or extreme.all():
        q = n_gh * (_EXTREME_GH_FACTOR if extreme.all() else 1)
        return binomial_log_marginal(x, n, mm, tt, n_gh=q, return_nodes=True)
    q_ext = _EXTREME_GH_FACTOR * n_gh
    ll = np.empty(mm.shape + (x.size,))
    theta = np.zeros(mm.shape + (x.size, q_ext))
    pi = np.zeros_like(theta)
    for mask, q in ((~extreme, n_gh), (extreme, q_ext)):
        ll_g, th_g, pi_g = binomial_log_marginal(x[mask], n[mask], mm, tt, n_gh=q,
                                                 return_nodes=True)
        ll[..., mask] = ll_g
        theta[..., mask, :q] = th_g
        theta[..., mask, q:] = th_g[..., :1]
        pi[..., mask, :q] = pi_g
    return ll, theta, pi


def _initial_box(spec: ModelSpec) -> tuple[float, float, float, float]:
    if spec.kind == "binomial_normal":
        x, n = np.asarray(spec.events, float), np.asarray(spec.total, float)
        est = np.log((x + 0.5) / (n - x + 0.5))
        se = np.sqrt(1.0 / (x + 0.5) + 1.0 / (n - x + 0.5))
        cap = 50.0
        c = 0.25
    else:
        est, se = np.asarray(spec.yi), np.sqrt(np.asarray(spec.vi))
        cap = 50.0 * max(float(np.ptp(est)), float(se.max()))
        c = 0.5 * float(np.median(se))
    lo = float(est.min() - 3 * se.max())
    hi = float(est.max() + 3 * se.max())
    t_hi = max(2.0 * float(np.ptp(est)), 2.0 * float(se.min()), 0.5)
    tau_cap = min(cap, spec.prior_tau.ppf(1.0 - 1e-12))
    if spec.prior_tau.family == "uniform":
        tau_cap = spec.prior_tau.params[1]
    return lo, hi, min(t_hi, tau_cap), tau_cap, c


def posterior_grid(
    spec: ModelSpec, *, n_mu: int = 61, n_tau: int = 61, n_gh: int = 12, n_coarse: int = 25
) -> PosteriorGrid:
    """Range the grid adaptively and evaluate the log posterior on it.

    Parameters
    ----------
    spec : ModelSpec
        Without moderators.
    n_mu, n_tau : int
        Nodes of the final grid.
    n_gh : int
        Adaptive Gauss–Hermite nodes per study (binomial-normal).
    n_coarse : int
        Nodes per axis of the ranging passes.
    """
    lo, hi, t_hi, tau_cap, c = _initial_box(spec)
    s_hi, s_cap = math.asinh(t_hi / c), math.asinh(tau_cap / c)
    for _ in range(30):
        mu = np.linspace(lo, hi, n_coarse)
        s = np.linspace(0.0, s_hi, n_coarse)
        lp = _log_post(spec, mu, s, c, min(n_gh, 8))
        post = np.exp(lp - lp.max())
        m_mu, m_tau = post.sum(1), post.sum(0)
        m_mu, m_tau = m_mu / m_mu.max(), m_tau / m_tau.max()
        width = hi - lo
        changed = False
        if m_mu[0] > _EPS:
            lo -= width
            changed = True
        if m_mu[-1] > _EPS:
            hi += width
            changed = True
        if m_tau[-1] > _EPS and s_hi < s_cap:
            s_hi = min(s_hi + max(1.0, 0.5 * s_hi), s_cap)
            changed = True
        if changed:
            continue
        keep_mu = np.flatnonzero(m_mu > _EPS)
        keep_tau = np.flatnonzero(m_tau > _EPS)
        new_lo = mu[max(keep_mu[0] - 1, 0)]
        new_hi = mu[min(keep_mu[-1] + 1, n_coarse - 1)]
        new_s = s[min(keep_tau[-1] + 1, n_coarse - 1)]
        if (new_hi - new_lo) < 0.6 * width or new_s < 0.6 * s_hi:
            lo, hi, s_hi = new_lo, new_hi, new_s
            continue
        break
    mu = np.linspace(lo, hi, n_mu)
    s = np.linspace(0.0, s_hi, n_tau)
    nodes: list = []
    lp = _log_post(spec, mu, s, c, n_gh, nodes)
    return PosteriorGrid(mu, s, c, lp, *nodes)


def fit_exact(
    spec: ModelSpec,
    *,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    n_mu: int = 61,
    n_tau: int = 61,
    n_gh: int = 12,
    refine: int = 4,
    studies: bool = True,
) -> BayesResult:
    """Posterior summaries by numerical integration (no sampling).

    Parameters
    ----------
    spec : ModelSpec
        A model without moderators.
    thresholds : tuple of float
        For ``P(rate > threshold)`` (binomial-normal).
    n_mu, n_tau : int
        Nodes of the evaluation grid.
    n_gh : int
        Adaptive Gauss–Hermite nodes per study.
    refine : int
        The bicubic-spline grid has ``refine`` times as many intervals per axis.
    studies : bool
        ``False`` leaves out the shrunken study summaries (``study`` is empty) and, for the
        normal-normal model, takes the quantiles of ``tau`` from the grid instead of adaptive
        quadrature: a sensitivity refit's headline (``mu``, the predictive interval and the
        exceedance probabilities) needs neither, and they are a third of its time.

    Returns
    -------
    BayesResult
        With ``method="exact"`` and the same summaries as the sampling path.

    Raises
    ------
    UserError
        For a model with moderators, or with more than :data:`MAX_EXACT_STUDIES` studies.
    """
    if spec.has_mods:
        raise UserError("the exact path does not handle moderators; use sampling (NUTS)")
    if spec.n_studies > MAX_EXACT_STUDIES:
        raise UserError(f"the exact path handles at most {MAX_EXACT_STUDIES:,} studies (one root search per "
                        f"study summary); this model has {spec.n_studies:,}: use sampling (NUTS) instead")
    start = time.perf_counter()
    grid = posterior_grid(spec, n_mu=n_mu, n_tau=n_tau, n_gh=n_gh)
    mu_f, s_f, dens, w, cdf_mu, cdf_tau = _fine(grid, refine)
    tau_f = grid.tau_scale * np.sinh(s_f)
    trap_tau = _trap(len(tau_f))
    mm, tt = np.meshgrid(mu_f, tau_f, indexing="ij")
    fields = {
        "mu": _summary(mm, w, cdf_mu),
        "tau": _summary(tt, w, cdf_tau),
    }
    t = np.asarray(thresholds, dtype=float)
    if spec.kind == "binomial_normal":
        gm, gt = np.meshgrid(grid.mu, grid.tau, indexing="ij")
        pm_f = RectBivariateSpline(grid.mu, grid.s, population_mean(gm, gt))(mu_f, s_f)
        pm2_f = RectBivariateSpline(grid.mu, grid.s, population_mean_sq(gm, gt))(mu_f, s_f)
        mu_s = fields["mu"]
        fields["p_median"] = ParamSummary(
            float(w @ expit(mm.ravel())),
            math.sqrt(max(float(w @ expit(mm.ravel()) ** 2) - float(w @ expit(mm.ravel())) ** 2, 0)),
            float(expit(mu_s.lb)),
            float(expit(mu_s.ub)),
            median=float(expit(mu_s.median)),
        )
        cdf_pm = _ColumnCdf(pm_f, dens, trap_tau)
        fields["p_mean"] = _summary(pm_f, w, cdf_pm)
        mean_new = float(w @ pm_f.ravel())
        sd_new = math.sqrt(max(float(w @ pm2_f.ravel()) - mean_new**2, 0.0))
        lb, ub, med = expit(mixture_quantile((*_Q, 0.5), mm, tt, w))
        fields["p_new"] = ParamSummary(mean_new, sd_new, float(lb), float(ub), median=float(med))
        above_med = 1.0 - cdf_mu(logit(t))
        above_mean = 1.0 - cdf_pm(t)
        above_new = 1.0 - mixture_cdf(logit(t), mm, tt, w)
        fields["exceedance"] = tuple(
            Exceedance(float(x), float(above_med[j]), float(above_mean[j]), float(above_new[j]))
            for j, x in enumerate(t)
        )
        fields["study"] = _binomial_studies(spec, grid, n_gh) if studies else ()
    else:
        nn = NormalNormalTau(spec, tau_max=float(grid.tau[-1]))
        fields.update(nn.fields(studies=studies))
    settings = {
        "n_mu": n_mu,
        "n_tau": n_tau,
        "n_gh": n_gh,
        "refine": refine,
        "studies": studies,
        "mu_range": [float(grid.mu[0]), float(grid.mu[-1])],
        "tau_max": float(grid.tau[-1]),
        "seconds": time.perf_counter() - start,
    }
    return BayesResult(method="exact", spec=spec, settings=settings, grid=grid, **fields)


def _fine(grid: PosteriorGrid, refine: int):
    """Bicubic-spline refinement of the log posterior; weights and marginal CDFs."""
    n_mu, n_tau = len(grid.mu), len(grid.s)
    mu_f = np.linspace(grid.mu[0], grid.mu[-1], refine * (n_mu - 1) + 1)
    s_f = np.linspace(0.0, grid.s[-1], refine * (n_tau - 1) + 1)
    tau_f = grid.tau_scale * np.sinh(s_f)
    lp = np.maximum(grid.log_post, grid.log_post.max() - 700.0)
    lp_f = RectBivariateSpline(grid.mu, grid.s, lp)(mu_f, s_f)
    dens = np.exp(lp_f - lp_f.max())
    w = _weights(mu_f, s_f, lp_f).ravel()
    trap_mu, trap_tau = _trap(len(mu_f)), _trap(len(s_f))
    cdf_mu = _ColumnCdf(np.broadcast_to(mu_f[:, None], dens.shape), dens, trap_tau, nodes=mu_f)
    cdf_tau = _ColumnCdf(np.broadcast_to(tau_f[:, None], dens.T.shape), dens.T, trap_mu, nodes=tau_f)
    return mu_f, s_f, dens, w, cdf_mu, cdf_tau


def marginal_cdf(
    spec: ModelSpec, *, mu=None, tau=None, n_mu: int = 61, n_tau: int = 61, n_gh: int = 12,
    refine: int = 4,
) -> dict[str, np.ndarray]:
    """Posterior CDFs ``P(mu <= mu_value)`` and ``P(tau <= tau_value)`` (exact path).

    Used for simulation-based calibration: at parameters drawn from the prior, these are
    uniform on (0, 1) when the computation is right (Talts et al. 2018, arXiv:1804.06788).
    """
    grid = posterior_grid(spec, n_mu=n_mu, n_tau=n_tau, n_gh=n_gh)
    _, _, _, _, cdf_mu, cdf_tau = _fine(grid, refine)
    out = {}
    if mu is not None:
        out["mu"] = cdf_mu(mu)
    if tau is not None:
        out["tau"] = cdf_tau(tau)
    return out


class _ColumnCdf:
    """CDF of ``V(a, b)`` under a grid density.

    Along axis 0 (uniform nodes) the density is a cubic Hermite interpolant (slopes by central
    differences; the partial-cell integrals are then accurate to O(h^4)) and ``V`` is linear
    within each cell and increasing; columns (axis 1) are combined with trapezoidal weights
    ``col_w``.
    """

    def __init__(self, values: np.ndarray, dens: np.ndarray, col_w: np.ndarray, nodes: np.ndarray | None = None):
        self.v0, self.v1 = values[:-1], values[1:]
        self.dv = np.where(self.v1 > self.v0, self.v1 - self.v0, np.inf)
        slope = np.gradient(dens, axis=0)
        d0, d1 = dens[:-1] * col_w, dens[1:] * col_w
        m0, m1 = slope[:-1] * col_w, slope[1:] * col_w
        total = (0.5 * (d0 + d1) + (m0 - m1) / 12.0).sum()
        # integral over s in [0, u] of the Hermite cubic = c1 u + c2 u^2 + c3 u^3 + c4 u^4
        self.c1 = d0 / total
        self.c2 = 0.5 * m0 / total
        self.c3 = (-d0 + d1 - (2.0 * m0 + m1) / 3.0) / total
        self.c4 = (0.5 * d0 - 0.5 * d1 + 0.25 * (m0 + m1)) / total
        self.lo, self.hi = float(values.min()), float(values.max())
        # ``nodes``: V is the same in every column (V = nodes[a], increasing), as for mu and tau.
        # Then the columns' polynomials add up per cell, the CDF at each node is a cumulative
        # sum, and a quantile is the root of one quartic in one cell (same numbers as the
        # general path below, to rounding; it needs no search over the whole grid).
        self.nodes = None
        if nodes is not None and np.all(np.diff(nodes) > 0):
            self.nodes = np.asarray(nodes, dtype=float)
            self.k = np.stack([self.c1.sum(1), self.c2.sum(1), self.c3.sum(1), self.c4.sum(1)])
            self.at_node = np.concatenate([[0.0], np.cumsum(self.k.sum(0))])

    def _node_quantile(self, p: float) -> float:
        nodes, at = self.nodes, self.at_node
        i = int(np.clip(np.searchsorted(at, p, side="right") - 1, 0, nodes.size - 2))
        r = p - at[i]
        k1, k2, k3, k4 = self.k[:, i]
        a, b = 0.0, 1.0  # f(a) <= 0 <= f(b) for f(u) = integral over the cell up to u, minus r
        u = 0.5
        for _ in range(100):
            f = u * (k1 + u * (k2 + u * (k3 + u * k4))) - r
            if f == 0.0:
                break
            if f < 0:
                a = u
            else:
                b = u
            slope = k1 + u * (2 * k2 + u * (3 * k3 + u * 4 * k4))
            step = u - f / slope if slope > 0 else 0.5 * (a + b)
            nxt = step if a < step < b else 0.5 * (a + b)
            if abs(nxt - u) <= 1e-15 or b - a <= 1e-15:
                u = nxt
                break
            u = nxt
        return float(nodes[i] + u * (nodes[i + 1] - nodes[i]))

    def __call__(self, q) -> np.ndarray:
        q = np.atleast_1d(np.asarray(q, dtype=float))
        if self.nodes is not None:
            nodes = self.nodes
            i = np.clip(np.searchsorted(nodes, q, side="right") - 1, 0, nodes.size - 2)
            u = np.clip((q - nodes[i]) / (nodes[i + 1] - nodes[i]), 0.0, 1.0)
            k1, k2, k3, k4 = self.k[:, i]
            return np.clip(self.at_node[i] + u * (k1 + u * (k2 + u * (k3 + u * k4))), 0.0, 1.0)
        out = np.empty(q.shape)
        for j, qj in enumerate(q):
            u = np.clip((qj - self.v0) / self.dv, 0.0, 1.0)
            u = np.where(np.isinf(self.dv), (qj >= self.v0).astype(float), u)
            out[j] = (u * (self.c1 + u * (self.c2 + u * (self.c3 + u * self.c4)))).sum()
        return np.clip(out, 0.0, 1.0)

    def quantile(self, probs, guess: np.ndarray | None, width: float) -> np.ndarray:
        """Illinois (modified regula falsi) in a bracket around ``guess``; with ``nodes``, the
        root of the cell's quartic by safeguarded Newton steps."""
        probs = np.atleast_1d(np.asarray(probs, dtype=float))
        if self.nodes is not None:
            return np.array([self._node_quantile(float(p)) for p in probs])
        out = np.empty(probs.shape)
        for j, p in enumerate(probs):
            a, b = max(guess[j] - width, self.lo), min(guess[j] + width, self.hi)
            fa, fb = self(a)[0] - p, self(b)[0] - p
            if fa > 0:
                a, fa = self.lo, -p
            if fb < 0:
                b, fb = self.hi, 1.0 - p
            side = 0
            x = 0.5 * (a + b)
            for _ in range(100):
                if fb == fa or b - a < 1e-12 * max(1.0, abs(a)):
                    break
                x = (a * fb - b * fa) / (fb - fa)
                fx = self(x)[0] - p
                if abs(fx) < 1e-12:
                    break
                if fx < 0:
                    a, fa = x, fx
                    if side == -1:
                        fb *= 0.5
                    side = -1
                else:
                    b, fb = x, fx
                    if side == 1:
                        fa *= 0.5
                    side = 1
            out[j] = x
        return out


def _summary(values: np.ndarray, w: np.ndarray, cdf: _ColumnCdf) -> ParamSummary:
    v = np.ravel(values)
    mean = float(w @ v)
    sd = math.sqrt(max(float(w @ (v - mean) ** 2), 0.0))
    probs = (*_Q, 0.5)
    if cdf.nodes is not None:  # exact cell search: no starting bracket needed
        lb, ub, med = cdf.quantile(probs, None, 0.0)
    else:
        guess = weighted_quantile(v, w, probs)
        lb, ub, med = cdf.quantile(probs, guess, 4.0 * float(np.max(np.abs(np.diff(values, axis=0)))))
    return ParamSummary(mean, sd, float(lb), float(ub), median=float(med))


def _binomial_studies(spec: ModelSpec, grid: PosteriorGrid, n_gh: int = 12) -> tuple:
    """Study summaries, a chunk of studies at a time (their nodes are recomputed per chunk when
    the grid did not keep them)."""
    if grid.theta is not None:
        return _binomial_studies_chunk(spec, grid, grid.theta, grid.pi, slice(0, spec.n_studies))
    mm, tt = np.meshgrid(grid.mu, grid.tau, indexing="ij")
    x, n = np.asarray(spec.events), np.asarray(spec.total)
    out: tuple = ()
    for chunk in _study_chunks(spec.n_studies, mm.size * _EXTREME_GH_FACTOR * n_gh * 4):
        _, theta, pi = _binomial_all(x[chunk], n[chunk], mm, tt, n_gh)
        out += _binomial_studies_chunk(spec, grid, theta, pi, chunk)
    return out


def _binomial_studies_chunk(spec: ModelSpec, grid: PosteriorGrid, theta, pi, chunk: slice) -> tuple:
    k = theta.shape[-2]
    m_cond = (theta * pi).sum(-1)  # (n_mu, n_tau, k), all nodes: needed along mu
    keep = grid.weight.ravel() > 1e-12 * grid.weight.max()
    theta_k = theta.reshape(-1, k, theta.shape[-1])[keep]
    pi_k = pi.reshape(-1, k, pi.shape[-1])[keep]
    dev = theta_k - m_cond.reshape(-1, k)[keep][..., None]
    dev2 = dev * dev
    v = (dev2 * pi_k).sum(-1)
    k3 = (dev2 * dev * pi_k).sum(-1)
    k4 = (dev2 * dev2 * pi_k).sum(-1) - 3.0 * v * v
    p_cond = (expit(theta_k) * pi_k).sum(-1)
    return _mixture_studies(spec, grid, m_cond, keep, v, p_cond, k3, k4, transform=expit,
                            labels=list(spec.study)[chunk])


def _mixture_studies(
    spec, grid, m_cond, keep, v_cond, mean_cond, k3=None, k4=None, transform=None, labels=None
) -> tuple:
    """Study summaries from conditional cumulants of ``theta_i`` on the grid.

    The 95% interval is the quantile of the mixture over the grid nodes of the conditional
    distributions of ``theta_i | mu, tau``: normal (normal-normal model, exact) or a
    second-order Edgeworth expansion with the conditional third and fourth cumulants
    ``k3``, ``k4`` from the Gauss–Hermite nodes (binomial-normal). Each node stands for a cell of
    ``mu`` over which the conditional mean moves by ``dm`` (one node step); the component sd is
    floored at ``|dm| / sqrt(12)`` (the sd of a uniform spread over the cell), so that the
    mixture CDF is not a staircase when the conditional sd is below the node spacing (``tau``
    near 0). Only nodes with weight above 1e-12 of the largest (``keep``) enter; ``v_cond``,
    ``mean_cond``, ``k3`` and ``k4`` are given for those nodes, ``m_cond`` on the whole grid.
    ``labels`` name the studies of these arrays (default: all of ``spec.study``).
    """
    k = m_cond.shape[-1]
    labels = list(spec.study) if labels is None else labels
    dm = np.gradient(m_cond, axis=0).reshape(-1, k)[keep]
    m_f = m_cond.reshape(-1, k)[keep]
    sd = np.sqrt(np.maximum(v_cond, dm**2 / 12.0))
    w = grid.weight.ravel()[keep]
    w = w / w.sum()
    if k3 is not None:
        ok = sd > 1e-7
        safe = np.where(ok, sd, 1.0)
        skew = np.where(ok, k3 / safe**3, 0.0)
        exkurt = np.where(ok, k4 / safe**4, 0.0)
    out = []
    for i, label in enumerate(labels):
        extra = {} if k3 is None else {"skew": skew[:, i], "exkurt": exkurt[:, i]}
        lb, ub = mixture_quantile(_Q, m_f[:, i], sd[:, i], w, **extra)
        if transform is not None:
            lb, ub = transform(lb), transform(ub)
        out.append(StudySummary(label, float(w @ mean_cond[:, i]), float(lb), float(ub)))
    return tuple(out)


class NormalNormalTau:
    """Exact posterior of the normal-normal model by 1-D integration over ``tau``.

    With ``mu ~ N(m0, s0^2)`` and ``w_i = 1/(v_i + tau^2)``, conditional on ``tau``:
    ``mu | tau, y ~ N(M, 1/P)`` with ``P = sum w_i + 1/s0^2``,
    ``M = (sum w_i y_i + m0/s0^2)/P``; ``theta_i | tau, y ~ N(b_i M + (1 - b_i) y_i,
    b_i^2/P + (1 - b_i) v_i)`` with ``b_i = v_i/(v_i + tau^2)``; ``theta_new | tau, y ~
    N(M, 1/P + tau^2)``. The marginal posterior density of ``tau`` is
    ``p(tau) prod_i w_i^(1/2) P^(-1/2) exp(-(sum w_i y_i^2 + m0^2/s0^2 - P M^2)/2)``.

    Parameters
    ----------
    spec : ModelSpec
        A normal-normal model without moderators.
    tau_max : float
        Upper end of the ``tau`` range (the prior's support or the adaptive grid's box); the
        range is cut where the density has fallen by ``e^-45`` from its maximum.
    n_tau : int
        Nodes of the trapezoidal rule in ``s`` (``tau = c sinh(s)``).
    """

    def __init__(self, spec: ModelSpec, *, tau_max: float | None = None, n_tau: int = 1601):
        if spec.kind != "normal_normal" or spec.has_mods:
            raise ValueError("NormalNormalTau needs a normal-normal model without moderators")
        self.spec = spec
        self.y = np.asarray(spec.yi, dtype=float)
        self.v = np.asarray(spec.vi, dtype=float)
        self.m0, self.s0 = spec.prior_mu.params
        _, _, _, tau_cap, c = _initial_box(spec)
        if tau_max is not None:
            tau_cap = max(min(tau_cap, tau_max * 4.0), tau_max)
        if spec.prior_tau.family == "uniform":
            tau_cap = spec.prior_tau.params[1]
        self.c = c
        s_cap = math.asinh(tau_cap / c)
        coarse = np.linspace(0.0, s_cap, 4001)
        lp = self.log_density_s(coarse)
        self.top = float(lp.max())
        last = int(np.flatnonzero(lp > self.top - 45.0)[-1])
        self.s_max = float(coarse[min(last + 1, coarse.size - 1)])
        s = np.linspace(0.0, self.s_max, n_tau)
        w = _trap(n_tau) * np.exp(self.log_density_s(s) - self.top)
        self.w = w / w.sum()
        self.tau = c * np.sinh(s)
        self.M, self.P = self._conditional(self.tau)

    def _sums(self, tau: np.ndarray) -> tuple[np.ndarray, ...]:
        """``sum w_i``, ``sum w_i y_i``, ``sum w_i y_i^2`` and ``sum log w_i`` at each ``tau``,
        a chunk of studies at a time (bounded memory at any k)."""
        out = np.zeros((4, tau.size))
        for chunk in _study_chunks(self.y.size, tau.size):
            y, v = self.y[chunk], self.v[chunk]
            W = 1.0 / (v + tau[:, None] ** 2)
            out += ((W.sum(1)), (W * y).sum(1), (W * y * y).sum(1), np.log(W).sum(1))
        return tuple(out)

    def _conditional(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sw, swy, _, _ = self._sums(tau)
        P = sw + 1.0 / self.s0**2
        return (swy + self.m0 / self.s0**2) / P, P

    def log_density_s(self, s: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior density of ``s`` (Jacobian ``c cosh s`` included)."""
        s = np.atleast_1d(np.asarray(s, dtype=float))
        tau = self.c * np.sinh(s)
        sw, swy, swyy, slogw = self._sums(tau)
        P = sw + 1.0 / self.s0**2
        M = (swy + self.m0 / self.s0**2) / P
        q = swyy + self.m0**2 / self.s0**2 - P * M**2
        with np.errstate(divide="ignore"):
            lp = (self.spec.prior_tau.logpdf(tau) + np.log(self.c * np.cosh(s))
                  + 0.5 * slogw - 0.5 * np.log(P) - 0.5 * q)
        return np.where(np.isfinite(lp), lp, -np.inf)

    def _mixture(self, loc: np.ndarray, var: np.ndarray, mean_only: bool = False):
        mean = float(self.w @ loc)
        sd = math.sqrt(max(float(self.w @ (var + loc**2)) - mean**2, 0.0))
        lb, ub, med = mixture_quantile((*_Q, 0.5), loc, np.sqrt(var), self.w, tol=1e-13)
        return ParamSummary(mean, sd, float(lb), float(ub), median=float(med))

    def tau_summary(self) -> ParamSummary:
        """Mean, sd and quantiles of ``tau`` (quantiles: adaptive quadrature + Brent)."""
        from scipy import integrate, optimize

        def dens(s: float) -> float:
            return float(np.exp(self.log_density_s(s)[0] - self.top))

        z = integrate.quad(dens, 0.0, self.s_max, limit=200, epsabs=0, epsrel=1e-13)[0]

        def cdf(s: float) -> float:
            return integrate.quad(dens, 0.0, s, limit=200, epsabs=0, epsrel=1e-13)[0] / z

        qs = [optimize.brentq(lambda x, p=p: cdf(x) - p, 0.0, self.s_max, xtol=1e-14)
              for p in (*_Q, 0.5)]
        lb, ub, med = (self.c * math.sinh(q) for q in qs)
        mean = float(self.w @ self.tau)
        sd = math.sqrt(max(float(self.w @ self.tau**2) - mean**2, 0.0))
        return ParamSummary(mean, sd, lb, ub, median=med)

    def study_summaries(self) -> tuple[StudySummary, ...]:
        """Shrunken ``theta_i``: posterior mean and 95% interval of the exact tau-mixture."""
        t2 = self.tau[:, None] ** 2
        out = []
        for chunk in _study_chunks(self.y.size, self.tau.size * 4):
            y, v = self.y[chunk], self.v[chunk]
            b = v / (v + t2)
            loc = b * self.M[:, None] + (1 - b) * y
            var = b**2 / self.P[:, None] + (1 - b) * v
            for i, label in enumerate(list(self.spec.study)[chunk]):
                s = self._mixture(loc[:, i], var[:, i])
                out.append(StudySummary(label, s.mean, s.lb, s.ub))
        return tuple(out)

    def fields(self, studies: bool = True) -> dict:
        """The :class:`BayesResult` fields of the normal-normal model (without ``studies``: no
        study summaries and no ``tau`` entry, which the caller then takes from its grid)."""
        sd_new = np.sqrt(1.0 / self.P + self.tau**2)
        extra = {"tau": self.tau_summary(), "study": self.study_summaries()} if studies else {"study": ()}
        return {
            "mu": self._mixture(self.M, 1.0 / self.P),
            **extra,
            "theta_new": self._mixture(self.M, sd_new**2),
            "prob_mu_negative": float(self.w @ ndtr(-self.M * np.sqrt(self.P))),
            "prob_new_negative": float(self.w @ ndtr(-self.M / sd_new)),
        }
