"""Bayesian stopping boundaries for toxicity (Thall, Simon & Estey 1995 style, one outcome).

The toxicity rate has a Beta prior whose mean is the pooled rate from the evidence and whose
effective sample size ``a + b`` is deliberately small (default 10 patients): the full pooled
information would swamp the trial's own data and delay any stop. After ``x`` toxicities in
``n`` patients the trial stops when :math:`P(p > \\text{limit} \\mid x, n) > \\text{threshold}`,
with :math:`p \\mid x, n \\sim \\text{Beta}(a + x, b + n - x)`. Since that probability rises with
``x``, each look has a boundary: stop with ``x >= b_n`` toxicities.

Operating characteristics are exact: the number of toxicities is propagated patient by
patient and the mass that crosses a boundary is absorbed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special

from blinameta.design._paths import propagate
from blinameta.design._table import check_n, check_probability, runs, table
from blinameta.errors import UserError

__all__ = ["SafetyBoundaries", "safety_boundaries"]


@dataclass(frozen=True)
class SafetyBoundaries:
    """Stopping boundaries for one toxicity and their exact operating characteristics."""

    outcome: str
    limit: float
    threshold: float
    prior_a: float
    prior_b: float
    prior_mean: float
    prior_ess: float
    n_max: int
    cohort_size: int
    looks: tuple[int, ...]
    boundary: tuple[int, ...]  # stop with >= this many toxicities at the look (look + 1: cannot stop)
    true_rates: tuple[float, ...]
    p_stop: tuple[float, ...]
    expected_n: tuple[float, ...]
    p_stop_half: tuple[float, ...]  # P(stop by the look at half of n_max)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("looks", "boundary", "true_rates", "p_stop", "expected_n", "p_stop_half"):
            out[key] = list(out[key])
        out["operating_characteristics"] = [
            {"true_rate": r, "p_stop": s, "expected_n": e, "p_stop_by_half": h}
            for r, s, e, h in zip(self.true_rates, self.p_stop, self.expected_n, self.p_stop_half)]
        return out

    def boundary_table(self) -> str:
        """Looks where stopping is possible, merged into runs with the same boundary."""
        pairs = [(n, f">= {b}") for n, b in zip(self.looks, self.boundary) if b <= n]
        rows = [[span, cell] for span, cell in runs([n for n, _ in pairs], [c for _, c in pairs])]
        return table(["patients evaluated", f"stop if {self.outcome} events"], rows)

    def to_text(self) -> str:
        head = (f"Safety stopping rule for {self.outcome}: stop if P(rate > {self.limit:g} | data) > {self.threshold:g}; "
                f"prior Beta({self.prior_a:.3g}, {self.prior_b:.3g}) (mean {self.prior_mean:.3f} from the pooled evidence, "
                f"effective sample size {self.prior_ess:g} patients); looks every {self.cohort_size} patient(s) up to {self.n_max}")
        oc = table(["true rate", "P(stop)", f"P(stop by {self.n_max // 2})", "expected N"],
                   [[f"{r:.3f}", f"{s:.3f}", f"{h:.3f}", f"{e:.1f}"]
                    for r, s, e, h in zip(self.true_rates, self.p_stop, self.expected_n, self.p_stop_half)])
        return "\n".join([head, self.boundary_table(), oc])


def _absorb(p: np.ndarray, n_max: int, looks, boundary, half: int):
    """Exact P(stop), E[N] and P(stop by ``half`` patients) at each rate in ``p``."""
    _, high, final = propagate(p, n_max, looks, [-1] * len(looks), boundary)
    n = np.asarray(looks, dtype=float)
    return high.sum(axis=1), high @ n + n_max * final.sum(axis=1), high[:, n <= half].sum(axis=1)


def safety_boundaries(outcome: str, limit: float, prior_mean: float, *, n_max: int, prior_ess: float = 10.0,
                      threshold: float = 0.9, cohort_size: int = 1, first_look: int | None = None,
                      true_rates: Any = None) -> SafetyBoundaries:
    """Bayesian toxicity stopping boundaries with exact operating characteristics.

    Parameters
    ----------
    outcome : str
        Name of the toxicity (for the table).
    limit : float
        The highest acceptable toxicity rate.
    prior_mean, prior_ess : float
        Beta prior as mean (the pooled rate) and effective sample size (default 10 patients).
    n_max : int
        Patients in the trial.
    threshold : float
        Stop when the posterior probability that the rate exceeds ``limit`` passes this
        (default 0.9).
    cohort_size, first_look : int
        Looks after every ``cohort_size`` patients from ``first_look`` (default: the first cohort)
        up to and including ``n_max``.
    true_rates : sequence of float, optional
        Rates for the operating characteristics (default: half the limit, the prior mean, the
        limit, 1.5 and 2 times the limit).
    """
    limit = check_probability("the toxicity limit", limit)
    threshold = check_probability("the stopping threshold", threshold)
    prior_mean = check_probability("the prior mean", prior_mean)
    if not float(prior_ess) > 0:
        raise UserError(f"the prior effective sample size must be > 0 (got {prior_ess})")
    prior_ess = float(prior_ess)
    n_max = check_n("the number of patients", n_max)
    cohort_size = check_n("the cohort size", cohort_size)
    first_look = check_n("the first look", first_look if first_look is not None else cohort_size)
    a, b = prior_mean * prior_ess, (1 - prior_mean) * prior_ess
    looks = tuple(range(first_look, n_max + 1, cohort_size))
    if looks and looks[-1] != n_max:
        looks = looks + (n_max,)
    bound = []
    for n in looks:
        x = np.arange(n + 1)
        over = np.flatnonzero(special.betaincc(a + x, b + n - x, limit) > threshold)
        bound.append(int(over[0]) if over.size else n + 1)
    if true_rates is None:
        true_rates = sorted({round(v, 4) for v in (limit / 2, prior_mean, limit, 1.5 * limit, 2 * limit) if 0 < v < 1})
    rates = np.array([check_probability("a true rate", r) for r in true_rates])
    stop, en, half = _absorb(rates, n_max, looks, bound, n_max // 2)
    return SafetyBoundaries(outcome, limit, threshold, a, b, prior_mean, prior_ess, n_max, cohort_size, looks,
                            tuple(bound), tuple(float(r) for r in rates), tuple(map(float, stop)),
                            tuple(map(float, en)), tuple(map(float, half)))
