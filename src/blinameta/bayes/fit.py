"""Sampling the posterior with NUTS, the convergence gate, seeding and caching.

The NUTS implementation is nutpie's (Rust, numba-compiled log density) by default: on the
project's 2-core machine it is about twice as fast as PyMC's own NUTS cold (compilation
included) and three times as fast warm; ``benchmarks/README.md`` has the figures.

Gate: R-hat (rank-normalised split, Vehtari et al. 2021, *Bayesian Anal.* 16:667) at most 1.01,
bulk and tail ESS at least 400 over every free parameter, no divergent transitions, E-BFMI at
least 0.3 in every chain (Betancourt 2016, arXiv:1604.00695), and, for models without
moderators (where the exact path exists), the 2.5% and 97.5% quantiles of ``mu`` and ``tau``
within 4 Monte Carlo standard errors of the exact posterior's (:func:`tail_agreement`). What
was checked is in ``result.diagnostics.to_dict()``. A fit that fails is re-run once with
``target_accept=0.999`` (a warning and ``result.retried``); if it fails again,
:class:`DiagnosticsError` is raised with the numbers.

Parameterisation (audit D2): by default the study effects are integrated out and ``tau`` is
sampled as ``|u|`` on the real line (``parameterization="marginal"``, see
:func:`~blinameta.bayes.build_model`); the study effects are drawn afterwards from their
conditional posterior. The non-centred model, and a marginal model sampled on ``log tau``
(PyMC's default transform), passed R-hat/ESS/divergence checks while under-sampling small
``tau`` on informative data: the lower tail of ``tau`` is a long exponential tail in
``log tau``, but the middle of the sampled space in ``u`` (measurements in the docstring of
``tests/test_bayes_tails.py``).

Compiled models are reused within a process: nutpie's numba compilation takes seconds and
sampling these small models a fraction of a second, and the models keep their data in shared
variables, so a model of the same structure (kind, studies, moderators, priors,
parameterisation, quadrature nodes; :func:`~blinameta.bayes.models.model_structure`) is only
given the new data. Reused or fresh, the same data and seed give the same draws, those of
``pm.sample(nuts_sampler="nutpie")``.

Why ``target_accept=0.99`` by default: it was chosen for the non-centred model, whose narrow
neck at small ``tau`` needed it; for the marginal model (two or three parameters) it costs
little and is kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np

from blinameta.bayes import cache as _cache
from blinameta.bayes.models import (
    ModelSpec,
    build_model,
    draw_theta,
    model_data,
    model_structure,
)
from blinameta.errors import UserError
from blinameta.bayes.results import (
    DEFAULT_THRESHOLDS,
    BayesResult,
    CoefSummary,
    Diagnostics,
    Exceedance,
    ParamSummary,
    StudySummary,
    summarise_draws,
)

__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_SEED",
    "ConvergenceRetryWarning",
    "DiagnosticsError",
    "check_diagnostics",
    "fit",
    "tail_agreement",
]

#: NUTS implementation used unless asked otherwise ("nutpie" or "pymc"), chosen by measurement.
DEFAULT_SAMPLER = "nutpie"
#: Seed used when none is given, so that a rerun reproduces a result exactly.
DEFAULT_SEED = 20240611


class DiagnosticsError(Exception):
    """The sampler did not pass the convergence gate, even after one retry.

    Not a :class:`~blinameta.errors.UserError`: the input was valid. The command line prints the
    message on one line with exit status 1.

    Attributes
    ----------
    diagnostics : Diagnostics
    target_accept : float
        Of the last attempt.
    """

    def __init__(self, diagnostics: Diagnostics, target_accept: float, retried: bool):
        self.diagnostics = diagnostics
        self.target_accept = target_accept
        self.retried = retried
        again = f" after a retry with target_accept={target_accept}" if retried else ""
        super().__init__(f"MCMC did not converge{again}: {diagnostics.describe()}")


class ConvergenceRetryWarning(UserWarning):
    """The first run failed the convergence gate and was repeated with a higher target_accept."""


#: A tail quantile of MCMC agrees with the exact path if within this many standard errors
#: (MCSE of the quantile combined with the exact path's own error).
TAIL_K_SIGMA = 4.0
#: Error allowed for the exact path's quantiles (grid refinement changes them by less).
EXACT_QUANTILE_ERROR = 1e-4


def tail_agreement(idata, exact: BayesResult) -> tuple[dict, ...]:
    """Compare the 2.5% and 97.5% quantiles of ``mu`` and ``tau`` with the exact posterior.

    Each check gives the MCMC quantile, the exact one, the Monte Carlo standard error of the
    quantile (ArviZ, Vehtari et al. 2021), ``z = (mcmc - exact) / sqrt(mcse^2 + e^2)`` with the
    exact path's error ``e`` (:data:`EXACT_QUANTILE_ERROR`), and whether ``|z| <=``
    :data:`TAIL_K_SIGMA`. The exact path is sampling-free, so this catches a sampler that
    under-explores a region (audit D2: small ``tau``) while R-hat and ESS look clean.
    """
    from arviz_stats import mcse

    post = idata["posterior"].dataset
    out = []
    for name in ("mu", "tau"):
        draws = post[name].values.ravel()
        ref = getattr(exact, name)
        for prob, value in ((0.025, ref.lb), (0.975, ref.ub)):
            q = float(np.quantile(draws, prob))
            se = float(mcse(post[[name]], method="quantile", prob=prob)[name])
            z = (q - value) / float(np.hypot(se, EXACT_QUANTILE_ERROR))
            out.append({"quantity": name, "prob": prob, "mcmc": q, "exact": float(value),
                        "mcse": se, "z": z, "passed": bool(abs(z) <= TAIL_K_SIGMA)})
    return tuple(out)


def check_diagnostics(idata, var_names: Sequence[str], exact: BayesResult | None = None) -> Diagnostics:
    """R-hat, bulk/tail ESS (worst over ``var_names`` and their elements), divergences, the
    smallest E-BFMI over chains and, with ``exact``, :func:`tail_agreement`."""
    from arviz_stats import bfmi, ess, rhat

    post = idata["posterior"].dataset[list(var_names)]
    r = rhat(post)
    bulk = ess(post, method="bulk")
    tail = ess(post, method="tail")

    def worst(ds, fn):
        values = np.concatenate([np.ravel(ds[v].values) for v in ds.data_vars])
        values = np.where(np.isnan(values), np.inf if fn is np.max else -np.inf, values)
        return float(fn(values))

    div = 0
    bfmi_min = None
    if "sample_stats" in idata.children:
        stats = idata["sample_stats"].dataset
        if "diverging" in stats:
            div = int(stats["diverging"].values.sum())
        if "energy" in stats:
            try:
                result = bfmi(idata)
                if hasattr(result, "dataset"):  # DataTree -> Dataset
                    result = result.dataset
                if hasattr(result, "data_vars"):
                    result = result["energy"]
                values = np.ravel(np.asarray(result, dtype=float))
                bfmi_min = float(np.nanmin(values)) if values.size else None
            except Exception:  # noqa: BLE001 - BFMI is reported when ArviZ can compute it
                bfmi_min = None
    return Diagnostics(
        rhat_max=worst(r, np.max),
        ess_bulk_min=worst(bulk, np.min),
        ess_tail_min=worst(tail, np.min),
        divergences=div,
        bfmi_min=bfmi_min,
        tail_checks=() if exact is None else tail_agreement(idata, exact),
    )


def _free_names(spec: ModelSpec, parameterization: str) -> list[str]:
    names = ["mu", "tau"]
    if parameterization != "marginal":
        names.append("z" if parameterization == "non_centered" else "theta")
    if spec.has_mods:
        names.append("beta")
    return names


#: Compiled nutpie models kept in this process, most recently used last:
#: :func:`~blinameta.bayes.models.model_structure` -> (PyMC model, nutpie compiled model).
_COMPILED: OrderedDict[tuple, tuple] = OrderedDict()
#: How many compiled models :data:`_COMPILED` keeps.
COMPILED_CACHE_SIZE = 8


def _compiled_model(spec: ModelSpec, parameterization: str):
    """The PyMC model of ``spec`` and its nutpie compilation, reused across data.

    Compiling (numba) takes seconds, sampling a few hundred milliseconds; models of the same
    :func:`~blinameta.bayes.models.model_structure` differ only in their shared data, so a
    compiled model is kept (least recently used out, :data:`COMPILED_CACHE_SIZE` of them) and
    given the new data: ``pm.set_data`` on the PyMC model (its initial-point function and the
    ``constant_data``/``observed_data`` groups read it) and ``with_data`` on the compiled one
    (the log density and the deterministics read their own copy). Not thread-safe (the cached
    PyMC model's data are replaced in place); processes, forked or not, have their own cache.
    """
    import nutpie
    import pymc as pm

    key = model_structure(spec, parameterization)
    data = model_data(spec)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        model, compiled = _COMPILED[key]
        pm.set_data(data, model=model)
        return model, compiled.with_data(**data)
    model = build_model(spec, parameterization=parameterization)
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    _COMPILED[key] = (model, compiled)
    while len(_COMPILED) > COMPILED_CACHE_SIZE:
        _COMPILED.popitem(last=False)
    return model, compiled


def _sample_nutpie(spec, *, parameterization, draws, tune, chains, cores, seed, target_accept,
                   max_treedepth):
    """``pm.sample(nuts_sampler="nutpie", ...)`` on a reused compiled model.

    Follows ``pymc.sampling.mcmc._sample_external_nuts`` (PyMC 6.4): the nutpie seed is
    the first of ``pm.sample``'s per-chain seeds, ``tune=0`` becomes 1, at most ``chains``
    cores, tuning draws discarded, and ``patch_nutpie_idata`` adds the data groups and the
    sampling time, so the draws are those of ``pm.sample`` on the same model.
    """
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    model, compiled = _compiled_model(spec, parameterization)
    chain_seeds = [rng.integers(2**30) for rng in np.random.default_rng(seed).spawn(chains)]
    start = time.time()
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=max(int(tune), 1),
        chains=chains,
        cores=min(cores, chains),
        seed=int(chain_seeds[0]),
        save_warmup=False,
        store_unconstrained=False,
        progress_bar=False,
        target_accept=target_accept,
        maxdepth=max_treedepth,
    )
    patch_nutpie_idata(idata, model, sampling_time=time.time() - start)
    return idata


@contextmanager
def _quiet():
    """PyMC's log messages below ERROR and all warnings silenced (the gate reports instead)."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _sample(spec, *, parameterization, sampler, draws, tune, chains, cores, seed,
            target_accept, max_treedepth):
    import pymc as pm

    with _quiet():
        if sampler == "nutpie":
            idata = _sample_nutpie(
                spec, parameterization=parameterization, draws=draws, tune=tune,
                chains=chains, cores=cores, seed=seed, target_accept=target_accept,
                max_treedepth=max_treedepth)
        else:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                model=build_model(spec, parameterization=parameterization),
                nuts_sampler=sampler,
                nuts={"target_accept": target_accept, "max_treedepth": max_treedepth},
                progressbar=False,
                quiet=True,
                compute_convergence_checks=False,
            )
    if parameterization == "marginal":
        post = idata["posterior"].dataset
        beta = post["beta"].values if spec.has_mods else None
        theta = draw_theta(spec, post["mu"].values, post["tau"].values, beta, seed=seed)
        idata["posterior"] = idata["posterior"].to_dataset().assign(
            theta=(("chain", "draw", "study"), theta)
        ).assign_coords(study=list(spec.study))
    return idata


def fit(
    spec: ModelSpec,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    seed: int = DEFAULT_SEED,
    sampler: str = DEFAULT_SAMPLER,
    target_accept: float = 0.99,
    retry_target_accept: float = 0.999,
    max_treedepth: int = 10,
    parameterization: str = "marginal",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    check_exact: bool = True,
) -> BayesResult:
    """Sample the posterior of ``spec`` with NUTS, check convergence, summarise.

    Parameters
    ----------
    spec : ModelSpec
        From :func:`~blinameta.bayes.binomial_normal` or :func:`~blinameta.bayes.normal_normal`.
    draws, tune, chains : int
        Per chain: kept draws and tuning iterations.
    cores : int, optional
        Chains run in parallel (default: ``min(chains, os.cpu_count())``).
    seed : int
        Same inputs and seed give identical draws and summaries.
    sampler : {"nutpie", "pymc"}
        NUTS implementation.
    target_accept : float
        NUTS step-size adaptation target; 0.99 (see the module docstring).
    retry_target_accept : float
        Used for the one retry after a failed gate.
    max_treedepth : int
    parameterization : {"marginal", "non_centered", "centered"}
        See :func:`~blinameta.bayes.build_model`; ``"marginal"`` (default) integrates the
        study effects out and draws them afterwards from their exact conditional.
    check_exact : bool
        Without moderators, also compare the 2.5% and 97.5% quantiles of ``mu`` and ``tau`` with
        the exact posterior (:func:`tail_agreement`) as part of the gate.
    thresholds : sequence of float
        For ``P(rate > threshold)``.
    cache : bool
        Load from / store in the on-disk cache (:mod:`blinameta.bayes.cache`).
    cache_dir : path, optional

    Returns
    -------
    BayesResult
        ``method="nuts"``, with ``idata``, ``diagnostics`` and ``retried``.

    Raises
    ------
    DiagnosticsError
        If the gate fails twice.
    """
    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
    if cores is None:
        cores = max(1, min(chains, os.cpu_count() or 1))
    thresholds = tuple(float(t) for t in thresholds)
    settings = {
        "sampler": sampler,
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "seed": int(seed),
        "target_accept": float(target_accept),
        "retry_target_accept": float(retry_target_accept),
        "max_treedepth": int(max_treedepth),
        "parameterization": parameterization,
        "thresholds": list(thresholds),
        "check_exact": bool(check_exact and not spec.has_mods),
    }
    names = _free_names(spec, parameterization)
    directory = _cache.cache_dir(cache_dir)
    key = _cache.cache_key(spec.key_json(), settings)
    if cache:
        idata = _cache.load(key, directory)
        if idata is not None and "blinameta_result" in idata.attrs:
            # The summaries were computed from these same draws when they were stored; reading
            # them back (exact float round trip through JSON) avoids importing ArviZ's stats.
            fields = _fields_from_json(idata.attrs["blinameta_result"])
            fields["settings"] = {**settings, "seconds": None}
            return BayesResult(method="nuts", spec=spec, from_cache=True, idata=idata, **fields)
    start = time.perf_counter()
    kw = {
        "parameterization": parameterization,
        "sampler": sampler,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "cores": cores,
        "seed": seed,
        "max_treedepth": max_treedepth,
    }
    exact = None
    if settings["check_exact"]:
        from blinameta.bayes.exact import fit_exact

        try:
            exact = fit_exact(spec, thresholds=thresholds)
        except (UserError, ValueError, FloatingPointError):  # the check is then not made
            exact = None
    idata = _sample(spec, target_accept=target_accept, **kw)
    diag = check_diagnostics(idata, names, exact)
    retried = False
    if not diag.passed:
        warnings.warn(
            f"MCMC failed the convergence gate ({diag.describe()}); "
            f"retrying once with target_accept={retry_target_accept}",
            ConvergenceRetryWarning,
            stacklevel=2,
        )
        retried = True
        idata = _sample(spec, target_accept=retry_target_accept, **kw)
        diag = check_diagnostics(idata, names, exact)
        if not diag.passed:
            raise DiagnosticsError(diag, retry_target_accept, retried=True)
    notes = []
    if retried:
        notes.append(
            "the first run failed the convergence gate; the result is from a retry with "
            f"target_accept={retry_target_accept}"
        )
    if spec.has_mods:
        notes.append("mu and the proportions are at moderator values 0 / reference levels")
    fields = {
        "diagnostics": diag,
        "retried": retried,
        "notes": tuple(notes),
        **summarise_draws(spec, idata, thresholds=thresholds),
    }
    idata.attrs["blinameta_fit"] = json.dumps(
        {"retried": retried,
         "target_accept_used": retry_target_accept if retried else target_accept}
    )
    if cache:
        idata.attrs["blinameta_result"] = _fields_to_json(fields)
        _cache.save(key, directory, idata)
    fields["settings"] = {**settings, "seconds": time.perf_counter() - start}
    return BayesResult(method="nuts", spec=spec, from_cache=False, idata=idata, **fields)


_ONE = ("mu", "tau", "p_median", "p_mean", "p_new", "theta_new")


def _fields_to_json(fields: dict) -> str:
    out = {name: asdict(fields[name]) for name in _ONE if fields.get(name) is not None}
    out["coef"] = [asdict(c) for c in fields.get("coef", ())]
    out["study"] = [asdict(s) for s in fields["study"]]
    out["exceedance"] = [asdict(e) for e in fields.get("exceedance", ())]
    out["diagnostics"] = asdict(fields["diagnostics"])
    out["retried"] = fields["retried"]
    out["notes"] = list(fields["notes"])
    for name in ("prob_mu_negative", "prob_new_negative"):
        if fields.get(name) is not None:
            out[name] = fields[name]
    return json.dumps(out)


def _fields_from_json(text: str) -> dict:
    data = json.loads(text)
    fields = {name: ParamSummary(**data[name]) for name in _ONE if name in data}
    fields["coef"] = tuple(CoefSummary(**c) for c in data["coef"])
    fields["study"] = tuple(StudySummary(**s) for s in data["study"])
    fields["exceedance"] = tuple(Exceedance(**e) for e in data["exceedance"])
    diag = dict(data["diagnostics"])
    diag["tail_checks"] = tuple(diag.get("tail_checks", ()))
    fields["diagnostics"] = Diagnostics(**diag)
    fields["retried"] = bool(data["retried"])
    fields["notes"] = tuple(data["notes"])
    for name in ("prob_mu_negative", "prob_new_negative"):
        if name in data:
            fields[name] = data[name]
    return fields
