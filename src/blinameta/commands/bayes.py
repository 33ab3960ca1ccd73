"""``blinameta bayes``: Bayesian random-effects meta-analysis of a CSV file."""

from __future__ import annotations

import json
import warnings

import click

from blinameta.commands._options import MAX_CHAINS, MAX_DRAWS
from blinameta.errors import UserError

__all__ = ["bayes"]


def _spec_from_csv(path, events, total, yi, vi, mods, study, prior_mu, prior_tau, prior_coef):
    from blinameta.bayes.models import binomial_normal, normal_normal
    from blinameta.bayes.priors import parse_prior
    from blinameta.csvinput import check_effect_sizes, read_csv

    counts = events is not None or total is not None
    generic = yi is not None or vi is not None
    if counts == generic:
        raise UserError("give either --events and --total (proportions) or --yi and --vi")
    if counts and (events is None or total is None):
        raise UserError("--events and --total go together")
    if generic and (yi is None or vi is None):
        raise UserError("--yi and --vi go together")
    # Parse the priors before reading the file, so a typo is reported first.
    p_mu = parse_prior(prior_mu, what="--prior-mu") if prior_mu else None
    p_tau = parse_prior(prior_tau, kind="scale", what="--prior-tau") if prior_tau else None
    p_coef = parse_prior(prior_coef, what="--prior-coef") if prior_coef else None
    table = read_csv(path)
    labels = None
    study_col = study or next((c for c in ("study_id", "study") if c in table.header), None)
    if study_col is not None:
        labels = table.text(study_col)
        seen: dict[str, int] = {}
        for i, label in enumerate(labels):
            if label in seen:
                raise UserError(
                    f"{table.path}: row {table.row_of(i)}, column {study_col!r}: study "
                    f"{label!r} repeats row {seen[label]}"
                )
            seen[label] = table.row_of(i)
    moderators = None
    if mods:
        moderators = {}
        for name in [m.strip() for m in mods.split(",") if m.strip()]:
            moderators[name] = table.text(name)
    if counts:
        x = table.numeric(events, integer=True, nonnegative=True)
        n = table.numeric(total, integer=True, positive=True)
        for i in range(len(x)):
            if x[i] > n[i]:
                raise UserError(
                    f"{table.path}: row {table.row_of(i)}, column {events!r}: {int(x[i])} events "
                    f"greater than the total {int(n[i])} (column {total!r})"
                )
        return binomial_normal(x, n, study=labels, mods=moderators, prior_mu=p_mu,
                               prior_tau=p_tau, prior_coef=p_coef)
    y = table.numeric(yi)
    v = table.numeric(vi, positive=True)
    check_effect_sizes(table, yi, vi, y, v)
    return normal_normal(y, v, study=labels, mods=moderators, prior_mu=p_mu, prior_tau=p_tau,
                         prior_coef=p_coef)


def _json(result) -> dict:
    def full(s):
        return {"mean": s.mean, "sd": s.sd, "lb": s.lb, "ub": s.ub}

    def short(s):
        return {"mean": s.mean, "lb": s.lb, "ub": s.ub}

    out: dict = {
        "method": result.method,
        "model": result.spec.kind,
        "priors": result.to_dict()["priors"],
        "n_studies": result.spec.n_studies,
        "mu": full(result.mu),
        "tau": full(result.tau),
    }
    for name in ("p_median", "p_mean", "p_new"):
        value = getattr(result, name)
        if value is not None:
            out[name] = short(value)
    if result.theta_new is not None:
        out["theta_new"] = short(result.theta_new)
    if result.spec.has_mods:
        out["coef"] = [c.to_dict() for c in result.coef]
    out["study"] = [s.to_dict() for s in result.study]
    if result.exceedance:
        out["exceedance"] = [e.to_dict() for e in result.exceedance]
    if result.diagnostics is not None:
        out["diagnostics"] = result.diagnostics.to_dict()
        out["retried"] = result.retried
        out["from_cache"] = result.from_cache
    out["notes"] = list(result.notes)
    return out


def _print(result) -> None:
    """The result's own printed summary (:meth:`BayesResult.summary`), escaped for the terminal."""
    from blinameta.text import terminal_safe

    click.echo(terminal_safe(result.summary().as_text()))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--events", metavar="COL", help="Column of event counts (with --total).")
@click.option("--total", metavar="COL", help="Column of patient counts (with --events).")
@click.option("--yi", metavar="COL", help="Column of effects, e.g. log hazard ratios (with --vi).")
@click.option("--vi", metavar="COL", help="Column of sampling variances (with --yi).")
@click.option("--mods", metavar="COL,...", help="Moderator columns (meta-regression).")
@click.option("--study", metavar="COL", help="Column of study labels (default study_id/study).")
@click.option("--prior-mu", metavar="TEXT", help="e.g. normal:0:1.5 (default).")
@click.option("--prior-tau", metavar="TEXT", help="e.g. half_normal:0.5 (default), "
              "half_cauchy:0.5, half_t:3:0.5, uniform:0:5.")
@click.option("--prior-coef", metavar="TEXT", help="Prior of moderator coefficients, "
              "e.g. normal:0:1 (default).")
@click.option("--exact", is_flag=True, help="Exact quadrature instead of sampling (no --mods).")
@click.option("--draws", type=click.IntRange(min=1, max=MAX_DRAWS), default=1000, show_default=True)
@click.option("--tune", type=click.IntRange(min=1, max=MAX_DRAWS), default=1000, show_default=True)
@click.option("--chains", type=click.IntRange(min=1, max=MAX_CHAINS), default=4, show_default=True)
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=None, help="Random seed.")
@click.option("--sampler", type=click.Choice(["nutpie", "pymc"]), default=None,
              help="NUTS implementation (default nutpie).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the posterior cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def bayes(file, events, total, yi, vi, mods, study, prior_mu, prior_tau, prior_coef, exact,
          draws, tune, chains, seed, sampler, no_cache, as_json):
    """Bayesian random-effects meta-analysis of FILE.csv (binomial-normal or normal-normal)."""
    if exact and mods:
        raise UserError("--exact does not handle moderators; drop --exact or --mods")
    spec = _spec_from_csv(file, events, total, yi, vi, mods, study, prior_mu, prior_tau,
                          prior_coef)
    if exact:
        from blinameta.bayes.exact import fit_exact

        result = fit_exact(spec)
    else:
        from blinameta.bayes.cache import CacheWarning
        from blinameta.bayes.fit import (
            DEFAULT_SAMPLER,
            DEFAULT_SEED,
            ConvergenceRetryWarning,
            DiagnosticsError,
            fit,
        )

        failure = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fit(
                    spec,
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    seed=DEFAULT_SEED if seed is None else seed,
                    sampler=sampler or DEFAULT_SAMPLER,
                    cache=not no_cache,
                )
            except DiagnosticsError as exc:
                failure = exc
        for w in caught:
            if issubclass(w.category, (ConvergenceRetryWarning, CacheWarning)):
                click.echo(f"warning: {w.message}", err=True)
        if failure is not None:
            # not the user's fault: exit status 1, one line with the numbers
            click.echo(f"error: {failure}", err=True)
            raise click.exceptions.Exit(1)
    if as_json:
        click.echo(json.dumps(_json(result), indent=2))
    else:
        _print(result)
