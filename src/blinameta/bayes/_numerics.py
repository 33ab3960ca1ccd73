"""Numerical helpers shared by the sampling and the exact paths (private)."""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, ndtr, ndtri

#: Gauss–Hermite rule for E[f(Z)], Z ~ N(0, 1) (probabilists' nodes, weights summing to 1).
_N_POP = 48
_POP_Z, _POP_W = hermegauss(_N_POP)
_POP_W = _POP_W / _POP_W.sum()


def population_mean(mu: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Population-averaged proportion ``E[invlogit(mu + tau Z)]``, ``Z ~ N(0, 1)``.

    Computed per value of ``(mu, tau)`` by 48-point Gauss–Hermite quadrature (exact to about
    1e-10 for ``tau <= 3``; the integrand is smooth and bounded).
    """
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    return expit(mu[..., None] + tau[..., None] * _POP_Z) @ _POP_W


def population_mean_sq(mu: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``E[invlogit(mu + tau Z)^2]`` by the same quadrature (for the sd of a new study's rate)."""
    mu = np.asarray(mu, dtype=float)
    tau = np.asarray(tau, dtype=float)
    return expit(mu[..., None] + tau[..., None] * _POP_Z) ** 2 @ _POP_W


def weighted_quantile(values: np.ndarray, weights: np.ndarray, probs) -> np.ndarray:
    """Quantiles of a discrete distribution, interpolated between mid-cumulative weights."""
    values = np.ravel(values)
    weights = np.ravel(weights)
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    cum = np.cumsum(w) - 0.5 * w
    return np.interp(np.asarray(probs, dtype=float), cum, v)


def weighted_cdf(values: np.ndarray, weights: np.ndarray, points) -> np.ndarray:
    """``P(value <= point)`` of a discrete distribution, with the same interpolation."""
    values = np.ravel(values)
    weights = np.ravel(weights)
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order] / weights.sum()
    cum = np.cumsum(w) - 0.5 * w
    return np.interp(np.asarray(points, dtype=float), v, cum, left=0.0, right=1.0)


def mixture_cdf(points, loc, scale, weights) -> np.ndarray:
    """CDF of the normal mixture ``sum_j w_j N(loc_j, scale_j^2)`` at ``points``."""
    loc, scale, w = _mixture_args(loc, scale, weights)
    points = np.atleast_1d(np.asarray(points, dtype=float))
    return ndtr((points[:, None] - loc) / scale) @ w


def mixture_quantile(
    probs, loc, scale, weights, *, skew=None, exkurt=None, tol: float = 1e-11
) -> np.ndarray:
    """Quantiles of a normal mixture by safeguarded Newton iteration (bisection fallback).

    With ``skew`` and ``exkurt`` (standardised third cumulant and excess kurtosis of each
    component) the components are second-order Edgeworth expansions,
    ``F(z) = Phi(z) - phi(z) [g1/6 He2(z) + g2/24 He3(z) + g1^2/72 He5(z)]``.
    """
    loc, scale, w = _mixture_args(loc, scale, weights)
    edgeworth = skew is not None
    if edgeworth:
        g1 = np.ravel(np.asarray(skew, dtype=float)) / 6.0
        g2 = np.ravel(np.asarray(exkurt, dtype=float)) / 24.0
        g11 = g1 * g1 * 0.5  # g1^2/72 = (g1/6)^2 / 2
    probs = np.atleast_1d(np.asarray(probs, dtype=float))
    lo = np.full(probs.shape, np.min(loc - 12.0 * scale))
    hi = np.full(probs.shape, np.max(loc + 12.0 * scale))
    mean = w @ loc
    sd = np.sqrt(w @ (scale**2 + (loc - mean) ** 2))
    x = np.clip(mean + sd * ndtri(probs), lo, hi)
    for _ in range(200):
        u = (x[:, None] - loc) / scale
        phi = np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)
        if edgeworth:
            u2 = u * u
            he2, he3 = u2 - 1.0, u * (u2 - 3.0)
            he4 = u2 * u2 - 6.0 * u2 + 3.0
            he5 = u * (u2 * u2 - 10.0 * u2 + 15.0)
            he6 = u2 * u2 * u2 - 15.0 * u2 * u2 + 45.0 * u2 - 15.0
            cdf = (ndtr(u) - phi * (g1 * he2 + g2 * he3 + g11 * he5)) @ w
            pdf = (phi * (1.0 + g1 * he3 + g2 * he4 + g11 * he6) / scale) @ w
        else:
            cdf = ndtr(u) @ w
            pdf = (phi / scale) @ w
        err = cdf - probs
        lo = np.where(err < 0, x, lo)
        hi = np.where(err >= 0, x, hi)
        if np.all(np.abs(err) < tol) or np.all(hi - lo < tol):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - err / pdf
        ok = np.isfinite(step) & (step > lo) & (step < hi) & (pdf > 0)
        x = np.where(ok, step, 0.5 * (lo + hi))
    return x


def _mixture_args(loc, scale, weights):
    loc = np.ravel(np.asarray(loc, dtype=float))
    scale = np.maximum(np.ravel(np.asarray(scale, dtype=float)), 1e-9)
    if weights is None:
        w = np.full(loc.shape, 1.0 / loc.size)
    else:
        w = np.ravel(np.asarray(weights, dtype=float))
        w = w / w.sum()
    return loc, np.broadcast_to(scale, loc.shape), w
