"""The headline (primary) estimate of an analysis: one posterior, stated on the reported scale.

Rules (the methods page renders :data:`PRIMARY_RULES`):

* Proportions: the Bayesian binomial-normal random-effects model with the exact binomial
  likelihood (no continuity correction), integrated by quadrature (``bayes.exact``), reported as
  the posterior median of the median rate ``invlogit(mu)`` with its 95% credible interval and
  the 95% posterior predictive interval of the rate in a new cohort (Schwarzer et al. 2019,
  *Res Synth Methods* 10:476; Stijnen et al. 2010, *Stat Med* 29:3046).
* Ratios (hazard ratio, risk ratio): the Bayesian normal-normal model on the log scale, reported
  as ``exp`` of the posterior median of ``mu`` with its credible interval and the predictive
  interval of the ratio in a new trial (Röver et al. 2021, *Res Synth Methods* 12:448).
* One study: that study's own estimate (Clopper-Pearson interval for a proportion, the published
  interval for a ratio), labelled "not pooled".
* Never a Hartung-Knapp interval on 1 degree of freedom, never a continuity-corrected fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Primary", "PRIMARY_RULES", "PRIOR_REFERENCES", "headline", "primary_from_bayes",
           "primary_single_study", "posterior_mu_cdf"]

#: Reference of each heterogeneity prior family (cited on the methods page and in summary.json).
PRIOR_REFERENCES = {
    "half_normal": "Röver C, Bender R, Dias S, et al. On weakly informative prior distributions for the "
                   "heterogeneity parameter in Bayesian random-effects meta-analysis. Res Synth Methods "
                   "2021;12:448-74; Friede T, Röver C, Wandel S, Neuenschwander B. Meta-analysis of few small "
                   "studies in orphan diseases. Res Synth Methods 2017;8:79-91; Friede T, Röver C, Wandel S, "
                   "Neuenschwander B. Meta-analysis of two studies in the presence of heterogeneity with "
                   "applications in rare diseases. Biom J 2017;59:658-71",
    "half_cauchy": "Gelman A. Prior distributions for variance parameters in hierarchical models. Bayesian "
                   "Anal 2006;1:515-34; Röver et al. 2021",
}
MU_PRIOR_REFERENCE = ("Gelman A, Jakulin A, Pittau MG, Su YS. A weakly informative default prior distribution "
                      "for logistic and other regression models. Ann Appl Stat 2008;2:1360-83")

PRIMARY_RULES = (
    {"id": "headline_proportion",
     "title": "Headline for proportions",
     "text": "Rates are pooled with a Bayesian binomial-normal random-effects model: each study's events "
             "follow a binomial distribution around its own true rate, and the study rates vary normally on "
             "the logit scale around the median rate. The exact binomial likelihood needs no continuity "
             "correction for studies with no events. We report the posterior median of the median rate with "
             "its 95% credible interval, and the 95% predictive interval of the rate in a new cohort. The "
             "posterior is computed by numerical integration, not by sampling.",
     "references": ["Schwarzer G, Chemaitelly H, Abu-Raddad LJ, Rücker G. Seriously misleading results using "
                    "inverse of Freeman-Tukey double arcsine transformation in meta-analysis of single "
                    "proportions. Res Synth Methods 2019;10:476-83",
                    "Stijnen T, Hamza TH, Ozdemir P. Random effects meta-analysis of event outcome in the "
                    "framework of the generalized linear mixed model. Stat Med 2010;29:3046-67"]},
    {"id": "headline_ratio",
     "title": "Headline for hazard and risk ratios",
     "text": "Ratios from randomized trials are pooled with a Bayesian normal-normal random-effects model on the "
             "log scale, with each trial's standard error taken as known. With two trials, a frequentist "
             "Hartung-Knapp interval on one degree of freedom is uninformative; a weakly informative prior for "
             "the heterogeneity gives a usable interval that still reflects the uncertainty about it.",
     "references": ["Röver C, Bender R, Dias S, et al. Res Synth Methods 2021;12:448-74",
                    "Higgins JPT, Thompson SG, Spiegelhalter DJ. A re-evaluation of random-effects meta-analysis. "
                    "J R Stat Soc A 2009;172:137-59"]},
    {"id": "priors",
     "title": "Prior distributions",
     "text": "The median rate has a normal(0, 1.5) prior on the logit scale: 95% of its mass lies between 5% and "
             "95%, and it puts little weight on rates of exactly 0 or 1 (toxicity outcomes are centred at -1.5, "
             "about 18%, with the same spread). Log ratios have a normal(0, 1) prior (95% between 0.14 and 7.1). "
             "The heterogeneity tau has a half-normal prior: scale 0.5 on the log-ratio scale, which Röver et "
             "al. (2021) call fairly conservative for relative effects, and scale 1.0 on the logit scale of "
             "single-arm rates, because rates from cohorts with different populations and settings vary more "
             "than relative effects from randomized trials. The sensitivity strip repeats every Bayesian analysis "
             "with other heterogeneity priors.",
     "references": [PRIOR_REFERENCES["half_normal"], MU_PRIOR_REFERENCE]},
    {"id": "single_study",
     "title": "One study",
     "text": "An analysis with a single study reports that study's own estimate, labelled as not pooled: the "
             "observed proportion with its exact Clopper-Pearson interval, or the published ratio and "
             "interval. No random-effects model, frequentist or Bayesian, is fitted to one study: its "
             "posterior would be the study's estimate widened by the heterogeneity prior, not a pooled result.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, chapter 10"]},
    {"id": "prediction",
     "title": "Prediction intervals",
     "text": "Frequentist prediction intervals are shown only with three or more studies (Cochrane Handbook "
             "10.10.4.3). The Bayesian predictive interval for a new cohort integrates over the posterior of the "
             "heterogeneity and is shown from two studies, labelled as Bayesian.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 10.10.4.3",
                    "IntHout J, Ioannidis JPA, Rovers MM, Goeman JJ. Plea for routinely presenting prediction "
                    "intervals in meta-analysis. BMJ Open 2016;6:e010247"]},
)


@dataclass(frozen=True)
class Primary:
    """The headline estimate of one analysis, on the reported scale (fraction or ratio).

    ``prob_exceeds`` maps a threshold (as text) to ``P(value > threshold)`` for the median rate
    (or the pooled ratio); ``prob_decision`` is the posterior probability that the pooled value
    lies on the desirable side of the model's decision threshold.
    """

    method: str
    label: str
    scale: str
    estimate: float
    ci_lb: float
    ci_ub: float
    pi_lb: float | None
    pi_ub: float | None
    k: int
    patients: int
    events: int | None
    priors: dict[str, str] | None
    pooled: bool
    interval: str
    prediction: str | None
    prob_exceeds: dict[str, float] = field(default_factory=dict)
    prob_decision: dict[str, Any] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def posterior_mu_cdf(model, values, settings: dict | None = None) -> np.ndarray:
    """``P(mu <= v)`` for each ``v`` under the exact posterior of ``model`` (no sampling).

    ``settings`` (a fit's ``settings``) selects the same grid as that fit.
    """
    from blinameta.bayes.exact import marginal_cdf

    grid = {k: settings[k] for k in ("n_mu", "n_tau", "n_gh", "refine") if settings and k in settings}
    return np.asarray(marginal_cdf(model, mu=np.asarray(values, dtype=float), **grid)["mu"], dtype=float)


def _median_mu(model, bayes) -> float:
    """The posterior median of ``mu``, by the exact marginal CDF on a fine bracket."""
    median = getattr(bayes.mu, "median", None)  # the engine may provide it
    if median is not None:
        return float(median)
    lo, hi = bayes.mu.lb, bayes.mu.ub
    grid = np.linspace(lo, hi, 121)
    cdf = np.maximum.accumulate(posterior_mu_cdf(model, grid, bayes.settings))
    return float(np.interp(0.5, cdf, grid))


def _priors(model) -> dict[str, str]:
    family = model.prior_tau.family
    return {"mu": str(model.prior_mu), "tau": str(model.prior_tau),
            "mu_text": _describe(model.prior_mu), "tau_text": _describe(model.prior_tau),
            "reference": PRIOR_REFERENCES.get(family, PRIOR_REFERENCES["half_normal"]),
            "mu_reference": MU_PRIOR_REFERENCE}


def _describe(prior) -> str:
    names = {"normal": "normal", "half_normal": "half-normal", "half_cauchy": "half-Cauchy", "half_t": "half-t",
             "uniform": "uniform"}
    return f"{names.get(prior.family, prior.family)}({', '.join(f'{p:g}' for p in prior.params)})"


def primary_from_bayes(spec, bayes, *, k: int, patients: int, events: int | None) -> Primary:
    """The headline from an exact-path :class:`~blinameta.bayes.BayesResult` (k >= 2)."""
    from scipy.special import expit

    model = bayes.spec
    median_mu = _median_mu(model, bayes)
    threshold = spec.decision_threshold
    if spec.kind == "proportion":
        estimate, lb, ub = (float(v) for v in expit([median_mu, bayes.mu.lb, bayes.mu.ub]))
        pi = (float(bayes.p_new.lb), float(bayes.p_new.ub))
        exceed = {f"{e.threshold:g}": float(e.p_median) for e in bayes.exceedance}
        decision = None
        if threshold is not None:
            above = exceed.get(f"{threshold.value:g}")
            if above is None:
                above = 1.0 - float(posterior_mu_cdf(model, [math.log(threshold.value / (1 - threshold.value))],
                                                     bayes.settings)[0])
            prob = above if threshold.direction == "above" else 1.0 - above
            sign = ">" if threshold.direction == "above" else "<"
            decision = {"threshold": threshold.value, "direction": threshold.direction, "probability": prob,
                        "text": f"P(median rate {sign} {threshold.value:.0%})"}
        label = "Bayesian binomial-normal random effects (exact likelihood)"
        method = "bayes_binomial_normal"
    else:
        estimate, lb, ub = (float(v) for v in np.exp([median_mu, bayes.mu.lb, bayes.mu.ub]))
        pi = (float(math.exp(bayes.theta_new.lb)), float(math.exp(bayes.theta_new.ub)))
        cuts = sorted({1.0} | ({threshold.value} if threshold is not None else set()))
        below = posterior_mu_cdf(model, np.log(cuts), bayes.settings)
        exceed = {f"{c:g}": float(1.0 - b) for c, b in zip(cuts, below)}
        decision = None
        if threshold is not None:
            p_below = float(below[cuts.index(threshold.value)])
            prob = p_below if threshold.direction == "below" else 1.0 - p_below
            sign = "<" if threshold.direction == "below" else ">"
            what = "HR" if spec.kind == "hazard_ratio" else "RR"
            decision = {"threshold": threshold.value, "direction": threshold.direction, "probability": prob,
                        "text": f"P({what} {sign} {threshold.value:g})"}
        label = "Bayesian normal-normal random effects on the log scale"
        method = "bayes_normal_normal"
    return Primary(
        method=method, label=label, scale="proportion" if spec.kind == "proportion" else "ratio",
        estimate=estimate, ci_lb=lb, ci_ub=ub, pi_lb=pi[0], pi_ub=pi[1], k=k, patients=patients, events=events,
        priors=_priors(model), pooled=True, interval="95% credible interval",
        prediction=("95% Bayesian predictive interval for a new cohort" if spec.kind == "proportion"
                    else "95% Bayesian predictive interval for a new trial"),
        prob_exceeds=exceed, prob_decision=decision,
        note="" if k >= 3 else "two studies: the heterogeneity is informed mostly by its prior; the predictive "
                               "interval is Bayesian (no frequentist prediction interval below three studies)",
    )


def primary_single_study(spec, *, estimate: float, ci_lb: float, ci_ub: float, patients: int,
                         events: int | None, label: str) -> Primary:
    """The headline of an analysis with one study: that study's own estimate, not pooled."""
    if spec.kind == "proportion":
        interval = "95% exact (Clopper-Pearson) confidence interval"
    else:
        interval = "95% confidence interval as published"
    return Primary(
        method="single_study", label=f"single study, not pooled ({label})",
        scale="proportion" if spec.kind == "proportion" else "ratio",
        estimate=float(estimate), ci_lb=float(ci_lb), ci_ub=float(ci_ub), pi_lb=None, pi_ub=None, k=1,
        patients=int(patients), events=events, priors=None, pooled=False, interval=interval, prediction=None,
        note="one study: its own estimate is shown; nothing is pooled",
    )


def headline(spec, rows, *, bayes=None, prior_tau: str | None = None, fast: bool = False) -> Primary | None:
    """The headline estimate of ``rows`` (a selection's rows) by the spec's headline method.

    Parameters
    ----------
    spec : AnalysisSpec
    rows : pandas.DataFrame
        One row per study, as :func:`blinameta.analysis.select.select` returns them.
    bayes : BayesResult, optional
        An exact-path fit of these rows (fitted here when omitted).
    prior_tau : str, optional
        Another heterogeneity prior (sensitivity analyses).
    fast : bool
        Use the coarser exact-path grid of the sensitivity analyses (``run.FAST_GRID``).

    Returns
    -------
    Primary or None
        ``None`` when ``rows`` is empty.
    """
    from blinameta.analysis.run import _fit_bayes, effect_sizes

    k = len(rows)
    if k == 0:
        return None
    patients = int(rows["total"].sum())
    if spec.kind == "proportion":
        events = int(rows["events"].sum())
    elif spec.kind == "risk_ratio":
        events = int(rows["ai"].sum() + rows["ci"].sum())
    else:
        events = None
    if k == 1:
        row = rows.iloc[0]
        if spec.kind == "proportion":
            from blinameta.frequentist.escalc import ci_clopper_pearson

            lb, ub = ci_clopper_pearson([int(row["events"])], [int(row["total"])], level=95.0)
            est, lb, ub = int(row["events"]) / int(row["total"]), float(lb[0]), float(ub[0])
        elif spec.kind == "hazard_ratio":
            est, lb, ub = float(row["hr"]), float(row["ci_lb"]), float(row["ci_ub"])
        else:
            es = effect_sizes(spec, rows)
            half = 1.959963984540054 * math.sqrt(float(es.vi[0]))
            est, lb, ub = (float(v) for v in np.exp([es.yi[0], es.yi[0] - half, es.yi[0] + half]))
        return primary_single_study(spec, estimate=est, ci_lb=lb, ci_ub=ub, patients=patients, events=events,
                                    label=str(row["label"]))
    if bayes is None:
        es = effect_sizes(spec, rows)
        bayes = _fit_bayes(spec, rows, es.yi, es.vi, prior_tau=prior_tau, fast=fast)
    return primary_from_bayes(spec, bayes, k=k, patients=patients, events=events)
