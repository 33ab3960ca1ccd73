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
    "p_new": "rate in a new study (predictive)",
    "theta_new": "effect in a new study (predictive)",
}


def format_bayes(res) -> str:
    """Model, priors, posterior summaries (mean, sd, 95% credible interval) and diagnostics."""
    spec = res.spec
    model = "binomial-normal" if spec.kind.startswith("binomial") else "normal-normal"
    how = "exact quadrature" if res.method == "exact" else "NUTS"
    lines = [f"Bayesian {model} random-effects model (k = {spec.n_studies}; {how})", ""]
    priors = f"priors: mu ~ {spec.prior_mu}, tau ~ {spec.prior_tau}"
    if spec.has_mods:
        priors += f", beta ~ {spec.prior_coef}"
    lines += [priors, ""]
    frame = res.to_frame()
    labels = {name: _LABELS.get(name, name) for name in frame.index}
    if not spec.kind.startswith("binomial"):
        labels["mu"] = "mu (pooled effect)"
    width = max(len(v) for v in labels.values()) + 2
    lines.append(" " * width + f"{'mean':>9}{'sd':>9}{'2.5%':>9}{'97.5%':>9}")
    for name, row in frame.iterrows():
        lines.append(f"{labels[name]:<{width}}{row['mean']:>9.4f}{row['sd']:>9.4f}{row['lb']:>9.4f}{row['ub']:>9.4f}")
    if res.study:
        unit = " (proportion)" if spec.kind.startswith("binomial") else ""
        sw = max(len("study"), *(len(st.study) for st in res.study)) + 2
        lines += ["", f"shrunken study estimates{unit}:",
                  f"{'study':<{sw}}{'mean':>9}{'2.5%':>9}{'97.5%':>9}"]
        lines += [f"{st.study:<{sw}}{st.mean:>9.4f}{st.lb:>9.4f}{st.ub:>9.4f}" for st in res.study]
    if res.exceedance:
        lines += ["", "P(rate > threshold):",
                  f"{'threshold':>10}{'median rate':>13}{'population average':>20}{'new study':>11}"]
        lines += [f"{e.threshold:>10g}{e.p_median:>13.3f}{e.p_mean:>20.3f}{e.p_new:>11.3f}"
                  for e in res.exceedance]
    if res.diagnostics is not None:
        lines += ["", "Diagnostics: " + res.diagnostics.describe()
                  + (" (from cache)" if res.from_cache else "")]
    for note in res.notes:
        lines.append(f"note: {note}")
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
