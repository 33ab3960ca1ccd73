"""Confidence interval for tau² (and I², H²) by the Q-profile method, as metafor's
``confint.rma.uni`` (its default ``type="QP"``).

The generalized Q statistic :math:`Q(\\tau^2) = y^\\top P(\\tau^2) y`, with
:math:`P = W - WX(X^\\top WX)^{-1}X^\\top W` and :math:`W = \\mathrm{diag}(1/(v_i+\\tau^2))`,
follows a chi² distribution on k - p df at the true tau² and decreases in tau². The bounds are
the values where it crosses the chi² quantiles (Viechtbauer 2007):

- lower bound: :math:`Q(\\tau^2_{lb}) = \\chi^2_{k-p;\\,1-\\alpha/2}`,
- upper bound: :math:`Q(\\tau^2_{ub}) = \\chi^2_{k-p;\\,\\alpha/2}`,

searched on ``[tau2_min, tau2_max]`` = ``[0, max(100, 10 tau2)]``. When
:math:`Q(0) < \\chi^2_{k-p;\\alpha/2}` both bounds are 0 and the interval is the "null set"
(``ci_null``); when :math:`Q(0) < \\chi^2_{k-p;1-\\alpha/2}` the lower bound is 0. Bounds that
would lie beyond ``tau2_max`` are set to it with sign ``">"``.

Reference: Viechtbauer, W. (2007). Confidence intervals for the amount of heterogeneity in
meta-analysis. *Stat Med* 26, 37-52.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from blinameta.frequentist.rma import RmaResult

__all__ = ["ConfintTau2", "confint_tau2"]

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class ConfintTau2:
    """Q-profile interval for tau² with the implied I² (percent) and H² intervals.

    ``lb_sign``/``ub_sign`` are metafor's: ``"<"`` when the bound is at ``tau2_min`` because
    the interval lies below it, ``">"`` when at ``tau2_max``; ``ci_null`` when the interval
    is empty (both bounds 0).
    """

    tau2: float
    tau2_lb: float
    tau2_ub: float
    tau: float
    tau_lb: float
    tau_ub: float
    i2: float
    i2_lb: float
    i2_ub: float
    h2: float
    h2_lb: float
    h2_ub: float
    level: float
    ci_null: bool
    lb_sign: str
    ub_sign: str
    tau2_min: float
    tau2_max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _q_of_tau2(res: RmaResult):
    """The generalized Q as a function of tau², in O(k p²) time and O(k p) memory.

    :math:`y^\\top P y = y^\\top W y - (X^\\top W y)^\\top (X^\\top W X)^{-1} X^\\top W y`, which never
    forms the k × k matrix P (at k = 100,000 that matrix alone would need 80 GB).
    """
    y = np.asarray(res.yi, dtype=float)
    X = np.asarray(res.X, dtype=float)
    vi = np.asarray(res.vi, dtype=float)

    def q(t: float) -> float:
        w = 1.0 / (vi + t)
        WX = X * w[:, None]
        XtWy = WX.T @ y
        beta = np.linalg.solve(X.T @ WX, XtWy)
        return float((w * y) @ y - XtWy @ beta)

    return q


def confint_tau2(
    res: RmaResult,
    level: float | None = None,
    *,
    tau2_min: float | None = None,
    tau2_max: float | None = None,
    tol: float = 1e-12,
) -> ConfintTau2:
    """Q-profile confidence interval for tau², I² and H² of a random/mixed-effects fit.

    Parameters
    ----------
    res : RmaResult
        A fit with an estimated tau² (not EE), k >= 2, all vi > 0.
    level : float, optional
        Confidence level in percent (default: the fit's).
    tau2_min, tau2_max : float, optional
        Search interval; default ``min(0, tau2)`` and ``max(100, 10 tau2, 10 tau2_min)``.
    tol : float
        Absolute tolerance of the root finder (metafor's default is ``eps^0.25``; the
        fixtures use ``control=list(tol=1e-12)``).
    """
    if res.method == "EE":
        raise ValueError("the model has no random-effects component (method EE)")
    if res.k < 2:
        raise ValueError("a CI for tau2 needs k >= 2")
    if not np.all(res.vi > 0):
        raise ValueError("cannot compute a CI for tau2 with non-positive sampling variances")
    level = res.level if level is None else float(level)
    alpha = 1 - level / 100
    df = res.k - res.p
    tmin = min(0.0, res.tau2) if tau2_min is None else float(tau2_min)
    tmax = max(100.0, 10 * res.tau2, 10 * tmin) if tau2_max is None else float(tau2_max)
    crit_u = stats.chi2.isf(alpha / 2, df)
    crit_l = stats.chi2.ppf(alpha / 2, df)
    q = _q_of_tau2(res)
    q_max, q_min = q(tmax), q(tmin)
    lb = ub = math.nan
    lb_sign = ub_sign = ""
    ci_null = False

    def root(target: float) -> float:
        try:
            return optimize.brentq(
                lambda t: q(t) - target, tmin, tmax, xtol=tol, rtol=4 * _EPS, maxiter=1000
            )
        except (ValueError, RuntimeError):
            return math.nan

    if q_min < crit_l:
        lb = ub = tmin
        lb_sign = ub_sign = "<"
        ci_null = tmin <= 0
    elif q_max > crit_l:
        ub, ub_sign = tmax, ">"
    else:
        ub = root(crit_l)
    if q_max > crit_u:
        lb = ub = tmax
        lb_sign = ub_sign = ">"
    elif q_min < crit_u:
        lb = tmin
        if tmin > 0:
            lb_sign = "<"
    else:
        lb = root(crit_u)

    vt = res.vt

    def i2(t: float) -> float:
        return 100 * t / (vt + t)

    def sqrt_or_nan(t: float) -> float:
        return math.sqrt(t) if t >= 0 else math.nan

    return ConfintTau2(
        tau2=res.tau2,
        tau2_lb=lb,
        tau2_ub=ub,
        tau=sqrt_or_nan(res.tau2),
        tau_lb=sqrt_or_nan(lb),
        tau_ub=sqrt_or_nan(ub),
        i2=res.i2,
        i2_lb=i2(lb),
        i2_ub=i2(ub),
        h2=res.h2,
        h2_lb=lb / vt + 1,
        h2_ub=ub / vt + 1,
        level=level,
        ci_null=ci_null,
        lb_sign=lb_sign,
        ub_sign=ub_sign,
        tau2_min=tmin,
        tau2_max=tmax,
    )
