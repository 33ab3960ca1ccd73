"""Query pooled estimates for protocol design: ``blinameta query`` and :func:`query`.

A query names an outcome and a filter on moderators (``relapse_line=first_relapse``,
``blast_burden=ge5``, ...). It selects studies exactly as the report's analyses do (one row per
publication, overlapping publications dropped with the preference of the matching analysis in
``models/``), pools them (REML with Hartung-Knapp on the logit scale by default, or the GLMM),
and computes the exact Bayesian posterior of the pooled rate and the predictive rate of a new
cohort. Where no study matches the filter exactly, the rate is predicted from a meta-regression
at the requested moderator values, and the answer says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blinameta.analysis.select import Selection, select
from blinameta.analysis.spec import FILTER_COLUMNS, AnalysisSpec, BayesSettings, FrequentistSettings, load_specs
from blinameta.errors import UserError
from blinameta.evidence.loader import Evidence, load_evidence_or_fail
from blinameta.evidence.tidy import tidy

__all__ = ["QueryResult", "query", "parse_where", "RELAPSE_SHARE"]

#: Relapse-line levels whose share of patients can be computed from reported counts.
RELAPSE_SHARE = ("refractory", "first_relapse", "second_or_later", "post_hsct")


@dataclass(frozen=True)
class QueryResult:
    """The answer to a query (display scale: proportions)."""

    outcome: str
    filter: dict[str, list[str]]
    method: str  # "pooled" or "meta-regression"
    k: int
    studies: tuple[str, ...]
    excluded: tuple[dict[str, str], ...]
    frequentist: dict[str, float | None]
    bayes: dict[str, Any] | None
    warnings: tuple[str, ...] = ()
    assurance: dict[str, Any] | None = None
    n_required: dict[str, Any] | None = None
    simon: dict[str, Any] | None = None
    regression: dict[str, Any] | None = None
    _predictive: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "outcome": self.outcome, "filter": self.filter, "method": self.method, "k": self.k,
            "studies": list(self.studies), "excluded": list(self.excluded), "frequentist": self.frequentist,
            "bayes": self.bayes, "warnings": list(self.warnings),
        }
        for name in ("assurance", "n_required", "simon", "regression"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


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
        raise UserError(f"unknown outcome {outcome!r}; outcomes with data: {', '.join(with_data)}")
    if review.outcomes[outcome].kind != "proportion":
        raise UserError(f"{outcome!r} is a time-to-event outcome; query pools proportions; choose one of: {', '.join(with_data)}")
    if outcome not in with_data:
        raise UserError(f"no study reports {outcome!r}; outcomes with data: {', '.join(with_data)}")
    for key, values in where.items():
        if key in review.moderators:
            levels = review.moderators[key].levels or {}
            for v in values:
                if v not in levels:
                    raise UserError(f"--where {key}={v}: {v!r} is not a level of {key}; valid: {', '.join(levels)}")
        elif key in ("design", "setting"):
            valid = sorted(set(table[key]))
            for v in values:
                if v not in valid and v not in ("randomized", "single_arm_trial", "expanded_access",
                                                 "retrospective_cohort", "case_series", "clinical_trial", "real_world"):
                    raise UserError(f"--where {key}={v}: valid values: {', '.join(valid)}")
        elif key not in FILTER_COLUMNS:
            valid = list(review.moderators) + ["design", "setting", "denominator", "cohort_kind"]
            raise UserError(f"--where {key}: unknown moderator; valid: {', '.join(valid)}")


def _matching_spec(models_dir: Path | None, evidence: Evidence, outcome: str, where: dict) -> AnalysisSpec | None:
    if models_dir is None or not Path(models_dir).is_dir():
        return None
    loaded = load_specs(models_dir, evidence.review, {p.id for p in evidence.publications})
    candidates = [s for s in loaded.specs if s.kind == "proportion" and s.outcome == outcome]
    for spec in candidates:  # same filter: the same analysis
        if {k: sorted(map(str, v)) for k, v in spec.filter.items()} == {k: sorted(v) for k, v in where.items()}:
            return spec
    return candidates[0] if candidates else None


def _pool(spec: AnalysisSpec, selection: Selection, method: str) -> dict[str, float | None]:
    from blinameta.frequentist.escalc import escalc_proportion, transf_proportion
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    rows = selection.rows
    events, total = rows["events"].to_numpy(int), rows["total"].to_numpy(int)
    if method == "GLMM":
        from blinameta.frequentist.glmm import rma_glmm

        g = rma_glmm(events, total)
        p = g.predict()
        vals = [np.ravel(v)[0] for v in (p.pred, p.ci_lb, p.ci_ub, p.pi_lb, p.pi_ub)]
        est, lb, ub, plb, pub = 1 / (1 + np.exp(-np.array(vals)))
        return {"estimate": float(est), "ci_lb": float(lb), "ci_ub": float(ub), "pi_lb": float(plb),
                "pi_ub": float(pub), "i2": float(g.i2), "tau2": float(g.tau2)}
    es = escalc_proportion("PLO", events, total)
    fit = rma(es.yi, es.vi, method=method, test=spec.frequentist.test, level=spec.frequentist.level)
    pr = predict(fit)
    est, lb, ub, plb, pub = transf_proportion("PLO", np.array([fit.beta[0], fit.ci_lb[0], fit.ci_ub[0], pr.pi_lb[0], pr.pi_ub[0]]))
    return {"estimate": float(est), "ci_lb": float(lb), "ci_ub": float(ub),
            "pi_lb": None if not math.isfinite(plb) else float(plb), "pi_ub": None if not math.isfinite(pub) else float(pub),
            "i2": float(fit.i2), "tau2": float(fit.tau2)}


def _bayes_exact(spec: AnalysisSpec, selection: Selection):
    from blinameta.bayes.exact import fit_exact, posterior_grid
    from blinameta.bayes.models import binomial_normal

    rows = selection.rows
    model = binomial_normal(rows["events"].to_numpy(int), rows["total"].to_numpy(int), study=list(rows["label"]),
                            prior_mu=spec.bayes.prior_mu, prior_tau=spec.bayes.prior_tau)
    result = fit_exact(model, thresholds=tuple(spec.bayes.thresholds))
    grid = posterior_grid(model)
    # predictive rate of a new study as a discrete mixture: grid (mu, tau) x Gauss-Hermite z
    z, gw = np.polynomial.hermite_e.hermegauss(40)
    gw = gw / gw.sum()
    theta = grid.mu[:, None, None] + grid.tau[None, :, None] * z[None, None, :]
    nodes = 1 / (1 + np.exp(-theta))
    weights = grid.weight[:, :, None] * gw[None, None, :]
    bayes = {name: {"mean": float(getattr(result, name).mean), "lb": float(getattr(result, name).lb),
                    "ub": float(getattr(result, name).ub)} for name in ("p_median", "p_mean", "p_new")}
    bayes["exceedance"] = [e.to_dict() for e in result.exceedance]
    bayes["priors"] = {"mu": spec.bayes.prior_mu, "tau": spec.bayes.prior_tau}
    return bayes, (nodes, weights)


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


def query(
    outcome: str,
    where: list[str] | dict | None = None,
    *,
    evidence: Evidence | str | Path = "evidence",
    models: str | Path | None = "models",
    method: str = "REML",
    n: int | None = None,
    responses: int | None = None,
    assurance_target: float | None = None,
    rate: float | None = None,
    simon: tuple[float, float, float] | None = None,
    seed: int = 20240611,
) -> QueryResult:
    """Answer a protocol designer's question from the evidence base.

    Parameters
    ----------
    outcome
        Outcome code (``cr``, ``mrd_neg``, ...).
    where
        Filter: ``["relapse_line=first_relapse", "blast_burden=ge5"]`` or a dict.
    evidence, models
        The evidence folder (or loaded :class:`Evidence`) and the analyses folder (used for the
        preference among overlapping publications and for the priors of a matching analysis).
    method
        ``"REML"`` (default, logit scale with Hartung-Knapp), another tau² estimator, or ``"GLMM"``.
    n, responses
        Assurance: probability that a trial of ``n`` patients sees at least ``responses`` events.
    assurance_target, rate
        Smallest ``n`` whose assurance of observing a rate of at least ``rate`` is >= the target.
    simon
        ``(p0, alpha, beta)``: Simon two-stage designs with ``p1`` = the pooled estimate.
    seed
        Seed of the NUTS sampler, used only for a meta-regression prediction (the pooled case
        is computed exactly, without sampling).
    """
    from blinameta.design import assurance, simon_two_stage, smallest_n_for_assurance

    if not isinstance(evidence, Evidence):
        evidence = load_evidence_or_fail(evidence)
    where = parse_where(where)
    _check_filter(evidence, outcome, where)
    method = method.upper()
    if method not in ("GLMM", "EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"):
        raise UserError(f"unknown method {method!r}; choose REML (default), GLMM, DL, PM, ML, EB, HE, HS, SJ or EE")
    base = _matching_spec(Path(models) if models is not None else None, evidence, outcome, where)
    spec = AnalysisSpec(
        id="query", title=f"query {outcome}", kind="proportion", outcome=outcome,
        filter={k: v for k, v in where.items()},
        prefer=list(base.prefer) if base is not None else [],
        frequentist=FrequentistSettings(measure="PLO", method="REML" if method == "GLMM" else method, test="knha"),
        bayes=base.bayes if base is not None else BayesSettings(),
    )
    warnings: list[str] = []
    selection = select(evidence, spec)
    if selection.k and "denominator" not in where:
        counts = selection.rows["denominator"].value_counts()
        if len(counts) > 1:
            listed = ", ".join(f"{d} ({c} stud{'y' if c == 1 else 'ies'})" for d, c in counts.items())
            raise UserError(
                f"the studies that match count {outcome} over different denominators: {listed}; "
                f"add --where denominator=... to pool one kind (e.g. --where denominator={counts.index[0]})")
    excluded = tuple(e.to_dict() for e in selection.excluded if e.kind != "no_data")
    regression = None
    if selection.k == 0:
        fitted = _regression(evidence, spec, where, warnings)
        if fitted is None:
            raise UserError(
                f"no study reports {outcome} for {', '.join(f'{k}={'/'.join(v)}' for k, v in where.items())}, "
                "and no meta-regression can predict it (the level is not observed and no reported counts "
                "give its share); widen the filter")
        relaxed_sel, rows_used, frequentist, regression, frame = fitted
        studies = tuple(rows_used["study_id"])
        excluded = tuple(e.to_dict() for e in relaxed_sel.excluded if e.kind != "no_data")
        bayes, (nodes, weights) = _bayes_regression(spec, rows_used, frame, seed)
        kind = "meta-regression"
        k = len(studies)
    else:
        kind = "pooled"
        k = selection.k
        studies = tuple(selection.study_ids)
        if k == 1:
            warnings.append("only one study matches: no pooling, the estimate is that study's")
            r = selection.rows.iloc[0]
            from blinameta.frequentist.escalc import ci_clopper_pearson

            lb, ub = ci_clopper_pearson([int(r.events)], [int(r.total)])
            frequentist = {"estimate": float(r.events / r.total), "ci_lb": float(lb[0]), "ci_ub": float(ub[0]),
                           "pi_lb": None, "pi_ub": None, "i2": None, "tau2": None}
        else:
            frequentist = _pool(spec, selection, method)
        bayes, (nodes, weights) = _bayes_exact(spec, selection)
    if k < 3:
        warnings.append(f"fewer than three studies ({k}): heterogeneity and predictions are unreliable")
    if frequentist.get("i2") is not None and frequentist["i2"] > 50:
        warnings.append(f"large heterogeneity (I² = {frequentist['i2']:.0f}%): a new cohort may differ widely from the pooled rate")
    result_assurance = result_n = result_simon = None
    if n is not None or responses is not None:
        if n is None or responses is None:
            raise UserError("--n and --responses go together")
        if not 0 <= responses <= n:
            raise UserError(f"--responses ({responses}) must be between 0 and --n ({n})")
        result_assurance = {"n": n, "responses": responses,
                            "probability": assurance(n, responses, nodes, weights)}
    if assurance_target is not None:
        if rate is None:
            raise UserError("--assurance needs --rate, the response rate the trial must observe (e.g. --rate 0.5)")
        found = smallest_n_for_assurance(assurance_target, rate, nodes, weights)
        result_n = ({"target": assurance_target, "rate": rate, "n": found[0], "responses": found[1], "assurance": found[2]}
                    if found else {"target": assurance_target, "rate": rate, "n": None, "responses": None, "assurance": None})
        if found is None:
            warnings.append(f"no trial of up to 1000 patients reaches an assurance of {assurance_target}: "
                            f"the predictive probability that the rate exceeds {rate} is too small")
    if simon is not None:
        p0, alpha, beta = simon
        result_simon = simon_two_stage(p0, float(frequentist["estimate"]), alpha, beta).to_dict()
    return QueryResult(
        outcome=outcome, filter=where, method=kind, k=k, studies=studies, excluded=excluded,
        frequentist=frequentist, bayes=bayes, warnings=tuple(warnings), assurance=result_assurance,
        n_required=result_n, simon=result_simon, regression=regression,
    )
