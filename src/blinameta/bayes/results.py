"""The immutable result of a Bayesian analysis, and its summaries from posterior draws.

Quantities reported for the binomial-normal model (all on the proportion scale, at the
reference values of any moderators):

``p_median``
    ``invlogit(mu)``: the median of the study-level rates (the "typical study").
``p_mean``
    ``E[invlogit(mu + tau Z)]``, ``Z ~ N(0, 1)``: the population-averaged rate, i.e. the mean
    rate over the random-effects distribution; computed for each posterior draw (or grid point)
    by Gauss–Hermite quadrature, not by simulation.
``p_new``
    ``invlogit(mu + tau z_new)``: the rate in a new study, integrating over ``mu``, ``tau`` and
    ``z_new``. Its mean equals that of ``p_mean``; its quantiles solve
    ``E[Phi((logit q - mu) / tau)] = prob`` (a Rao–Blackwellised predictive CDF).
``study``
    Shrunken study rates ``invlogit(theta_i)``.
``exceedance``
    ``P(rate > threshold)`` for ``p_median``, ``p_mean`` and ``p_new``.

For the normal-normal model ``theta_new`` (``mu + tau z_new``) replaces the proportions and the
study estimates are ``theta_i`` on the effect scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from blinameta.bayes._present import BayesPresentation
from blinameta.bayes._numerics import (
    mixture_cdf,
    mixture_quantile,
    population_mean,
    population_mean_sq,
)
from blinameta.bayes.models import ModelSpec

__all__ = [
    "CI_PROB",
    "DEFAULT_THRESHOLDS",
    "BayesResult",
    "CoefSummary",
    "Diagnostics",
    "Exceedance",
    "ParamSummary",
    "StudySummary",
]

#: Probability of every reported (central, equal-tailed) credible interval.
CI_PROB = 0.95
_Q = ((1 - CI_PROB) / 2, 1 - (1 - CI_PROB) / 2)
#: Default thresholds of P(rate > threshold).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class ParamSummary:
    """Posterior mean, sd, median and 95% central interval (``lb``, ``ub``) of one quantity.

    ``mcse_mean`` is the Monte Carlo standard error of the mean (``None`` on the exact path).
    Quantiles commute with monotone transformations, so ``exp``/``invlogit`` of ``median``,
    ``lb`` and ``ub`` of ``mu`` are the median and interval of the ratio or rate.
    """

    mean: float
    sd: float
    lb: float
    ub: float
    mcse_mean: float | None = None
    median: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class CoefSummary:
    """Posterior summary of one moderator coefficient (``beta``)."""

    name: str
    mean: float
    sd: float
    lb: float
    ub: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StudySummary:
    """Shrunken estimate of one study: ``invlogit(theta_i)`` (or ``theta_i``)."""

    study: str
    mean: float
    lb: float
    ub: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Exceedance:
    """``P(rate > threshold)`` for the median, population-average and new-study rates."""

    threshold: float
    p_median: float
    p_mean: float
    p_new: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics over all free parameters, and the gate's thresholds."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    rhat_limit: float = 1.01
    ess_limit: float = 400.0
    bfmi_min: float | None = None
    bfmi_limit: float = 0.3
    tail_checks: tuple[dict, ...] = ()

    @property
    def tails_agree(self) -> bool | None:
        """Whether every tail quantile agrees with the exact path (None: not checked)."""
        if not self.tail_checks:
            return None
        return all(c["passed"] for c in self.tail_checks)

    @property
    def passed(self) -> bool:
        """R-hat <= 1.01, bulk and tail ESS >= 400, no divergent transitions, E-BFMI >= 0.3
        (when available) and the tails in agreement with the exact path (when checked)."""
        return (
            self.rhat_max <= self.rhat_limit
            and self.ess_bulk_min >= self.ess_limit
            and self.ess_tail_min >= self.ess_limit
            and self.divergences == 0
            and (self.bfmi_min is None or self.bfmi_min >= self.bfmi_limit)
            and self.tails_agree is not False
        )

    def describe(self) -> str:
        text = (
            f"R-hat max {self.rhat_max:.3f} (limit {self.rhat_limit}), "
            f"bulk ESS min {self.ess_bulk_min:.0f}, tail ESS min {self.ess_tail_min:.0f} "
            f"(limit {self.ess_limit:.0f}), {self.divergences} divergent transitions (limit 0)"
        )
        if self.bfmi_min is not None:
            text += f", E-BFMI min {self.bfmi_min:.2f} (limit {self.bfmi_limit})"
        if self.tail_checks:
            worst = max(self.tail_checks, key=lambda c: abs(c["z"]))
            text += (f", tails vs exact posterior: worst {worst['quantity']} "
                     f"{100 * worst['prob']:g}% quantile {worst['mcmc']:.4g} vs {worst['exact']:.4g}"
                     f" (z = {worst['z']:.1f})")
        return text

    def to_dict(self) -> dict[str, Any]:
        """What the gate checked, the limits and the outcome."""
        return {
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "divergences": self.divergences,
            "bfmi_min": self.bfmi_min,
            "limits": {"rhat_max": self.rhat_limit, "ess_min": self.ess_limit,
                       "divergences": 0, "bfmi_min": self.bfmi_limit},
            "tail_checks": [dict(c) for c in self.tail_checks],
            "tails_agree": self.tails_agree,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class BayesResult(BayesPresentation):
    """A fitted Bayesian random-effects analysis (sampling or exact quadrature).

    Attributes
    ----------
    method : {"nuts", "exact"}
    spec : ModelSpec
        Data and priors.
    settings : dict
        How it was fitted (sampler, draws, tune, chains, seed, target_accept, grid sizes, ...).
    mu, tau : ParamSummary
        ``mu`` is the intercept (logit scale, or effect scale) at moderators 0 / reference.
    coef : tuple of CoefSummary
        Moderator coefficients (empty without moderators).
    p_median, p_mean, p_new : ParamSummary or None
        Proportions (binomial-normal model only); see the module docstring.
    theta_new : ParamSummary or None
        Effect in a new study (normal-normal model only).
    study : tuple of StudySummary
    exceedance : tuple of Exceedance
        Binomial-normal model only.
    diagnostics : Diagnostics or None
        ``None`` on the exact path.
    prob_mu_negative, prob_new_negative : float or None
        Normal-normal model only: ``P(mu < 0)`` and ``P(theta_new < 0)``; on a log-ratio scale
        the probabilities that the pooled and a new study's ratio are below 1.
    retried : bool
        Whether the sampler was re-run with a higher ``target_accept`` after failing the gate.
    from_cache : bool
    notes : tuple of str
        Warnings and labels to show with the result.
    idata : xarray.DataTree or None
        ArviZ inference data (sampling path only).
    grid : PosteriorGrid or None
        The evaluated posterior grid (exact path only), e.g. for density plots.
    """

    method: str
    spec: ModelSpec
    settings: dict
    mu: ParamSummary
    tau: ParamSummary
    coef: tuple[CoefSummary, ...] = ()
    p_median: ParamSummary | None = None
    p_mean: ParamSummary | None = None
    p_new: ParamSummary | None = None
    theta_new: ParamSummary | None = None
    study: tuple[StudySummary, ...] = ()
    exceedance: tuple[Exceedance, ...] = ()
    diagnostics: Diagnostics | None = None
    retried: bool = False
    from_cache: bool = False
    notes: tuple[str, ...] = ()
    idata: Any = field(default=None, repr=False, compare=False)
    grid: Any = field(default=None, repr=False, compare=False)
    prob_mu_negative: float | None = None
    prob_new_negative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (without ``idata``)."""
        out: dict[str, Any] = {
            "method": self.method,
            "model": self.spec.kind,
            "priors": {
                "mu": str(self.spec.prior_mu),
                "tau": str(self.spec.prior_tau),
                **({"coef": str(self.spec.prior_coef)} if self.spec.has_mods else {}),
            },
            "settings": dict(self.settings),
            "n_studies": self.spec.n_studies,
            "mu": self.mu.to_dict(),
            "tau": self.tau.to_dict(),
        }
        if self.spec.has_mods:
            out["coef"] = [c.to_dict() for c in self.coef]
        for name in ("p_median", "p_mean", "p_new", "theta_new"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        out["study"] = [s.to_dict() for s in self.study]
        if self.exceedance:
            out["exceedance"] = [e.to_dict() for e in self.exceedance]
        if self.prob_mu_negative is not None:
            out["prob_mu_negative"] = self.prob_mu_negative
            out["prob_new_negative"] = self.prob_new_negative
        if self.diagnostics is not None:
            out["diagnostics"] = self.diagnostics.to_dict()
        out["retried"] = self.retried
        out["from_cache"] = self.from_cache
        out["notes"] = list(self.notes)
        return out

    def summary_frame(self) -> pd.DataFrame:
        """One row per reported quantity: ``mean``, ``sd``, ``lb``, ``ub`` (full precision)."""
        rows = []
        for name in ("mu", "tau", "p_median", "p_mean", "p_new", "theta_new"):
            value = getattr(self, name)
            if value is not None:
                rows.append({"quantity": name, **asdict(value)})
        for c in self.coef:
            rows.append({"quantity": f"beta[{c.name}]", "mean": c.mean, "sd": c.sd,
                         "lb": c.lb, "ub": c.ub})
        return pd.DataFrame(rows).set_index("quantity")


def _summ(x: np.ndarray, mcse: float | None = None) -> ParamSummary:
    lb, ub, med = np.quantile(x, (*_Q, 0.5))
    return ParamSummary(float(np.mean(x)), float(np.std(x, ddof=1)), float(lb), float(ub),
                        None if mcse is None else float(mcse), median=float(med))


def summarise_draws(
    spec: ModelSpec,
    idata,
    *,
    thresholds: tuple[float, ...],
) -> dict[str, Any]:
    """Summaries (the :class:`BayesResult` fields) from posterior draws in ``idata``."""
    from arviz_stats import mcse

    post = idata["posterior"].dataset
    mu = post["mu"].values.ravel()
    tau = post["tau"].values.ravel()
    theta = post["theta"].values.reshape(-1, spec.n_studies)
    se = mcse(post[["mu", "tau"]])
    fields: dict[str, Any] = {
        "mu": _summ(mu, se["mu"].item()),
        "tau": _summ(tau, se["tau"].item()),
    }
    if spec.has_mods:
        beta = post["beta"].values.reshape(-1, len(spec.coef_names))
        fields["coef"] = tuple(
            CoefSummary(name, *(getattr(_summ(beta[:, j]), a) for a in ("mean", "sd", "lb", "ub")))
            for j, name in enumerate(spec.coef_names)
        )
    if spec.kind == "binomial_normal":
        p_median = expit(mu)
        p_mean = population_mean(mu, tau)
        derived = mcse(_as_draws(idata, {"p_median": p_median, "p_mean": p_mean}))
        fields["p_median"] = _summ(p_median, derived["p_median"].item())
        fields["p_mean"] = _summ(p_mean, derived["p_mean"].item())
        lb, ub, med = expit(mixture_quantile((*_Q, 0.5), mu, tau, None))
        new_sd = np.sqrt(np.mean(population_mean_sq(mu, tau)) - np.mean(p_mean) ** 2)
        fields["p_new"] = ParamSummary(
            float(np.mean(p_mean)), float(new_sd), float(lb), float(ub),
            derived["p_mean"].item(), median=float(med),
        )
        p = expit(theta)
        fields["study"] = tuple(
            StudySummary(s, float(p[:, i].mean()), *map(float, np.quantile(p[:, i], _Q)))
            for i, s in enumerate(spec.study)
        )
        t = np.asarray(thresholds, dtype=float)
        new_above = 1.0 - mixture_cdf(logit(t), mu, tau, None)
        fields["exceedance"] = tuple(
            Exceedance(float(x), float(np.mean(p_median > x)), float(np.mean(p_mean > x)),
                       float(new_above[j]))
            for j, x in enumerate(t)
        )
    else:
        lb, ub, med = mixture_quantile((*_Q, 0.5), mu, tau, None)
        fields["theta_new"] = ParamSummary(
            float(np.mean(mu)), float(np.sqrt(np.var(mu, ddof=1) + np.mean(tau**2))),
            float(lb), float(ub), se["mu"].item(), median=float(med),
        )
        if not spec.has_mods:
            fields["prob_mu_negative"] = float(np.mean(mu < 0))
            fields["prob_new_negative"] = float(mixture_cdf(0.0, mu, tau, None)[0])
        fields["study"] = tuple(
            StudySummary(s, float(theta[:, i].mean()), *map(float, np.quantile(theta[:, i], _Q)))
            for i, s in enumerate(spec.study)
        )
    return fields


def _as_draws(idata, values: dict[str, np.ndarray]):
    import xarray as xr

    post = idata["posterior"].dataset
    shape = (post.sizes["chain"], post.sizes["draw"])
    return xr.Dataset({k: (("chain", "draw"), np.reshape(v, shape)) for k, v in values.items()})
