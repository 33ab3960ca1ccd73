"""``blinameta query``: the primary estimate of an outcome and the designs of the next trial."""

from __future__ import annotations

import json
from pathlib import Path

import click

from blinameta.commands._options import MAX_TRIAL_SIZE

__all__ = ["query"]

_EPILOG = """\b
Examples (CR in >=5% blasts; p0 defaults to the analysis' decision threshold):
  blinameta query --outcome cr
  blinameta query --outcome cr --n 30 --p0 0.3            # assurance of the exact test
  blinameta query --outcome cr --n 30 --responses 15      # P(at least 15 of 30)
  blinameta query --outcome cr --assurance 0.8 --p0 0.3   # sample size
  blinameta query --outcome cr --simon 0.3,0.05,0.2,0.5 --monitor \\
      --safety crs_grade3plus,0.15 --safety neurotox_grade3plus,0.2 --counts 30
"""



#: Largest N searched for a sample size or a Simon design (an exact search beyond it takes minutes).
MAX_SEARCH_N = 5000
#: Largest trial monitored patient by patient (the boundaries are enumerated exactly).
MAX_MONITOR_N = 1000

@click.command(epilog=_EPILOG)
@click.option("--outcome", required=True, help="Outcome code, e.g. cr, mrd_neg, crs_grade3plus. Without --where: "
              "the outcome's primary analysis in models/ (the report's headline).")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Narrow the primary population (repeatable), e.g. --where relapse_line=first_relapse; a key the "
                   "primary analysis filters is replaced.")
@click.option("--method", default=None, help="Frequentist tau² estimator shown beside the Bayesian headline "
              "(default: the analysis', REML).")
@click.option("--n", "n", type=click.IntRange(1, MAX_TRIAL_SIZE), default=None,
              help="Patients in the planned trial (assurance).")
@click.option("--p0", type=float, default=None, help="Null response rate of the planned one-sided exact binomial "
              "test, in (0, 1) (default: the analysis' decision threshold).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="One-sided level of that test, in (0, 0.5).")
@click.option("--responses", type=click.IntRange(0, MAX_TRIAL_SIZE), default=None,
              help="With --n: the predictive probability of at least this many responses.")
@click.option("--assurance", "assurance_target", type=float, default=None,
              help="Find the sample sizes whose test-based assurance reaches this, in (0, 1).")
@click.option("--n-max", "n_max", type=click.IntRange(1, MAX_SEARCH_N), default=500, show_default=True, help="Largest N searched by --assurance.")
@click.option("--rate", type=float, default=None, hidden=True, help="Retired: use --p0.")
@click.option("--simon", "simon", default=None, metavar="P0,ALPHA,BETA[,P1]",
              help="Simon two-stage optimal and minimax designs; P1 (the target rate) defaults to the pooled estimate.")
@click.option("--simon-n-max", type=click.IntRange(2, MAX_SEARCH_N), default=None,
              help="Largest total n searched for Simon's designs (default: twice the single-stage n, at least 300).")
@click.option("--monitor", is_flag=True, help="Lee & Liu (2008) predictive-probability monitoring for the --simon "
              "rates, Nmax = Simon's optimal n unless --nmax.")
@click.option("--prior-ess", type=float, default=2.0, show_default=True,
              help="Monitoring: effective sample size of the Beta prior centred on the pooled estimate.")
@click.option("--theta-t", type=float, default=None, help="Monitoring: final-success threshold (default: searched in 0.80-0.99).")
@click.option("--theta-l", type=float, default=None, help="Monitoring: futility threshold (default: searched in 0.001-0.10).")
@click.option("--theta-u", type=float, default=1.0, show_default=True, help="Monitoring: efficacy threshold (1 = never stop for efficacy).")
@click.option("--nmax", type=click.IntRange(1, MAX_MONITOR_N), default=None, help="Maximum sample size for monitoring and safety rules.")
@click.option("--cohort-size", type=click.IntRange(1, MAX_MONITOR_N), default=1, show_default=True, help="Monitoring and safety looks after every this many patients.")
@click.option("--safety", multiple=True, metavar="OUTCOME,LIMIT[,THRESHOLD]",
              help="Bayesian toxicity stopping rule (repeatable): stop when P(rate > LIMIT) > THRESHOLD (default 0.9).")
@click.option("--safety-ess", type=float, default=10.0, show_default=True,
              help="Effective sample size of the toxicity prior centred on the pooled rate.")
@click.option("--counts", type=click.IntRange(1, MAX_TRIAL_SIZE), default=None, metavar="N",
              help="Predicted numbers of responders and of each toxicity among N patients.")
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"), show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def query(outcome, where, method, n, p0, alpha, responses, assurance_target, n_max, rate, simon, simon_n_max, monitor,
          prior_ess, theta_t, theta_l, theta_u, nmax, cohort_size, safety, safety_ess, counts, evidence_dir, models_dir,
          as_json) -> None:
    """The primary estimate of an outcome, and the statistical design of the next trial.

    Assurance is the predictive probability that the planned one-sided exact binomial test rejects
    H0: p <= p0, the trial's response rate drawn from the posterior predictive distribution of a new
    cohort (O'Hagan, Stevens & Campbell 2005).
    """
    from blinameta.analysis.query import query as run_query

    result = run_query(outcome, list(where), evidence=evidence_dir, models=models_dir, method=method, n=n,
                       responses=responses, p0=p0, alpha=alpha, assurance_target=assurance_target, n_max=n_max,
                       simon=simon, simon_n_max=simon_n_max, monitor=monitor, prior_ess=prior_ess, theta_t=theta_t,
                       theta_l=theta_l, theta_u=theta_u, nmax=nmax, cohort_size=cohort_size, safety=list(safety),
                       safety_ess=safety_ess, counts=counts, rate=rate)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1, allow_nan=False, default=float))
    else:
        click.echo(result.to_text())
