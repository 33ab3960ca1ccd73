"""Bayesian random-effects meta-analysis (PyMC + nutpie, with an exact quadrature path).

Describe the analysis with :func:`binomial_normal` (proportions, logit scale) or
:func:`normal_normal` (generic effects with known variances), then either sample it with
:func:`fit` (NUTS, convergence gate, on-disk cache) or integrate it with :func:`fit_exact`.
Both return a :class:`BayesResult`.

PyMC is imported only when a model is built or sampled.
"""

from __future__ import annotations

from blinameta.bayes.exact import binomial_log_marginal, fit_exact
from blinameta.bayes.fit import (
    DEFAULT_SAMPLER,
    DEFAULT_SEED,
    ConvergenceRetryWarning,
    DiagnosticsError,
    check_diagnostics,
    fit,
)
from blinameta.bayes.models import (
    ModelSpec,
    binomial_normal,
    build_model,
    normal_normal,
)
from blinameta.bayes.priors import (
    DEFAULT_PRIOR_COEF,
    DEFAULT_PRIOR_MU,
    DEFAULT_PRIOR_MU_GENERIC,
    DEFAULT_PRIOR_TAU,
    Prior,
    parse_prior,
)
from blinameta.bayes.results import (
    BayesResult,
    CoefSummary,
    Diagnostics,
    Exceedance,
    ParamSummary,
    StudySummary,
)
from blinameta.bayes.sensitivity import prior_sensitivity

__all__ = [
    "DEFAULT_PRIOR_COEF",
    "DEFAULT_PRIOR_MU",
    "DEFAULT_PRIOR_MU_GENERIC",
    "DEFAULT_PRIOR_TAU",
    "DEFAULT_SAMPLER",
    "DEFAULT_SEED",
    "BayesResult",
    "CoefSummary",
    "ConvergenceRetryWarning",
    "Diagnostics",
    "DiagnosticsError",
    "Exceedance",
    "ModelSpec",
    "ParamSummary",
    "Prior",
    "StudySummary",
    "binomial_log_marginal",
    "binomial_normal",
    "build_model",
    "check_diagnostics",
    "fit",
    "fit_exact",
    "normal_normal",
    "parse_prior",
    "prior_sensitivity",
]
