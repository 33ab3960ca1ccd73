"""Text priors: parsing good and bad strings, and the documented defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from blinameta.bayes import (
    DEFAULT_PRIOR_MU,
    DEFAULT_PRIOR_TAU,
    Prior,
    binomial_normal,
    parse_prior,
)
from blinameta.errors import UserError


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("normal:0:1.5", "location", Prior("normal", (0.0, 1.5))),
        (" Normal : -1 : 2 ", "location", Prior("normal", (-1.0, 2.0))),
        ("half_normal:0.5", "scale", Prior("half_normal", (0.5,))),
        ("half-normal:1", "scale", Prior("half_normal", (1.0,))),
        ("halfcauchy:0.25", "scale", Prior("half_cauchy", (0.25,))),
        ("half_t:3:0.5", "scale", Prior("half_t", (3.0, 0.5))),
        ("uniform:0:5", "scale", Prior("uniform", (0.0, 5.0))),
    ],
)
def test_parse_good(text, kind, expected):
    assert parse_prior(text, kind=kind) == expected
    # the text form round-trips
    assert parse_prior(str(expected), kind=kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("gamma:1:1", "scale", "unknown prior"),
        ("normal:0", "location", "takes 2 parameter"),
        ("normal:0:1:2", "location", "takes 2 parameter"),
        ("normal:a:1", "location", "'a' in 'normal:a:1' is not a number"),
        ("normal:0:0", "location", "sd of"),
        ("normal:0:nan", "location", "not a finite number"),
        ("half_normal:-1", "scale", "must be greater than 0"),
        ("half_cauchy:0", "scale", "must be greater than 0"),
        ("half_t:0:1", "scale", "nu and scale"),
        ("uniform:1:5", "scale", "uniform:0:U"),
        ("uniform:0:-2", "scale", "uniform:0:U"),
        ("normal:0:1", "scale", "not a prior for a standard deviation"),
        ("half_normal:1", "location", "not a prior for a location"),
        ("", "location", "unknown prior"),
    ],
)
def test_parse_bad(text, kind, message):
    with pytest.raises(UserError, match=message):
        parse_prior(text, kind=kind, what="--prior-x")


def test_error_names_the_option():
    with pytest.raises(UserError, match=r"^--prior-tau: "):
        parse_prior("half_normal:x", kind="scale", what="--prior-tau")


@pytest.mark.parametrize(
    "prior",
    [
        Prior("normal", (0.3, 1.5)),
        Prior("half_normal", (0.5,)),
        Prior("half_cauchy", (0.5,)),
        Prior("half_t", (3.0, 0.5)),
        Prior("uniform", (0.0, 5.0)),
    ],
)
def test_logpdf_is_a_normalised_density(prior):
    lo = -np.inf if prior.kind == "location" else 0.0
    hi = prior.params[1] if prior.family == "uniform" else np.inf
    total, _ = integrate.quad(lambda x: math.exp(prior.logpdf(x)), lo, hi, limit=200)
    assert total == pytest.approx(1.0, abs=1e-7)
    if prior.kind == "scale":
        assert prior.logpdf(-0.1) == -np.inf
        assert prior.ppf(0.5) > 0


def test_default_mu_prior_is_roughly_flat_on_the_proportion_scale():
    # The documented justification: invlogit(N(0, 1.5)) puts roughly uniform mass on
    # (0.05, 0.95) -- each tenth of that range holds 5-15% of the prior mass -- and < 6%
    # below 0.05 or above 0.95 together.
    assert DEFAULT_PRIOR_MU == Prior("normal", (0.0, 1.5))
    cdf = lambda p: stats.norm.cdf(math.log(p / (1 - p)), 0.0, 1.5)
    edges = np.linspace(0.05, 0.95, 10)
    masses = np.diff([cdf(p) for p in edges])
    assert masses.min() > 0.05 and masses.max() < 0.15
    assert cdf(0.05) + (1 - cdf(0.95)) < 0.06


def test_default_tau_prior_quantiles_as_documented():
    assert DEFAULT_PRIOR_TAU == Prior("half_normal", (0.5,))
    assert DEFAULT_PRIOR_TAU.ppf(0.5) == pytest.approx(0.337, abs=1e-3)
    assert DEFAULT_PRIOR_TAU.ppf(0.95) == pytest.approx(0.980, abs=1e-3)


def test_spec_takes_text_priors_and_rejects_bad_ones():
    spec = binomial_normal([1, 2], [10, 10], prior_mu="normal:0:2", prior_tau="half_cauchy:1")
    assert spec.prior_mu == Prior("normal", (0.0, 2.0))
    assert spec.prior_tau == Prior("half_cauchy", (1.0,))
    with pytest.raises(UserError, match="prior of tau"):
        binomial_normal([1, 2], [10, 10], prior_tau="normal:0:1")
