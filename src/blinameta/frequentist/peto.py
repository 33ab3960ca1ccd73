"""Peto's one-step odds ratio for 2x2 tables, as metafor's ``rma.peto``.

For table *i* with :math:`a_i` events out of :math:`n_{1i}` and :math:`c_i` out of
:math:`n_{2i}` (:math:`N_i = n_{1i} + n_{2i}`, :math:`x_i = a_i + c_i` events,
:math:`y_i = N_i - x_i` non-events), the observed minus expected count under the null and its
hypergeometric variance are :math:`O_i - E_i = a_i - x_i n_{1i}/N_i` and
:math:`V_i = x_i y_i n_{1i} n_{2i} / (N_i^2 (N_i - 1))`. The pooled log odds ratio is
:math:`\\sum (O_i - E_i) / \\sum V_i` with variance :math:`1/\\sum V_i` (Yusuf et al. 1985), and
the heterogeneity statistic is
:math:`Q = \\sum (O_i - E_i)^2/V_i - (\\sum (O_i - E_i))^2 / \\sum V_i` over the tables with
:math:`V_i > 0`.

The Cochrane Handbook (ch. 10.4.4.2) recommends it only when events are rare (below about 1%),
effects are not large and the arms are roughly balanced; otherwise it is biased (Greenland &
Salvan 1990; Bradburn et al. 2007).

References
----------
Yusuf S, Peto R, Lewis J, Collins R, Sleight P (1985). Beta blockade during and after myocardial
infarction: an overview of the randomized trials. *Prog Cardiovasc Dis* 27, 335-371.
Bradburn MJ, Deeks JJ, Berlin JA, Localio AR (2007). Much ado about nothing: a comparison of the
performance of meta-analytical methods with rare events. *Stat Med* 26, 53-77.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blinameta.frequentist.mh import MhResult, _check_level, _heterogeneity, _prepare, _wald

__all__ = ["rma_peto"]


def rma_peto(
    ai: Any,
    n1i: Any,
    ci: Any,
    n2i: Any,
    *,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    level: float = 95.0,
) -> MhResult:
    """Peto's pooled odds ratio, as ``metafor::rma.peto(ai=, n1i=, ci=, n2i=)``.

    Parameters
    ----------
    ai, n1i, ci, n2i : array_like
        Events and group sizes in the first and second group.
    add, to, drop00 :
        As :func:`blinameta.frequentist.mh.rma_mh`: the first (or only) value applies to the
        study estimates ``yi``/``vi`` (escalc ``"PETO"``), the second (default 0, ``"none"``,
        ``False``) to the tables in the pooled sums and in Q.
    level : float
        Confidence level in percent.

    Returns
    -------
    MhResult
        With ``measure="PETO"``; ``beta`` is the log odds ratio, ``estimate`` the odds ratio;
        ``k_pos`` counts the tables with :math:`V_i > 0`.

    Raises
    ------
    ValueError
        For bad counts, or when one of the two outcomes never occurs in any table (metafor
        stops with the same message).
    """
    level = _check_level(level)
    t = _prepare("PETO", ai, n1i, ci, n2i, add, to, drop00)
    a, b, c, d = t.a, t.b, t.c, t.d
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / N
    with np.errstate(divide="ignore", invalid="ignore"):
        V = xt * yt * (n1 / N) * (n2 / N) / (N - 1)
    V = np.where(np.isfinite(V), V, 0.0)
    sum_v = float(V.sum())
    if sum_v == 0:
        raise ValueError("one of the two outcomes never occurred in any of the tables: Peto's "
                         "method cannot be used")
    oe = a - E
    beta = float(oe.sum()) / sum_v
    se = math.sqrt(1 / sum_v)
    zval, pval, ci_lb, ci_ub = _wald(beta, se, level)
    pos = V > 0
    k_pos = int(pos.sum())
    qe = max(0.0, float(np.sum(oe[pos] ** 2 / V[pos])) - float(oe.sum()) ** 2 / sum_v)
    if k_pos > 1:
        qe, qe_p, i2, h2 = _heterogeneity(qe, t.k_yi)
    else:
        qe_p, i2, h2 = 1.0, 0.0, 1.0
    return MhResult(
        measure="PETO", beta=beta, se=se, zval=zval, pval=pval, ci_lb=ci_lb, ci_ub=ci_ub,
        estimate=math.exp(beta), estimate_lb=math.exp(ci_lb), estimate_ub=math.exp(ci_ub),
        qe=qe, qe_p=qe_p, i2=i2, h2=h2, k=t.k, k_yi=t.k_yi, k_all=t.k_all, k_pos=k_pos,
        dropped00=t.dropped00, yi=t.yi, vi=t.vi, level=level, add=t.add, to=t.to,
        drop00=t.drop00,
    )
