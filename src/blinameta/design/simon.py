"""Simon's optimal and minimax two-stage designs, by exact enumeration without a silent cap.

Simon (1989, Controlled Clinical Trials 10:1-10): stage 1 enrols ``n1`` patients and stops for
futility with ``r1`` or fewer responses; otherwise ``n - n1`` more are enrolled and the
treatment is declared promising with more than ``r`` responses in total. The probability of
declaring activity at rate ``p`` is

.. math:: R(p) = \\sum_{x_1 = r_1 + 1}^{n_1} b(x_1; n_1, p)\\, P(X_2 > r - x_1 \\mid n - n_1, p).

Among designs with :math:`R(p_0) \\le \\alpha` and :math:`R(p_1) \\ge 1 - \\beta`, the *optimal*
design minimises the expected sample size under ``p0``,
:math:`EN_0 = n_1 + (1 - PET_0)(n - n_1)`, and the *minimax* design minimises ``n`` (then
``EN0``). Both are found by exhaustive enumeration of ``(n, n1, r1)`` with exact binomial
probabilities (``r`` is the smallest value meeting the type I error, which maximises power);
pruning only drops triples that provably cannot be feasible or better:

* ``n`` starts at the smallest size whose randomised uniformly most powerful level-``alpha``
  test reaches the power (Neyman-Pearson: no two-stage design of that size can do better);
* power at most :math:`1 - PET_1` requires :math:`PET_1 = P(X_1 \\le r_1 \\mid p_1) \\le \\beta`;
* once a feasible design with :math:`EN_0 = E^*` is known, a triple with
  :math:`n_1 + (1 - PET_0)(n - n_1) > E^*` cannot be optimal.

The last bound also certifies the search: if no ``(n1, r1)`` with :math:`PET_1 \\le \\beta` has
:math:`n_1 + (1 - PET_0)(n_{max} + 1 - n_1) < E^*`, no design larger than ``n_max`` can beat the
optimum found, and it is the global optimum. Otherwise the result says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.special import bdtr, bdtrc
from scipy.stats import binom

from blinameta.design._predictive import as_predictive
from blinameta.design._table import check_n, check_probability, table
from blinameta.errors import UserError

__all__ = ["SimonDesign", "SimonResult", "simon_two_stage", "single_stage_n", "SINGLE_STAGE_LIMIT"]

#: A default search is refused (with a message) when a single-stage design needs more patients.
SINGLE_STAGE_LIMIT = 1000
_TOL = 1e-12


@dataclass(frozen=True)
class SimonDesign:
    """One two-stage design: stop after stage 1 with ``<= r1`` responses of ``n1``; positive with ``> r`` of ``n``."""

    n1: int
    r1: int
    n: int
    r: int
    en0: float
    pet0: float
    alpha: float  # exact type I error R(p0)
    power: float  # exact R(p1)
    assurance: float | None = None  # predictive probability of declaring activity

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def reject_probability(self, p: Any) -> np.ndarray:
        """:math:`R(p)`, vectorised over ``p``."""
        p = np.atleast_1d(np.asarray(p, dtype=float))
        x1 = np.arange(self.r1 + 1, self.n1 + 1)
        n2 = self.n - self.n1
        j = self.r - x1
        s2 = np.where(j[:, None] < 0, 1.0, bdtrc(np.clip(j, 0, None)[:, None], n2, p[None, :]))
        s2 = np.where(j[:, None] >= n2, np.where(j[:, None] < 0, 1.0, 0.0), s2)
        return (binom.pmf(x1[:, None], self.n1, p[None, :]) * s2).sum(axis=0)


@dataclass(frozen=True)
class SimonResult:
    """Optimal and minimax designs for ``(p0, p1, alpha, beta)`` searched up to ``n_max``."""

    p0: float
    p1: float
    alpha: float
    beta: float
    n_max: int
    single_stage_n: int
    optimal: SimonDesign
    minimax: SimonDesign
    optimal_certified: bool  # no design with n > n_max can have a smaller EN0
    p1_source: str = "given"

    @property
    def warning(self) -> str | None:
        if self.optimal_certified:
            return None
        return (f"the optimal design was searched up to n = {self.n_max}; a design with a larger n could have a "
                f"smaller EN0 than {self.optimal.en0:.2f}, so the 'optimal' row is the best up to n = {self.n_max} "
                "only: raise --simon-n-max")

    def to_dict(self) -> dict[str, Any]:
        return {"p0": self.p0, "p1": self.p1, "p1_source": self.p1_source, "alpha": self.alpha, "beta": self.beta,
                "n_max": self.n_max, "single_stage_n": self.single_stage_n,
                "optimal_certified": self.optimal_certified, "warning": self.warning,
                "optimal": self.optimal.to_dict(), "minimax": self.minimax.to_dict(),
                "reference": "Simon R. Control Clin Trials 1989;10:1-10"}

    def to_text(self) -> str:
        rows = []
        for name, d in (("optimal" if self.optimal_certified else f"best up to n={self.n_max}", self.optimal),
                        ("minimax", self.minimax)):
            rows.append([name, f"{d.r1}/{d.n1}", f"{d.r}/{d.n}", f"{d.en0:.2f}", f"{d.pet0:.3f}", f"{d.alpha:.4f}",
                         f"{d.power:.4f}", "–" if d.assurance is None else f"{d.assurance:.3f}"])
        head = (f"Simon two-stage designs (Simon 1989): p0 = {self.p0:g}, p1 = {self.p1:.3f} ({self.p1_source}), "
                f"alpha = {self.alpha:g}, beta = {self.beta:g}; stop after stage 1 with <= r1 of n1 responses, "
                f"declare activity with > r of n")
        body = table(["design", "r1/n1", "r/n", "EN(p0)", "PET(p0)", "type I error", "power", "assurance"], rows)
        return head + "\n" + body + (f"\nwarning: {self.warning}" if self.warning else "")


def single_stage_n(p0: float, p1: float, alpha: float, beta: float, limit: int = 5000) -> int:
    """Smallest ``n`` whose exact one-sided binomial test at level ``alpha`` has power ``1 - beta`` at ``p1``."""
    from blinameta.design.assurance import critical_responses

    start, ok, n = 1, np.array([], dtype=int), np.array([], dtype=int)
    while start <= limit and not ok.size:  # in growing chunks: most answers are small
        n = np.arange(start, min(limit, 4 * start + 200) + 1)
        r = critical_responses(n, p0, alpha)
        ok = np.flatnonzero(np.where(r <= n, bdtrc(np.clip(r - 1, 0, None), n, p1), 0.0) >= 1 - beta)
        start = int(n[-1]) + 1
    if not ok.size:
        raise UserError(
            f"p1 - p0 = {p1 - p0:.3f} is too small: even a single-stage design needs more than {limit} patients "
            f"for alpha = {alpha:g} and power {1 - beta:g}; choose a larger p1 (a clinically meaningful target)")
    return int(n[ok[0]])


def _ump_lower_bound(p0: float, p1: float, alpha: float, beta: float, n_max: int) -> int:
    """Smallest ``n`` whose randomised UMP level-``alpha`` test has power ``>= 1 - beta`` (or n_max + 1)."""
    from blinameta.design.assurance import critical_responses

    n = np.arange(1, n_max + 1)
    r = critical_responses(n, p0, alpha)  # reject for X >= r; randomise at X = r - 1
    k = r - 1
    size = np.where(r <= n, bdtrc(np.clip(r - 1, 0, None), n, p0), 0.0)
    gamma = np.clip((alpha - size) / np.maximum(binom.pmf(k, n, p0), 1e-300), 0.0, 1.0)
    power = np.where(r <= n, bdtrc(np.clip(r - 1, 0, None), n, p1), 0.0) + gamma * binom.pmf(k, n, p1)
    ok = np.flatnonzero(power >= 1 - beta - _TOL)
    return int(n[ok[0]]) if ok.size else n_max + 1


class _Tables:
    """Binomial pmf, P(X > j) and P(X <= r) for m = 0..n_max patients at one rate."""

    def __init__(self, p: float, n_max: int):
        m = np.arange(n_max + 1)[:, None]
        x = np.arange(n_max + 1)[None, :]
        self.pmf = binom.pmf(x, m, p)
        j = np.arange(-1, n_max + 1)[None, :]  # column c holds j = c - 1
        sf = bdtrc(np.clip(j, 0, None), m, p)
        self.sf = np.where(j < 0, 1.0, np.where(j >= m, 0.0, sf))
        self.cdf = np.where(x <= m, bdtr(np.minimum(x, m), m, p), 1.0)


def _reject(tables: tuple[_Tables, _Tables], n: int, n1s: np.ndarray, r_values: np.ndarray,
            width: int, r1_lo: int) -> tuple[np.ndarray, np.ndarray]:
    """R[i, r1, k] = P(X1 > r1, X1 + X2 > r_values[k]) at p0 and p1, stage 1 of n1s[i] patients, total n.

    Rows ``r1 < r1_lo`` are not needed and are left at zero; stage-1 outcomes ``x1 <= r1_lo``
    never count for the others and are skipped.
    """
    lo = int(r1_lo) + 1
    x1 = np.arange(width - 1, lo - 1, -1)  # descending, last axis: the cumulative sum runs over x1 >= value
    col = np.clip(r_values[None, :, None] - x1[None, None, :] + 1, 0, tables[0].sf.shape[1] - 1)
    rows = (n - n1s)[:, None, None]
    out = []
    for t in tables:
        m = t.pmf[n1s][:, None, x1] * t.sf[rows, col]  # (i, r, x1 descending)
        np.cumsum(m, axis=2, out=m)
        full = np.zeros((n1s.size, r_values.size, width - 1))
        full[:, :, lo - 1:] = m[:, :, ::-1]  # full[i, k, r1] = sum over x1 > r1
        out.append(full.transpose(0, 2, 1))
    return out[0], out[1]


def _scan(tables, r_power, alpha, beta, n_values, best, minimax, step):
    """Enumerate designs over ``n_values``; return the best EN0 design and the minimax design.

    ``best`` (a feasible design, or None) bounds EN0 from the start; the EN0 bound is applied
    only once the minimax design is known, so that the minimax search is exhaustive.
    """
    t0, t1 = tables
    find_minimax = True
    for n in n_values:
        rhi = r_power[n]  # the largest r a single-stage test of n patients could use with enough power
        if rhi < 0:
            continue
        n1_all = np.arange(1, n, step) if step > 1 else np.arange(1, n)
        prune = best is not None and (minimax is not None or not find_minimax)
        if prune:
            n1_all = n1_all[n1_all < best[0] + 1e-9]
        if not n1_all.size:
            if minimax is not None:
                break
            continue
        r1 = np.arange(n1_all.max())
        pet1 = t1.cdf[n1_all][:, r1]
        pet0 = t0.cdf[n1_all][:, r1]
        en0 = n1_all[:, None] + (1 - pet0) * (n - n1_all[:, None])
        keep = (r1[None, :] < n1_all[:, None]) & (pet1 <= beta + _TOL) & (r1[None, :] <= rhi)
        if prune:
            keep &= en0 <= best[0] + 1e-9
        rows = np.flatnonzero(keep.any(axis=1))
        if not rows.size:
            continue
        n1s = n1_all[rows]
        keep, en0, pet0 = keep[rows], en0[rows], pet0[rows]
        # Harris (FKG) inequality: R(p0) >= (1 - PET0) P(X > r | p0), so the smallest r meeting
        # alpha has P(X > r | p0) <= alpha / (1 - PET0); below it no r can work.
        sf0 = t0.sf[n, 1:n + 2]
        r_h = np.searchsorted(-sf0, -alpha / np.maximum(1 - pet0, 1e-300), side="left")
        keep &= r_h <= rhi
        if not keep.any():
            continue
        r1_lo = int(r1[keep.any(axis=0)].min())
        rlo = int(np.maximum(r1[None, :], r_h)[keep].min())
        r_values = np.arange(rlo, rhi + 1)
        rej0, rej1 = _reject((t0, t1), n, n1s, r_values, r1.size + 1, r1_lo)
        size_ok = (rej0 <= alpha + _TOL) & (r_values[None, None, :] >= r1[None, :, None]) & keep[:, :, None]
        has = size_ok.any(axis=2)
        k = np.argmax(size_ok, axis=2)
        power = np.take_along_axis(rej1, k[:, :, None], axis=2)[:, :, 0]
        feasible = has & (power >= 1 - beta - _TOL)
        if not feasible.any():
            continue
        i, j = np.nonzero(feasible)
        a, b = i[np.lexsort((j, n1s[i], en0[i, j]))[0]], j[np.lexsort((j, n1s[i], en0[i, j]))[0]]
        top = (float(en0[a, b]), n, int(n1s[a]), int(r1[b]), int(r_values[k[a, b]]), float(pet0[a, b]),
               float(rej0[a, b, k[a, b]]), float(rej1[a, b, k[a, b]]))
        if minimax is None and step == 1:
            minimax = top
        if step > 1:
            find_minimax = False
        if best is None or top[0] < best[0] - _TOL:
            best = top
    return best, minimax


def simon_two_stage(p0: float, p1: float, alpha: float, beta: float, *, n_max: int | None = None,
                    predictive: Any = None, p1_source: str = "given") -> SimonResult:
    """Simon's optimal and minimax two-stage designs, by exact enumeration.

    Parameters
    ----------
    p0, p1 : float
        Uninteresting and target response rates (``0 < p0 < p1 < 1``); ``p1`` is a clinically
        meaningful target (Simon 1989), not an estimate.
    alpha, beta : float
        Type I error under ``p0`` (in (0, 0.5)) and type II error under ``p1`` (in (0, 1)).
    n_max : int, optional
        Largest total sample size searched (default: twice the single-stage exact sample size,
        at least 300). The result says whether the optimum is certified beyond ``n_max``.
    predictive : optional
        The predictive distribution of the new cohort's rate; each design then carries its
        assurance (the predictive probability of declaring activity).
    """
    p0, p1 = check_probability("p0", p0), check_probability("p1", p1)
    alpha, beta = check_probability("alpha", alpha, 0.0, 0.5), check_probability("beta", beta)
    if p1 <= p0:
        raise UserError(f"p1 ({p1:.3f}) must exceed p0 ({p0:.3f})")
    if n_max is None:
        single = single_stage_n(p0, p1, alpha, beta)
        if single > SINGLE_STAGE_LIMIT:
            raise UserError(
                f"p1 - p0 = {p1 - p0:.3f} is too small: a single-stage design already needs {single} patients; "
                f"choose a larger p1 or set the search limit explicitly (--simon-n-max)")
        n_max = max(300, 2 * single)
    else:
        n_max = check_n("--simon-n-max", n_max, 2)
        single = single_stage_n(p0, p1, alpha, beta, limit=max(5000, n_max))
    t0, t1 = _Tables(p0, n_max), _Tables(p1, n_max)
    r_power = np.array([int(np.flatnonzero(t1.sf[n, 1:n + 2] >= 1 - beta - _TOL).max(initial=-1)) for n in range(n_max + 1)])
    n_start = max(2, _ump_lower_bound(p0, p1, alpha, beta, n_max))
    # pass 1: a coarse grid of stage-1 sizes gives a feasible design whose EN0 bounds the search;
    # pass 2: every (n, n1, r1) that the bounds cannot rule out.
    coarse, _ = _scan((t0, t1), r_power, alpha, beta, range(n_start, n_max + 1), None, None, step=8)
    best, minimax = _scan((t0, t1), r_power, alpha, beta, range(n_start, n_max + 1), coarse, None, step=1)
    if best is None or minimax is None:
        raise UserError(f"no two-stage design with n <= {n_max} meets alpha = {alpha:g} and beta = {beta:g}; "
                        "raise --simon-n-max")
    # certificate: could any design with n > n_max have a smaller EN0?
    n1c = np.arange(1, min(n_max, int(math.floor(best[0]))) + 1)
    r1c = np.arange(n1c.max())
    ok = (r1c[None, :] < n1c[:, None]) & (t1.cdf[n1c][:, r1c] <= beta + _TOL)
    bound = n1c[:, None] + (1 - t0.cdf[n1c][:, r1c]) * (n_max + 1 - n1c[:, None])
    certified = not (ok & (bound < best[0] - _TOL)).any()

    def design(c: tuple) -> SimonDesign:
        en0, n, n1, r1_, r, pet0_, a, pw = c
        d = SimonDesign(n1, r1_, n, r, en0, pet0_, a, pw)
        if predictive is not None:
            pred = as_predictive(predictive).compressed(4000)
            d = replace(d, assurance=float(np.dot(pred.weights, d.reject_probability(pred.nodes))))
        return d

    return SimonResult(p0, p1, alpha, beta, n_max, single, design(best), design(minimax), certified, p1_source)
