"""Printing and tables for Bayesian fits (``print(post)``, ``post.summary()``, ``post.to_frame()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blinameta.frequentist._present import Summary

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BayesPresentation", "format_bayes"]

_LABELS = {
    "mu": "mu (pooled logit)",
    "tau": "tau (between-study sd)",
    "p_median": "median rate invlogit(mu)",
    "p_mean": "population-average rate",
    "p_new": "rate in a new cohort (predictive)",
    "theta_new": "effect in a new study (predictive)",
}


def format_bayes(res) -> str:
    """Model, priors, posterior summaries (mean, sd, 95% credible interval) and diagnostics."""
    spec = res.spec
    model = "binomial-normal" if spec.kind.startswith("binomial") else "normal-normal"
    how = "exact quadrature" if res.method == "exact" else "NUTS"
    lines = [f"Bayesian {model} random-effects model (k = {spec.n_studies}; {how})", ""]
    priors = f"Priors: mu ~ {spec.prior_mu}; tau ~ {spec.prior_tau}"
    if spec.has_mods:
        priors += f"; coefficients ~ {spec.prior_coef}"
    lines += [priors, ""]
    frame = res.to_frame()
    labels = {name: _LABELS.get(name, name) for name in frame.index}
    if not spec.kind.startswith("binomial"):
        labels["mu"] = "mu (pooled effect)"
    width = max(len(v) for v in labels.values()) + 2
    lines.append(" " * width + f"{'mean':>9}{'sd':>9}{'2.5%':>9}{'97.5%':>9}")
    for name, row in frame.iterrows():
        lines.append(f"{labels[name]:<{width}}{row['mean']:>9.4f}{row['sd']:>9.4f}{row['lb']:>9.4f}{row['ub']:>9.4f}")
    if res.exceedance:
        lines += ["", "P(rate > threshold): " + ", ".join(
            f"{e.threshold:g}: {e.p_median:.3f}" for e in res.exceedance) + " (median rate)"]
    if res.diagnostics is not None:
        lines += ["", "Diagnostics: " + res.diagnostics.describe()]
    for note in res.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


class BayesPresentation:
    """``summary()``, ``to_frame()``, ``__str__`` and ``_repr_html_`` of a Bayesian fit."""

    def to_frame(self) -> pd.DataFrame:
        """One row per reported quantity: ``mean``, ``sd``, ``lb``, ``ub`` (the 95% credible interval)."""
        return self.summary_frame()

    def summary(self) -> Summary:
        return Summary(text=format_bayes(self), table=self.to_frame())

    def __str__(self) -> str:
        return format_bayes(self)

    def _repr_html_(self) -> str:
        return self.summary().as_html()
