"""Query the evidence for protocol design: ``blinameta query`` and :func:`query`.

A query names an outcome. Without a filter it answers for the outcome's *primary analysis*
(the model in ``models/`` flagged ``primary_for_outcome``): the studies are chosen by the
analysis layer (:func:`blinameta.analysis.select.select`) and fitted by
:func:`blinameta.analysis.run.run_analysis`, so the headline equals the report's primary
estimate. ``--where KEY=VALUE`` narrows that population (a key the primary analysis already
filters is replaced, and the answer says so). Rows with different denominators are pooled as
the analysis pools them, and the answer lists each row with its denominator. Where no study
matches the filter, the rate is predicted from a meta-regression, and the answer says so.

On top of the estimate, the design tools of :mod:`blinameta.design` use the posterior
predictive distribution of a new cohort's rate: assurance of the planned exact test, sample
size, Simon's two-stage designs, Lee & Liu monitoring, safety stopping boundaries and
predicted counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blinameta.analysis.select import select
from blinameta.analysis.spec import FILTER_COLUMNS, AnalysisSpec, BayesSettings, SensitivitySettings, load_specs, primary_spec
from blinameta.errors import UserError
from blinameta.text import printable
from blinameta.evidence.loader import Evidence, load_evidence_or_fail
from blinameta.evidence.tidy import tidy

__all__ = ["QueryResult", "query", "parse_where", "RELAPSE_SHARE", "SafetyRequest"]

#: Relapse-line levels whose share of patients can be computed from reported counts.
RELAPSE_SHARE = ("refractory", "first_relapse", "second_or_later", "post_hsct")


@dataclass(frozen=True)
class SafetyRequest:
    """A toxicity to monitor: stop when P(rate > limit | data) > threshold."""

    outcome: str
    limit: float
    threshold: float = 0.9


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


@dataclass(frozen=True)
class QueryResult:
    """The answer to a query (display scale: proportions) and any design computations."""

    outcome: str
    filter: dict[str, list[str]]
    method: str  # "pooled", "single study" or "meta-regression"
    k: int
    studies: tuple[str, ...]
    excluded: tuple[dict[str, str], ...]
    frequentist: dict[str, Any]
    bayes: dict[str, Any] | None
    warnings: tuple[str, ...] = ()
    analysis: str | None = None  # id of the outcome's primary analysis in models/
    selection: dict[str, Any] | None = None
    primary: dict[str, Any] | None = None
    level: float = 95.0
    assurance: dict[str, Any] | None = None
    assurance_test: Any = None  # blinameta.design.AssuranceTest
    sample_size: Any = None  # blinameta.design.SampleSize
    simon: Any = None  # blinameta.design.SimonResult
    monitoring: Any = None  # blinameta.design.MonitoringDesign
    safety: tuple[Any, ...] = ()  # blinameta.design.SafetyBoundaries
    counts: Any = None  # blinameta.design.PredictedCounts
    regression: dict[str, Any] | None = None
    _predictive: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "outcome": self.outcome, "analysis": self.analysis, "filter": self.filter, "method": self.method,
            "headline_method": (self.primary or {}).get("method") or (self.bayes or {}).get("method"),
            "level": self.level, "k": self.k, "studies": list(self.studies), "selection": self.selection,
            "excluded": list(self.excluded), "primary": self.primary, "frequentist": self.frequentist,
            "bayes": self.bayes, "priors": (self.bayes or {}).get("priors"), "warnings": list(self.warnings),
        }
        if self.assurance is not None:
            out["assurance"] = self.assurance
        for name in ("assurance_test", "sample_size", "simon", "monitoring", "counts"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        if self.safety:
            out["safety"] = [s.to_dict() for s in self.safety]
        if self.regression is not None:
            out["regression"] = self.regression
        return out

    def to_text(self) -> str:
        """The answer as a protocol statistician reads it (estimates first, then each design)."""
        lines = []
        filt = ", ".join(f"{k}={'/'.join(v)}" for k, v in self.filter.items()) or "no filter"
        source = f"primary analysis {self.analysis}" if self.analysis else "no analysis in models/"
        lines.append(f"{self.outcome} ({filt}; {source}): {self.k} stud{'y' if self.k == 1 else 'ies'} [{self.method}]")
        if self.selection:
            for row in self.selection["rows"]:
                lines.append(f"  {row['label']}: {row['events']}/{row['total']} ({row['denominator'] or 'denominator not stated'})")
        p = self.primary
        if p:
            pi = (f"; {p['prediction']} {_pct(p['pi_lb'])} to {_pct(p['pi_ub'])}" if p.get("pi_lb") is not None else "")
            lines.append(f"  primary: {_pct(p['estimate'])} ({p['interval']} {_pct(p['ci_lb'])} to {_pct(p['ci_ub'])}{pi}); "
                         f"{p['label']}, {p['patients']} patients")
            if p.get("priors"):
                lines.append(f"    priors: mu ~ {p['priors']['mu_text']}, tau ~ {p['priors']['tau_text']} (logit scale)")
        f = self.frequentist
        if f and f.get("estimate") is not None:
            what = f.get("label", "frequentist")
            lines.append(f"  {what}: {_pct(f['estimate'])} ({self.level:g}% CI {_pct(f['ci_lb'])} to {_pct(f['ci_ub'])}; "
                         f"PI {_pct(f.get('pi_lb'))} to {_pct(f.get('pi_ub'))})"
                         + (f"; I² = {f['i2']:.0f}%, tau² = {f['tau2']:.3f}" if f.get("i2") is not None else ""))
        if self.bayes and not p:
            b = self.bayes
            lines.append(f"  Bayesian: pooled rate {_pct(b['p_median']['mean'])} (95% CrI {_pct(b['p_median']['lb'])} to "
                         f"{_pct(b['p_median']['ub'])}); new cohort {_pct(b['p_new']['lb'])} to {_pct(b['p_new']['ub'])}")
        if self.assurance:
            a = self.assurance
            lines.append(f"  predictive probability of at least {a['responses']} responses of {a['n']} "
                         f"(a new cohort's rate drawn from the posterior predictive) = {a['probability']:.3f}")
        blocks = [x.to_text() for x in (self.assurance_test, self.sample_size, self.simon, self.monitoring)
                  if x is not None]
        blocks += [s.to_text() for s in self.safety]
        if self.counts is not None:
            blocks.append(self.counts.to_text())
        for e in self.excluded:
            lines.append(f"  excluded {e['id']}: {e['reason']}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n\n".join(["\n".join(lines)] + blocks)


def parse_where(items: list[str] | tuple[str, ...] | dict | None) -> dict[str, list[str]]:
    """``["blast_burden=ge5", "setting=real_world,clinical_trial"]`` -> ``{key: [values]}``."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return {k: ([v] if isinstance(v, str) else [str(x) for x in v]) for k, v in items.items()}
    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--where {item!r}: expected KEY=VALUE (e.g. blast_burden=ge5)")
        key, _, value = item.partition("=")
        key, values = key.strip(), [v.strip() for v in value.split(",") if v.strip()]
        if not key or not values:
            raise UserError(f"--where {item!r}: expected KEY=VALUE (e.g. blast_burden=ge5)")
        out.setdefault(key, []).extend(values)
    return out


def _check_filter(evidence: Evidence, outcome: str, where: dict[str, list[str]]) -> None:
    review = evidence.review
    table = tidy(evidence)
    with_data = sorted(set(table.outcome))
    if outcome not in review.outcomes:
        raise UserError(f"unknown outcome {printable(outcome)}; outcomes with data: {', '.join(with_data)}")
    if review.outcomes[outcome].kind != "proportion":
        raise UserError(f"{outcome!r} is a time-to-event outcome; query pools proportions; choose one of: {', '.join(with_data)}")
    if outcome not in with_data:
        raise UserError(f"no study reports {outcome!r}; outcomes with data: {', '.join(with_data)}")
    for key, values in where.items():
        if key in review.moderators:
            levels = review.moderators[key].levels or {}
            for v in values:
                if v not in levels:
                    raise UserError(f"--where {key}={printable(v)}: {printable(v)} is not a level of {key}; valid: {', '.join(levels)}")
        elif key in ("design", "setting"):
            valid = sorted(set(table[key]))
            for v in values:
                if v not in valid and v not in ("randomized", "single_arm_trial", "expanded_access",
                                                 "retrospective_cohort", "case_series", "clinical_trial", "real_world"):
                    raise UserError(f"--where {key}={printable(v)}: valid values: {', '.join(valid)}")
        elif key in FILTER_COLUMNS:  # study_id, treatment, ...: checked against what the evidence holds
            valid = sorted({str(x) for x in table[key].dropna()}) if key in table else []
            for v in values:
                if v not in valid:
                    raise UserError(f"--where {key}={printable(v)}: no such value in the evidence; "
                                    f"valid: {', '.join(valid) or 'none'}")
        else:
            valid = list(review.moderators) + list(FILTER_COLUMNS)
            raise UserError(f"--where {printable(key)}: unknown moderator; valid: {', '.join(valid)}")


def _regression(evidence: Evidence, spec: AnalysisSpec, where: dict[str, list[str]], warnings: list[str]):
    """Predict the rate at the requested moderator values from a meta-regression."""
    from blinameta.frequentist.escalc import escalc_proportion, transf_proportion
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    moderators = [k for k in where if k in evidence.review.moderators or k in ("design", "setting")]
    if not moderators or any(len(where[k]) != 1 for k in moderators):
        return None
    table = tidy(evidence)
    table = table[table.outcome == spec.outcome]
    relaxed_filter = {k: v for k, v in spec.filter.items() if k not in moderators}
    for key in moderators:
        level = where[key][0]
        observed = set(table[key].dropna()) if key in table else set()
        if level in observed:
            # indicator coding: only rows with a specific level (not 'mixed', not unreported)
            relaxed_filter[key] = sorted(str(v) for v in observed if v != "mixed")
    relaxed = spec.model_copy(update={"filter": relaxed_filter})
    selection = select(evidence, relaxed)
    rows = selection.rows
    if rows.empty:
        return None
    covariates: dict[str, np.ndarray] = {}
    described = []
    for key in moderators:
        level = where[key][0]
        values = rows[key] if key in rows else pd.Series([None] * len(rows))
        if (values == level).any():
            covariates[f"{key}={level}"] = (values == level).to_numpy(float)
            described.append(f"indicator of {key} = {level}")
        elif key == "relapse_line" and level in RELAPSE_SHARE:
            share = _relapse_share(evidence, rows, level)
            if np.isfinite(share).sum() < 3:
                return None
            covariates[f"share_{level}"] = share
            described.append(f"share of patients in {level.replace('_', ' ')} (from reported relapse-line counts)")
        else:
            return None
    frame = pd.DataFrame(covariates)
    use = np.all(np.isfinite(frame.to_numpy(float)), axis=1)
    frame, rows_used = frame[use].reset_index(drop=True), rows[use].reset_index(drop=True)
    p = frame.shape[1] + 1
    if len(rows_used) < p + 2 or (frame.nunique() < 2).any():
        return None
    es = escalc_proportion("PLO", rows_used["events"].to_numpy(int), rows_used["total"].to_numpy(int))
    fit = rma(es.yi, es.vi, mods=frame.to_numpy(float), method="REML", test=spec.frequentist.test)
    new = np.ones((1, frame.shape[1]))
    pr = predict(fit, new)
    est, lb, ub, plb, pub = transf_proportion("PLO", np.array([pr.pred[0], pr.ci_lb[0], pr.ci_ub[0], pr.pi_lb[0], pr.pi_ub[0]]))
    warnings.append(
        "no study matches the filter exactly: the rate is predicted from a meta-regression on "
        + " and ".join(described) + f" over {len(rows_used)} studies, at " + ", ".join(f"{k}={where[k][0]}" for k in moderators)
        + "; an extrapolation, to be read with caution")
    frequentist = {"estimate": float(est), "ci_lb": float(lb), "ci_ub": float(ub), "pi_lb": float(plb),
                   "pi_ub": float(pub), "i2": float(fit.i2), "tau2": float(fit.tau2)}
    regression = {"covariates": list(frame.columns), "coef": fit.beta.tolist(), "se": fit.se.tolist(),
                  "qm": float(fit.qm), "qm_p": float(fit.qm_p), "at": {c: 1.0 for c in frame.columns}}
    return selection, rows_used, frequentist, regression, frame


def _bayes_regression(spec: AnalysisSpec, rows: pd.DataFrame, frame: pd.DataFrame, seed: int):
    """Posterior of the rate at covariates = 1 from the binomial-normal meta-regression (NUTS).

    ``p_median`` = invlogit(mu + sum(beta)), ``p_new`` = invlogit(mu + sum(beta) + tau z); the
    predictive is returned as a mixture (posterior draws x Gauss-Hermite nodes) for assurance.
    """
    from blinameta.bayes._numerics import mixture_quantile, population_mean
    from blinameta.bayes.fit import fit
    from blinameta.bayes.models import binomial_normal

    model = binomial_normal(rows["events"].to_numpy(int), rows["total"].to_numpy(int), study=list(rows["label"]),
                            mods={c: frame[c].to_numpy(float) for c in frame.columns},
                            prior_mu=spec.bayes.prior_mu, prior_tau=spec.bayes.prior_tau)
    result = fit(model, seed=seed)
    post = result.idata["posterior"].dataset
    mu = post["mu"].values.ravel()
    tau = post["tau"].values.ravel()
    beta = post["beta"].values.reshape(mu.size, -1)
    eta = mu + beta.sum(axis=1)  # every covariate at 1: the requested level / a share of 100%
    expit = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    p_median = expit(eta)
    p_mean = population_mean(eta, tau)
    q = np.array([0.025, 0.975])
    lb, ub = expit(mixture_quantile(q, eta, tau, None))
    bayes = {
        "p_median": {"mean": float(p_median.mean()), "lb": float(np.quantile(p_median, 0.025)), "ub": float(np.quantile(p_median, 0.975))},
        "p_mean": {"mean": float(p_mean.mean()), "lb": float(np.quantile(p_mean, 0.025)), "ub": float(np.quantile(p_mean, 0.975))},
        "p_new": {"mean": float(p_mean.mean()), "lb": float(lb), "ub": float(ub)},
        "method": "nuts",
        "diagnostics": result.diagnostics.to_dict() if result.diagnostics is not None else None,
        "priors": {"mu": spec.bayes.prior_mu, "tau": spec.bayes.prior_tau, "coef": str(model.prior_coef)},
    }
    z, gw = np.polynomial.hermite_e.hermegauss(30)
    nodes = expit(eta[:, None] + tau[:, None] * z[None, :])
    weights = np.full(mu.size, 1.0 / mu.size)[:, None] * (gw / gw.sum())[None, :]
    return bayes, (nodes, weights)


def _relapse_share(evidence: Evidence, rows: pd.DataFrame, level: str) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for i, (_, r) in enumerate(rows.iterrows()):
        pub = evidence.publication(r.study_id)
        cohort = pub.cohort(r.cohort_id)
        category = r.get("relapse_line")
        if category == level:
            out[i] = 1.0
        elif isinstance(category, str) and category not in ("mixed",):
            out[i] = 0.0
        elif cohort.characteristics is not None and cohort.characteristics.relapse_lines is not None:
            counts = cohort.characteristics.relapse_lines
            value = getattr(counts, level)
            if value is not None:
                out[i] = value / cohort.n
    return out



def _specs(models: str | Path | None, evidence: Evidence) -> tuple[AnalysisSpec, ...]:
    if models is None or not Path(models).is_dir():
        return ()
    return load_specs(models, evidence.review, {p.id for p in evidence.publications}).specs


def _light(spec: AnalysisSpec, **update) -> AnalysisSpec:
    """The same selection and headline, without the report's extras (subgroups, sensitivity, ...)."""
    frequentist = spec.frequentist.model_copy(update={"glmm": False})
    return spec.model_copy(update={"subgroups": [], "moderators": [], "exploratory_moderators": [],
                                   "sensitivity": SensitivitySettings(alternatives=False, exclude_derived=False,
                                                                      leave_one_out=False),
                                   "frequentist": frequentist, **update})


def _narrow(base: AnalysisSpec, where: dict[str, list[str]], notes: list[str]) -> dict[str, list]:
    """The primary analysis' filter narrowed by ``--where`` (a key it already filters is replaced)."""
    merged = {k: list(v) for k, v in base.filter.items()}
    for key, values in where.items():
        if key in merged and sorted(map(str, merged[key])) != sorted(values):
            notes.append(f"{key}: the primary analysis {base.id} uses {'/'.join(map(str, merged[key]))}; "
                         f"this query uses {'/'.join(values)} instead")
        merged[key] = list(values)
    return merged


def _predictive(bayes) -> Any:
    """The predictive rate of a new cohort as a mixture: exact posterior grid x Gauss-Hermite nodes."""
    from blinameta.bayes.exact import posterior_grid
    from blinameta.design import Predictive

    grid = posterior_grid(bayes.spec)
    z, gw = np.polynomial.hermite_e.hermegauss(40)
    theta = grid.mu[:, None, None] + grid.tau[None, :, None] * z[None, None, :]
    weights = grid.weight[:, :, None] * (gw / gw.sum())[None, None, :]
    return Predictive.from_samples(1 / (1 + np.exp(-theta)), weights)


def _bayes_dict(bayes, spec: AnalysisSpec) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"mean": float(getattr(bayes, name).mean), "lb": float(getattr(bayes, name).lb),
                                  "ub": float(getattr(bayes, name).ub)} for name in ("p_median", "p_mean", "p_new")}
    out["exceedance"] = [e.to_dict() for e in bayes.exceedance]
    out["priors"] = {"mu": spec.bayes.prior_mu, "tau": spec.bayes.prior_tau}
    out["method"] = "exact (quadrature)"
    return out


def _frequentist_dict(result, level: float) -> dict[str, Any]:
    from blinameta.analysis.run import back_transform

    s = result.spec.frequentist
    if result.main is None:
        return {"estimate": None, "ci_lb": None, "ci_ub": None, "pi_lb": None, "pi_ub": None, "i2": None, "tau2": None,
                "label": "frequentist (not pooled: one study)"}
    m, pr = result.main, result.prediction
    est, lb, ub = (float(v) for v in back_transform(result, [m.beta[0], m.ci_lb[0], m.ci_ub[0]]))
    plb, pub = (float(v) for v in back_transform(result, [pr.pi_lb[0], pr.pi_ub[0]]))
    test = {"knha": "Hartung-Knapp", "z": "Wald z"}.get(s.test, s.test)
    return {"estimate": est, "ci_lb": lb, "ci_ub": ub,
            "pi_lb": plb if np.isfinite(plb) and result.selection.k >= 3 else None,
            "pi_ub": pub if np.isfinite(pub) and result.selection.k >= 3 else None,
            "i2": float(m.i2), "tau2": float(m.tau2), "se": float(m.se[0]), "se_scale": s.measure,
            "measure": s.measure, "estimator": s.method, "test": s.test,
            "level": level, "label": f"frequentist ({s.method}, {test}, {s.measure})"}


def _selection_dict(selection) -> dict[str, Any]:
    rows = selection.rows
    cols = [c for c in ("study_id", "label", "cohort_id", "events", "total", "denominator") if c in rows]
    records = []
    for rec in rows[cols].to_dict("records"):
        records.append({k: (None if isinstance(v, float) and np.isnan(v) else (int(v) if k in ("events", "total") else v))
                        for k, v in rec.items()})
    denominators = {str(k): int(v) for k, v in rows["denominator"].fillna("not stated").value_counts().items()} if len(rows) else {}
    return {"rows": records, "denominators": denominators,
            "rule": "blinameta.analysis.select: the primary analysis' filter narrowed by --where; one row per "
                    "publication; overlapping publications resolved by the analysis' preference"}


def _run(evidence: Evidence, spec: AnalysisSpec):
    from blinameta.analysis.run import run_analysis

    return run_analysis(evidence, spec, sensitivity_strip=False)


def _outcome_analysis(evidence: Evidence, specs, code: str, cache: dict):
    """The light primary analysis of another outcome (a toxicity), cached within one query."""
    if code not in cache:
        spec = primary_spec(specs, code)
        if spec is None or spec.kind != "proportion":
            codes = sorted({s.outcome for s in specs if s.kind == "proportion"})
            raise UserError(f"no proportion analysis of {code!r} in models/; choose one of: {', '.join(codes)}")
        result = _run(evidence, _light(spec))
        if result.bayes is None or result.primary is None:
            raise UserError(f"{code}: the primary analysis {spec.id} has no Bayesian estimate ({'; '.join(result.notes)})")
        cache[code] = result
    return cache[code]


def _prior_mean(result) -> float:
    """The pooled rate as a prior mean: the headline, or the Bayesian mean rate when the headline is 0 or 1."""
    value = float(result.primary.estimate) if result.primary is not None else float(result.bayes.p_mean.mean)
    return value if 0 < value < 1 else float(result.bayes.p_mean.mean)


def _split(text: str, option: str, example: str, lengths: tuple[int, ...]) -> list[str]:
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in lengths or not all(parts):
        raise UserError(f"{option} {text!r}: expected {example}")
    return parts


def _floats(parts: list[str], option: str, text: str, example: str) -> list[float]:
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected numbers, e.g. {example}") from None


def parse_simon(text: str | tuple | None) -> tuple[float, ...] | None:
    """``"0.3,0.05,0.2[,0.5]"`` -> ``(p0, alpha, beta[, p1])``."""
    if text is None or isinstance(text, tuple):
        return text
    example = "P0,ALPHA,BETA[,P1], e.g. 0.3,0.05,0.2,0.5"
    return tuple(_floats(_split(text, "--simon", example, (3, 4)), "--simon", text, example))


def parse_safety(items) -> tuple[SafetyRequest, ...]:
    """``["crs_grade3plus,0.15[,0.9]"]`` -> safety requests."""
    out = []
    for item in items or ():
        if isinstance(item, SafetyRequest):
            out.append(item)
            continue
        example = "OUTCOME,LIMIT[,THRESHOLD], e.g. crs_grade3plus,0.15,0.9"
        parts = _split(item, "--safety", example, (2, 3))
        values = _floats(parts[1:], "--safety", item, example)
        out.append(SafetyRequest(parts[0], *values))
    return tuple(out)


def query(
    outcome: str,
    where: list[str] | dict | None = None,
    *,
    evidence: Evidence | str | Path = "evidence",
    models: str | Path | None = "models",
    method: str | None = None,
    n: int | None = None,
    responses: int | None = None,
    p0: float | None = None,
    alpha: float = 0.05,
    assurance_target: float | None = None,
    n_max: int = 500,
    simon: tuple[float, ...] | str | None = None,
    simon_n_max: int | None = None,
    monitor: bool = False,
    prior_ess: float = 2.0,
    theta_t: float | None = None,
    theta_l: float | None = None,
    theta_u: float = 1.0,
    nmax: int | None = None,
    cohort_size: int = 1,
    safety: Any = (),
    safety_ess: float = 10.0,
    counts: int | None = None,
    rate: float | None = None,
    seed: int = 20240611,
) -> QueryResult:
    """Answer a protocol designer's question from the evidence base.

    Parameters
    ----------
    outcome
        Outcome code (``cr``, ``mrd_neg``, ...); without ``where`` the answer is the outcome's
        primary analysis (``primary_for_outcome`` in ``models/``), equal to the report's headline.
    where
        Filter that narrows the primary population: ``["blast_burden=ge5"]`` or a dict.
    evidence, models
        The evidence folder (or loaded :class:`Evidence`) and the analyses folder.
    method
        The frequentist estimator shown beside the Bayesian headline (default: the analysis').
    n, responses
        With ``responses``: the predictive probability of at least that many responses of ``n``.
    n, p0, alpha
        Assurance of the planned one-sided exact binomial test of ``H0: p <= p0`` at level
        ``alpha`` with ``n`` patients (``p0`` defaults to the analysis' decision threshold).
    assurance_target, n_max
        The sample sizes (1..``n_max``) whose test-based assurance reaches the target.
    simon, simon_n_max
        ``(p0, alpha, beta[, p1])``: Simon's two-stage designs (``p1`` defaults to the pooled
        estimate, with a warning), searched up to ``simon_n_max``.
    monitor, prior_ess, theta_t, theta_l, theta_u, nmax, cohort_size
        Lee & Liu predictive-probability monitoring for the Simon rates: Beta prior with the
        pooled estimate as mean and ``prior_ess`` patients; ``nmax`` defaults to Simon's optimal n.
    safety, safety_ess
        Toxicities to monitor (``"OUTCOME,LIMIT[,THRESHOLD]"`` or :class:`SafetyRequest`), each
        with a Beta prior centred on its pooled rate with ``safety_ess`` patients.
    counts
        Predicted numbers of responders and of each toxicity among ``counts`` patients.
    rate
        Retired (use ``p0``).
    seed
        Seed of the NUTS sampler, used only for a meta-regression prediction.
    """
    from blinameta.design import (
        assurance,
        assurance_test,
        predicted_counts,
        predictive_monitoring,
        safety_boundaries,
        sample_size_for_assurance,
        simon_two_stage,
    )
    from blinameta.design._table import check_n, check_probability

    if rate is not None:
        raise UserError("--rate is retired: assurance is now that of the planned exact test of H0: p <= p0; "
                        "use --p0 (e.g. --assurance 0.8 --p0 0.3)")
    if not isinstance(evidence, Evidence):
        evidence = load_evidence_or_fail(evidence)
    where = parse_where(where)
    _check_filter(evidence, outcome, where)
    simon = parse_simon(simon)
    safety = parse_safety(safety)
    alpha = check_probability("--alpha", alpha, 0.0, 0.5)
    if n is not None:
        n = check_n("--n", n)
    if p0 is not None:
        p0 = check_probability("--p0", p0)
    warnings: list[str] = []
    specs = _specs(models, evidence)
    base = primary_spec(specs, outcome)
    if base is not None and base.kind != "proportion":
        base = None
    if base is None:
        base = AnalysisSpec(id="query", title=f"query {outcome}", kind="proportion", outcome=outcome, bayes=BayesSettings())
        warnings.append(f"no primary analysis of {outcome} in models/: default settings and no filter but --where")
    spec = _light(base, id=f"query_{base.id}", filter=_narrow(base, where, warnings))
    if method is not None:
        method = method.upper()
        if method not in ("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"):
            raise UserError(f"unknown method {method!r}; choose REML, DL, PM, ML, EB, HE, HS, SJ or EE")
        spec = spec.model_copy(update={"frequentist": spec.frequentist.model_copy(update={"method": method})})
    level = float(spec.frequentist.level)
    result = _run(evidence, spec)
    selection = result.selection
    regression = primary = None
    excluded = tuple(e.to_dict() for e in selection.excluded if e.kind != "no_data")
    if selection.k == 0:
        fitted = _regression(evidence, spec, where, warnings)
        if fitted is None:
            raise UserError(
                f"no study reports {outcome} for {', '.join(f'{k}={'/'.join(map(str, v))}' for k, v in spec.filter.items())}, "
                "and no meta-regression can predict it (the level is not observed and no reported counts "
                "give its share); widen the filter")
        relaxed_sel, rows_used, frequentist, regression, frame = fitted
        studies = tuple(rows_used["study_id"])
        excluded = tuple(e.to_dict() for e in relaxed_sel.excluded if e.kind != "no_data")
        bayes, (nodes, weights) = _bayes_regression(spec, rows_used, frame, seed)
        from blinameta.design import Predictive

        predictive = Predictive.from_samples(nodes, weights)
        kind, k, selection_info = "meta-regression", len(studies), None
        estimate = float(bayes["p_median"]["mean"])
    else:
        k = selection.k
        studies = tuple(selection.study_ids)
        kind = "pooled" if k > 1 else "single study"
        frequentist = _frequentist_dict(result, level)
        if result.bayes is None:
            raise UserError(f"{outcome}: the Bayesian model could not be fitted ({'; '.join(result.notes)})")
        bayes = _bayes_dict(result.bayes, spec)
        primary = result.primary.to_dict() if result.primary is not None else None
        predictive = _predictive(result.bayes)
        selection_info = _selection_dict(selection)
        estimate = _prior_mean(result)
        if len(selection_info["denominators"]) > 1:
            listed = ", ".join(f"{d} ({c})" for d, c in selection_info["denominators"].items())
            warnings.append(f"the rows pooled count {outcome} over different denominators: {listed}; they are pooled "
                            f"as the analysis pools them (narrow with --where denominator=...)")
        if k == 1:
            warnings.append("only one study matches: not pooled, the headline is that study's own estimate")
    warnings.extend(selection.notes)
    if k < 3:
        warnings.append(f"fewer than three studies ({k}): heterogeneity and predictions are unreliable")
    if frequentist.get("i2") is not None and frequentist["i2"] > 50:
        warnings.append(f"large heterogeneity (I² = {frequentist['i2']:.0f}%): a new cohort may differ widely from the pooled rate")

    threshold = base.decision_threshold
    design: dict[str, Any] = {}
    if n is not None and responses is not None:
        if not 0 <= responses <= n:
            raise UserError(f"--responses must be between 0 and --n ({n}) (got {responses})")
        design["assurance"] = {"n": n, "responses": responses, "probability": assurance(n, responses, predictive),
                               "description": "predictive probability of at least RESPONSES responses of N"}
    elif responses is not None:
        raise UserError("--responses needs --n (the patients in the planned trial)")
    wants_test = (n is not None and (responses is None or p0 is not None)) or assurance_target is not None
    if wants_test:
        if p0 is None:
            if threshold is None or threshold.value >= 1:
                raise UserError("give --p0 (the null response rate of the planned test, in (0, 1)); "
                                f"the analysis {base.id} has no decision threshold to default to")
            if threshold.direction != "above":
                raise UserError(f"the decision threshold of {base.id} ({threshold.value:g}) is an upper limit, but the "
                                "planned test is of H0: p <= p0 (a response rate); give --p0 explicitly, or use "
                                f"--safety {outcome},LIMIT for a toxicity")
            p0 = float(threshold.value)
            warnings.append(f"p0 = {p0:g}: the decision threshold of {base.id} ({threshold.text.strip()})")
        if n is not None:
            design["assurance_test"] = assurance_test(n, p0, predictive, alpha=alpha)
        if assurance_target is not None:
            found = sample_size_for_assurance(assurance_target, p0, predictive, alpha=alpha, n_max=n_max)
            design["sample_size"] = found
            if found.message:
                warnings.append(found.message)
    simon_result = None
    if simon is not None:
        s_p0, s_alpha, s_beta = simon[:3]
        s_p0 = check_probability("P0 of --simon", s_p0)
        if len(simon) == 4:
            p1, source = float(simon[3]), "given"
        else:
            if estimate <= s_p0 + 0.05:
                raise UserError(f"the pooled estimate ({estimate:.3f}) is within 0.05 of P0 ({s_p0:g}) or below it: "
                                "give a clinically meaningful target explicitly, --simon P0,ALPHA,BETA,P1")
            p1, source = estimate, "pooled estimate"
            warnings.append(f"Simon's p1 = {p1:.3f} is the pooled estimate; Simon (1989) means p1 as a clinically "
                            "meaningful target rate: give it as --simon P0,ALPHA,BETA,P1")
        simon_result = simon_two_stage(s_p0, p1, s_alpha, s_beta, n_max=simon_n_max, predictive=predictive,
                                       p1_source=source)
        design["simon"] = simon_result
        if simon_result.warning:
            warnings.append(simon_result.warning)
    trial_n = nmax if nmax is not None else (simon_result.optimal.n if simon_result is not None else n)
    if monitor:
        if simon_result is None:
            raise UserError("--monitor needs --simon P0,ALPHA,BETA[,P1]: its rates and error rates, and its optimal n "
                            "as the default maximum sample size (--nmax)")
        design["monitoring"] = predictive_monitoring(
            simon_result.p0, simon_result.p1, estimate, prior_ess=prior_ess, n_max=trial_n, theta_t=theta_t,
            theta_l=theta_l, theta_u=theta_u, alpha=simon_result.alpha, beta=simon_result.beta,
            cohort_size=cohort_size, predictive=predictive)
        if design["monitoring"].meets_targets is False:
            warnings.append("the monitoring design does not meet the type I error and power targets (see its table)")
    cache: dict = {}
    if safety:
        if trial_n is None:
            raise UserError("--safety needs the trial size: give --nmax, --n or --simon")
        rules = []
        for request in safety:
            tox = _outcome_analysis(evidence, specs, request.outcome, cache)
            label = evidence.review.outcomes[request.outcome].label
            rules.append(safety_boundaries(label, request.limit, _prior_mean(tox), n_max=trial_n,
                                           prior_ess=safety_ess, threshold=request.threshold, cohort_size=cohort_size))
        design["safety"] = tuple(rules)
    if counts is not None:
        counts = check_n("--counts", counts)
        predictives = {evidence.review.outcomes[outcome].label: predictive}
        for code, definition in evidence.review.outcomes.items():
            if code == outcome or definition.higher_is_better or definition.kind != "proportion":
                continue
            if primary_spec(specs, code) is None:
                continue
            predictives[definition.label] = _predictive(_outcome_analysis(evidence, specs, code, cache).bayes)
        design["counts"] = predicted_counts(counts, predictives)
    return QueryResult(
        outcome=outcome, filter={k: [str(x) for x in v] for k, v in spec.filter.items()}, method=kind, k=k,
        studies=studies, excluded=excluded, frequentist=frequentist, bayes=bayes, warnings=tuple(warnings),
        analysis=base.id if base.id != "query" else None, selection=selection_info, primary=primary, level=level,
        regression=regression, _predictive=predictive, **design,
    )
