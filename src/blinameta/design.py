"""Trial-design helpers: assurance under a predictive distribution, and Simon two-stage designs.

Assurance (O'Hagan, Stevens & Campbell 2005) is the probability that a new trial of ``n``
patients observes at least ``r`` responses when the response rate itself is uncertain:
:math:`A(n, r) = \\int P(X \\ge r \\mid n, p)\\, f(p)\\, dp`, with :math:`f` the posterior
predictive density of the rate in a new study. Here :math:`f` is a discrete mixture (nodes and
weights), e.g. from the exact posterior grid with Gauss-Hermite nodes over the random effect.

Simon's two-stage designs (Simon 1989, Controlled Clinical Trials 10:1-10): stage 1 enrols
``n1`` patients and stops for futility with ``r1`` or fewer responses; otherwise ``n - n1`` more
are enrolled and the treatment is declared promising with more than ``r`` responses in total.
Among designs with type I error at most ``alpha`` under ``p0`` and power at least ``1 - beta``
under ``p1``, the *optimal* design minimises the expected sample size under ``p0`` and the
*minimax* design minimises ``n`` (then the expected sample size). Both are found exactly by
enumeration with exact binomial probabilities.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import bdtr, bdtrc
from scipy.stats import binom

from blinameta.errors import UserError

__all__ = [
    "assurance",
    "smallest_n_for_assurance",
    "assurance_curve",
    "SimonDesign",
    "SimonResult",
    "simon_two_stage",
]


def _binom_sf(r: int, n: int, p: np.ndarray) -> np.ndarray:
    """P(X >= r) for X ~ Binomial(n, p), vectorised over p."""
    if r <= 0:
        return np.ones_like(p, dtype=float)
    if r > n:
        return np.zeros_like(p, dtype=float)
    return bdtrc(r - 1, n, p)


def assurance(n: int, r: int, p_nodes: np.ndarray, weights: np.ndarray) -> float:
    """Probability of at least ``r`` responses among ``n`` under the mixture ``(p_nodes, weights)``.

    Parameters
    ----------
    n, r : int
        Patients and the responses required (``0 <= r``; ``r > n`` gives 0).
    p_nodes, weights : array_like
        Nodes of the predictive distribution of the response rate and their weights (any
        shape, weights summing to 1).
    """
    if n < 1:
        raise UserError(f"the number of patients must be at least 1 (got {n})")
    if r < 0:
        raise UserError(f"the number of responses must be at least 0 (got {r})")
    p = np.clip(np.asarray(p_nodes, dtype=float), 0.0, 1.0)
    w = np.asarray(weights, dtype=float)
    return float(np.sum(w * _binom_sf(int(r), int(n), p)) / np.sum(w))


def _compress(p_nodes: np.ndarray, weights: np.ndarray, bins: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """A mixture with many nodes as at most ``bins`` nodes (weighted means within quantile bins)."""
    p = np.clip(np.asarray(p_nodes, dtype=float).ravel(), 0.0, 1.0)
    w = np.asarray(weights, dtype=float).ravel()
    w = w / w.sum()
    if p.size <= bins:
        return p, w
    order = np.argsort(p)
    p, w = p[order], w[order]
    edges = np.searchsorted(np.cumsum(w), np.linspace(0, 1, bins + 1)[1:-1])
    groups = np.split(np.arange(p.size), np.unique(edges))
    wb = np.array([w[g].sum() for g in groups if g.size])
    pb = np.array([np.dot(w[g], p[g]) / w[g].sum() if w[g].sum() > 0 else p[g].mean() for g in groups if g.size])
    return pb, wb


def assurance_curve(rate: float, p_nodes: np.ndarray, weights: np.ndarray, n_max: int = 500) -> np.ndarray:
    """Assurance of observing a response rate of at least ``rate`` (``r = ceil(rate n)``), n = 1..n_max."""
    p, w = _compress(p_nodes, weights)
    n = np.arange(1, n_max + 1)
    r = np.ceil(rate * n - 1e-12).astype(int)
    sf = np.where(r[:, None] <= 0, 1.0, bdtrc(np.maximum(r - 1, 0)[:, None], n[:, None], p[None, :]))
    return sf @ w


def smallest_n_for_assurance(
    target: float, rate: float, p_nodes: np.ndarray, weights: np.ndarray, *, n_max: int = 500
) -> tuple[int, int, float] | None:
    """Smallest ``n`` from which on the assurance of observing a rate >= ``rate`` stays >= ``target``.

    The responses required are ``r = ceil(rate * n)``. Because ``r`` is rounded up, the
    assurance is a saw-tooth in ``n`` (one responder of one patient is easy); the answer is the
    smallest ``n`` such that every ``n' >= n`` up to ``n_max`` reaches the target, so that a
    slightly larger trial never has less assurance. Returns ``(n, r, assurance at n)`` computed
    with the full mixture, or ``None`` if the target is not held up to ``n_max`` (as ``n``
    grows the assurance tends to the predictive probability that the rate exceeds ``rate``).
    """
    if not 0 < target < 1:
        raise UserError(f"the assurance target must be between 0 and 1 (got {target})")
    if not 0 < rate < 1:
        raise UserError(f"the response rate must be between 0 and 1 (got {rate})")
    curve = assurance_curve(rate, p_nodes, weights, n_max)
    below = np.flatnonzero(curve < target)
    if below.size and below[-1] == n_max - 1:
        return None
    n = int(below[-1]) + 2 if below.size else 1
    r = math.ceil(rate * n - 1e-12)
    return n, r, assurance(n, r, p_nodes, weights)


@dataclass(frozen=True)
class SimonDesign:
    """One two-stage design: stop after stage 1 with ``<= r1`` responses of ``n1``; positive with ``> r`` of ``n``."""

    n1: int
    r1: int
    n: int
    r: int
    en0: float
    pet0: float
    alpha: float
    power: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class SimonResult:
    """Optimal and minimax designs for ``(p0, p1, alpha, beta)``."""

    p0: float
    p1: float
    alpha: float
    beta: float
    optimal: SimonDesign
    minimax: SimonDesign

    def to_dict(self) -> dict:
        return {"p0": self.p0, "p1": self.p1, "alpha": self.alpha, "beta": self.beta,
                "optimal": self.optimal.to_dict(), "minimax": self.minimax.to_dict()}


def _reject_matrix(n1: int, n: int, p: float) -> np.ndarray:
    """R[r1, r] = P(X1 > r1 and X1 + X2 > r) for r1 in 0..n1, r in 0..n."""
    n2 = n - n1
    x1 = np.arange(n1 + 1)
    b1 = binom.pmf(x1, n1, p)
    r = np.arange(n + 1)
    j = r[None, :] - x1[:, None]  # X2 must exceed j
    s2 = np.where(j < 0, 1.0, np.where(j >= n2, 0.0, bdtrc(np.clip(j, 0, max(n2 - 1, 0)), n2, p)))
    if n2 == 0:
        s2 = (j < 0).astype(float)
    contrib = b1[:, None] * s2  # (n1+1, n+1)
    # sum over x1 > r1: reverse cumulative sum, shifted by one
    tail = np.cumsum(contrib[::-1], axis=0)[::-1]
    out = np.zeros((n1 + 1, n + 1))
    out[:-1] = tail[1:]
    return out


def simon_two_stage(p0: float, p1: float, alpha: float, beta: float, *, n_max: int | None = None) -> SimonResult:
    """Simon's optimal and minimax two-stage designs, by exact enumeration.

    Parameters
    ----------
    p0, p1 : float
        Uninteresting and target response rates (``0 < p0 < p1 < 1``).
    alpha, beta : float
        Type I error under ``p0`` and type II error under ``p1``.
    n_max : int, optional
        Largest total sample size searched (default: 1.5 times the single-stage exact size,
        at least 20).
    """
    for name, value in (("p0", p0), ("p1", p1), ("alpha", alpha), ("beta", beta)):
        if not 0 < value < 1:
            raise UserError(f"{name} must be between 0 and 1 (got {value})")
    if p1 <= p0:
        raise UserError(f"p1 ({p1:.3f}) must exceed p0 ({p0:.3f}): the pooled rate is not above the uninteresting rate")
    if n_max is None:
        single = _single_stage_n(p0, p1, alpha, beta, limit=SIMON_N_LIMIT)
        n_max = min(SIMON_N_LIMIT, max(20, int(math.ceil(1.5 * single)) + 5))
    best_opt: SimonDesign | None = None
    best_minimax: SimonDesign | None = None
    for n in range(2, n_max + 1):
        for n1 in range(1, n):
            rej0 = _reject_matrix(n1, n, p0)
            rej1 = _reject_matrix(n1, n, p1)
            ok = (rej0 <= alpha + 1e-12) & (rej1 >= 1 - beta - 1e-12)
            if not ok.any():
                continue
            r1s, rs = np.nonzero(ok)
            keep = rs >= r1s
            r1s, rs = r1s[keep], rs[keep]
            if r1s.size == 0:
                continue
            pet0 = bdtr(r1s, n1, p0)
            en0 = n1 + (1 - pet0) * (n - n1)
            i = int(np.lexsort((rs, r1s, en0))[0])
            design = SimonDesign(n1, int(r1s[i]), n, int(rs[i]), float(en0[i]), float(pet0[i]),
                                 float(rej0[r1s[i], rs[i]]), float(rej1[r1s[i], rs[i]]))
            if best_opt is None or design.en0 < best_opt.en0 - 1e-12:
                best_opt = design
            if best_minimax is None:
                best_minimax = design
            elif design.n == best_minimax.n and design.en0 < best_minimax.en0 - 1e-12:
                best_minimax = design
    if best_opt is None or best_minimax is None:
        raise UserError(f"no two-stage design with n <= {n_max} meets alpha = {alpha} and beta = {beta}")
    return SimonResult(p0, p1, alpha, beta, best_opt, best_minimax)


#: Largest total sample size a two-stage design is searched for (the search is exhaustive).
SIMON_N_LIMIT = 150


def _single_stage_n(p0: float, p1: float, alpha: float, beta: float, limit: int = 5000) -> int:
    for n in range(1, limit + 1):
        r = int(binom.isf(alpha, n, p0))  # smallest r with P(X > r | p0) <= alpha
        while binom.sf(r, n, p0) > alpha:
            r += 1
        if binom.sf(r, n, p1) >= 1 - beta:
            return n
    raise UserError(
        f"p1 - p0 = {p1 - p0:.3f} is too small: even a single-stage design needs more than {limit} patients "
        f"for alpha = {alpha} and power {1 - beta}; choose a lower p0")
