"""Outlier, influence and small-study diagnostics for a fitted :class:`~blinameta.frequentist.rma.RmaResult`.

Each function mirrors the metafor function of the same name (``influence.rma.uni``,
``rstudent.rma.uni``, ``leave1out``, ``baujat``, ``cumul``, ``regtest``, ``ranktest``,
``trimfill``): same formulas, same refits (with the model's own method, test, level and control),
same names for the returned quantities. Leave-one-out and cumulative refits call
:func:`blinameta.frequentist.rma.rma`; a refit that fails gives NaN for that study, as metafor.

References
----------
Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for meta-analysis.
*Research Synthesis Methods* 1, 112-125.
Baujat B, Mahé C, Pignon JP, Hill C (2002). A graphical method for exploring heterogeneity in
meta-analyses. *Statistics in Medicine* 21, 2641-2652.
Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis detected by a
simple, graphical test. *BMJ* 315, 629-634.
Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation test for
publication bias. *Biometrics* 50, 1088-1101.
Duval S, Tweedie R (2000). Trim and fill: a simple funnel-plot-based method of testing and
adjusting for publication bias in meta-analysis. *Biometrics* 56, 455-463.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from blinameta.errors import UserError
from blinameta.frequentist.rma import RmaResult, rma

__all__ = [
    "InfluenceResult",
    "Leave1outResult",
    "BaujatResult",
    "CumulResult",
    "RegtestResult",
    "RanktestResult",
    "TrimfillResult",
    "influence",
    "leave1out",
    "baujat",
    "cumul",
    "regtest",
    "peters_test",
    "ranktest",
    "trimfill",
]

_EPS = np.finfo(float).eps


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(obj).items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


def _refit(
    res: RmaResult,
    yi: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray | None,
    *,
    test: str | None = None,
    level: float | None = None,
) -> RmaResult | None:
    """Refit ``res``'s model to other data (``X=None``: intercept only); None if it fails."""
    try:
        if X is None:
            mods, intercept = None, True
        else:
            mods, intercept = X, False
        return rma(
            yi,
            vi,
            mods=mods,
            intercept=intercept,
            method=res.method,
            test=res.test if test is None else test,
            level=res.level if level is None else level,
            control=res.control,
        )
    except ValueError:
        return None


def _need_k(res: RmaResult, what: str, k_min: int = 2) -> None:
    if res.k < k_min:
        raise UserError(f"{what} needs at least {k_min} studies (k = {res.k})")


def _need_int_only(res: RmaResult, what: str) -> None:
    if not res.int_only:
        raise UserError(f"{what} is only for models without moderators")


# --------------------------------------------------------------------------- influence


@dataclass(frozen=True)
class InfluenceResult:
    """Case diagnostics of each study (metafor ``influence.rma.uni``; names as there).

    ``rstudent`` externally studentized residual; ``dffits``; ``cook_d`` Cook's distance;
    ``cov_r`` covariance ratio; ``tau2_del``/``qe_del`` tau2 and QE with the study removed;
    ``hat`` leverage; ``weight`` weight in percent; ``dfbs`` (k, p) DFBETAS; ``is_infl`` metafor's
    flag; ``resid``/``se_resid`` the deleted residual and its standard error.
    """

    rstudent: np.ndarray
    resid: np.ndarray
    se_resid: np.ndarray
    dffits: np.ndarray
    cook_d: np.ndarray
    cov_r: np.ndarray
    tau2_del: np.ndarray
    qe_del: np.ndarray
    hat: np.ndarray
    weight: np.ndarray
    dfbs: np.ndarray
    is_infl: np.ndarray
    coef_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def _hat(res: RmaResult) -> np.ndarray:
    """Leverages: the diagonal of ``X (X'WX)^{-1} X'W``, ``W = diag(1/(v_i + tau2))``."""
    w = 1.0 / (res.vi + res.tau2)
    X = res.X
    A = np.linalg.solve(X.T @ (w[:, None] * X), X.T)  # (p, k)
    return np.einsum("ij,ji->i", X, A) * w


def influence(res: RmaResult) -> InfluenceResult:
    """Leave-one-out case diagnostics (Viechtbauer & Cheung 2010), as metafor ``influence``.

    For study *i* the model is refitted without it, giving ``b_(-i)``, ``V_(-i)``,
    ``tau2_(-i)``, ``QE_(-i)`` and ``s2w_(-i)`` (Knapp-Hartung factor, 1 for z tests). Then

    - ``rstudent_i = (y_i - x_i'b_(-i)) / sqrt(s2w_(-i) (v_i + tau2_(-i)) + x_i'V_(-i)x_i)``
    - ``DFFITS_i = x_i'(b - b_(-i)) / sqrt(s2w_(-i) h_i (tau2_(-i) + v_i))``
    - ``D_i = (b - b_(-i))' V^{-1} (b - b_(-i))`` (Cook's distance)
    - ``COVRATIO_i = det V_(-i) / det V``
    - ``DFBETAS_ij = (b_j - b_(-i)j) / sqrt(s2w_(-i) [(X'W_(-i)X)^{-1}]_jj)`` with
      ``W_(-i) = diag(1/(v + tau2_(-i)))`` over all k studies.

    A study is flagged influential (metafor's rule) if ``|DFFITS| > 3 sqrt(p/(k-p))``, or
    ``pchisq(D, p) > 0.5``, or ``h > 3p/k``, or any ``|DFBETAS| > 1``.
    """
    _need_k(res, "influence")
    k, p = res.k, res.p
    X, yi, vi = res.X, res.yi, res.vi
    beta = res.beta
    pred_full = X @ beta
    hat = _hat(res)
    svb = np.linalg.inv(res.vb)
    det_vb = np.linalg.det(res.vb)

    nan = np.full(k, np.nan)
    tau2_del, qe_del, delpred, vdelpred, s2w_del = (nan.copy() for _ in range(5))
    dffits, cook_d, cov_r = nan.copy(), nan.copy(), nan.copy()
    dfbs = np.full((k, p), np.nan)
    keep = np.ones(k, dtype=bool)
    for i in range(k):
        keep[:] = True
        keep[i] = False
        fit = _refit(res, yi[keep], vi[keep], X[keep])
        keep[i] = True
        if fit is None or fit.p != p:
            continue
        tau2_del[i] = fit.tau2
        qe_del[i] = fit.qe
        xi = X[i]
        delpred[i] = xi @ fit.beta
        vdelpred[i] = xi @ fit.vb @ xi
        s2w_del[i] = fit.s2w
        dffits[i] = (pred_full[i] - delpred[i]) / math.sqrt(fit.s2w * hat[i] * (fit.tau2 + vi[i]))
        wdel = 1.0 / (vi + fit.tau2)
        vb_del = np.linalg.inv(X.T @ (wdel[:, None] * X))
        dfb = beta - fit.beta
        dfbs[i] = dfb / np.sqrt(fit.s2w * np.diag(vb_del))
        cook_d[i] = dfb @ svb @ dfb
        cov_r[i] = np.linalg.det(fit.vb) / det_vb
    resid = yi - delpred
    resid[np.abs(resid) < 100 * _EPS] = 0.0
    se_resid = np.sqrt(vi * s2w_del + vdelpred + tau2_del * s2w_del)
    rstudent = resid / se_resid
    with np.errstate(invalid="ignore"):
        is_infl = (
            (np.abs(dffits) > 3 * math.sqrt(p / (k - p)) if k > p else np.zeros(k, bool))
            | (stats.chi2.cdf(cook_d, p) > 0.5)
            | (hat > 3 * p / k)
            | np.any(np.abs(dfbs) > 1, axis=1)
        )
    return InfluenceResult(
        rstudent=rstudent,
        resid=resid,
        se_resid=se_resid,
        dffits=dffits,
        cook_d=cook_d,
        cov_r=cov_r,
        tau2_del=tau2_del,
        qe_del=qe_del,
        hat=hat,
        weight=res.weights,
        dfbs=dfbs,
        is_infl=is_infl & ~np.isnan(dffits),
        coef_names=res.coef_names,
    )


# --------------------------------------------------------------------------- leave1out / cumul


@dataclass(frozen=True)
class Leave1outResult:
    """Intercept-only model refitted k times (``leave1out``) or to growing subsets (``cumul``).

    Row *i* is the fit without study *i* (``leave1out``), or to the first *i + 1* studies in
    ``order`` (``cumul``). ``zval`` holds t statistics when the model uses ``test="knha"``;
    ``i2`` is in percent. ``order`` gives the study indices in the order used.
    """

    estimate: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    q: np.ndarray
    qp: np.ndarray
    tau2: np.ndarray
    i2: np.ndarray
    h2: np.ndarray
    order: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


CumulResult = Leave1outResult


def _collect(res: RmaResult, subsets: list[np.ndarray], order: np.ndarray) -> Leave1outResult:
    n = len(subsets)
    out = {name: np.full(n, np.nan) for name in ("estimate", "se", "zval", "pval", "ci_lb", "ci_ub", "q", "qp", "tau2", "i2", "h2")}
    for j, idx in enumerate(subsets):
        fit = _refit(res, res.yi[idx], res.vi[idx], None)
        if fit is None:
            continue
        out["estimate"][j] = fit.beta[0]
        out["se"][j] = fit.se[0]
        out["zval"][j] = fit.zval[0]
        out["pval"][j] = fit.pval[0]
        out["ci_lb"][j] = fit.ci_lb[0]
        out["ci_ub"][j] = fit.ci_ub[0]
        out["q"][j] = fit.qe
        out["qp"][j] = fit.qe_p
        out["tau2"][j] = fit.tau2
        out["i2"][j] = fit.i2
        out["h2"][j] = fit.h2
    return Leave1outResult(order=order, **out)


def leave1out(res: RmaResult) -> Leave1outResult:
    """Leave-one-out estimates (metafor ``leave1out``): the model refitted without each study.

    Each refit uses the model's method, test, level and control; ``q`` is Cochran's QE of the
    k - 1 remaining studies and ``i2``, ``h2`` are as in :func:`blinameta.frequentist.rma.rma`.
    """
    _need_int_only(res, "leave1out")
    _need_k(res, "leave1out")
    k = res.k
    subsets = [np.delete(np.arange(k), i) for i in range(k)]
    return _collect(res, subsets, np.arange(k))


def cumul(res: RmaResult, order: Any = None, *, decreasing: bool = False) -> CumulResult:
    """Cumulative meta-analysis (metafor ``cumul``): fits to the first 1, 2, ..., k studies.

    Parameters
    ----------
    res
        An intercept-only model.
    order
        A sort key per study (e.g. publication year); studies are added in increasing
        (``decreasing=True``: decreasing) order of the key, ties kept in data order. ``None``
        keeps the data order.
    """
    _need_int_only(res, "cumul")
    k = res.k
    if order is None:
        idx = np.arange(k)
    else:
        key = np.asarray(order)
        if key.shape != (k,):
            raise UserError(f"cumul: order has {key.size} values but the model has {k} studies")
        idx = np.argsort(-key if decreasing else key, kind="stable")
    subsets = [idx[: j + 1] for j in range(k)]
    return _collect(res, subsets, idx)


# --------------------------------------------------------------------------- baujat


@dataclass(frozen=True)
class BaujatResult:
    """Baujat plot coordinates: ``x`` contribution to QE, ``y`` influence on the fitted value."""

    x: np.ndarray
    y: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def baujat(res: RmaResult) -> BaujatResult:
    """Coordinates of the Baujat et al. (2002) plot, as metafor ``baujat``.

    ``x_i = (y_i - x_i'b)^2 / (v_i + tau2)`` (squared Pearson residual; its sum is QE for an
    EE model) and ``y_i = (x_i'b_(-i) - x_i'b)^2 / (x_i'V_(-i)x_i)``, the squared standardised
    change of study *i*'s fitted value when it is left out.
    """
    _need_k(res, "baujat")
    k = res.k
    X, yi, vi = res.X, res.yi, res.vi
    pred_full = X @ res.beta
    y = np.full(k, np.nan)
    for i in range(k):
        keep = np.arange(k) != i
        fit = _refit(res, yi[keep], vi[keep], X[keep])
        if fit is None or fit.p != res.p:
            continue
        d = X[i] @ fit.beta
        y[i] = (d - pred_full[i]) ** 2 / (X[i] @ fit.vb @ X[i])
    x = (yi - pred_full) ** 2 / (res.tau2 + vi)
    return BaujatResult(x=x, y=y)


# --------------------------------------------------------------------------- regtest (Egger)


@dataclass(frozen=True)
class RegtestResult:
    """Egger-type regression test for funnel-plot asymmetry.

    ``zval``/``pval`` test the coefficient of the precision predictor (a t test with ``ddf`` df
    under ``test="knha"`` or ``model="lm"``). ``est``, ``ci_lb``, ``ci_ub`` are the intercept
    (the limit estimate as the predictor goes to 0) for intercept-only models with predictor
    ``sei``, ``vi``, ``ninv`` or ``sqrtninv``, else NaN. ``fit`` is the fitted RmaResult
    (``model="rma"``) or None.
    """

    model: str
    predictor: str
    zval: float
    pval: float
    ddf: float
    est: float
    ci_lb: float
    ci_ub: float
    fit: RmaResult | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "fit"}
        return out


def regtest(res: RmaResult, model: str = "rma", predictor: str = "sei", *, ni: Any = None) -> RegtestResult:
    """Egger's regression test (Egger et al. 1997) in metafor's form (``regtest``).

    ``model="rma"`` (default) adds the predictor (``sei`` = sqrt(v_i) by default) as a moderator
    to the model (same moderators, method, test and control) and tests its coefficient.
    ``model="lm"`` is the classical weighted regression ``y_i = b0 + b1 sei_i`` with weights
    ``1/v_i`` and a residual variance (t test on ``k - p - 1`` df).
    """
    if model not in ("rma", "lm"):
        raise UserError(f"regtest: model must be 'rma' or 'lm', got {model!r}")
    preds = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
    if predictor not in preds:
        raise UserError(f"regtest: predictor must be one of {', '.join(preds)}")
    yi, vi, X = res.yi, res.vi, res.X
    k, p = X.shape
    if predictor == "sei":
        z = np.sqrt(vi)
    elif predictor == "vi":
        z = vi
    else:
        if ni is None:
            raise UserError(f"regtest: predictor {predictor!r} needs the sample sizes (ni)")
        n = np.asarray(ni, dtype=float)
        if n.shape != (k,):
            raise UserError(f"regtest: ni has {n.size} values, the model has {k} studies")
        z = {"ni": n, "ninv": 1 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1 / np.sqrt(n)}[predictor]
    Xn = np.column_stack([X, z])
    if np.linalg.matrix_rank(Xn) < p + 1:
        raise UserError("regtest: the predictor is collinear with the model's moderators")
    limit = predictor in ("sei", "vi", "ninv", "sqrtninv") and p == 1 and res.int_incl
    alpha = 1 - res.level / 100
    if model == "rma":
        fit = _refit(res, yi, vi, Xn)
        if fit is None:
            raise UserError("regtest: the model with the precision predictor could not be fitted")
        zval, pval = float(fit.zval[p]), float(fit.pval[p])
        ddf = float(fit.ddf)
        est = float(fit.beta[0]) if limit else math.nan
        ci_lb = float(fit.ci_lb[0]) if limit else math.nan
        ci_ub = float(fit.ci_ub[0]) if limit else math.nan
    else:
        fit = None
        w = 1 / vi
        A = Xn.T @ (w[:, None] * Xn)
        b = np.linalg.solve(A, Xn.T @ (w * yi))
        ddf = float(k - p - 1)
        if ddf <= 0:
            raise UserError("regtest: too few studies for model='lm'")
        s2 = float(np.sum(w * (yi - Xn @ b) ** 2) / ddf)
        se = np.sqrt(s2 * np.diag(np.linalg.inv(A)))
        zval = float(b[p] / se[p])
        pval = float(2 * stats.t.sf(abs(zval), ddf))
        crit = float(stats.t.isf(alpha / 2, ddf))
        est = float(b[0]) if limit else math.nan
        ci_lb = float(b[0] - crit * se[0]) if limit else math.nan
        ci_ub = float(b[0] + crit * se[0]) if limit else math.nan
    return RegtestResult(model=model, predictor=predictor, zval=zval, pval=pval, ddf=ddf, est=est, ci_lb=ci_lb, ci_ub=ci_ub, fit=fit)


def peters_test(res: RmaResult, ni: Any) -> RegtestResult:
    """Peters' regression test for small-study effects with binary data or proportions.

    The study estimates (log odds ratios, or logits of proportions) are regressed on the inverse
    of the total sample size, :math:`y_i = b_0 + b_1/n_i`, by weighted least squares with
    weights :math:`1/v_i` and a multiplicative residual variance; :math:`b_1` is tested with a
    t test on ``k - 2`` df (Peters et al. 2006). This is metafor's
    ``regtest(res, model="lm", predictor="ninv")``. For proportions, :math:`1/v_i =
    1/(1/x_i + 1/(n_i - x_i))` is Peters' weight (uncorrected logits), so the test is the
    one recommended instead of Egger's for proportions, where the logit and its standard error
    are correlated (Hunter et al. 2014); the Cochrane Handbook (10.4.3.1) asks for k >= 10.

    Parameters
    ----------
    res : RmaResult
        The fitted model (its moderators, if any, are kept).
    ni : array_like (k,)
        Total sample size of each study (uncorrected; both arms for 2x2 tables).

    References
    ----------
    Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L (2006). Comparison of two methods to
    detect publication bias in meta-analysis. *JAMA* 295, 676-680.
    Hunter JP, Saratzis A, Sutton AJ, Boucher RH, Sayers RD, Bown MJ (2014). In meta-analyses of
    proportion studies, funnel plots were found to be an inaccurate method of assessing
    publication bias. *J Clin Epidemiol* 67, 897-903.
    """
    return regtest(res, model="lm", predictor="ninv", ni=ni)


# --------------------------------------------------------------------------- ranktest (Begg)


@dataclass(frozen=True)
class RanktestResult:
    """Begg & Mazumdar rank correlation test: Kendall's tau and its two-sided p-value."""

    tau: float
    pval: float
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kendall_exact_cdf(q: int, n: int) -> float:
    """P(T <= q) for T the number of concordant pairs among n untied pairs (Mahonian numbers)."""
    counts = np.zeros(1, dtype=float)
    counts[0] = 1.0
    for m in range(2, n + 1):
        new = np.zeros(counts.size + m - 1)
        for j in range(m):
            new[j : j + counts.size] += counts
        counts = new / m  # keep as probabilities (divide by m at each step: total n!)
    return float(np.sum(counts[: q + 1])) if q >= 0 else 0.0


def _kendall_test(x: np.ndarray, y: np.ndarray, exact: bool = True) -> tuple[float, float, bool]:
    """Kendall's tau-b and the two-sided p-value of R's ``cor.test(method="kendall")``."""
    n = x.size
    tau = float(stats.kendalltau(x, y, variant="b").statistic)
    if not np.isfinite(tau):
        return math.nan, math.nan, False
    ties = min(np.unique(x).size, np.unique(y).size) < n
    if exact and not ties:
        q = int(round((tau + 1) * n * (n - 1) / 4))
        if q > n * (n - 1) / 4:
            pv = 1 - _kendall_exact_cdf(q - 1, n)
        else:
            pv = _kendall_exact_cdf(q, n)
        return tau, min(2 * pv, 1.0), True
    _, xt = np.unique(x, return_counts=True)
    _, yt = np.unique(y, return_counts=True)
    xt, yt = xt[xt > 1].astype(float), yt[yt > 1].astype(float)
    t0 = n * (n - 1) / 2
    t1 = np.sum(xt * (xt - 1)) / 2
    t2 = np.sum(yt * (yt - 1)) / 2
    s = tau * math.sqrt((t0 - t1) * (t0 - t2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt = np.sum(xt * (xt - 1) * (2 * xt + 5))
    vu = np.sum(yt * (yt - 1) * (2 * yt + 5))
    v1 = np.sum(xt * (xt - 1)) * np.sum(yt * (yt - 1))
    v2 = np.sum(xt * (xt - 1) * (xt - 2)) * np.sum(yt * (yt - 1) * (yt - 2))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + (v2 / (9 * n * (n - 1) * (n - 2)) if n > 2 else 0.0)
    zstat = s / math.sqrt(var_s)
    return tau, float(2 * stats.norm.sf(abs(zstat))), False


def ranktest(res: RmaResult, *, exact: bool = True) -> RanktestResult:
    """Begg & Mazumdar (1994) rank correlation test, as metafor ``ranktest``.

    Kendall's tau between the standardised deviates ``(y_i - b_EE)/sqrt(v_i - 1/sum w)``
    (``b_EE`` the inverse-variance mean, ``w = 1/v``) and the variances ``v_i``. The p-value is
    exact (the permutation distribution of Kendall's statistic) when there are no ties and
    ``exact``; otherwise the normal approximation with R's tie correction (no continuity
    correction), as R's ``cor.test``.
    """
    _need_k(res, "ranktest", 3)
    yi, vi = res.yi, res.vi
    wi = 1 / vi
    theta = np.sum(wi * yi) / wi.sum()
    vstar = vi - 1 / wi.sum()
    ystar = (yi - theta) / np.sqrt(vstar)
    tau, pval, used_exact = _kendall_test(ystar, vi, exact)
    return RanktestResult(tau=tau, pval=pval, exact=used_exact)


# --------------------------------------------------------------------------- trimfill


@dataclass(frozen=True)
class TrimfillResult:
    """Trim-and-fill: number and values of the imputed studies and the refitted model.

    ``yi``, ``vi`` hold the k observed then the ``k0`` filled studies (``fill`` marks the
    latter); ``fit`` is the model refitted to them (the original model when ``k0 = 0``).
    ``p_k0`` is the test of k0 = 0 for the R0 estimator (NaN for L0).
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float
    yi: np.ndarray
    vi: np.ndarray
    fill: np.ndarray
    fit: RmaResult

    @property
    def beta(self) -> np.ndarray:
        return self.fit.beta

    @property
    def se(self) -> np.ndarray:
        return self.fit.se

    @property
    def tau2(self) -> float:
        return self.fit.tau2

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in _as_dict(self).items() if k != "fit"}
        out["fit"] = self.fit.to_dict()
        return out


def trimfill(res: RmaResult, side: str | None = None, estimator: str = "L0", *, maxiter: int = 100) -> TrimfillResult:
    """Duval & Tweedie (2000) trim-and-fill, as metafor ``trimfill``.

    Parameters
    ----------
    res
        An intercept-only model (method and control are reused for every fit).
    side
        Side of the funnel where studies are missing, ``"left"`` or ``"right"``. ``None``: from
        the sign of the slope in Egger's test with ``sei`` as moderator (negative -> "right").
    estimator
        ``"L0"``, ``"R0"`` or ``"Q0"``.

    Notes
    -----
    On the side-flipped, sorted data, repeat until k0 is stable: fit the model to the
    ``k - k0`` smallest effects, centre all at its estimate, rank ``|y_i - b|`` and sum the
    positive signed ranks ``S``; ``L0 = (4S - k(k+1))/(2k-1)``, ``R0 = gamma* - 1`` (``gamma*``
    the rightmost run of positive ranks), ``Q0 = k - 1/2 - sqrt(2k^2 - 4S + 1/4)``, rounded and
    truncated at 0. The ``k0`` largest effects are mirrored about the estimate and the model is
    refitted to the ``k + k0`` studies, as metafor does: with the same method and control but
    metafor's default test (z) and level (95%).
    """
    _need_int_only(res, "trimfill")
    _need_k(res, "trimfill", 3)
    if estimator not in ("L0", "R0", "Q0"):
        raise UserError(f"trimfill: estimator must be 'L0', 'R0' or 'Q0', got {estimator!r}")
    yi, vi = res.yi.copy(), res.vi.copy()
    k = yi.size
    if side is None:
        fit = _refit(res, yi, vi, np.column_stack([np.ones(k), np.sqrt(vi)]), test="z", level=95.0)
        if fit is None:
            raise UserError("trimfill: cannot fit the model with sei as moderator to choose the side")
        side = "right" if fit.beta[1] < 0 else "left"
    elif side not in ("left", "right"):
        raise UserError(f"trimfill: side must be 'left' or 'right', got {side!r}")
    if side == "right":
        yi = -yi
    ix = np.argsort(yi, kind="stable")
    yi, vi = yi[ix], vi[ix]

    k0_prev, k0, it = -1, 0, 0
    se_k0 = math.nan
    beta = math.nan
    yi_c = yi
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise UserError("trimfill: the number of missing studies did not converge")
        fit = _refit(res, yi[: k - k0], vi[: k - k0], None, test="z", level=95.0)
        if fit is None:
            raise UserError("trimfill: cannot fit the model to the trimmed studies")
        beta = float(fit.beta[0])
        yi_c = yi - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(yi_c), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(yi_c) * ranks
        if estimator == "R0":
            neg = -signed[signed < 0]
            k0f = (k - (neg.max() if neg.size else 0.0)) - 1
            se_k0 = math.sqrt(2 * max(0.0, k0f) + 2)
        else:
            s_r = float(np.sum(signed[signed > 0]))
            if estimator == "L0":
                k0f = (4 * s_r - k * (k + 1)) / (2 * k - 1)
            else:
                k0f = k - 0.5 - math.sqrt(2 * k * k - 4 * s_r + 0.25)
            var_sr = (
                k * (k + 1) * (2 * k + 1) + 10 * k0f**3 + 27 * k0f**2 + 17 * k0f
                - 18 * k * k0f**2 - 18 * k * k0f + 6 * k * k * k0f
            ) / 24
            root = math.sqrt(var_sr) if var_sr >= 0 else math.nan
            if estimator == "L0":
                se_k0 = 4 * root / (2 * k - 1)
            else:
                se_k0 = 2 * root / math.sqrt((k - 0.5) ** 2 - k0f * (2 * k - k0f - 1))
        k0 = max(0, int(np.round(k0f)))
        se_k0 = max(0.0, se_k0) if not math.isnan(se_k0) else math.nan

    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else math.nan
    if k0 > 0:
        mirrored = -(yi_c[k - k0 :] - beta)  # 2b - y on the flipped scale
        filled = -mirrored if side == "right" else mirrored
        y_fill = np.concatenate([res.yi, filled])
        v_fill = np.concatenate([res.vi, vi[k - k0 :]])
        fit = _refit(res, y_fill, v_fill, None, test="z", level=95.0)
        if fit is None:
            raise UserError("trimfill: cannot fit the model to the filled-in data")
        fill = np.concatenate([np.zeros(k, bool), np.ones(k0, bool)])
    else:
        y_fill, v_fill, fit = res.yi.copy(), res.vi.copy(), res
        fill = np.zeros(k, bool)
    return TrimfillResult(
        k0=k0, se_k0=se_k0, side=side, estimator=estimator, p_k0=p_k0,
        yi=y_fill, vi=v_fill, fill=fill, fit=fit,
    )
