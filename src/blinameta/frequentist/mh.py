"""Mantel-Haenszel common-effect meta-analysis of 2x2 tables, as metafor's ``rma.mh``.

The pooled risk ratio, odds ratio or risk difference is the Mantel-Haenszel weighted average of
the tables, computed from the raw cell counts (no continuity correction is needed: zero cells and
double-zero tables contribute what they contribute to the sums). Its variance is

- OR: Robins, Breslow & Greenland (1986), the "RGB" estimator;
- RR: Greenland & Robins (1985);
- RD: Sato, Greenland & Robins (1989);

with Wald (z) tests and intervals, as metafor. The Cochran-Mantel-Haenszel test (with and
without continuity correction) and the Breslow-Day and Tarone tests of homogeneity of odds ratios
are given for the OR.

Cochran's Q (and I², H²) compare the study estimates ``yi`` (metafor's ``escalc``, with its
continuity correction) with the MH estimate: :math:`Q = \\sum_i (y_i - \\hat\\theta_{MH})^2 / v_i`
on ``k_yi - 1`` df.

Continuity correction and double-zero tables follow metafor: ``add``, ``to`` and ``drop00`` take
one value or a pair; the first applies to the study estimates ``yi``/``vi`` (defaults 1/2,
``"only0"``, ``True``: double-zero tables have no ``yi``), the second to the tables that enter the
MH sums (defaults 0, ``"none"``, ``False``: the MH method uses every table as it is).

Mantel-Haenszel pooling is the Cochrane Handbook's (ch. 10.4.1) default for dichotomous outcomes
with few events or small studies, as a common-effect sensitivity analysis beside random-effects
models.

References
----------
Mantel N, Haenszel W (1959). Statistical aspects of the analysis of data from retrospective
studies of disease. *J Natl Cancer Inst* 22, 719-748.
Robins J, Breslow N, Greenland S (1986). Estimators of the Mantel-Haenszel variance consistent in
both sparse data and large-strata limiting models. *Biometrics* 42, 311-323.
Greenland S, Robins JM (1985). Estimation of a common effect parameter from sparse follow-up data.
*Biometrics* 41, 55-68.
Sato T, Greenland S, Robins JM (1989). On the variance estimator for the Mantel-Haenszel risk
difference. *Biometrics* 45, 1323-1324.
Breslow NE, Day NE (1980). *Statistical Methods in Cancer Research, Vol. I*. IARC. Tarone RE
(1985). On heterogeneity tests based on efficient scores. *Biometrika* 72, 91-95.
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. *J Stat Softw* 36(3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from blinameta.frequentist._present import MhPresentation
from blinameta.frequentist.escalc import _TO, _tables, _zero_mask, escalc_2x2
from blinameta.frequentist.glmm import plain_dict

__all__ = ["MH_MEASURES", "MhResult", "rma_mh"]

#: Measures of :func:`rma_mh`.
MH_MEASURES = ("OR", "RR", "RD")


@dataclass(frozen=True)
class Tables:
    """2x2 tables prepared as metafor's ``rma.mh``/``rma.peto`` do (internal)."""

    a: np.ndarray  # cells entering the pooled estimate (after drop00[1], add[1]/to[1])
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    yi: np.ndarray  # study estimates (after drop00[0], add[0]/to[0]); dropped ones removed
    vi: np.ndarray
    k: int  # tables in the pooled estimate
    k_yi: int  # studies with an estimate yi
    k_all: int
    dropped00: tuple[int, ...]  # 0-based indices of double-zero tables
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]


def _pair(value: Any, second: Any, name: str) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} takes one value or two, got {len(value)}")
        return value[0], value[1]
    return value, second


def _prepare(
    measure: str, ai: Any, n1i: Any, ci: Any, n2i: Any, add: Any, to: Any, drop00: Any
) -> Tables:
    """Cells, study estimates and the bookkeeping of ``rma.mh``/``rma.peto``.

    ``add``, ``to`` and ``drop00`` are one value (for ``yi``/``vi``; the pooled computation then
    uses 0, ``"none"`` and ``False``) or a pair (study estimates, pooled computation).
    """
    add_pair = tuple(float(x) for x in _pair(add, 0.0, "add"))
    to_pair = tuple(str(x) for x in _pair(to, "none", "to"))
    drop_pair = tuple(bool(x) for x in _pair(drop00, False, "drop00"))
    for t in to_pair:
        if t not in _TO:
            raise ValueError(f"unknown 'to' {t!r}; choose one of {_TO}")
    if any(x < 0 for x in add_pair):
        raise ValueError("add must not be negative")
    a, n1, c, n2 = _tables(ai, n1i, ci, n2i)
    if a.size == 0:
        raise ValueError("no studies")
    if np.any(n1 <= 0) or np.any(n2 <= 0):
        raise ValueError("group sizes must be > 0")
    b, d = n1 - a, n2 - c
    id00 = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))

    keep_y = ~id00 if drop_pair[0] else np.ones(a.size, dtype=bool)
    if keep_y.any():
        es = escalc_2x2(measure, a[keep_y], n1[keep_y], c[keep_y], n2[keep_y],
                        add=add_pair[0], to=to_pair[0])
        yi, vi = es.yi, es.vi
    else:
        yi = vi = np.empty(0)

    keep = ~id00 if drop_pair[1] else np.ones(a.size, dtype=bool)
    if not keep.any():
        raise ValueError("every table is a double-zero table (no events, or only events, in "
                         "both groups): nothing to pool")
    A, B, C, D = a[keep], b[keep], c[keep], d[keep]
    inc = np.where(_zero_mask(to_pair[1], [A, B, C, D]) & (add_pair[1] != 0), add_pair[1], 0.0)
    return Tables(
        a=A + inc, b=B + inc, c=C + inc, d=D + inc, yi=yi, vi=vi, k=int(keep.sum()),
        k_yi=int(yi.size), k_all=int(a.size), dropped00=tuple(int(i) for i in np.flatnonzero(id00)),
        add=add_pair, to=to_pair, drop00=drop_pair,
    )


def _heterogeneity(qe: float, k_yi: int) -> tuple[float, float, float, float]:
    """QE, its p-value, I² (%) and H² as metafor's ``rma.mh``/``rma.peto`` (QE given)."""
    if k_yi > 1 and math.isfinite(qe):
        qe_p = float(stats.chi2.sf(qe, k_yi - 1))
        i2 = max(0.0, 100.0 * (qe - (k_yi - 1)) / qe) if qe > 0 else 0.0
        return qe, qe_p, i2, qe / (k_yi - 1)
    if k_yi > 1:
        return math.nan, math.nan, math.nan, math.nan
    return 0.0, 1.0, 0.0, 1.0


@dataclass(frozen=True)
class MhResult(MhPresentation):
    """A Mantel-Haenszel (or Peto) common-effect fit; names follow metafor's ``rma.mh`` object.

    Attributes
    ----------
    measure : {"OR", "RR", "RD", "PETO"}
    beta, se, zval, pval, ci_lb, ci_ub : float
        Pooled estimate on the analysis scale (log OR, log RR, RD, Peto log OR), its standard
        error, Wald test and confidence interval (NaN when the estimate does not exist, e.g. an
        OR or RR with no events in one arm of every table).
    estimate, estimate_lb, estimate_ub : float
        The same on the reported scale: exponentiated for OR, RR and PETO, as is for RD.
    qe, qe_p, i2, h2 : float
        Cochran's Q of the study estimates ``yi`` around ``beta`` (Peto: of the tables' score
        statistics), on ``k_yi - 1`` df, and I² (percent) = ``max(0, (Q - df)/Q)``, H² = Q/df.
    cmh, cmh_p, cmh_exact_var, cmh_exact_var_p : float
        OR only: Cochran-Mantel-Haenszel test of OR = 1 (metafor's ``CO``, variance with ``N``,
        and ``MH``, variance with ``N - 1``); with the 0.5 continuity correction if ``correct``.
    bd, bd_p, tarone, tarone_p : float
        OR only: Breslow-Day and Tarone tests of homogeneity of the odds ratios on
        ``k_pos - 1`` df (NaN when ``k_pos < 2``).
    k, k_yi, k_all, k_pos : int
        Tables in the pooled estimate, studies with an estimate ``yi``, tables given, tables
        entering the Breslow-Day/Tarone tests (Peto: tables with a non-zero variance).
    dropped00 : tuple of int
        0-based indices of the double-zero tables (no events, or only events, in both groups).
    yi, vi : ndarray
        Study estimates and variances (analysis scale) of the ``k_yi`` studies.
    level, add, to, drop00, correct :
        Settings as used (pairs: study estimates, pooled computation).
    """

    measure: str
    beta: float
    se: float
    zval: float
    pval: float
    ci_lb: float
    ci_ub: float
    estimate: float
    estimate_lb: float
    estimate_ub: float
    qe: float
    qe_p: float
    i2: float
    h2: float
    k: int
    k_yi: int
    k_all: int
    k_pos: int | None
    dropped00: tuple[int, ...]
    yi: np.ndarray
    vi: np.ndarray
    level: float
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]
    correct: bool | None = None
    cmh: float = math.nan
    cmh_p: float = math.nan
    cmh_exact_var: float = math.nan
    cmh_exact_var_p: float = math.nan
    bd: float = math.nan
    bd_p: float = math.nan
    tarone: float = math.nan
    tarone_p: float = math.nan

    @property
    def qe_df(self) -> int:
        return max(self.k_yi - 1, 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (arrays and tuples as lists, NaN kept), e.g. for JSON."""
        out = plain_dict(asdict(self))
        out["qe_df"] = self.qe_df
        return out


def _wald(beta: float, se: float, level: float) -> tuple[float, float, float, float]:
    """z, two-sided p and the CI bounds (NaN-propagating)."""
    if not (math.isfinite(beta) and math.isfinite(se)) or se <= 0:
        return math.nan, math.nan, math.nan, math.nan
    crit = float(stats.norm.isf((1 - level / 100) / 2))
    z = beta / se
    return z, float(2 * stats.norm.sf(abs(z))), beta - crit * se, beta + crit * se


def _check_level(level: float) -> float:
    level = float(level)
    if level <= 1:
        level *= 100
    if not 0 < level < 100:
        raise ValueError(f"level must be a percentage between 0 and 100, got {level}")
    return level


def _or_tests(t: Tables, psi: float, correct: bool) -> dict[str, float]:
    """CMH, Breslow-Day and Tarone tests (metafor's ``CO``, ``MH``, ``BD``, ``TA``)."""
    a, b, c, d = t.a, t.b, t.c, t.d
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    out: dict[str, float] = {}
    if xt.sum() > 0 and yt.sum() > 0:
        num = (abs(float(np.sum(a - (n1 / N) * xt))) - (0.5 if correct else 0.0)) ** 2
        out["cmh"] = num / float(np.sum((n1 / N) * (n2 / N) * (xt * (yt / N))))
        with np.errstate(divide="ignore", invalid="ignore"):
            out["cmh_exact_var"] = num / float(np.sum((n1 / N) * (n2 / N) * (xt * (yt / (N - 1)))))
        out["cmh_p"] = float(stats.chi2.sf(out["cmh"], 1))
        out["cmh_exact_var_p"] = float(stats.chi2.sf(out["cmh_exact_var"], 1))
    if not math.isfinite(psi):
        out["k_pos"] = 0
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        if psi == 1.0:
            n11 = (n1 / N) * xt
        else:
            A = psi * (n1 + xt) + (n2 - xt)
            Bq = np.sqrt(A**2 - 4 * n1 * xt * psi * (psi - 1))
            n11 = (A - Bq) / (2 * (psi - 1))
    pos = (n11 > 0) & (xt > 0) & (yt > 0)
    k_pos = int(pos.sum())
    e11 = n11[pos]
    e12 = n1[pos] - e11
    e21 = xt[pos] - e11
    e22 = e11 - n1[pos] - xt[pos] + N[pos]
    var = 1.0 / (1 / e11 + 1 / e12 + 1 / e21 + 1 / e22)
    dev = a[pos] - e11
    bd = max(0.0, float(np.sum(dev**2 / var)))
    tarone = max(0.0, bd - float(np.sum(dev)) ** 2 / float(np.sum(var)))
    out.update(k_pos=k_pos, bd=bd, tarone=tarone)
    if k_pos > 1:
        out["bd_p"] = float(stats.chi2.sf(bd, k_pos - 1))
        out["tarone_p"] = float(stats.chi2.sf(tarone, k_pos - 1))
    return out


def rma_mh(
    ai: Any,
    n1i: Any,
    ci: Any,
    n2i: Any,
    *,
    measure: str = "OR",
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    correct: bool = True,
    level: float = 95.0,
) -> MhResult:
    """Mantel-Haenszel pooled OR, RR or RD, as ``metafor::rma.mh(ai=, n1i=, ci=, n2i=, measure=)``.

    With cells :math:`a_i, b_i = n_{1i} - a_i, c_i, d_i = n_{2i} - c_i` and
    :math:`N_i = n_{1i} + n_{2i}`:

    - OR: :math:`\\hat\\psi = R/S`, :math:`R = \\sum a_i d_i/N_i`, :math:`S = \\sum b_i c_i/N_i`;
      SE of :math:`\\log\\hat\\psi` by Robins, Breslow & Greenland (1986);
    - RR: :math:`\\sum a_i n_{2i}/N_i \\,/\\, \\sum c_i n_{1i}/N_i`; SE of the log by
      Greenland & Robins (1985);
    - RD: :math:`\\sum (a_i n_{2i} - c_i n_{1i})/N_i \\,/\\, \\sum n_{1i} n_{2i}/N_i`; SE by
      Sato, Greenland & Robins (1989).

    Parameters
    ----------
    ai, n1i, ci, n2i : array_like
        Events and group sizes in the first (treatment) and second (control) group.
    measure : {"OR", "RR", "RD"}
    add, to, drop00 :
        One value, or a pair (study estimates ``yi``; MH computation), as metafor: by default
        1/2 is added to every cell of the tables with a zero cell for ``yi``/``vi`` and
        double-zero tables get no ``yi`` (they do not count in Q), while the MH sums use all
        tables uncorrected (``add=(0.5, 0)``, ``to=("only0", "none")``,
        ``drop00=(True, False)``).
    correct : bool
        Continuity correction of the CMH test (OR only).
    level : float
        Confidence level in percent.

    Returns
    -------
    MhResult

    Raises
    ------
    ValueError
        For bad counts, an unknown measure or ``to``, or nothing to pool.
    """
    measure = str(measure).upper()
    if measure not in MH_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {MH_MEASURES}")
    level = _check_level(level)
    t = _prepare(measure, ai, n1i, ci, n2i, add, to, drop00)
    a, b, c, d = t.a, t.b, t.c, t.d
    n1, n2 = a + b, c + d
    N = n1 + n2
    beta = se = math.nan
    extra: dict[str, Any] = {}
    if measure == "OR":
        P, Q = a / N + d / N, b / N + c / N
        Ri, Si = (a / N) * d, (b / N) * c
        R, S = float(Ri.sum()), float(Si.sum())
        if R != 0 and S != 0:
            beta = math.log(R / S)
            se = math.sqrt(0.5 * (float(np.sum(P * Ri)) / R**2
                                  + float(np.sum(P * Si + Q * Ri)) / (R * S)
                                  + float(np.sum(Q * Si)) / S**2))
        extra = _or_tests(t, math.exp(beta) if math.isfinite(beta) else math.nan, correct)
        extra["correct"] = bool(correct)
    elif measure == "RR":
        R, S = float(np.sum(a * (n2 / N))), float(np.sum(c * (n1 / N)))
        if a.sum() != 0 and c.sum() != 0:
            beta = math.log(R / S)
            se = math.sqrt(float(np.sum((n1 / N) * (n2 / N) * (a + c) - (a / N) * c)) / (R * S))
    else:
        den = float(np.sum(n1 * (n2 / N)))
        beta = float(np.sum(a * (n2 / N) - c * (n1 / N))) / den
        v = (beta * float(np.sum(c * (n1 / N) ** 2 - a * (n2 / N) ** 2
                                 + (n1 / N) * (n2 / N) * (n2 - n1) / 2))
             + float(np.sum(a * (n2 - c) / N + c * (n1 - a) / N)) / 2) / den**2
        se = math.sqrt(v) if v >= 0 else math.nan
    zval, pval, ci_lb, ci_ub = _wald(beta, se, level)
    if math.isfinite(beta) and t.k_yi > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            qe = max(0.0, float(np.sum((t.yi - beta) ** 2 / t.vi)))
    else:
        qe = math.nan if t.k_yi > 1 else 0.0
    qe, qe_p, i2, h2 = _heterogeneity(qe, t.k_yi)
    back = (lambda x: x) if measure == "RD" else (lambda x: math.exp(x) if math.isfinite(x) else math.nan)
    return MhResult(
        measure=measure, beta=beta, se=se, zval=zval, pval=pval, ci_lb=ci_lb, ci_ub=ci_ub,
        estimate=back(beta), estimate_lb=back(ci_lb), estimate_ub=back(ci_ub),
        qe=qe, qe_p=qe_p, i2=i2, h2=h2, k=t.k, k_yi=t.k_yi, k_all=t.k_all,
        k_pos=extra.pop("k_pos", None), dropped00=t.dropped00, yi=t.yi, vi=t.vi, level=level,
        add=t.add, to=t.to, drop00=t.drop00, **extra,
    )
