"""Assurance: the predictive probability that a planned single-arm trial succeeds.

Assurance (O'Hagan, Stevens & Campbell 2005, Pharm Stat 4:187-201) averages the probability of
success of the planned analysis over the uncertainty in the true rate:
:math:`A = \\int P(\\text{success} \\mid p)\\, f(p)\\, dp`, with :math:`f` the posterior
predictive density of the rate in a new cohort (:class:`~blinameta.design.Predictive`).

Two notions of success are offered and kept apart:

* :func:`assurance_test` -- the planned analysis: a one-sided exact binomial test of
  :math:`H_0: p \\le p_0` at level :math:`\\alpha` rejects with ``n`` patients, i.e. the trial
  observes at least the critical number :math:`r = \\min\\{r : P(X \\ge r \\mid n, p_0) \\le \\alpha\\}`
  of responses. :func:`sample_size_for_assurance` searches ``n``.
* :func:`assurance` -- the predictive probability of at least ``R`` responses of ``n`` (a
  number the user chooses, not a test).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import bdtrc

from blinameta.design._predictive import Predictive, as_predictive
from blinameta.design._table import check_n, check_probability, table
from blinameta.errors import UserError

__all__ = [
    "assurance",
    "critical_responses",
    "AssuranceTest",
    "assurance_test",
    "SampleSize",
    "sample_size_for_assurance",
    "DEFAULT_N_MAX",
]

#: Largest trial searched by :func:`sample_size_for_assurance` unless told otherwise.
DEFAULT_N_MAX = 500


def _sf(r: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(X >= r) for X ~ Binomial(n, p), broadcasting; r <= 0 gives 1 and r > n gives 0."""
    r, n, p = np.broadcast_arrays(np.asarray(r), np.asarray(n), np.asarray(p, dtype=float))
    out = bdtrc(np.clip(r - 1, 0, None), n, p)
    out = np.where(r <= 0, 1.0, out)
    return np.where(r > n, 0.0, out)


def critical_responses(n: Any, p0: float, alpha: float) -> np.ndarray | int:
    """Smallest ``r`` with :math:`P(X \\ge r \\mid n, p_0) \\le \\alpha` (``n + 1`` if no ``r <= n`` qualifies).

    Vectorised over ``n``; the exact binomial test rejects :math:`H_0: p \\le p_0` when at least
    ``r`` of ``n`` respond.
    """
    scalar = np.ndim(n) == 0
    n = np.atleast_1d(np.asarray(n, dtype=int))
    r = np.ones_like(n)
    # start from the normal approximation, then step to the exact boundary
    guess = np.floor(n * p0 + 1.6449 * np.sqrt(n * p0 * (1 - p0))).astype(int)
    r = np.clip(guess, 1, n + 1)
    for _ in range(10 * int(n.max()) + 10):
        up = (r <= n) & (_sf(r, n, p0) > alpha)
        down = (r > 1) & (_sf(r - 1, n, p0) <= alpha)
        if not (up.any() or down.any()):
            break
        r = r + up.astype(int) - down.astype(int)
    return int(r[0]) if scalar else r


def assurance(n: int, responses: int, predictive: Any, weights: Any = None) -> float:
    """Predictive probability of at least ``responses`` responses among ``n`` patients.

    Parameters
    ----------
    n, responses : int
        Patients and the responses required (``responses > n`` gives 0).
    predictive
        A :class:`Predictive`, ``(nodes, weights)``, draws of the rate, or (with ``weights``)
        nodes of the predictive distribution of the rate.
    """
    n = check_n("the number of patients", n)
    if responses < 0:
        raise UserError(f"the number of responses must be a whole number >= 0 (got {responses})")
    pred = as_predictive(predictive, weights)
    return float(np.dot(pred.weights, _sf(int(responses), n, pred.nodes)))


@dataclass(frozen=True)
class AssuranceTest:
    """Assurance of a one-sided exact binomial test of :math:`H_0: p \\le p_0` with ``n`` patients."""

    probability: float
    n: int
    p0: float
    alpha: float
    critical_responses: int
    size: float  # exact type I error P(X >= r | p0)
    limit: float  # P(p_new > p0): the assurance as n grows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        r = self.critical_responses
        test = (f"H0: p <= {self.p0:g} is rejected (one-sided exact binomial test, level {self.alpha:g}) "
                f"with at least {r} responses of {self.n} (exact type I error {self.size:.4f})")
        if r > self.n:
            test = f"no number of responses of {self.n} rejects H0: p <= {self.p0:g} at level {self.alpha:g}"
        return (f"{test}; assurance (predictive probability of rejecting) = {self.probability:.3f}; "
                f"limit for large trials P(p_new > {self.p0:g}) = {self.limit:.3f}")


def assurance_test(n: int, p0: float, predictive: Any, weights: Any = None, *, alpha: float = 0.05) -> AssuranceTest:
    """Assurance of the planned analysis (O'Hagan, Stevens & Campbell 2005).

    :math:`A(n) = \\sum_i w_i\\, P(X \\ge r_n \\mid n, p_i)` where :math:`r_n` is the critical
    number of responses of the exact one-sided binomial test at level ``alpha``.

    Parameters
    ----------
    n : int
        Patients in the planned trial.
    p0 : float
        Null rate, in (0, 1).
    predictive, weights
        The predictive distribution of the new cohort's rate (see :func:`assurance`).
    alpha : float
        One-sided level, in (0, 0.5).
    """
    n = check_n("the number of patients (--n)", n)
    p0 = check_probability("p0", p0)
    alpha = check_probability("alpha", alpha, 0.0, 0.5)
    pred = as_predictive(predictive, weights)
    r = critical_responses(n, p0, alpha)
    prob = float(np.dot(pred.weights, _sf(r, n, pred.nodes)))
    return AssuranceTest(prob, n, p0, alpha, int(r), float(_sf(r, n, p0)), pred.prob_above(p0))


def _curve(pred: Predictive, p0: float, alpha: float, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(1, n_max + 1)
    r = critical_responses(n, p0, alpha)
    small = pred.compressed()
    return r, _sf(r[:, None], n[:, None], small.nodes[None, :]) @ small.weights


@dataclass(frozen=True)
class SampleSize:
    """Sample sizes for a target test-based assurance, searched over ``1..n_max``.

    ``first`` is the smallest ``n`` whose assurance reaches the target; ``stable`` the smallest
    ``n`` from which every larger ``n`` up to ``n_max`` does (the exact test's discreteness makes
    the assurance saw-toothed in ``n``). Either is ``None`` when it does not exist.
    """

    target: float
    p0: float
    alpha: float
    n_max: int
    first: AssuranceTest | None
    stable: AssuranceTest | None
    limit: float
    curve: tuple[float, ...]

    @property
    def reachable(self) -> bool:
        return self.first is not None

    @property
    def message(self) -> str:
        if self.first is None:
            why = (f"the assurance tends to P(p_new > {self.p0:g}) = {self.limit:.3f} as the trial grows"
                   + (", which is below the target" if self.limit < self.target else ""))
            return f"no trial of up to {self.n_max} patients reaches an assurance of {self.target:g}: {why}"
        if self.stable is None:
            return (f"n = {self.first.n} reaches an assurance of {self.target:g}, but larger trials up to "
                    f"{self.n_max} patients fall below it again (saw-tooth of the exact test); raise --n-max")
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "p0": self.p0, "alpha": self.alpha, "n_max": self.n_max,
                "first": self.first.to_dict() if self.first else None,
                "stable": self.stable.to_dict() if self.stable else None,
                "limit": self.limit, "reachable": self.reachable, "message": self.message or None}

    def to_text(self) -> str:
        rows = []
        for label, a in (("smallest N reaching the target", self.first),
                         ("smallest N from which all larger N stay at or above it", self.stable)):
            rows.append([label] + (["–", "–", "–"] if a is None else
                                   [a.n, f">= {a.critical_responses}", f"{a.probability:.3f}"]))
        head = (f"Sample size for assurance >= {self.target:g} of rejecting H0: p <= {self.p0:g} "
                f"(exact one-sided binomial test, level {self.alpha:g}; searched N = 1..{self.n_max}; "
                f"limit P(p_new > {self.p0:g}) = {self.limit:.3f})")
        body = table(["", "N", "responses to reject", "assurance"], rows)
        return head + "\n" + body + (f"\n{self.message}" if self.message else "")


def sample_size_for_assurance(target: float, p0: float, predictive: Any, weights: Any = None, *,
                              alpha: float = 0.05, n_max: int = DEFAULT_N_MAX) -> SampleSize:
    """Smallest trial whose test-based assurance reaches ``target``.

    The assurance of the exact test is not monotone in ``n`` (the critical value jumps), so two
    answers are given: the first ``n`` reaching the target, and the smallest ``n`` from which it
    holds for every ``n`` up to ``n_max``. As ``n`` grows the assurance tends to
    :math:`P(p_{new} > p_0)`; a target above that limit cannot be reached by any trial.
    """
    target = check_probability("the assurance target", target)
    p0 = check_probability("p0", p0)
    alpha = check_probability("alpha", alpha, 0.0, 0.5)
    n_max = check_n("--n-max", n_max)
    pred = as_predictive(predictive, weights)
    _, curve = _curve(pred, p0, alpha, n_max)
    ok = curve >= target
    first = stable = None
    if ok.any():
        first = assurance_test(int(np.argmax(ok)) + 1, p0, pred, alpha=alpha)
        if ok[-1]:
            bad = np.flatnonzero(~ok)
            stable = assurance_test(int(bad[-1]) + 2 if bad.size else 1, p0, pred, alpha=alpha)
    return SampleSize(target, p0, alpha, n_max, first, stable, pred.prob_above(p0), tuple(float(c) for c in curve))
