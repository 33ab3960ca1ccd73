"""``blinameta query``: pooled estimates, predictive probabilities and trial designs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from blinameta.errors import UserError

__all__ = ["query"]


def _simon(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"--simon {text!r}: expected P0,ALPHA,BETA, e.g. 0.3,0.05,0.2")
    return values  # type: ignore[return-value]


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


@click.command()
@click.option("--outcome", required=True, help="Outcome code, e.g. cr, mrd_neg, crs_any.")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Filter on a moderator (repeatable), e.g. --where blast_burden=ge5.")
@click.option("--method", default="REML", show_default=True, help="REML (logit, Hartung-Knapp) or GLMM, or another tau² estimator.")
@click.option("--n", "n", type=int, default=None, help="Assurance: patients in the planned trial.")
@click.option("--responses", type=int, default=None, help="Assurance: responses the trial must observe.")
@click.option("--assurance", "assurance_target", type=float, default=None,
              help="Find the smallest N whose assurance of observing --rate is at least this.")
@click.option("--rate", type=float, default=None, help="With --assurance: the response rate to observe.")
@click.option("--simon", "simon", default=None, metavar="P0,ALPHA,BETA",
              help="Simon two-stage designs with P1 = the pooled estimate.")
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"), show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def query(outcome, where, method, n, responses, assurance_target, rate, simon, evidence_dir, models_dir, as_json) -> None:
    """Pooled and predicted rates for an outcome in a population, with design helpers."""
    from blinameta.analysis.query import query as run_query

    result = run_query(outcome, list(where), evidence=evidence_dir, models=models_dir, method=method, n=n,
                       responses=responses, assurance_target=assurance_target, rate=rate, simon=_simon(simon))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1, allow_nan=False, default=float))
        return
    f = result.frequentist
    filt = ", ".join(f"{k}={'/'.join(v)}" for k, v in result.filter.items()) or "no filter"
    click.echo(f"{outcome} ({filt}): {result.k} stud{'y' if result.k == 1 else 'ies'} [{result.method}]: {', '.join(result.studies)}")
    click.echo(f"  frequentist: {_pct(f['estimate'])} (95% CI {_pct(f['ci_lb'])} to {_pct(f['ci_ub'])}; "
               f"95% PI {_pct(f['pi_lb'])} to {_pct(f['pi_ub'])})"
               + (f"; I² = {f['i2']:.0f}%" if f.get("i2") is not None else ""))
    if result.bayes:
        b = result.bayes
        click.echo(f"  Bayesian: pooled rate {_pct(b['p_median']['mean'])} (95% CrI {_pct(b['p_median']['lb'])} to "
                   f"{_pct(b['p_median']['ub'])}); new cohort {_pct(b['p_new']['lb'])} to {_pct(b['p_new']['ub'])}")
    if result.assurance:
        a = result.assurance
        click.echo(f"  assurance: P(at least {a['responses']} of {a['n']}) = {a['probability']:.3f}")
    if result.n_required:
        r = result.n_required
        click.echo(f"  smallest N with assurance >= {r['target']} of a rate >= {r['rate']}: "
                   + (f"N = {r['n']} (at least {r['responses']} responses; assurance {r['assurance']:.3f})" if r["n"] else "none up to 1000"))
    if result.simon:
        s = result.simon
        for name in ("optimal", "minimax"):
            d = s[name]
            click.echo(f"  Simon {name} (p0={s['p0']}, p1={s['p1']:.3f}): stage 1 {d['n1']} patients, stop if <= {d['r1']} responses; "
                       f"total {d['n']}, positive if > {d['r']}; EN0 = {d['en0']:.1f}, PET0 = {d['pet0']:.2f}")
    for e in result.excluded:
        click.echo(f"  excluded {e['id']}: {e['reason']}")
    for w in result.warnings:
        click.echo(f"  warning: {w}")
