"""The predictive distribution of a new cohort's rate, as a weighted set of nodes.

Every design quantity here is an expectation over the rate ``p`` of the planned trial:
:math:`E[g(p)] = \\sum_i w_i\\, g(p_i)`. The nodes and weights may come from a quadrature rule
(the exact posterior grid times Gauss-Hermite nodes over the random effect), from posterior
draws (equal weights), or from a distribution object with a quantile function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from blinameta.errors import UserError

__all__ = ["Predictive", "as_predictive"]


@dataclass(frozen=True, eq=False)
class Predictive:
    """A discrete representation of the predictive distribution of a rate in ``[0, 1]``.

    Parameters
    ----------
    nodes : numpy.ndarray
        Rates (1-D).
    weights : numpy.ndarray
        Non-negative weights summing to 1.
    """

    nodes: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_samples(cls, samples: Any, weights: Any = None) -> "Predictive":
        """Draws of the rate (equal weights unless ``weights`` is given)."""
        p = np.clip(np.asarray(samples, dtype=float).ravel(), 0.0, 1.0)
        w = np.full(p.size, 1.0) if weights is None else np.asarray(weights, dtype=float).ravel()
        if p.size == 0 or w.shape != p.shape:
            raise UserError("the predictive distribution needs at least one rate and one weight per rate")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise UserError("the predictive rates and weights must be finite and the weights non-negative")
        return cls(p, w / w.sum())

    @classmethod
    def beta(cls, a: float, b: float, m: int = 200) -> "Predictive":
        """Gauss-Jacobi nodes of Beta(a, b): exact for polynomials in ``p`` of degree < 2m.

        A binomial probability of ``n`` patients is a polynomial of degree ``n`` in ``p``, so
        the design quantities of trials up to ``2m - 1`` patients are exact.
        """
        x, w = special.roots_jacobi(m, b - 1.0, a - 1.0)
        return cls.from_samples((1.0 + x) / 2.0, w)

    @classmethod
    def from_distribution(cls, dist: Any, m: int = 4000) -> "Predictive":
        """Any object with a quantile function ``ppf`` (e.g. a frozen scipy distribution) on ``[0, 1]``.

        Nodes at the mid-quantiles ``(i - 1/2) / m`` with equal weights.
        """
        ppf = getattr(dist, "ppf", dist)
        return cls.from_samples(ppf((np.arange(m) + 0.5) / m))

    @property
    def mean(self) -> float:
        return float(np.dot(self.weights, self.nodes))

    def prob_above(self, p0: float) -> float:
        """:math:`P(p > p_0)` under the predictive distribution."""
        return float(self.weights[self.nodes > p0].sum())

    def compressed(self, bins: int = 2000) -> "Predictive":
        """At most ``bins`` nodes: weighted means of the rate within equal-probability bins.

        Used for curves over many sample sizes; single values are computed with all nodes.
        """
        if self.nodes.size <= bins:
            return self
        order = np.argsort(self.nodes, kind="stable")
        p, w = self.nodes[order], self.weights[order]
        cum = np.cumsum(w)
        group = np.minimum((cum - w / 2) * bins, bins - 1).astype(int)
        wb = np.bincount(group, weights=w, minlength=bins)
        pb = np.bincount(group, weights=w * p, minlength=bins)
        keep = wb > 0
        return Predictive(pb[keep] / wb[keep], wb[keep] / wb[keep].sum())


def as_predictive(value: Any, weights: Any = None) -> Predictive:
    """A :class:`Predictive` from a Predictive, ``(nodes, weights)``, draws, or a distribution with ``ppf``."""
    if isinstance(value, Predictive):
        return value
    if weights is not None:
        return Predictive.from_samples(value, weights)
    if isinstance(value, tuple) and len(value) == 2:
        return Predictive.from_samples(*value)
    if hasattr(value, "ppf") or callable(value):
        return Predictive.from_distribution(value)
    return Predictive.from_samples(value)
