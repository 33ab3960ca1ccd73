"""Effect sizes and their sampling variances, as metafor's ``escalc``.

Single proportions from ``events`` out of ``total`` (measures PR, PLN, PLO, PAS, PFT), with the
back-transformations to the proportion scale and study-level confidence intervals; comparative
measures from two arms' counts (log risk ratio RR, log odds ratio OR, risk difference RD); and
the log hazard ratio from a reported hazard ratio and its confidence interval.

Continuity correction follows metafor: ``add`` is added to the cells selected by ``to``:
``"only0"`` (the studies with a zero cell, i.e. 0 or all events for a proportion), ``"all"``,
``"if0all"`` (all studies if any has a zero cell) or ``"none"``. By default ``add = 1/2`` with
``to = "only0"`` for PR, PLN, PLO, RR, OR and RD (metafor adds to RD tables as well), and
``add = 0`` for PAS and PFT.

References
----------
Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. *J Stat Softw*
36(3). Freeman, M. F. & Tukey, J. W. (1950). Transformations related to the angular and the
square root. *Ann Math Stat* 21, 607-611. Miller, J. J. (1978). The inverse of the
Freeman-Tukey double arcsine transformation. *Am Stat* 32, 138. Clopper, C. J. & Pearson, E. S.
(1934). *Biometrika* 26, 404-413. Wilson, E. B. (1927). *J Am Stat Assoc* 22, 209-212.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = [
    "PROPORTION_MEASURES",
    "COMPARATIVE_MEASURES",
    "EffectSizes",
    "escalc",
    "escalc_proportion",
    "escalc_2x2",
    "log_hr_from_ci",
    "transf_proportion",
    "transf_ipft",
    "transf_ipft_hm",
    "transf_pft",
    "ci_clopper_pearson",
    "ci_wilson",
]

PROPORTION_MEASURES = ("PR", "PLN", "PLO", "PAS", "PFT")
COMPARATIVE_MEASURES = ("RR", "OR", "RD", "PETO")
_TO = ("only0", "all", "if0all", "none")


@dataclass(frozen=True)
class EffectSizes:
    """Effect sizes ``yi`` with sampling variances ``vi`` and how they were made.

    ``ni`` is the (uncorrected) total per study for proportions, ``n1i + n2i`` for 2x2 tables.
    ``corrected`` flags the studies that received the continuity correction.
    """

    yi: np.ndarray
    vi: np.ndarray
    measure: str
    ni: np.ndarray
    corrected: np.ndarray
    add: float
    to: str

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)


def _counts(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: values must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name}: counts must not be negative")
    return arr


def _zero_mask(to: str, cells: list[np.ndarray]) -> np.ndarray:
    k = cells[0].size
    if to == "all":
        return np.ones(k, dtype=bool)
    if to == "none":
        return np.zeros(k, dtype=bool)
    id0 = np.zeros(k, dtype=bool)
    for c in cells:
        id0 |= c == 0
    if to == "if0all":
        return np.full(k, bool(id0.any()))
    return id0


def escalc_proportion(
    measure: str,
    events: Any,
    total: Any,
    *,
    add: float | None = None,
    to: str = "only0",
) -> EffectSizes:
    """Effect sizes for single proportions, as ``escalc(measure, xi=events, ni=total)``.

    With :math:`x` events out of :math:`n` (after the continuity correction, which adds ``add``
    to events and non-events, so :math:`n` grows by ``2*add``) and :math:`p = x/n`:

    ========  =====================================================  ======================
    measure   :math:`y_i`                                            :math:`v_i`
    ========  =====================================================  ======================
    PR        :math:`p`                                              :math:`p(1-p)/n`
    PLN       :math:`\\log p`                                        :math:`1/x - 1/n`
    PLO       :math:`\\log(p/(1-p))`                                 :math:`1/x + 1/(n-x)`
    PAS       :math:`\\arcsin\\sqrt p`                               :math:`1/(4n)`
    PFT       :math:`\\tfrac12(\\arcsin\\sqrt{x/(n+1)} +               :math:`1/(4n+2)`
              \\arcsin\\sqrt{(x+1)/(n+1)})`
    ========  =====================================================  ======================

    Parameters
    ----------
    measure : {"PR", "PLN", "PLO", "PAS", "PFT"}
    events, total : array_like
        Event counts and group sizes (0 <= events <= total, total > 0).
    add : float, optional
        Continuity correction; default 1/2 for PR/PLN/PLO and 0 for PAS/PFT (metafor).
    to : {"only0", "all", "if0all", "none"}
        Which studies receive it ("only0": those with 0 or all events).
    """
    measure = measure.upper()
    if measure not in PROPORTION_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {PROPORTION_MEASURES}")
    if to not in _TO:
        raise ValueError(f"unknown 'to' {to!r}; choose one of {_TO}")
    xi = _counts("events", events)
    ni_u = _counts("total", total)
    if xi.shape != ni_u.shape:
        raise ValueError("events and total differ in length")
    if np.any(xi > ni_u):
        raise ValueError("events larger than total")
    if np.any(ni_u <= 0):
        raise ValueError("total must be > 0")
    if add is None:
        add = 0.0 if measure in ("PAS", "PFT") else 0.5
    mi = ni_u - xi
    corr = _zero_mask(to, [xi, mi]) & (add != 0)
    x = xi + np.where(corr, add, 0.0)
    mm = mi + np.where(corr, add, 0.0)
    n = x + mm
    p = x / n
    with np.errstate(divide="ignore"):
        if measure == "PR":
            yi, vi = p, p * (1 - p) / n
        elif measure == "PLN":
            yi, vi = np.log(p), 1 / x - 1 / n
        elif measure == "PLO":
            yi, vi = np.log(p / (1 - p)), 1 / x + 1 / mm
        elif measure == "PAS":
            yi, vi = np.arcsin(np.sqrt(p)), 1 / (4 * n)
        else:
            yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
            vi = 1 / (4 * n + 2)
    return EffectSizes(yi=yi, vi=vi, measure=measure, ni=ni_u, corrected=corr, add=add, to=to)


def _tables(ai: Any, n1i: Any, ci: Any, n2i: Any) -> tuple[np.ndarray, ...]:
    """Validated counts of two-arm tables: events and group sizes of both arms."""
    a = _counts("ai", ai)
    n1 = _counts("n1i", n1i)
    c = _counts("ci", ci)
    n2 = _counts("n2i", n2i)
    if not (a.shape == n1.shape == c.shape == n2.shape):
        raise ValueError("ai, n1i, ci and n2i differ in length")
    if np.any(a > n1) or np.any(c > n2):
        raise ValueError("events larger than group size")
    return a, n1, c, n2


def escalc_2x2(
    measure: str,
    ai: Any,
    n1i: Any,
    ci: Any,
    n2i: Any,
    *,
    add: float = 0.5,
    to: str = "only0",
) -> EffectSizes:
    """Comparative effect sizes from two arms, as ``escalc(measure, ai, n1i=, ci, n2i=)``.

    Cells :math:`a, b = n_1 - a, c, d = n_2 - c` after the continuity correction (``add`` to
    all four cells of the tables selected by ``to``; metafor's default adds 1/2 to tables with
    a zero cell, for RR, OR *and* RD), :math:`p_1 = a/(a+b)`, :math:`p_2 = c/(c+d)`:

    - RR: :math:`\\log(p_1/p_2)`, :math:`v = 1/a - 1/n_1 + 1/c - 1/n_2`;
    - OR: :math:`\\log\\frac{p_1/(1-p_1)}{p_2/(1-p_2)}`, :math:`v = 1/a + 1/b + 1/c + 1/d`;
    - RD: :math:`p_1 - p_2`, :math:`v = p_1(1-p_1)/n_1 + p_2(1-p_2)/n_2`;
    - PETO: Peto's log odds ratio :math:`(a - E)/V`, :math:`v = 1/V`, with
      :math:`E = (a+c) n_1/N` and the hypergeometric variance
      :math:`V = (a+c)(b+d) n_1 n_2/(N^2 (N-1))` (Yusuf et al. 1985).

    Pass ``to="none"`` for an RD without correction.
    """
    measure = measure.upper()
    if measure not in COMPARATIVE_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {COMPARATIVE_MEASURES}")
    if to not in _TO:
        raise ValueError(f"unknown 'to' {to!r}; choose one of {_TO}")
    a, n1, c, n2 = _tables(ai, n1i, ci, n2i)
    b, d = n1 - a, n2 - c
    corr = _zero_mask(to, [a, b, c, d]) & (add != 0)
    inc = np.where(corr, add, 0.0)
    a, b, c, d = a + inc, b + inc, c + inc, d + inc
    n1c, n2c = a + b, c + d
    p1, p2 = a / n1c, c / n2c
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "RR":
            yi = np.log(p1) - np.log(p2)
            vi = 1 / a - 1 / n1c + 1 / c - 1 / n2c
        elif measure == "OR":
            yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
            vi = 1 / a + 1 / b + 1 / c + 1 / d
        elif measure == "PETO":
            nt = n1c + n2c
            xt, yt = a + c, b + d
            var_h = xt * yt * (n1c / nt) * (n2c / nt) / (nt - 1)
            yi = (a - xt * n1c / nt) / var_h
            vi = 1 / var_h
        else:
            yi = p1 - p2
            vi = p1 * (1 - p1) / n1c + p2 * (1 - p2) / n2c
    return EffectSizes(yi=yi, vi=vi, measure=measure, ni=n1 + n2, corrected=corr, add=add, to=to)


def log_hr_from_ci(hr: Any, ci_lb: Any, ci_ub: Any, *, level: float = 95.0) -> EffectSizes:
    """Log hazard ratio and its variance from a reported HR and confidence interval.

    :math:`y = \\log HR`, :math:`SE = (\\log UB - \\log LB)/(2 z_{1-\\alpha/2})`,
    :math:`v = SE^2` (a CI symmetric on the log scale is assumed).
    """
    hr = np.asarray(hr, dtype=float).ravel()
    lb = np.asarray(ci_lb, dtype=float).ravel()
    ub = np.asarray(ci_ub, dtype=float).ravel()
    if not (hr.shape == lb.shape == ub.shape):
        raise ValueError("hr, ci_lb and ci_ub differ in length")
    if np.any(hr <= 0) or np.any(lb <= 0) or np.any(ub <= 0):
        raise ValueError("hazard ratios and their bounds must be > 0")
    if np.any(lb >= ub):
        raise ValueError("the lower bound must be below the upper bound")
    z = stats.norm.isf((1 - level / 100) / 2)
    sei = (np.log(ub) - np.log(lb)) / (2 * z)
    k = hr.size
    return EffectSizes(
        yi=np.log(hr),
        vi=sei**2,
        measure="HR",
        ni=np.full(k, np.nan),
        corrected=np.zeros(k, dtype=bool),
        add=0.0,
        to="none",
    )


# --------------------------------------------------------------------------------------------
# back-transformations
# --------------------------------------------------------------------------------------------


def transf_pft(p: Any, ni: Any) -> np.ndarray:
    """Freeman-Tukey transform of a proportion ``p`` for a group of ``ni`` (metafor's scale)."""
    p = np.asarray(p, dtype=float)
    ni = np.asarray(ni, dtype=float)
    x = p * ni
    return 0.5 * (np.arcsin(np.sqrt(x / (ni + 1))) + np.arcsin(np.sqrt((x + 1) / (ni + 1))))


def transf_ipft(y: Any, ni: Any) -> np.ndarray:
    """Inverse Freeman-Tukey transform with sample size ``ni`` (Miller 1978; ``transf.ipft``).

    :math:`p = \\tfrac12\\left(1 - \\mathrm{sgn}(\\cos 2y)\\sqrt{1 - (\\sin 2y + (\\sin 2y -
    1/\\sin 2y)/n)^2}\\right)`, set to 0 below ``transf_pft(0, n)`` and 1 above
    ``transf_pft(1, n)``.
    """
    y = np.asarray(y, dtype=float)
    ni = np.broadcast_to(np.asarray(ni, dtype=float), y.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sin(2 * y)
        z = 0.5 * (1 - np.sign(np.cos(2 * y)) * np.sqrt(1 - (s + (s - 1 / s) / ni) ** 2))
    z = np.where(y > transf_pft(1.0, ni), 1.0, z)
    z = np.where(y < transf_pft(0.0, ni), 0.0, z)
    return z


def transf_ipft_hm(y: Any, ni: Any) -> np.ndarray:
    """Inverse Freeman-Tukey transform with the harmonic mean of the totals
    (``transf.ipft.hm(y, targs=list(ni=ni))``)."""
    ni = np.asarray(ni, dtype=float)
    nhm = 1.0 / np.mean(1.0 / ni)
    return transf_ipft(y, nhm)


def transf_proportion(measure: str, y: Any, ni: Any = None) -> np.ndarray:
    """Back-transform values on the scale of ``measure`` to proportions.

    PR: identity; PLN: :math:`e^y`; PLO: :math:`1/(1+e^{-y})`; PAS: :math:`\\sin^2 y` (0 below 0,
    1 above :math:`\\pi/2`, as ``transf.iarcsin``); PFT: :func:`transf_ipft_hm` with the
    totals ``ni`` (a scalar ``ni`` is used as it is).
    """
    measure = measure.upper()
    y = np.asarray(y, dtype=float)
    if measure == "PR":
        return y.copy()
    if measure == "PLN":
        return np.exp(y)
    if measure == "PLO":
        return special.expit(y)
    if measure == "PAS":
        z = np.sin(y) ** 2
        z = np.where(y < 0, 0.0, z)
        return np.where(y > np.arcsin(1.0), 1.0, z)
    if measure == "PFT":
        if ni is None:
            raise ValueError("PFT back-transformation needs the totals ni")
        ni = np.asarray(ni, dtype=float)
        return transf_ipft(y, ni) if ni.ndim == 0 else transf_ipft_hm(y, ni)
    raise ValueError(f"no back-transformation for measure {measure!r}")


# --------------------------------------------------------------------------------------------
# study-level confidence intervals for a proportion
# --------------------------------------------------------------------------------------------


def ci_clopper_pearson(
    events: Any, total: Any, level: float = 95.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) interval, as R's ``binom.test(x, n)$conf.int``.

    :math:`[B(\\alpha/2; x, n-x+1),\\ B(1-\\alpha/2; x+1, n-x)]` with beta quantiles;
    0 when x = 0 and 1 when x = n.
    """
    x = np.asarray(events, dtype=float)
    n = np.asarray(total, dtype=float)
    a = 1 - level / 100
    with np.errstate(invalid="ignore"):
        lb = np.where(x == 0, 0.0, stats.beta.ppf(a / 2, x, n - x + 1))
        ub = np.where(x == n, 1.0, stats.beta.ppf(1 - a / 2, x + 1, n - x))
    return lb, ub


def ci_wilson(events: Any, total: Any, level: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (``prop.test(x, n, correct=FALSE)$conf.int``).

    :math:`\\frac{\\hat p + z^2/(2n) \\mp z\\sqrt{\\hat p(1-\\hat p)/n + z^2/(4n^2)}}{1 + z^2/n}`.
    """
    x = np.asarray(events, dtype=float)
    n = np.asarray(total, dtype=float)
    z = stats.norm.isf((1 - level / 100) / 2)
    p = x / n
    centre = p + z**2 / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    den = 1 + z**2 / n
    return np.maximum(0.0, (centre - half) / den), np.minimum(1.0, (centre + half) / den)


def escalc(
    measure: str,
    *,
    xi: Any = None,
    ni: Any = None,
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    add: float | None = None,
    to: str = "only0",
) -> EffectSizes:
    """Effect sizes and sampling variances, with metafor's ``escalc`` argument names.

    - proportions (``"PR"``, ``"PLN"``, ``"PLO"``, ``"PAS"``, ``"PFT"``): ``xi`` events out of
      ``ni`` (see :func:`escalc_proportion`);
    - 2x2 tables (``"RR"``, ``"OR"``, ``"RD"``): ``ai``/``ci`` events in the experimental and
      control arms, with either the arm sizes ``n1i``/``n2i`` or the non-events ``bi``/``di``
      (see :func:`escalc_2x2`).

    ``add`` and ``to`` are metafor's continuity correction (default: 1/2 added to the studies
    with a zero cell, ``to="only0"``; no correction by default for ``"PR"``-free measures as
    :func:`escalc_proportion` documents).

    Examples
    --------
    >>> es = escalc("PLO", xi=[27, 58], ni=[70, 98])
    >>> [round(float(v), 4) for v in es.yi]
    [-0.4654, 0.3716]
    >>> rr = escalc("RR", ai=[10, 3], n1i=[50, 40], ci=[5, 0], n2i=[50, 38])
    >>> round(float(rr.yi[0]), 4)
    0.6931
    """
    m = str(measure).upper()
    if m in PROPORTION_MEASURES:
        if xi is None or ni is None:
            raise ValueError(f"measure {m!r} needs xi (events) and ni (totals)")
        return escalc_proportion(m, xi, ni, add=add, to=to)
    if m in COMPARATIVE_MEASURES:
        if ai is None or ci is None:
            raise ValueError(f"measure {m!r} needs ai and ci (events per arm)")
        if n1i is None:
            if bi is None:
                raise ValueError("give n1i (or bi, the non-events of the first arm)")
            n1i = np.asarray(ai, dtype=float) + np.asarray(bi, dtype=float)
        if n2i is None:
            if di is None:
                raise ValueError("give n2i (or di, the non-events of the second arm)")
            n2i = np.asarray(ci, dtype=float) + np.asarray(di, dtype=float)
        return escalc_2x2(m, ai, n1i, ci, n2i, add=0.5 if add is None else add, to=to)
    raise ValueError(f"unknown measure {measure!r}; choose one of "
                     f"{PROPORTION_MEASURES + COMPARATIVE_MEASURES}")
