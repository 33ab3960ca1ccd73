"""Predictive-probability monitoring of response (Lee & Liu 2008, Clin Trials 5:93-106).

The response rate has a Beta(a, b) prior. At the end of the trial (``n_max`` patients, ``s``
responses) the treatment is declared promising when :math:`P(p > p_0 \\mid s) > \\theta_T`,
i.e. when :math:`s \\ge s_T`. At an interim look with ``x`` responses of ``n`` the predictive
probability of that final success is

.. math:: PP(x, n) = P(Y \\ge s_T - x), \\quad Y \\sim \\text{BetaBinomial}(n_{max} - n, a + x, b + n - x),

and the trial stops for futility when :math:`PP < \\theta_L` and for efficacy when
:math:`PP > \\theta_U` (``theta_u = 1``: never). Lee & Liu choose :math:`\\theta_T` in
[0.85, 0.95] and :math:`\\theta_L` in [0.001, 0.10] so that the exact type I error and power
meet their targets; with ``theta_t``/``theta_l`` left unset this is done here by a grid search
over those ranges, keeping the design with the smallest expected sample size under ``p0``.

Operating characteristics are exact: the distribution of responses is propagated patient by
patient and the mass that crosses a boundary is absorbed (no simulation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import special, stats

from blinameta.design._paths import propagate
from blinameta.design._predictive import as_predictive
from blinameta.design._table import check_n, check_probability, runs, table
from blinameta.errors import UserError

__all__ = ["MonitoringDesign", "predictive_monitoring", "predictive_probability", "THETA_T_GRID", "THETA_L_GRID"]

#: Searched thresholds: theta_T from 0.80 to 0.99 (Lee & Liu recommend [0.85, 0.95]; the grid is
#: wider so that a one-sided 5% type I error can be met) and theta_L in [0.001, 0.10].
THETA_T_GRID = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))
THETA_L_GRID = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)


def _final_responses(a: float, b: float, n_max: int, p0: float, theta_t: float) -> int:
    """Smallest ``s`` with P(p > p0 | s of n_max) > theta_t (``n_max + 1`` if none)."""
    s = np.arange(n_max + 1)
    ok = np.flatnonzero(special.betaincc(a + s, b + n_max - s, p0) > theta_t)
    return int(ok[0]) if ok.size else n_max + 1


def predictive_probability(x: int, n: int, n_max: int, a: float, b: float, p0: float, theta_t: float) -> float:
    """Lee & Liu's predictive probability of success at the end, given ``x`` responses of ``n``."""
    s_t = _final_responses(a, b, n_max, p0, theta_t)
    return float(stats.betabinom.sf(s_t - x - 1, n_max - n, a + x, b + n - x)) if n < n_max else float(x >= s_t)


def _pp_matrix(a, b, n_max, p0, theta_t, looks):
    r"""s_T and PP[j, x] at every look (``nan`` where ``x`` exceeds the look).

    Computed backwards from the final analysis by the martingale property of the predictive
    probability: :math:`PP(n, x) = q\,PP(n+1, x+1) + (1-q)\,PP(n+1, x)` with
    :math:`q = (a + x)/(a + b + n)` the posterior mean, which equals the beta-binomial tail.
    """
    s_t = _final_responses(a, b, n_max, p0, theta_t)
    x = np.arange(n_max + 1)
    pp = (x >= s_t).astype(float)
    at = {n: j for j, n in enumerate(looks)}
    out = np.full((len(looks), n_max + 1), np.nan)
    for n in range(n_max - 1, 0, -1):
        q = (a + x[: n + 1]) / (a + b + n)
        pp = q * pp[1 : n + 2] + (1 - q) * pp[: n + 1]
        if n in at:
            out[at[n], : n + 1] = pp
    return s_t, out


def _boundaries(pp: np.ndarray, looks, theta_l: float, theta_u: float):
    """Futility (largest x with PP < theta_L, else -1) and efficacy (smallest x with PP > theta_U, else n + 1)."""
    n = np.asarray(looks)
    x = np.arange(pp.shape[1])[None, :]
    low = np.where(pp < theta_l, x, -1).max(axis=1)
    high = np.where(pp > theta_u, x, pp.shape[1] + 1).min(axis=1)
    return [int(v) for v in low], [int(min(v, m + 1)) for v, m in zip(high, n)]


def _operating(p: np.ndarray, n_max: int, looks, fut, eff, s_t: int):
    """Exact P(declare promising), P(stop early for futility), E[N] at each rate in ``p``."""
    low, high, final = propagate(p, n_max, looks, fut, eff)
    n = np.asarray(looks, dtype=float)
    reject = high.sum(axis=1) + final[:, s_t:].sum(axis=1)
    en = (low + high) @ n + n_max * final.sum(axis=1)
    return reject, low.sum(axis=1), en


@dataclass(frozen=True)
class MonitoringDesign:
    """A Lee & Liu predictive-probability design with its exact operating characteristics."""

    p0: float
    p1: float
    prior_a: float
    prior_b: float
    prior_mean: float
    prior_ess: float
    theta_t: float
    theta_l: float
    theta_u: float
    n_max: int
    cohort_size: int
    looks: tuple[int, ...]
    futility: tuple[int, ...]  # stop for futility with <= this many responses at the look (-1: never)
    efficacy: tuple[int, ...]  # stop for efficacy with >= this many (look + 1: never)
    final_responses: int  # at n_max, declare the treatment promising with >= this many responses
    alpha: float  # exact type I error at p0
    power: float  # exact power at p1
    pet0: float  # probability of early termination for futility at p0
    pet1: float
    en0: float
    en1: float
    target_alpha: float | None = None
    target_beta: float | None = None
    calibrated: bool = False
    meets_targets: bool | None = None
    assurance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["looks"], out["futility"], out["efficacy"] = list(self.looks), list(self.futility), list(self.efficacy)
        out["reference"] = "Lee JJ, Liu DD. Clin Trials 2008;5:93-106"
        return out

    def boundary_table(self) -> str:
        cells = [("–" if lo < 0 else f"<= {lo}", "–" if hi > n else f">= {hi}")
                 for n, lo, hi in zip(self.looks, self.futility, self.efficacy)]
        rows = [[span, *cell] for span, cell in runs(self.looks, cells)]
        rows.append([self.n_max, f"<= {self.final_responses - 1} (not promising)", f">= {self.final_responses} (promising)"])
        return table(["patients evaluated", "stop for futility if responses", "stop for efficacy if responses"], rows)

    def to_text(self) -> str:
        head = (f"Predictive-probability monitoring (Lee & Liu 2008): p0 = {self.p0:g}, p1 = {self.p1:.3f}; "
                f"prior Beta({self.prior_a:.3g}, {self.prior_b:.3g}) (mean {self.prior_mean:.3f}, "
                f"effective sample size {self.prior_ess:g}); theta_T = {self.theta_t:g}, theta_L = {self.theta_l:g}, "
                f"theta_U = {self.theta_u:g}" + (" (theta_T and theta_L searched over Lee & Liu's ranges)" if self.calibrated else "")
                + f"; Nmax = {self.n_max}, looks every {self.cohort_size} patient(s)")
        oc = table(["", "type I error / power", "P(early stop, futility)", "expected N"],
                   [[f"p0 = {self.p0:g}", f"{self.alpha:.4f}", f"{self.pet0:.3f}", f"{self.en0:.1f}"],
                    [f"p1 = {self.p1:.3f}", f"{self.power:.4f}", f"{self.pet1:.3f}", f"{self.en1:.1f}"]])
        notes = []
        if self.assurance is not None:
            notes.append(f"assurance (predictive probability of declaring the treatment promising) = {self.assurance:.3f}")
        if self.meets_targets is False:
            notes.append(f"warning: no theta_T/theta_L in the searched ranges meets alpha <= {self.target_alpha:g} and "
                         f"power >= {1 - self.target_beta:g} at Nmax = {self.n_max}; shown: the most powerful design "
                         "within alpha (or, if none, the smallest type I error); a larger Nmax may be needed")
        return "\n".join([head, self.boundary_table(), oc] + notes)


def _build_many(a, b, p0, p1, n_max, looks, grid_t, grid_l, theta_u, cache, build):
    """All designs of the grid, their operating characteristics propagated in one batch."""
    specs = []
    for tt in grid_t:
        if tt not in cache:
            cache[tt] = _pp_matrix(a, b, n_max, p0, tt, looks)
        s_t, pp = cache[tt]
        for tl in grid_l:
            specs.append((tt, tl, s_t, *_boundaries(pp, looks, tl, theta_u)))
    lower = np.repeat([s[3] for s in specs], 2, axis=0)
    upper = np.repeat([s[4] for s in specs], 2, axis=0)
    rates = np.tile([p0, p1], len(specs))
    low, high, final = propagate(rates, n_max, looks, lower, upper)
    s_t = np.repeat([s[2] for s in specs], 2)
    reject = high.sum(axis=1) + np.where(np.arange(n_max + 1)[None, :] >= s_t[:, None], final, 0.0).sum(axis=1)
    en = (low + high) @ np.asarray(looks, dtype=float) + n_max * final.sum(axis=1)
    stop = low.sum(axis=1)
    out = []
    for i, (tt, tl, st, fut, eff) in enumerate(specs):
        out.append(build(tt, tl, (st, fut, eff, reject[2 * i: 2 * i + 2], stop[2 * i: 2 * i + 2], en[2 * i: 2 * i + 2])))
    return out


def predictive_monitoring(p0: float, p1: float, prior_mean: float, *, prior_ess: float = 2.0, n_max: int,
                          theta_t: float | None = None, theta_l: float | None = None, theta_u: float = 1.0,
                          alpha: float = 0.05, beta: float = 0.2, cohort_size: int = 1, first_look: int | None = None,
                          predictive: Any = None) -> MonitoringDesign:
    """Lee & Liu (2008) predictive-probability design with exact operating characteristics.

    Parameters
    ----------
    p0, p1 : float
        Uninteresting and target response rates.
    prior_mean, prior_ess : float
        The Beta prior as a mean (here: from the pooled evidence) and an effective sample size
        ``a + b`` (default 2 patients, as in Lee & Liu's examples).
    n_max : int
        Maximum sample size (the query uses the Simon design's ``n``).
    theta_t, theta_l, theta_u : float, optional
        Final-success, futility and efficacy thresholds. ``theta_t``/``theta_l`` unset: searched
        over ``THETA_T_GRID`` x ``THETA_L_GRID`` for the smallest EN0 meeting ``alpha`` and
        ``beta``; ``theta_u = 1`` never stops for efficacy.
    cohort_size, first_look : int
        Looks after every ``cohort_size`` patients, starting at ``first_look`` (default: the
        first cohort).
    predictive : optional
        The predictive distribution of the new cohort's rate, for the design's assurance.
    """
    p0, p1 = check_probability("p0", p0), check_probability("p1", p1)
    if p1 <= p0:
        raise UserError(f"p1 ({p1:.3f}) must exceed p0 ({p0:.3f})")
    prior_mean = check_probability("the prior mean", prior_mean)
    prior_ess = float(prior_ess)
    if not prior_ess > 0:
        raise UserError(f"the prior effective sample size must be > 0 (got {prior_ess:g})")
    alpha, beta = check_probability("alpha", alpha, 0.0, 0.5), check_probability("beta", beta)
    n_max = check_n("Nmax", n_max, 2)
    cohort_size = check_n("the cohort size", cohort_size)
    first_look = check_n("the first look", first_look if first_look is not None else cohort_size)
    theta_u = float(theta_u)
    if not 0 < theta_u <= 1:
        raise UserError(f"theta_U must be in (0, 1] (got {theta_u:g})")
    a, b = prior_mean * prior_ess, (1 - prior_mean) * prior_ess
    looks = tuple(range(first_look, n_max, cohort_size))

    cache: dict[float, tuple] = {}

    def build(tt: float, tl: float, computed: tuple | None = None) -> MonitoringDesign:
        if computed is None:
            if tt not in cache:
                cache[tt] = _pp_matrix(a, b, n_max, p0, tt, looks)
            s_t, pp = cache[tt]
            fut, eff = _boundaries(pp, looks, tl, theta_u)
            rej, stop, en = _operating(np.array([p0, p1]), n_max, looks, fut, eff, s_t)
        else:
            s_t, fut, eff, rej, stop, en = computed
        return MonitoringDesign(p0, p1, a, b, prior_mean, prior_ess, tt, tl, theta_u, n_max, cohort_size, looks,
                                tuple(fut), tuple(eff), s_t, float(rej[0]), float(rej[1]), float(stop[0]),
                                float(stop[1]), float(en[0]), float(en[1]), alpha, beta)

    if theta_t is not None and theta_l is not None:
        design = build(check_probability("theta_T", theta_t), check_probability("theta_L", theta_l))
        design = replace(design, meets_targets=design.alpha <= alpha and design.power >= 1 - beta)
    else:
        grid_t = THETA_T_GRID if theta_t is None else (check_probability("theta_T", theta_t),)
        grid_l = THETA_L_GRID if theta_l is None else (check_probability("theta_L", theta_l),)
        designs = _build_many(a, b, p0, p1, n_max, looks, grid_t, grid_l, theta_u, cache, build)
        ok = [d for d in designs if d.alpha <= alpha and d.power >= 1 - beta]
        sized = [d for d in designs if d.alpha <= alpha]
        if ok:
            design = replace(min(ok, key=lambda d: (d.en0, -d.power)), calibrated=True, meets_targets=True)
        else:  # closest: the most powerful design within alpha, else the smallest type I error
            best = max(sized, key=lambda d: (d.power, -d.en0)) if sized else min(designs, key=lambda d: d.alpha)
            design = replace(best, calibrated=True, meets_targets=False)
    if predictive is not None:
        pred = as_predictive(predictive).compressed(500)
        rej, _, _ = _operating(pred.nodes, n_max, looks, design.futility, design.efficacy, design.final_responses)
        design = replace(design, assurance=float(np.dot(pred.weights, rej)))
    return design
