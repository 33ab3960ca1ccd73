"""Binomial-normal random-effects model for proportions (exact-likelihood GLMM).

The model is the random-effects logistic regression of Stijnen, Hamza & Özdemir (2010),
fitted by maximum likelihood as metafor's ``rma.glmm(measure="PLO")`` does through
``lme4::glmer(cbind(xi, ni - xi) ~ X + (1 | study), family = binomial, nAGQ = 7)``::

    x_i | u_i ~ Binomial(n_i, expit(eta_i)),   eta_i = x_i' beta + tau u_i,   u_i ~ N(0, 1).

The marginal likelihood of study *i* is a one-dimensional integral over ``u_i``, computed by
adaptive Gauss-Hermite quadrature (AGHQ) centred at the conditional mode of ``u_i`` and scaled by
the conditional curvature, exactly as ``glmer`` does for ``nAGQ > 1`` (``nagq = 1`` is the
Laplace approximation). Modes are found by a safeguarded Newton iteration vectorised over studies.
The deviance is minimised over ``(beta, theta)`` with ``tau = |theta|`` (the quadrature deviance
is even in ``theta``, so no bound is needed); standard errors come from the inverse of the
Hessian of the deviance in ``(theta, beta)`` (times 2), which is what ``vcov()`` of a ``glmer``
fit returns for ``nAGQ > 1`` and what metafor reports.

References
----------
Stijnen T, Hamza TH, Özdemir P (2010). Random effects meta-analysis of event outcome in the
framework of the generalized linear mixed model with applications in sparse data.
*Statistics in Medicine* 29, 3046-3067.
Bates D, Mächler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using lme4.
*Journal of Statistical Software* 67(1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, gammaln, logsumexp

from blinameta.frequentist._present import RmaPresentation
from blinameta.errors import UserError
from blinameta.frequentist.rma import ModelMatrix, model_matrix

__all__ = ["GlmmProportion", "GlmmResult", "GlmmPrediction", "glmm_proportion", "rma_glmm"]

_SEPARATION_ETA = 30.0  # |linear predictor| beyond which a GLM fit is taken to diverge
_GRAD_TOL = 1e-6  # on the deviance scale, per parameter (after the Newton polish)


@dataclass(frozen=True)
class GlmmPrediction:
    """Predicted logits with confidence and prediction intervals (as metafor ``predict.rma``)."""

    pred: np.ndarray
    se: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GlmmResult(RmaPresentation):
    """A fitted binomial-normal model; names follow metafor's ``rma.glmm`` object.

    ``beta``, ``se``, ``ci_lb``, ``ci_ub`` are on the logit scale. ``i2`` is a percentage (as
    metafor's ``I2``); ``h2`` a ratio. ``qe_wld``/``qe_lrt`` are the Wald and likelihood-ratio
    tests of the fixed-effects model against the saturated model (df ``qe_df = k - p``).
    ``loglik`` is the marginal log-likelihood (AGHQ, with the binomial coefficients: the
    likelihood of the model, checked against direct numerical integration); ``deviance`` is
    ``-2 (loglik - loglik_saturated)``, which is what ``-2 logLik()`` of the ``glmer`` fit
    returns (lme4 measures the binomial log-likelihood from the saturated model);
    ``aic``/``bic`` use ``loglik``.

    Log-likelihood conventions (audit D6): three numbers are in use for the same fit.
    Here ``loglik``; lme4 ``logLik()`` = ``loglik - loglik_saturated``; and metafor's
    ``rma.glmm`` ``fit.stats["ll", "ML"]``, which is
    ``ll_saturated - deviance(glmer fit) / 2``, where lme4's ``deviance()`` of a GLMM is the
    *conditional* deviance, the sum of squared binomial deviance residuals at the conditional
    modes of the random effects (no penalty, no integral). That number is given here as
    ``loglik_metafor`` (and ``deviance_conditional``), for comparison with metafor's output
    only; it is not a likelihood of the model, so likelihood-ratio tests and information
    criteria should use ``loglik``.
    """

    k: int
    p: int
    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    tau2: float
    tau: float
    i2: float
    h2: float
    vt: float
    qe_wld: float
    qe_wld_p: float
    qe_lrt: float
    qe_lrt_p: float
    qe_df: int
    qm: float
    qm_p: float
    qm_df: tuple[float, float]
    btt: tuple[int, ...]
    loglik: float
    loglik_fe: float
    loglik_saturated: float
    deviance: float
    aic: float
    bic: float
    converged: bool
    message: str
    events: np.ndarray
    total: np.ndarray
    X: np.ndarray
    level: float
    nagq: int
    test: str
    boundary: bool
    n_iter: int
    terms: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
    loglik_metafor: float = math.nan
    deviance_conditional: float = math.nan

    def predict(
        self, newmods: Any = None, level: float | None = None, *, pi_type: str = "default"
    ) -> GlmmPrediction:
        """Predicted logit ``x' beta`` with CI and prediction interval.

        Parameters
        ----------
        newmods
            Moderator values (without the intercept): a 2-D array with the columns of the
            design (after dummy coding), or a DataFrame with the columns passed as ``mods``.
            ``None`` gives the pooled logit for an intercept-only model and the fitted values
            of the studies otherwise.
        level
            Confidence level in percent; defaults to the level of the fit.
        pi_type
            Prediction-interval variant, as metafor's ``predict(pi.type=)``:
            :data:`blinameta.frequentist.predict.PI_TYPES` (``"riley"``: t on k - p - 1 df).

        Notes
        -----
        ``se = sqrt(x' V x)``; ``ci = pred -/+ crit se``; ``pi = pred -/+ crit sqrt(se^2 + tau2)``,
        with ``crit`` from the normal (``test="z"``) or t distribution with ``k - p`` df.
        """
        level = self.level if level is None else _check_level(level)
        if newmods is None:
            xnew = self.X if self.p > 1 else np.ones((1, 1))
        else:
            mm = ModelMatrix(X=self.X, names=self.coef_names, int_incl=True, terms=self.terms)
            try:
                rows = mm.new_rows(newmods)
            except ValueError as exc:
                raise UserError(f"newmods: {exc}") from None
            xnew = np.column_stack([np.ones(rows.shape[0]), rows])
        pred = xnew @ self.beta
        vpred = np.einsum("ij,jk,ik->i", xnew, self.vb, xnew)
        se = np.sqrt(vpred)
        from blinameta.frequentist.predict import pi_critical

        crit = _crit(level, self.test, self.k - self.p)
        pi_crit, with_se = pi_critical(pi_type, crit, self.k, self.p, level)
        spi = np.sqrt((vpred if with_se else 0.0) + self.tau2)
        return GlmmPrediction(
            pred=pred,
            se=se,
            ci_lb=pred - crit * se,
            ci_ub=pred + crit * se,
            pi_lb=pred - pi_crit * spi,
            pi_ub=pred + pi_crit * spi,
            level=level,
        )

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(asdict(self))


def plain_dict(fields: dict[str, Any]) -> dict[str, Any]:
    """A result's fields with arrays and tuples as lists (JSON-ready apart from NaN)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


# --------------------------------------------------------------------------- inputs


def _check_level(level: float) -> float:
    level = float(level)
    if not 0 < level < 100:
        raise UserError(f"level must be a percentage between 0 and 100, got {level}")
    return level


def _crit(level: float, test: str, df: int) -> float:
    alpha = 1 - level / 100
    if test == "t":
        return float(stats.t.isf(alpha / 2, df)) if df > 0 else math.nan
    return float(stats.norm.isf(alpha / 2))


def _counts(events: Any, total: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(events, dtype=float).ravel()
    n = np.asarray(total, dtype=float).ravel()
    if x.shape != n.shape:
        raise UserError(f"events ({x.size}) and total ({n.size}) differ in length")
    if x.size == 0:
        raise UserError("no studies")
    bad = ~np.isfinite(x) | ~np.isfinite(n)
    if bad.any():
        raise UserError(f"study {int(np.argmax(bad)) + 1}: events and total must be finite numbers")
    for what, arr in (("events", x), ("total", n)):
        frac = arr != np.round(arr)
        if frac.any():
            raise UserError(f"study {int(np.argmax(frac)) + 1}: {what} must be whole numbers")
    if (n <= 0).any():
        raise UserError(f"study {int(np.argmax(n <= 0)) + 1}: total must be at least 1")
    if (x < 0).any() or (x > n).any():
        i = int(np.argmax((x < 0) | (x > n)))
        raise UserError(f"study {i + 1}: events ({x[i]:g}) must lie between 0 and total ({n[i]:g})")
    return x, n


# --------------------------------------------------------------------------- likelihood


def _binom_ll(x: np.ndarray, n: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """log Binomial(x | n, expit(eta)) without the binomial coefficient."""
    return x * eta - n * np.logaddexp(0.0, eta)


class _Aghq:
    """Marginal deviance of the binomial-normal model by AGHQ, vectorised over studies."""

    def __init__(self, x: np.ndarray, n: np.ndarray, X: np.ndarray, nagq: int):
        self.x, self.n, self.X = x, n, X
        self.lchoose = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
        t, w = np.polynomial.hermite.hermgauss(nagq)
        self.t = t
        self.logw = np.log(w) + t**2  # weights for integrating exp(h) directly
        self.u = np.zeros(x.size)  # warm start of the conditional modes

    def modes(self, eta0: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes of u and curvatures c = -h''(u) (h is concave, c >= 1)."""
        x, n = self.x, self.n
        u = self.u.copy() if np.all(np.isfinite(self.u)) else np.zeros_like(x)
        if theta == 0.0:
            return np.zeros_like(x), np.ones_like(x)

        def h(u: np.ndarray) -> np.ndarray:
            return _binom_ll(x, n, eta0 + theta * u) - 0.5 * u * u

        hu = h(u)
        for _ in range(200):
            pr = expit(eta0 + theta * u)
            g = theta * (x - n * pr) - u
            c = theta * theta * n * pr * (1 - pr) + 1.0
            step = g / c
            new = u + step
            hn = h(new)
            worse = hn < hu - 1e-12 * (1 + np.abs(hu))
            halvings = 0
            while worse.any() and halvings < 60:
                step = np.where(worse, 0.5 * step, step)
                new = u + step
                hn = h(new)
                worse = hn < hu - 1e-12 * (1 + np.abs(hu))
                halvings += 1
            u, hu = new, hn
            if np.max(np.abs(step)) < 1e-13 * (1 + np.max(np.abs(u))):
                break
        pr = expit(eta0 + theta * u)
        c = theta * theta * n * pr * (1 - pr) + 1.0
        self.u = u
        return u, c

    def loglik_i(self, beta: np.ndarray, theta: float) -> np.ndarray:
        """Per-study marginal log-likelihood (with binomial coefficients)."""
        eta0 = self.X @ beta
        theta = abs(float(theta))
        if theta == 0.0:
            return self.lchoose + _binom_ll(self.x, self.n, eta0)
        u, c = self.modes(eta0, theta)
        s = np.sqrt(2.0 / c)
        nodes = u[:, None] + s[:, None] * self.t[None, :]
        hq = _binom_ll(self.x[:, None], self.n[:, None], eta0[:, None] + theta * nodes) - 0.5 * nodes**2
        return self.lchoose + np.log(s) - 0.5 * math.log(2 * math.pi) + logsumexp(hq + self.logw, axis=1)

    def deviance(self, psi: np.ndarray) -> float:
        """-2 log-likelihood at psi = (beta..., theta)."""
        return float(-2.0 * np.sum(self.loglik_i(psi[:-1], psi[-1])))


def _fd_grad(f: Any, psi: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.empty_like(psi)
    for j in range(psi.size):
        e = np.zeros_like(psi)
        e[j] = h * (1 + abs(psi[j]))
        g[j] = (f(psi + e) - f(psi - e)) / (2 * e[j])
    return g


def _fd_hess(f: Any, psi: np.ndarray, h: float = 2e-3) -> np.ndarray:
    """Central-difference Hessian with one Richardson extrapolation step (steps h and h/2)."""

    def raw(step: float) -> np.ndarray:
        m = psi.size
        H = np.empty((m, m))
        f0 = f(psi)
        d = step * (1 + np.abs(psi))
        for i in range(m):
            ei = np.zeros(m)
            ei[i] = d[i]
            H[i, i] = (f(psi + ei) - 2 * f0 + f(psi - ei)) / d[i] ** 2
            for j in range(i):
                ej = np.zeros(m)
                ej[j] = d[j]
                H[i, j] = H[j, i] = (
                    f(psi + ei + ej) - f(psi + ei - ej) - f(psi - ei + ej) + f(psi - ei - ej)
                ) / (4 * d[i] * d[j])
        return H

    return (4 * raw(h / 2) - raw(h)) / 3


def _glm_logit(x: np.ndarray, n: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Logistic regression by safeguarded Newton; returns beta, log-likelihood, separated flag."""
    p = X.shape[1]
    beta = np.zeros(p)
    emp = np.log((x + 0.5) / (n - x + 0.5))
    w0 = 1 / (1 / (x + 0.5) + 1 / (n - x + 0.5))
    beta = np.linalg.lstsq(X * np.sqrt(w0)[:, None], emp * np.sqrt(w0), rcond=None)[0]
    ll = float(np.sum(_binom_ll(x, n, X @ beta)))
    for _ in range(200):
        eta = X @ beta
        pr = expit(eta)
        g = X.T @ (x - n * pr)
        H = (X * (n * pr * (1 - pr))[:, None]).T @ X
        try:
            step = np.linalg.solve(H + 1e-300 * np.eye(p), g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        t = 1.0
        while True:
            nb = beta + t * step
            nll = float(np.sum(_binom_ll(x, n, X @ nb)))
            if nll >= ll - 1e-12 or t < 1e-8:
                break
            t *= 0.5
        done = abs(nll - ll) < 1e-13 * (1 + abs(ll)) and np.max(np.abs(t * step)) < 1e-9
        beta, ll = nb, nll
        if done or np.max(np.abs(X @ beta)) > 2 * _SEPARATION_ETA:
            break
    separated = bool(np.max(np.abs(X @ beta)) > _SEPARATION_ETA)
    return beta, ll, separated


def _separation_message(x: np.ndarray, n: np.ndarray, p: int) -> str:
    if np.all(x == 0):
        return f"all {x.size} studies have 0 events, so the pooled logit is -infinity"
    if np.all(x == n):
        return f"all {x.size} studies have events = total, so the pooled logit is +infinity"
    return (
        "the events are separated by the moderators (a moderator level or range where every "
        "study has 0 events, or every study has events = total), so a coefficient is infinite"
        + ("" if p > 1 else "")
    )


# --------------------------------------------------------------------------- the fit


def rma_glmm(
    events: Any,
    total: Any,
    *,
    mods: Any = None,
    level: float = 95.0,
    nagq: int = 7,
    test: str = "z",
) -> GlmmResult:
    """Fit the binomial-normal (random-effects logistic) model to k proportions.

    Parameters
    ----------
    events, total
        Event counts ``x_i`` and sample sizes ``n_i`` (whole numbers, ``0 <= x_i <= n_i``).
    mods
        Moderators: ``None``, an array (k,) or (k, m), or a DataFrame (categorical columns are
        treatment-coded, first level as reference). An intercept is always included.
    level
        Confidence level in percent.
    nagq
        Number of adaptive Gauss-Hermite quadrature points (1 = Laplace), as ``glmer``'s nAGQ.
    test
        ``"z"`` (default, as metafor) or ``"t"`` (t with k - p df for coefficients, F for QM).

    Returns
    -------
    GlmmResult

    Raises
    ------
    UserError
        For invalid counts, too few studies for the number of coefficients, separated data
        (e.g. every study with 0 events) or an optimisation that does not converge.

    Notes
    -----
    Maximises ``sum_i log int Bin(x_i | n_i, expit(x_i'beta + tau u)) phi(u) du`` (Stijnen et al.
    2010, model 4). ``I2 = 100 tau2 / (vt + tau2)`` and ``H2 = 1 + tau2 / vt`` with the typical
    within-study variance ``vt = (k - p) / tr(P)`` of the empirical logits (0.5 added to the
    cells of studies with 0 or all events), as metafor. ``QE_Wld`` and ``QE_LRT`` test the
    fixed-effects logistic model against the saturated model; a study with 0 or all events
    enters the Wald test with its limiting contribution 0.
    """
    x, n = _counts(events, total)
    k = x.size
    if test not in ("z", "t"):
        raise UserError(f"test must be 'z' or 't', got {test!r}")
    level = _check_level(level)
    if int(nagq) != nagq or nagq < 1 or nagq > 50:
        raise UserError(f"nagq must be a whole number from 1 to 50, got {nagq}")
    nagq = int(nagq)
    try:
        mm = model_matrix(mods, k)
    except ValueError as exc:
        raise UserError(f"mods: {exc}") from None
    X, names = mm.X, mm.names
    p = X.shape[1]
    if p + 1 > k:
        raise UserError(
            f"{k} studies are too few to estimate {p} coefficient(s) and tau2 (need at least {p + 1})"
        )
    if np.linalg.matrix_rank(X) < p:
        raise UserError("the moderators are collinear (the model matrix is not of full rank)")

    # Standardise continuous columns (as metafor's scaleX) for the optimiser; undone at the end.
    is_dummy = np.array([np.all(np.isin(X[:, j], (0.0, 1.0))) for j in range(p)])
    is_dummy[0] = True
    mean = np.where(is_dummy, 0.0, X.mean(axis=0))
    sd = np.where(is_dummy, 1.0, X.std(axis=0, ddof=1))
    sd[sd == 0] = 1.0
    Xs = X.copy()
    Xs[:, 1:] = (X[:, 1:] - mean[1:]) / sd[1:]
    M = np.eye(p)  # beta (original scale) = M @ beta_scaled
    M[0, 1:] = -mean[1:] / sd[1:]
    M[np.arange(1, p), np.arange(1, p)] = 1 / sd[1:]

    beta_fe, ll_fe_raw, separated = _glm_logit(x, n, Xs)
    if separated:
        raise UserError(f"GLMM cannot be fitted: {_separation_message(x, n, p)}")
    lchoose = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
    ll_fe = float(ll_fe_raw + lchoose.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        ph = x / n
        ll_sat = float(np.sum(lchoose + np.where(x > 0, x * np.log(ph), 0.0) + np.where(x < n, (n - x) * np.log1p(-ph), 0.0)))

    model = _Aghq(x, n, Xs, nagq)
    f = model.deviance
    dev0 = -2 * ll_fe

    # Starting value for theta: DerSimonian-Laird on the empirical logits (at least 0.3).
    yi, vi = _empirical_logits(x, n)
    theta0 = max(math.sqrt(_tau2_dl(yi, vi, Xs)), 0.3)
    best = None
    n_iter = 0
    for start in (theta0, 1.0):
        psi0 = np.append(beta_fe, start)
        model.u = np.zeros(k)
        with np.errstate(over="ignore", invalid="ignore"):
            res = optimize.minimize(
                f, psi0, jac=lambda v: _fd_grad(f, v), method="BFGS", options={"gtol": 1e-7, "maxiter": 500}
            )
        n_iter += int(res.nit)
        if np.all(np.isfinite(res.x)) and (best is None or res.fun < best.fun - 1e-9):
            best = res
        if best is not None and abs(best.x[-1]) > 1e-3:
            break
    if best is None:
        raise UserError("GLMM did not converge: the optimiser produced non-finite values")
    psi = best.x.copy()
    psi[-1] = abs(psi[-1])

    boundary = False
    curv0 = _fd_hess(f, np.append(beta_fe, 0.0))[-1, -1]
    if dev0 <= best.fun + 1e-9 * (1 + abs(dev0)) or (psi[-1] < 1e-3 and curv0 >= 0):
        boundary = True
        psi = np.append(beta_fe, 0.0)
    else:
        # Newton polish on the finite-difference Hessian.
        for _ in range(8):
            g = _fd_grad(f, psi)
            H = _fd_hess(f, psi)
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)):
                break
            cand = psi - step
            if f(cand) <= f(psi) + 1e-10:
                psi = cand
                psi[-1] = abs(psi[-1])
            if np.max(np.abs(step)) < 1e-10:
                break
    psi[-1] = abs(psi[-1])
    if np.max(np.abs(Xs @ psi[:-1])) > _SEPARATION_ETA:
        raise UserError(f"GLMM cannot be fitted: {_separation_message(x, n, p)}")

    dev = f(psi)
    grad = _fd_grad(f, psi) if not boundary else _fd_grad(f, psi)[:-1]
    gmax = float(np.max(np.abs(grad)))
    converged = bool(np.isfinite(dev) and gmax < _GRAD_TOL * max(1.0, abs(dev)) * 10)
    message = "converged" if converged else f"optimiser stopped with gradient {gmax:.2g}"
    if boundary:
        message = "tau2 estimated at the boundary (0): the model reduces to fixed-effects logistic regression"

    # Variance of beta: inverse Hessian of the deviance (theta, beta), times 2 (lme4's vcov).
    H = _fd_hess(f, psi)
    Hb = H[:-1, :-1]
    try:
        if boundary:
            vb_s = 2 * np.linalg.inv(Hb)
        else:
            vb_s = 2 * np.linalg.inv(H)[:-1, :-1]
    except np.linalg.LinAlgError:
        raise UserError("GLMM fitted, but its Hessian is singular: standard errors are not available") from None
    vb_s = (vb_s + vb_s.T) / 2
    if not np.all(np.isfinite(vb_s)) or np.any(np.linalg.eigvalsh(vb_s) <= 0):
        raise UserError("GLMM fitted, but its Hessian is not positive definite: standard errors are not available")

    beta = M @ psi[:-1]
    vb = M @ vb_s @ M.T
    tau = float(psi[-1])
    tau2 = tau * tau
    se = np.sqrt(np.diag(vb))
    zval = beta / se
    df = k - p
    crit = _crit(level, test, df)
    if test == "t":
        pval = 2 * stats.t.sf(np.abs(zval), df)
    else:
        pval = 2 * stats.norm.sf(np.abs(zval))

    btt = tuple(range(1, p)) if p > 1 else (0,)
    bt = beta[list(btt)]
    qm = float(bt @ np.linalg.solve(vb[np.ix_(btt, btt)], bt))
    m = len(btt)
    if test == "t":
        qm = qm / m
        qm_df = (float(m), float(df))
        qm_p = float(stats.f.sf(qm, m, df))
    else:
        qm_df = (float(m), math.nan)
        qm_p = float(stats.chi2.sf(qm, m))

    qe_df = k - p
    qe_lrt = max(-2 * (ll_fe - ll_sat), 0.0)
    qe_wld = max(_wald_saturated(x, n, X), 0.0)
    if qe_df > 0:
        qe_lrt_p = float(stats.chi2.sf(qe_lrt, qe_df))
        qe_wld_p = float(stats.chi2.sf(qe_wld, qe_df))
    else:
        qe_lrt_p = qe_wld_p = 1.0

    wi = 1 / vi
    W = np.diag(wi)
    P = W - W @ X @ np.linalg.solve(X.T @ W @ X, X.T @ W)
    vt = float((k - p) / np.trace(P))
    i2 = 100 * tau2 / (vt + tau2)
    h2 = tau2 / vt + 1

    loglik = -dev / 2
    parms = p + 1
    dev_cond = _conditional_deviance(model, psi, x, n)
    return GlmmResult(
        k=k,
        p=p,
        coef_names=names,
        beta=beta,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=beta - crit * se,
        ci_ub=beta + crit * se,
        vb=vb,
        tau2=tau2,
        tau=tau,
        i2=float(i2),
        h2=float(h2),
        vt=vt,
        qe_wld=float(qe_wld),
        qe_wld_p=qe_wld_p,
        qe_lrt=float(qe_lrt),
        qe_lrt_p=qe_lrt_p,
        qe_df=qe_df,
        qm=qm,
        qm_p=qm_p,
        qm_df=qm_df,
        btt=btt,
        loglik=float(loglik),
        loglik_fe=ll_fe,
        loglik_saturated=ll_sat,
        deviance=float(-2 * (loglik - ll_sat)),
        aic=float(-2 * loglik + 2 * parms),
        bic=float(-2 * loglik + parms * math.log(k)),
        converged=converged,
        message=message,
        events=x,
        total=n,
        X=X,
        level=level,
        nagq=nagq,
        test=test,
        boundary=boundary,
        n_iter=n_iter,
        terms=mm.terms,
        loglik_metafor=float(ll_sat - dev_cond / 2),
        deviance_conditional=float(dev_cond),
    )


def _conditional_deviance(model: _Aghq, psi: np.ndarray, x: np.ndarray, n: np.ndarray) -> float:
    """lme4's ``deviance()`` of a binomial GLMM: squared deviance residuals at the modes of u."""
    eta0 = model.X @ psi[:-1]
    tau = abs(float(psi[-1]))
    u = model.modes(eta0, tau)[0] if tau > 0 else np.zeros_like(eta0)
    pr = expit(eta0 + tau * u)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(x > 0, x * np.log(x / (n * pr)), 0.0)
        t2 = np.where(x < n, (n - x) * np.log((n - x) / (n * (1 - pr))), 0.0)
    return float(2 * np.sum(t1 + t2))


@dataclass(frozen=True)
class GlmmProportion:
    """Pooled proportion from the binomial-normal GLMM, on the proportion scale.

    ``estimate`` is ``invlogit(beta_0)``, the median rate of the study population (the rate of
    a study with random effect 0), with the Wald interval of ``beta_0`` back-transformed;
    ``pi_lb``/``pi_ub`` the prediction interval for a new study's rate (metafor's
    ``predict(res, transf=transf.ilogit, pi.type=)``). ``fit`` is the full :class:`GlmmResult`.
    """

    estimate: float
    ci_lb: float
    ci_ub: float
    pi_lb: float
    pi_ub: float
    tau2: float
    k: int
    events: int
    patients: int
    level: float
    test: str
    pi_type: str
    boundary: bool
    message: str
    fit: GlmmResult

    def to_dict(self) -> dict[str, Any]:
        """The summaries without ``fit`` (JSON-ready apart from NaN)."""
        out = {key: getattr(self, key) for key in self.__dataclass_fields__ if key != "fit"}
        out["method"] = "GLMM (binomial-normal, ML, AGHQ nAGQ=7)"
        return out


def glmm_proportion(
    events: Any,
    total: Any,
    *,
    level: float = 95.0,
    test: str = "z",
    pi_type: str = "default",
) -> GlmmProportion:
    """Pool single proportions with the exact-likelihood binomial-normal model (no continuity
    correction), as ``metafor::rma.glmm(measure="PLO", xi=, ni=)`` then ``predict(transf=
    transf.ilogit)``.

    The GLMM is the recommended frequentist model for proportions, in particular with zero
    events (Stijnen et al. 2010; Schwarzer et al. 2019, *Res Synth Methods* 10:476).

    Parameters
    ----------
    events, total : array_like
        Events and patients per study.
    level : float
        Confidence level in percent.
    test : {"z", "t"}
        Wald z (metafor's default) or t on k - 1 df.
    pi_type : {"default", "riley", "t", "simple"}
        Prediction interval as metafor's ``pi.type`` (``"riley"``: t on k - 2 df).

    Raises
    ------
    UserError
        As :func:`rma_glmm` (e.g. every study with 0 events, or fewer than 2 studies).
    """
    fit = rma_glmm(events, total, level=level, test=test)
    pr = fit.predict(pi_type=pi_type)
    pred, ci_lb, ci_ub, pi_lb, pi_ub = (float(expit(np.asarray(a)[0])) for a in
                                        (pr.pred, pr.ci_lb, pr.ci_ub, pr.pi_lb, pr.pi_ub))
    return GlmmProportion(
        estimate=pred, ci_lb=ci_lb, ci_ub=ci_ub, pi_lb=pi_lb, pi_ub=pi_ub, tau2=fit.tau2,
        k=fit.k, events=int(fit.events.sum()), patients=int(fit.total.sum()), level=fit.level,
        test=test, pi_type=pi_type, boundary=fit.boundary, message=fit.message, fit=fit,
    )


def _empirical_logits(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and variances as escalc(measure="PLO", add=1/2, to="only0")."""
    zero = (x == 0) | (x == n)
    a = np.where(zero, x + 0.5, x)
    b = np.where(zero, n - x + 0.5, n - x)
    return np.log(a / b), 1 / a + 1 / b


def _tau2_dl(yi: np.ndarray, vi: np.ndarray, X: np.ndarray) -> float:
    k, p = X.shape
    if k <= p:
        return 0.0
    W = np.diag(1 / vi)
    P = W - W @ X @ np.linalg.solve(X.T @ W @ X, X.T @ W)
    q = float(yi @ P @ yi)
    return max(0.0, (q - (k - p)) / np.trace(P))


def _wald_saturated(x: np.ndarray, n: np.ndarray, X: np.ndarray) -> float:
    """Wald test of the fixed-effects model within the saturated logistic model.

    Equals the weighted residual sum of squares of the study logits ``log(x/(n-x))`` with
    weights ``1/(1/x + 1/(n-x))`` (the saturated model's inverse variances). Studies with 0 or
    all events have infinite logit and variance; their contribution tends to 0 and they are
    left out of the quadratic form (the degrees of freedom stay ``k - p``).
    """
    ok = (x > 0) & (x < n)
    if ok.sum() <= np.linalg.matrix_rank(X[ok]) or not ok.any():
        return 0.0
    xo, no, Xo = x[ok], n[ok], X[ok]
    y = np.log(xo / (no - xo))
    w = 1 / (1 / xo + 1 / (no - xo))
    r = y - Xo @ np.linalg.lstsq(Xo * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    return float(np.sum(w * r * r))
