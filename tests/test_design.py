"""Trial-design helpers against published tables and independent exact computations.

Independent references used here (never the module's own output):
* Simon R. Optimal two-stage designs for phase II clinical trials. Control Clin Trials
  1989;10:1-10, Table 1, and plain enumerations written in this file;
* Lee JJ, Liu DD. A predictive probability design for phase II cancer clinical trials. Clin
  Trials 2008;5:93-106, Table 1 (PP = 0.5656), and the ph2bye R package's PredP example;
* numerical integration (scipy.integrate.quad) of the exact test's power over the predictive
  density, beta-binomial closed forms, and enumeration of all 2^n response sequences.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from blinameta.design import (
    Predictive,
    assurance,
    assurance_test,
    critical_responses,
    predicted_counts,
    predictive_monitoring,
    safety_boundaries,
    sample_size_for_assurance,
    simon_two_stage,
)
from blinameta.design.monitoring import predictive_probability
from blinameta.errors import UserError

# Simon 1989, Table 1: (p0, p1, alpha, beta) -> optimal (r1, n1, r, n, EN(p0), PET(p0)), minimax (same).
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
    assert result.optimal_certified
    for design, expected in ((result.optimal, optimal), (result.minimax, minimax)):
        r1, n1, r, n, en0, pet0 = expected
        assert (design.r1, design.n1, design.r, design.n) == (r1, n1, r, n)
        assert round(design.en0, 1) == en0
        assert round(design.pet0, 2) == pet0
        assert design.alpha <= args[2] and design.power >= 1 - args[3]


def _pmf(x, n, p):
    return math.comb(n, x) * p ** x * (1 - p) ** (n - x) if 0 <= x <= n else 0.0


def _reject(n1, r1, n, r, p):
    """Simon's equation, in plain Python: sum over x1 > r1 of b(x1; n1, p) P(X2 > r - x1)."""
    n2 = n - n1
    return sum(_pmf(x1, n1, p) * sum(_pmf(x2, n2, p) for x2 in range(max(r - x1 + 1, 0), n2 + 1))
               for x1 in range(r1 + 1, n1 + 1))


def _brute_force(p0, p1, alpha, beta, n_max):
    """Plain-loop enumeration of every (n, n1, r1, r) (independent of the vectorised code)."""
    best_en, best_n = None, None
    for n in range(2, n_max + 1):
        for n1 in range(1, n):
            for r1 in range(0, n1):
                pet0 = sum(_pmf(x, n1, p0) for x in range(r1 + 1))
                for r in range(r1, n + 1):
                    if _reject(n1, r1, n, r, p0) <= alpha:
                        if _reject(n1, r1, n, r, p1) >= 1 - beta:
                            en0 = n1 + (1 - pet0) * (n - n1)
                            if best_en is None or en0 < best_en[0] - 1e-12:
                                best_en = (en0, n1, r1, n, r)
                            if best_n is None or (n, en0) < (best_n[0], best_n[1] - 1e-12):
                                best_n = (n, en0)
                        break  # the smallest r meeting alpha has the most power
    return best_en, best_n


def test_simon_equals_plain_enumeration_small_case():
    args = (0.2, 0.5, 0.1, 0.2)
    result = simon_two_stage(*args, n_max=18)
    best_en, best_n = _brute_force(*args, n_max=18)
    assert result.optimal.en0 == pytest.approx(best_en[0], abs=1e-12)
    assert (result.optimal.n1, result.optimal.r1, result.optimal.n, result.optimal.r) == best_en[1:]
    assert (result.minimax.n, result.minimax.en0) == (best_n[0], pytest.approx(best_n[1], abs=1e-12))


def _vectorised_enumeration(p0, p1, alpha, beta, n_max, en_below):
    """Every (n, n1, r1, r) with n <= n_max and n1 < en_below, by full matrices per (n, n1).

    Returns the feasible design with the smallest EN0 (a design with n1 >= en_below cannot
    have EN0 < en_below, as EN0 >= n1).
    """
    best = None
    m_ = np.arange(n_max + 1)[:, None]
    j_ = np.arange(-n_max - 1, n_max + 1)[None, :]  # column c holds j = c - n_max - 1
    pmf = {p: stats.binom.pmf(np.arange(n_max + 1)[None, :], m_, p) for p in (p0, p1)}
    sf = {p: stats.binom.sf(j_, m_, p) for p in (p0, p1)}  # P(X > j)
    for n in range(2, n_max + 1):
        for n1 in range(1, min(n, int(np.ceil(en_below)))):
            x1 = np.arange(n1 + 1)
            r = np.arange(n + 1)
            out = []
            for p in (p0, p1):
                s2 = sf[p][n - n1][r[None, :] - x1[:, None] + n_max + 1]  # P(X2 > r - x1)
                m = pmf[p][n1, : n1 + 1][:, None] * s2
                tail = np.cumsum(m[::-1], axis=0)[::-1]
                rej = np.zeros_like(tail)
                rej[:-1] = tail[1:]  # rej[r1] = sum over x1 > r1
                out.append(rej)
            ok = (out[0] <= alpha) & (out[1] >= 1 - beta) & (r[None, :] >= x1[:, None])
            ok[n1] = False
            if ok.any():
                r1s = np.flatnonzero(ok.any(axis=1))
                pet0 = stats.binom.cdf(r1s, n1, p0)
                en0 = n1 + (1 - pet0) * (n - n1)
                i = int(np.argmin(en0))
                if best is None or en0[i] < best[0] - 1e-12:
                    best = (float(en0[i]), n1, int(r1s[i]), n, int(np.argmax(out[0][r1s[i]] <= alpha)))
    return best


@pytest.mark.slow
def test_simon_optimum_above_150_equals_enumeration():
    """Audit D7: p0 = 0.3, p1 = 0.4 has its optimum at n = 168 (19/59, 59/168, EN0 91.68)."""
    result = simon_two_stage(0.3, 0.4, 0.05, 0.2)
    d = result.optimal
    assert (d.r1, d.n1, d.r, d.n) == (19, 59, 59, 168)
    assert d.en0 == pytest.approx(91.68, abs=0.005)
    assert d.alpha == pytest.approx(0.0499, abs=5e-5) and d.power == pytest.approx(0.8017, abs=5e-5)
    assert result.optimal_certified and result.n_max == 300
    best = _vectorised_enumeration(0.3, 0.4, 0.05, 0.2, n_max=200, en_below=d.en0 + 1e-6)
    assert best[1:] == (59, 19, 168, 59)
    assert best[0] == pytest.approx(d.en0, abs=1e-10)


def test_simon_below_the_optimum_says_it_is_not_certified():
    result = simon_two_stage(0.3, 0.4, 0.05, 0.2, n_max=150)
    assert not result.optimal_certified
    assert (result.optimal.n, result.optimal.n1, result.optimal.r1, result.optimal.r) == (148, 65, 20, 53)
    assert result.optimal.en0 == pytest.approx(97.12, abs=0.005)
    assert "raise --simon-n-max" in result.warning
    assert "best up to n=150" in result.to_text()


def test_simon_design_probabilities_and_assurance():
    pred = Predictive.beta(9.0, 7.0)
    result = simon_two_stage(0.3, 0.5, 0.05, 0.2, predictive=pred)
    d = result.optimal
    assert _reject(d.n1, d.r1, d.n, d.r, 0.3) == pytest.approx(d.alpha, abs=1e-12)
    assert _reject(d.n1, d.r1, d.n, d.r, 0.5) == pytest.approx(d.power, abs=1e-12)
    quad, _ = integrate.quad(lambda p: _reject(d.n1, d.r1, d.n, d.r, p) * stats.beta.pdf(p, 9.0, 7.0), 0, 1,
                             epsabs=1e-11, limit=200)
    assert d.assurance == pytest.approx(quad, abs=1e-8)


def test_simon_rejects_p1_not_above_p0_and_bad_values():
    with pytest.raises(UserError, match="must exceed p0"):
        simon_two_stage(0.5, 0.4, 0.05, 0.2)
    with pytest.raises(UserError, match=r"alpha must be in \(0, 0.5\)"):
        simon_two_stage(0.3, 0.5, 0.6, 0.2)
    with pytest.raises(UserError, match="too small"):
        simon_two_stage(0.5, 0.538, 0.05, 0.2)


# --- assurance of the exact test -------------------------------------------------------------

def _critical_loop(n, p0, alpha):
    """Smallest r with P(X >= r | n, p0) <= alpha, by scanning r = 0..n+1 with scipy."""
    sf = stats.binom.sf(np.arange(-1, n + 1), n, p0)  # P(X >= r) for r = 0..n+1
    return int(np.argmax(sf <= alpha))


@pytest.mark.parametrize("n, p0, alpha", [(1, 0.3, 0.05), (5, 0.3, 0.05), (30, 0.3, 0.05), (30, 0.3, 0.1),
                                          (120, 0.05, 0.025), (500, 0.6, 0.01)])
def test_critical_responses_equal_a_plain_search(n, p0, alpha):
    assert critical_responses(n, p0, alpha) == _critical_loop(n, p0, alpha)


def _logit_normal_nodes(mu, tau, m=60):
    z, w = np.polynomial.hermite_e.hermegauss(m)
    return 1 / (1 + np.exp(-(mu + tau * z))), w / w.sum()


@pytest.mark.parametrize("n, p0, alpha", [(30, 0.3, 0.05), (44, 0.4, 0.05), (12, 0.2, 0.1)])
def test_assurance_test_equals_integrated_power(n, p0, alpha):
    """A = integral of P(X >= r | n, p) f(p) dp, with f logit-normal, by scipy.integrate.quad."""
    mu, tau = 0.2, 0.6
    r = _critical_loop(n, p0, alpha)

    def density(p):  # logit-normal density of the new cohort's rate
        return stats.norm.pdf((np.log(p / (1 - p)) - mu) / tau) / (tau * p * (1 - p))

    quad, _ = integrate.quad(lambda p: stats.binom.sf(r - 1, n, p) * density(p), 0, 1, epsabs=1e-12, limit=200)
    result = assurance_test(n, p0, _logit_normal_nodes(mu, tau), alpha=alpha)
    assert result.critical_responses == r
    assert result.probability == pytest.approx(quad, abs=1e-7)
    assert result.size == pytest.approx(stats.binom.sf(r - 1, n, p0), abs=1e-14)


def test_assurance_test_from_draws_and_from_a_distribution():
    dist = stats.beta(8.0, 9.0)
    exact = stats.betabinom.sf(_critical_loop(25, 0.3, 0.05) - 1, 25, 8.0, 9.0)
    assert assurance_test(25, 0.3, Predictive.beta(8.0, 9.0)).probability == pytest.approx(exact, abs=1e-12)
    assert assurance_test(25, 0.3, dist).probability == pytest.approx(exact, abs=1e-4)
    draws = dist.rvs(200_000, random_state=np.random.default_rng(3))
    assert assurance_test(25, 0.3, draws).probability == pytest.approx(exact, abs=5e-3)


@pytest.mark.parametrize("a, b, n, r", [(2.0, 3.0, 30, 15), (8.5, 7.2, 20, 10), (1.0, 1.0, 12, 0), (3.0, 9.0, 40, 41)])
def test_assurance_of_r_responses_equals_beta_binomial(a, b, n, r):
    exact = stats.betabinom.sf(r - 1, n, a, b) if r > 0 else 1.0
    assert assurance(n, r, Predictive.beta(a, b)) == pytest.approx(exact, abs=1e-12)
    nodes = Predictive.beta(a, b)
    assert assurance(n, r, nodes.nodes, nodes.weights) == pytest.approx(exact, abs=1e-12)  # (nodes, weights) form


def test_sample_size_first_and_stable_against_beta_binomial():
    a, b, p0, target, n_max = 8.0, 6.0, 0.3, 0.75, 300
    exact = np.array([stats.betabinom.sf(_critical_loop(m, p0, 0.05) - 1, m, a, b) for m in range(1, n_max + 1)])
    result = sample_size_for_assurance(target, p0, Predictive.beta(a, b), n_max=n_max)
    first, stable = result.first.n, result.stable.n
    assert first == int(np.argmax(exact >= target)) + 1
    assert (exact[stable - 1:] >= target).all() and exact[stable - 2] < target
    assert first < stable  # the saw-tooth
    assert result.stable.probability == pytest.approx(exact[stable - 1], abs=1e-9)


def test_sample_size_unreachable_says_so_with_the_limit():
    result = sample_size_for_assurance(0.9, 0.3, stats.beta(4.0, 8.0), n_max=200)  # 4000 mid-quantile nodes
    assert result.first is None and result.stable is None and not result.reachable
    assert result.limit == pytest.approx(stats.beta.sf(0.3, 4.0, 8.0), abs=3e-4)
    assert "no trial of up to 200 patients" in result.message and "P(p_new > 0.3)" in result.message


@pytest.mark.parametrize("call, message", [
    (lambda: assurance_test(-3, 0.3, Predictive.beta(2, 2)), "whole number >= 1"),
    (lambda: assurance_test(30, 1.2, Predictive.beta(2, 2)), r"p0 must be in \(0, 1\)"),
    (lambda: assurance_test(30, 0.3, Predictive.beta(2, 2), alpha=0.5), r"alpha must be in \(0, 0.5\)"),
])
def test_bad_values_name_the_valid_range(call, message):
    with pytest.raises(UserError, match=message):
        call()


# --- Lee & Liu predictive-probability monitoring ----------------------------------------------

def test_predictive_probability_reproduces_lee_liu_table_1_and_ph2bye():
    # Lee & Liu 2008, p. 97 (Table 1; also the example of ph2bayes::predprob): p0 = 0.6, Beta(0.6, 0.4),
    # Nmax = 40, 16 of 23 responses, theta_T = 0.9 -> PP = 0.5656
    assert predictive_probability(16, 23, 40, 0.6, 0.4, 0.6, 0.9) == pytest.approx(0.5656, abs=5e-5)
    # ph2bye::PredP(16, 23, 40, 1, 1, 0.5, 0.9) = 0.8871897
    assert predictive_probability(16, 23, 40, 1.0, 1.0, 0.5, 0.9) == pytest.approx(0.8871897, abs=1e-7)


def _sequences(n_max, p):
    for seq in itertools.product((0, 1), repeat=n_max):
        s = sum(seq)
        yield seq, p ** s * (1 - p) ** (n_max - s)


def _monitor_by_enumeration(design, p):
    """Apply the rule to every response sequence (PP recomputed with scipy's beta-binomial)."""
    a, b, n_max, p0 = design.prior_a, design.prior_b, design.n_max, design.p0
    post = special.betaincc(a + np.arange(n_max + 1), b + n_max - np.arange(n_max + 1), p0)
    s_t = int(np.argmax(post > design.theta_t))
    looks = set(design.looks)
    pp = {(n, x): stats.betabinom.sf(s_t - x - 1, n_max - n, a + x, b + n - x) for n in looks for x in range(n + 1)}
    reject = stop = en = 0.0
    for seq, prob in _sequences(n_max, p):
        x = 0
        for n, y in enumerate(seq, start=1):
            x += y
            if n in looks:
                if pp[n, x] < design.theta_l:
                    stop += prob
                    en += n * prob
                    break
                if pp[n, x] > design.theta_u:
                    reject += prob
                    en += n * prob
                    break
        else:
            en += n_max * prob
            reject += prob * (x >= s_t)
    return reject, stop, en


@pytest.mark.parametrize("cohort, theta_u", [(1, 1.0), (3, 0.95)])
def test_monitoring_operating_characteristics_equal_enumeration(cohort, theta_u):
    design = predictive_monitoring(0.2, 0.45, 0.35, n_max=12, theta_t=0.9, theta_l=0.1, theta_u=theta_u,
                                   cohort_size=cohort)
    for p, reject, stop, en in ((0.2, design.alpha, design.pet0, design.en0), (0.45, design.power, design.pet1, design.en1)):
        ref = _monitor_by_enumeration(design, p)
        assert (reject, stop, en) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    if theta_u < 1:
        assert any(e <= n for n, e in zip(design.looks, design.efficacy))


def test_monitoring_calibration_meets_targets_and_prior_is_mean_and_ess():
    design = predictive_monitoring(0.3, 0.5, 0.55, n_max=46, alpha=0.05, beta=0.2)
    assert design.calibrated and design.meets_targets
    assert design.alpha <= 0.05 and design.power >= 0.8
    assert design.prior_a + design.prior_b == pytest.approx(2.0) and design.prior_a / 2.0 == pytest.approx(0.55)
    text = design.to_text()
    assert "Lee & Liu 2008" in text and "| patients evaluated" in text


# --- Bayesian safety boundaries ---------------------------------------------------------------

def test_safety_boundaries_and_operating_characteristics_equal_enumeration():
    rule = safety_boundaries("CRS grade >= 3", 0.2, 0.05, n_max=14, prior_ess=10, threshold=0.8, cohort_size=2,
                             true_rates=[0.05, 0.2, 0.35])
    a, b = 0.5, 9.5
    for n, bound in zip(rule.looks, rule.boundary):
        post = special.betaincc(a + np.arange(n + 1), b + n - np.arange(n + 1), 0.2)
        assert bound == (int(np.argmax(post > 0.8)) if (post > 0.8).any() else n + 1)
    for rate, p_stop, en in zip(rule.true_rates, rule.p_stop, rule.expected_n):
        ref_stop = ref_en = 0.0
        for seq, prob in _sequences(14, rate):
            x, stopped = 0, False
            for n, y in enumerate(seq, start=1):
                x += y
                if n in rule.looks and x >= rule.boundary[rule.looks.index(n)]:
                    ref_stop += prob
                    ref_en += n * prob
                    stopped = True
                    break
            if not stopped:
                ref_en += 14 * prob
        assert (p_stop, en) == pytest.approx((ref_stop, ref_en), rel=1e-10, abs=1e-12)
    assert rule.p_stop[0] < rule.p_stop[1] < rule.p_stop[2]


# --- predicted counts -------------------------------------------------------------------------

def test_predicted_counts_equal_beta_binomial_quantiles():
    a, b, n = 6.0, 5.0, 30
    row = predicted_counts(n, {"CR": Predictive.beta(a, b)}).rows[0]
    dist = stats.betabinom(n, a, b)
    assert row.mean == pytest.approx(dist.mean(), abs=1e-9)
    assert row.pi80 == (int(dist.ppf(0.10)), int(dist.ppf(0.90)))
    assert row.pi95 == (int(dist.ppf(0.025)), int(dist.ppf(0.975)))
    assert row.p_zero == pytest.approx(dist.pmf(0), abs=1e-12)
