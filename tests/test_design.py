"""Trial-design helpers against published tables and exact computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from blinameta.design import assurance, simon_two_stage, smallest_n_for_assurance
from blinameta.errors import UserError

# Simon R. Optimal two-stage designs for phase II clinical trials. Control Clin Trials 1989;10:1-10,
# Table 1: (p0, p1, alpha, beta) -> optimal (r1/n1, r/n, EN(p0), PET(p0)), minimax (same).
SIMON_1989_TABLE_1 = [
    ((0.05, 0.25, 0.05, 0.20), (0, 9, 2, 17, 12.0, 0.63), (0, 12, 2, 16, 13.8, 0.54)),
    ((0.05, 0.25, 0.05, 0.10), (0, 9, 3, 30, 16.8, 0.63), (0, 15, 3, 25, 20.4, 0.46)),
    ((0.10, 0.30, 0.05, 0.20), (1, 10, 5, 29, 15.0, 0.74), (1, 15, 5, 25, 19.5, 0.55)),
    ((0.10, 0.30, 0.05, 0.10), (2, 18, 6, 35, 22.5, 0.73), (2, 22, 6, 33, 26.2, 0.62)),
    ((0.20, 0.40, 0.05, 0.20), (3, 13, 12, 43, 20.6, 0.75), (4, 18, 10, 33, 22.3, 0.72)),
    ((0.30, 0.50, 0.05, 0.20), (5, 15, 18, 46, 23.6, 0.72), (6, 19, 16, 39, 25.7, 0.67)),
    ((0.40, 0.60, 0.05, 0.20), (7, 16, 23, 46, 24.5, 0.72), (17, 34, 20, 39, 34.4, 0.91)),
]


@pytest.mark.parametrize("args, optimal, minimax", SIMON_1989_TABLE_1, ids=lambda v: str(v))
def test_simon_designs_match_simon_1989_table_1(args, optimal, minimax):
    result = simon_two_stage(*args)
    for design, expected in ((result.optimal, optimal), (result.minimax, minimax)):
        r1, n1, r, n, en0, pet0 = expected
        assert (design.r1, design.n1, design.r, design.n) == (r1, n1, r, n)
        assert round(design.en0, 1) == en0
        assert round(design.pet0, 2) == pet0
        assert design.alpha <= args[2] and design.power >= 1 - args[3]


def _brute_force(p0, p1, alpha, beta, n_max):
    """Plain-loop enumeration with scipy.stats.binom (independent of the vectorised code)."""
    best_en, best_n = None, None
    for n in range(2, n_max + 1):
        for n1 in range(1, n):
            n2 = n - n1
            for r1 in range(0, n1 + 1):
                pet0 = stats.binom.cdf(r1, n1, p0)
                for r in range(r1, n + 1):
                    def reject(p):
                        return sum(stats.binom.pmf(x1, n1, p) * stats.binom.sf(r - x1, n2, p) for x1 in range(r1 + 1, n1 + 1))
                    if reject(p0) <= alpha and reject(p1) >= 1 - beta:
                        en0 = n1 + (1 - pet0) * n2
                        if best_en is None or en0 < best_en[0] - 1e-12:
                            best_en = (en0, n1, r1, n, r)
                        if best_n is None or (n, en0) < (best_n[0], best_n[1] - 1e-12):
                            best_n = (n, en0)
                        break  # larger r only lowers power
    return best_en, best_n


def test_simon_optimal_equals_brute_force_enumeration():
    args = (0.2, 0.5, 0.1, 0.2)
    result = simon_two_stage(*args, n_max=16)
    best_en, best_n = _brute_force(*args, n_max=16)
    assert result.optimal.en0 == pytest.approx(best_en[0], abs=1e-12)
    assert (result.optimal.n1, result.optimal.r1, result.optimal.n, result.optimal.r) == best_en[1:]
    assert (result.minimax.n, result.minimax.en0) == (best_n[0], pytest.approx(best_n[1], abs=1e-12))


def test_simon_rejects_p1_not_above_p0():
    with pytest.raises(UserError, match="must exceed p0"):
        simon_two_stage(0.5, 0.4, 0.05, 0.2)


def _beta_nodes(a, b, m=80):
    x, w = special.roots_jacobi(m, b - 1, a - 1)  # weight (1-x)^(b-1) (1+x)^(a-1) on [-1, 1]
    return (1 + x) / 2, w / w.sum()


@pytest.mark.parametrize("a, b, n, r", [(2.0, 3.0, 30, 15), (8.5, 7.2, 20, 10), (1.0, 1.0, 12, 0), (3.0, 9.0, 40, 41)])
def test_assurance_equals_beta_binomial(a, b, n, r):
    nodes, weights = _beta_nodes(a, b)
    exact = stats.betabinom.sf(r - 1, n, a, b) if r > 0 else 1.0
    assert assurance(n, r, nodes, weights) == pytest.approx(exact, abs=1e-12)


def test_assurance_against_monte_carlo():
    rng = np.random.default_rng(7)
    mu, tau = rng.normal(0.2, 0.3, 200), np.abs(rng.normal(0.5, 0.1, 200))
    z, gw = np.polynomial.hermite_e.hermegauss(40)
    nodes = 1 / (1 + np.exp(-(mu[:, None] + tau[:, None] * z)))
    weights = np.full(200, 1 / 200)[:, None] * (gw / gw.sum())
    value = assurance(30, 17, nodes, weights)
    draws = 400_000
    i = rng.integers(0, 200, draws)
    p = 1 / (1 + np.exp(-(mu[i] + tau[i] * rng.standard_normal(draws))))
    hits = rng.binomial(30, p) >= 17
    se = hits.std() / np.sqrt(draws)
    assert abs(value - hits.mean()) < 4 * se


def test_smallest_n_is_where_the_assurance_stays_above_target():
    """Checked against the exact beta-binomial assurance at every n up to n_max."""
    nodes, weights = _beta_nodes(12.0, 8.0)
    n_max = 300
    n, r, value = smallest_n_for_assurance(0.7, 0.45, nodes, weights, n_max=n_max)
    exact = np.array([stats.betabinom.sf(int(np.ceil(0.45 * m - 1e-12)) - 1, m, 12.0, 8.0) for m in range(1, n_max + 1)])
    assert value == pytest.approx(exact[n - 1], abs=1e-12) and r == int(np.ceil(0.45 * n - 1e-12))
    assert (exact[n - 1:] >= 0.7).all()          # holds from n on
    assert exact[n - 2] < 0.7                     # and not from n - 1
    assert (exact[: n - 1] >= 0.7).any()          # the saw-tooth: a tiny trial can reach it by chance


def test_smallest_n_none_when_unreachable():
    nodes, weights = _beta_nodes(2.0, 20.0)
    assert smallest_n_for_assurance(0.9, 0.5, nodes, weights, n_max=200) is None
