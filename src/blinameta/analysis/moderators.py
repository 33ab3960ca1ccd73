"""The mission's moderators, answered and labelled exploratory.

For a proportion and one cohort-level share ``x`` (share of patients with >=5% blasts, share in
first relapse, ...), one moderator at a time:

* Bayesian binomial-normal meta-regression ``logit p_i = a + b (x_i - xbar) + tau z_i`` with the
  exact binomial likelihood, integrated by quadrature over ``(a, b, tau)`` (a 3-D grid; each
  study's random effect by adaptive Gauss-Hermite, as :mod:`blinameta.bayes.exact`): no sampling,
  so the report never waits for a sampler and the result is deterministic;
* its frequentist twin, the binomial-normal GLMM with the same moderator (ML, Wald z);
* the posterior of ``b`` (the log odds ratio between a cohort made entirely of one kind of
  patient and a cohort with none), and predicted rates with credible and predictive intervals for
  the pure populations (share 1 and share 0), flagged as extrapolation when no cohort's share
  lies within 0.2 of the value.

Cohort-level shares are not patient-level effects: an association across cohorts may not hold
within them (ecological bias), so every result carries that warning; and with k far below the ten
studies per covariate that Cochrane asks for, the analyses are exploratory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from blinameta.errors import UserError

__all__ = ["MODERATOR_RULES", "ModeratorModel", "POPULATIONS", "bayes_metareg_exact", "moderator_models"]

#: Within this distance of a cohort's share a prediction is interpolation, not extrapolation.
NEAR = 0.2
#: Smallest number of cohorts with the share, and smallest spread of the shares, to fit.
MIN_K = 3
MIN_SPREAD = 0.2

ECOLOGICAL_WARNING = (
    "Exploratory: cohort-level shares are not patient-level effects. An association across cohorts "
    "need not hold for the patients within them (ecological bias), and it may reflect other differences "
    "between cohorts (schedule, setting, definitions). With fewer than ten studies per covariate the "
    "estimate is fragile (Cochrane Handbook 10.11.5.1)."
)

MODERATOR_RULES = (
    {"id": "mission_moderators", "title": "Blast burden and relapse line (exploratory)",
     "text": "For complete remission, MRD negativity, cytokine release syndrome and neurotoxicity we ask whether "
             "rates depend on blast burden or relapse line, using each cohort's share of patients with >=5% "
             "marrow blasts and its share in first relapse as continuous moderators, one at a time. A Bayesian "
             "binomial-normal meta-regression (exact likelihood, computed by numerical integration; the "
             "coefficient has a normal(0, 1) prior on the log odds ratio between pure populations) and its "
             "frequentist twin, the binomial-normal GLMM, give the coefficient and the predicted rates for "
             "pure populations (all patients in first relapse with >=5% blasts; all in second or later "
             "relapse; all with <5% blasts). Predictions more than 0.2 away from every cohort's share are "
             "flagged as extrapolation. These analyses are exploratory: cohort-level shares are not "
             "patient-level effects (ecological bias), and there are far fewer than ten studies per covariate.",
     "references": ["Thompson SG, Higgins JPT. How should meta-regression analyses be undertaken and interpreted? "
                    "Stat Med 2002;21:1559-73",
                    "Berlin JA, Santanna J, Schmid CH, Szczech LA, Feldman HI. Individual patient- versus "
                    "group-level data meta-regressions for the investigation of treatment effect modifiers: "
                    "ecological bias rears its ugly head. Stat Med 2002;21:371-87",
                    "Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 10.11.5"]},
)

#: moderator -> ((share, population label), ...): the pure populations predicted.
POPULATIONS = {
    "share_ge5": ((1.0, ">=5% marrow blasts"), (0.0, "<5% marrow blasts")),
    "share_ge25": ((1.0, ">=25% marrow blasts"), (0.0, "<25% marrow blasts")),
    "share_first_relapse": ((1.0, "first relapse"), (0.0, "second or later relapse, or refractory")),
    "share_second_or_later": ((1.0, "second or later relapse"), (0.0, "first relapse, or refractory")),
    "share_refractory": ((1.0, "refractory disease"), (0.0, "relapsed disease")),
    "share_post_hsct": ((1.0, "relapse after HSCT"), (0.0, "no prior HSCT")),
}


@dataclass(frozen=True)
class ModeratorModel:
    """One exploratory meta-regression on one share."""

    moderator: str
    k: int
    k_missing: int
    available: bool
    note: str = ""
    coef: dict[str, float] | None = None
    glmm: dict[str, float] | None = None
    predictions: tuple[dict[str, Any], ...] = ()
    shares: tuple[float, ...] = ()
    studies: tuple[str, ...] = ()
    priors: dict[str, str] = field(default_factory=dict)
    warning: str = ECOLOGICAL_WARNING
    exploratory: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["predictions"] = [dict(p) for p in self.predictions]
        out["shares"], out["studies"] = list(self.shares), list(self.studies)
        return out


def _trap(n: int) -> np.ndarray:
    w = np.ones(n)
    w[0] = w[-1] = 0.5
    return w


def _log_post(events, total, x, a, b, tau, prior_mu, prior_tau, prior_coef, n_gh: int = 12):
    """Log posterior on the (a, b, tau) grid (broadcast arrays), up to a constant."""
    from blinameta.bayes.exact import binomial_log_marginal

    out = prior_mu.logpdf(a) + prior_coef.logpdf(b) + prior_tau.logpdf(tau)
    for xi, ni, si in zip(events, total, x):
        eta = a + b * si
        out = out + binomial_log_marginal([xi], [ni], eta, tau, n_gh=3 * n_gh if min(xi, ni - xi) <= 1 else n_gh)[..., 0]
    return np.where(np.isfinite(out), out, -np.inf)


def _conditional_mode(events, total, xc, tau, priors, start):
    """Mode and covariance of (a, b) given tau: Newton steps with a finite-difference Hessian."""
    h = 1e-3
    steps = np.array([[0, 0], [h, 0], [-h, 0], [0, h], [0, -h], [h, h], [-h, -h], [h, -h], [-h, h]])
    m = np.asarray(start, dtype=float)
    for _ in range(30):
        pts = m + steps
        f = _log_post(events, total, xc, pts[:, 0], pts[:, 1], np.full(9, tau), *priors, n_gh=8)
        g = np.array([(f[1] - f[2]) / (2 * h), (f[3] - f[4]) / (2 * h)])
        haa = (f[1] - 2 * f[0] + f[2]) / h**2
        hbb = (f[3] - 2 * f[0] + f[4]) / h**2
        hab = (f[5] + f[6] - f[7] - f[8]) / (4 * h**2)
        hess = np.array([[haa, hab], [hab, hbb]])
        try:
            step = -np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        step *= min(1.0, 2.0 / max(float(np.max(np.abs(step))), 1e-12))  # damped
        m = m + step
        if np.max(np.abs(step)) < 1e-7:
            break
    cov = np.linalg.inv(-hess) if np.all(np.linalg.eigvalsh(-hess) > 0) else np.eye(2) * 4.0
    return m, cov, float(f[0])


def bayes_metareg_exact(events, total, x, *, prior_mu: str, prior_tau: str, prior_coef: str = "normal:0:1",
                        new_x=(1.0, 0.0), n_tau: int = 41, n_ab: int = 11) -> dict[str, Any]:
    """Posterior of the binomial-normal meta-regression on one moderator, by quadrature (no sampling).

    ``logit p_i = a + b (x_i - xbar) + tau z_i``; priors: ``a`` ~ ``prior_mu`` (the logit rate at
    the mean share), ``b`` ~ ``prior_coef``, ``tau`` ~ ``prior_tau``. ``tau = c sinh(s)`` on a
    uniform grid in ``s`` (trapezoidal rule, as :mod:`blinameta.bayes.exact`); at each ``tau`` the
    posterior of ``(a, b)`` is integrated by a 2-D adaptive Gauss-Hermite rule (``n_ab`` nodes per
    axis) centred at its conditional mode and scaled by the conditional curvature; each study's
    random effect by adaptive Gauss-Hermite. Means are exact to quadrature error; 95% intervals
    mix, over ``tau``, normal distributions with the conditional means and variances (a
    moment-matched approximation within each ``tau`` slice).

    Returns
    -------
    dict
        ``coef``: mean, sd, lb, ub (2.5%, 97.5%) and ``p_positive`` of ``b``; ``tau`` mean;
        ``predictions``: for each value of ``new_x``, the posterior median, 2.5% and 97.5% of the
        rate ``invlogit(a + b (x - xbar))`` and the 95% predictive interval of a new cohort's rate.
    """
    from numpy.polynomial.hermite import hermgauss

    from blinameta.bayes._numerics import mixture_cdf, mixture_quantile
    from blinameta.bayes.priors import parse_prior

    events = np.asarray(events, dtype=float)
    total = np.asarray(total, dtype=float)
    x = np.asarray(x, dtype=float)
    xbar = float(x.mean())
    xc = x - xbar
    priors = (parse_prior(prior_mu, kind="location", what="prior of the intercept"),
              parse_prior(prior_tau, kind="scale", what="prior of tau"),
              parse_prior(prior_coef, kind="location", what="prior of the coefficient"))
    c = 0.3
    tau_cap = float(min(priors[1].ppf(1 - 1e-7), 8.0))
    s_grid = np.linspace(0.0, math.asinh(tau_cap / c), n_tau)
    taus = c * np.sinh(s_grid)
    t_nodes, t_w = hermgauss(n_ab)
    z1, z2 = np.meshgrid(math.sqrt(2.0) * t_nodes, math.sqrt(2.0) * t_nodes, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()])
    log_zw = np.log(np.outer(t_w, t_w).ravel() / math.pi)
    emp = np.log((events + 0.5) / (total - events + 0.5))
    start = np.array([float(emp.mean()), 0.0])
    log_mass, moments = [], []
    for tau in taus:
        m, cov, _ = _conditional_mode(events, total, xc, tau, priors, start)
        start = m
        chol = np.linalg.cholesky(cov)
        nodes = m[:, None] + chol @ z  # (2, n_ab^2)
        lp = _log_post(events, total, xc, nodes[0], nodes[1], np.full(nodes.shape[1], tau), *priors)
        # the nodes are a Gauss-Hermite rule for N(m, cov): weight = posterior / that normal density
        log_phi = -0.5 * (z * z).sum(0) - math.log(2 * math.pi) - math.log(float(np.prod(np.diag(chol))))
        lw = lp - log_phi + log_zw
        top = float(lw.max())
        w = np.exp(lw - top)
        log_mass.append(top + math.log(float(w.sum())))
        w = w / w.sum()
        a_n, b_n = nodes
        mb = float(w @ b_n)
        preds = []
        for x0 in new_x:
            eta = a_n + b_n * (x0 - xbar)
            me = float(w @ eta)
            preds.append((me, float(w @ (eta - me) ** 2)))
        moments.append((mb, float(w @ (b_n - mb) ** 2), preds))
    lm = np.asarray(log_mass) + np.log(c * np.cosh(s_grid) * _trap(n_tau))
    weight = np.exp(lm - lm.max())
    weight /= weight.sum()
    mb = np.array([mo[0] for mo in moments])
    sb = np.sqrt(np.maximum([mo[1] for mo in moments], 1e-300))
    mean_b = float(weight @ mb)
    sd_b = math.sqrt(max(float(weight @ (sb**2 + mb**2)) - mean_b**2, 0.0))
    lb_b, ub_b = mixture_quantile((0.025, 0.975), mb, sb, weight)
    out: dict[str, Any] = {
        "coef": {"mean": mean_b, "sd": sd_b, "lb": float(lb_b), "ub": float(ub_b),
                 "p_positive": float(1.0 - mixture_cdf(np.array([0.0]), mb, sb, weight)[0]),
                 "odds_ratio": math.exp(mean_b)},
        "tau": {"mean": float(weight @ taus)},
        "xbar": xbar,
        "quadrature": {"n_tau": n_tau, "n_ab": n_ab, "tau_max": tau_cap},
        "predictions": [],
    }
    for j, x0 in enumerate(new_x):
        me = np.array([mo[2][j][0] for mo in moments])
        se = np.sqrt(np.maximum([mo[2][j][1] for mo in moments], 1e-300))
        q = mixture_quantile((0.025, 0.5, 0.975), me, se, weight)
        pi = mixture_quantile((0.025, 0.975), me, np.sqrt(se**2 + taus**2), weight)
        out["predictions"].append({"x": float(x0), "estimate": float(expit(q[1])),
                                   "ci": [float(expit(q[0])), float(expit(q[2]))],
                                   "pi": [float(expit(pi[0])), float(expit(pi[1]))]})
    return out


def _glmm_twin(events, total, x, new_x) -> dict[str, Any] | None:
    from blinameta.frequentist.glmm import rma_glmm

    try:
        fit = rma_glmm(events, total, mods=np.asarray(x, dtype=float))
        pred = fit.predict(np.asarray(new_x, dtype=float)[:, None])
    except (ValueError, UserError, ArithmeticError, np.linalg.LinAlgError) as exc:
        return {"available": False, "note": f"GLMM not fitted: {exc}"}
    return {"available": True, "coef": float(fit.beta[1]), "se": float(fit.se[1]), "ci_lb": float(fit.ci_lb[1]),
            "ci_ub": float(fit.ci_ub[1]), "pval": float(fit.pval[1]), "tau2": float(fit.tau2),
            "predictions": [{"x": float(v), "estimate": float(expit(p)), "ci": [float(expit(lo)), float(expit(hi))]}
                            for v, p, lo, hi in zip(new_x, np.ravel(pred.pred), np.ravel(pred.ci_lb),
                                                    np.ravel(pred.ci_ub))]}


def _context(spec) -> str:
    burden = spec.filter.get("blast_burden")
    if burden == ["ge5"]:
        return ", >=5% marrow blasts"
    if burden == ["lt5"]:
        return ", <5% marrow blasts"
    return ""


def moderator_models(spec, rows) -> tuple[ModeratorModel, ...]:
    """The exploratory meta-regressions of ``spec.exploratory_moderators`` on ``rows``."""
    out = []
    for moderator in spec.exploratory_moderators:
        if moderator not in rows:
            out.append(ModeratorModel(moderator, 0, len(rows), False,
                                      note=f"{moderator} is not in the evidence table yet (cohort shares not curated)"))
            continue
        values = rows[moderator].astype(float)
        use = values.notna().to_numpy()
        k = int(use.sum())
        x = values[use].to_numpy()
        base = dict(moderator=moderator, k=k, k_missing=int((~use).sum()), shares=tuple(float(v) for v in x),
                    studies=tuple(rows["study_id"][use]))
        if k < MIN_K or (k and float(np.ptp(x)) < MIN_SPREAD):
            why = (f"{k} cohorts report it, fewer than {MIN_K}" if k < MIN_K
                   else f"the shares hardly vary ({x.min():.2f} to {x.max():.2f})")
            out.append(ModeratorModel(available=False, note=f"not fitted: {why}", **base))
            continue
        events = rows["events"][use].to_numpy(int)
        total = rows["total"][use].to_numpy(int)
        pops = POPULATIONS.get(moderator, ((1.0, f"{moderator} = 1"), (0.0, f"{moderator} = 0")))
        new_x = tuple(v for v, _ in pops)
        fit = bayes_metareg_exact(events, total, x, prior_mu=spec.bayes.prior_mu, prior_tau=spec.bayes.prior_tau,
                                  new_x=new_x)
        glmm = _glmm_twin(events, total, x, new_x)
        predictions = []
        for (x0, label), bayes_pred in zip(pops, fit["predictions"]):
            distance = float(np.min(np.abs(x - x0)))
            item = {"population": label + _context(spec), "x": x0, "estimate": bayes_pred["estimate"],
                    "ci": bayes_pred["ci"], "pi": bayes_pred["pi"], "extrapolation": distance > NEAR,
                    "nearest_share": float(x[np.argmin(np.abs(x - x0))])}
            if glmm and glmm.get("available"):
                g = next(p for p in glmm["predictions"] if p["x"] == x0)
                item["glmm"] = {"estimate": g["estimate"], "ci": g["ci"]}
            predictions.append(item)
        out.append(ModeratorModel(
            available=True, coef={**fit["coef"], "scale": "log odds ratio, share 1 versus share 0"},
            glmm=glmm, predictions=tuple(predictions),
            priors={"intercept": spec.bayes.prior_mu, "tau": spec.bayes.prior_tau, "coef": "normal:0:1"},
            note="Bayesian binomial-normal meta-regression, exact likelihood by numerical integration", **base))
    return tuple(out)
