"""Predicted numbers of events in a planned trial (a binomial mixture over the predictive rate).

For ``n`` patients and a predictive distribution of the rate with nodes :math:`p_i` and
weights :math:`w_i`, the number of events has the mixture distribution
:math:`P(X = x) = \\sum_i w_i \\binom{n}{x} p_i^x (1 - p_i)^{n - x}` (a beta-binomial when the
predictive is a beta distribution). Intervals are equal-tailed: the lower end is the smallest
``x`` with :math:`P(X \\le x) \\ge (1 - level)/2`, the upper end the smallest ``x`` with
:math:`P(X \\le x) \\ge (1 + level)/2`, so each interval covers at least ``level``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from blinameta.design._predictive import as_predictive
from blinameta.design._table import check_n, table

__all__ = ["CountPrediction", "PredictedCounts", "predicted_counts", "count_distribution"]


def count_distribution(n: int, predictive: Any) -> np.ndarray:
    """P(X = x), x = 0..n, under the predictive mixture."""
    pred = as_predictive(predictive).compressed(4000)
    return binom.pmf(np.arange(n + 1)[:, None], n, pred.nodes[None, :]) @ pred.weights


def _quantile(cdf: np.ndarray, q: float) -> int:
    return int(np.searchsorted(cdf, q - 1e-12, side="left"))


@dataclass(frozen=True)
class CountPrediction:
    """Predictive distribution of one outcome's count among ``n`` patients."""

    outcome: str
    n: int
    mean: float
    pi80: tuple[int, int]
    pi95: tuple[int, int]
    p_zero: float

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "n": self.n, "mean": self.mean, "pi80": list(self.pi80),
                "pi95": list(self.pi95), "p_zero": self.p_zero}


@dataclass(frozen=True)
class PredictedCounts:
    """Predicted counts for several outcomes in a trial of ``n`` patients."""

    n: int
    rows: tuple[CountPrediction, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "outcomes": [r.to_dict() for r in self.rows],
                "method": "binomial mixture over the posterior predictive rate of a new cohort; equal-tailed intervals"}

    def to_text(self) -> str:
        rows = [[r.outcome, f"{r.mean:.1f}", f"{r.pi80[0]}-{r.pi80[1]}", f"{r.pi95[0]}-{r.pi95[1]}", f"{r.p_zero:.3f}"]
                for r in self.rows]
        return (f"Predicted numbers of patients with each outcome among {self.n} (posterior predictive)\n"
                + table(["outcome", "mean", "80% interval", "95% interval", "P(none)"], rows))


def predicted_counts(n: int, predictives: Mapping[str, Any]) -> PredictedCounts:
    """Mean and 80% / 95% predictive intervals of the count of each outcome among ``n`` patients.

    Parameters
    ----------
    n : int
        Patients in the planned trial.
    predictives : mapping
        Outcome name -> predictive distribution of its rate (see :func:`blinameta.design.as_predictive`).
    """
    n = check_n("the number of patients", n)
    rows = []
    for name, value in predictives.items():
        pred = as_predictive(value)
        pmf = count_distribution(n, pred)
        cdf = np.cumsum(pmf)
        rows.append(CountPrediction(name, n, n * pred.mean, (_quantile(cdf, 0.10), _quantile(cdf, 0.90)),
                                    (_quantile(cdf, 0.025), _quantile(cdf, 0.975)), float(pmf[0])))
    return PredictedCounts(n, tuple(rows))
