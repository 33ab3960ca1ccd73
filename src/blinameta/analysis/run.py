"""Fit one analysis: selection -> effect sizes -> frequentist and Bayesian fits -> a Result.

The result keeps every fitted object (metafor-like results, the Bayesian result, the
diagnostics) so that the report and the query read numbers and never refit. A part that cannot
be fitted (too few studies, a GLMM that does not converge) is recorded as a note, not raised:
an analysis with one study still shows that study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from blinameta.analysis._present import AnalysisPresentation
from blinameta.analysis.select import Selection, select
from blinameta.analysis.spec import AnalysisSpec
from blinameta.errors import UserError
from blinameta.evidence.loader import Evidence

__all__ = [
    "SubgroupAnalysis",
    "MetaRegression",
    "AnalysisResult",
    "run_analysis",
    "effect_sizes",
    "back_transform",
]

#: Seed of the permutation tests in the report (reproducible reports).
PERMUTATION_SEED = 20240101
#: Small-study (funnel-asymmetry) tests need at least this many studies (Cochrane Handbook 13.3.5.4).
SMALL_STUDY_MIN_K = 10

#: Rules of the subgroup and small-study analyses, for the methods page.
SUBGROUP_RULES = (
    {"id": "subgroups", "title": "Subgroups",
     "text": "Each subgroup is pooled on its own (its own heterogeneity) and the subgroup estimates are compared by a "
             "test for subgroup differences. A subgroup with a single study is shown but left out of the test, "
             "because its interval ignores heterogeneity and the test would be optimistic; when fewer than two "
             "subgroups have two or more studies, the test is kept but labelled z-based and optimistic. Studies that "
             "do not report the subgrouping variable are counted and named with the test. Subgroup findings are "
             "observational and, with these few studies, confounded by other differences between cohorts.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 10.11",
                    "Borenstein M, Higgins JPT. Meta-analysis and subgroups. Prev Sci 2013;14:134-43"]},
    {"id": "small_study", "title": "Small-study effects",
     "text": "Tests for funnel-plot asymmetry are run, and the funnel plot drawn, only with at least ten studies. "
             "For proportions we use "
             "Peters' test (regression on the inverse of the sample size), because Egger's test on logit "
             "proportions is biased: a logit's standard error depends on the proportion itself.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 13.3.5.4",
                    "Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L. JAMA 2006;295:676-80",
                    "Hunter JP, Saratzis A, Sutton AJ, et al. In meta-analyses of proportion studies, funnel plots "
                    "were found to be an inaccurate method of assessing publication bias. J Clin Epidemiol "
                    "2014;67:897-903"]},
)


@dataclass(frozen=True)
class SubgroupAnalysis:
    """A subgroup analysis by one moderator."""

    moderator: str
    result: Any  # blinameta.frequentist.subgroup.SubgroupResult; qb/qb_p are those of the honest test
    labels: tuple[str, ...]  # group of each included study (in row order)
    k_excluded_missing: int = 0  # studies left out of the test: moderator not reported
    single_study_groups: tuple[str, ...] = ()  # shown, but excluded from the test when possible
    test_label: str = ""
    tested_groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {"moderator": self.moderator, "groups": list(r.groups), "k": [int(v) for v in r.k],
                "qb": float(r.qb), "df": int(r.qb_df[0]), "pval": float(r.qb_p), "test_label": self.test_label,
                "tested_groups": list(self.tested_groups), "single_study_groups": list(self.single_study_groups),
                "k_excluded_missing": self.k_excluded_missing}


@dataclass(frozen=True)
class MetaRegression:
    """A meta-regression on one moderator, with its permutation test and predictions."""

    moderator: str
    categorical: bool
    result: Any  # RmaResult
    permutation: Any | None  # PermutestResult
    values: tuple  # moderator value of each study used
    rows: tuple[int, ...]  # indices of the studies used (rows of the selection)
    grid: tuple  # moderator values predicted at
    prediction: Any  # Prediction at grid (effect scale)


@dataclass(frozen=True)
class AnalysisResult(AnalysisPresentation):
    """Everything the report and the query need about one analysis."""

    spec: AnalysisSpec
    selection: Selection
    yi: np.ndarray
    vi: np.ndarray
    scale: str  # "proportion" or "ratio"
    main: Any = None  # RmaResult
    common: Any = None  # RmaResult (EE)
    prediction: Any = None  # Prediction of the main model, effect scale
    tau2_ci: Any = None  # ConfintTau2
    glmm: Any = None  # GlmmResult
    bayes: Any = None  # BayesResult (exact path)
    subgroups: tuple[SubgroupAnalysis, ...] = ()
    metaregressions: tuple[MetaRegression, ...] = ()
    leave1out: Any = None
    influence: Any = None
    egger: Any = None
    begg: Any = None
    trimfill: Any = None
    sensitivity: tuple = ()  # blinameta.analysis.sensitivity.SensitivityRow
    notes: tuple[str, ...] = ()
    study_ci: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    primary: Any = None  # blinameta.analysis.primary.Primary (None when no study qualifies)
    small_study: Any = None  # (test name, RegtestResult): Peters (proportions) or Egger (ratios), k >= 10
    certainty: Any = None  # blinameta.analysis.grade.Certainty
    moderator_models: tuple = ()  # blinameta.analysis.moderators.ModeratorModel (exploratory)

    @property
    def k(self) -> int:
        return self.selection.k

    @property
    def patients(self) -> int:
        return int(self.selection.rows["total"].sum()) if self.k else 0

    def methods_summary(self) -> dict[str, Any]:
        """The methods layer's part of summary.json: headline, primary flags and decision threshold."""
        spec = self.spec
        out: dict[str, Any] = {
            "primary": self.primary.to_dict() if self.primary is not None else None,
            "primary_for_outcome": spec.primary_for_outcome,
            "headline": spec.headline,
            "decision_threshold": spec.decision_threshold.model_dump() if spec.decision_threshold else None,
            "sensitivity_margin": spec.margin,
            "sensitivity": [row.to_dict() for row in self.sensitivity],
            "certainty": self.certainty.to_dict() if self.certainty is not None else None,
            "subgroup_tests": [sg.to_dict() for sg in self.subgroups],
            "moderator_models": [m.to_dict() for m in self.moderator_models],
        }
        if self.small_study is not None:
            name, test = self.small_study
            out["diagnostics"] = {"small_study": {"test": name, "stat": float(test.zval), "pval": float(test.pval),
                                                  "k": self.k}}
        else:
            out["diagnostics"] = {"small_study": None,
                                  "note": f"not run: {self.k} studies, fewer than {SMALL_STUDY_MIN_K}"}
        return out

    def to_display(self, values: Any) -> np.ndarray:
        """Effect scale -> display scale (proportion or ratio)."""
        return back_transform(self, values)


def effect_sizes(spec: AnalysisSpec, rows: pd.DataFrame):
    """``EffectSizes`` for the selected rows (proportions, log risk ratios or log hazard ratios)."""
    from blinameta.frequentist.escalc import escalc_2x2, escalc_proportion, log_hr_from_ci

    if spec.kind == "proportion":
        return escalc_proportion(spec.frequentist.measure, rows["events"].to_numpy(int), rows["total"].to_numpy(int))
    if spec.kind == "risk_ratio":
        return escalc_2x2("RR", rows["ai"].to_numpy(int), rows["n1i"].to_numpy(int),
                          rows["ci"].to_numpy(int), rows["n2i"].to_numpy(int))
    levels = rows["level"].to_numpy(float)
    out = [log_hr_from_ci([h], [lb], [ub], level=float(lv)) for h, lb, ub, lv in
           zip(rows["hr"], rows["ci_lb"], rows["ci_ub"], levels)]
    from blinameta.frequentist.escalc import EffectSizes

    return EffectSizes(
        yi=np.concatenate([e.yi for e in out]), vi=np.concatenate([e.vi for e in out]),
        measure="HR", ni=rows["total"].to_numpy(float), corrected=np.zeros(len(rows), bool), add=0.0, to="none",
    )


def back_transform(result: AnalysisResult | AnalysisSpec, values: Any, ni: Any = None) -> np.ndarray:
    """Effect scale -> proportion (PFT by the harmonic mean of the totals) or ratio (exp)."""
    from blinameta.frequentist.escalc import transf_proportion

    spec = result.spec if isinstance(result, AnalysisResult) else result
    values = np.asarray(values, dtype=float)
    if spec.kind != "proportion":
        return np.exp(values)
    if ni is None and isinstance(result, AnalysisResult):
        ni = result.selection.rows["total"].to_numpy(float)
    measure = spec.frequentist.measure
    if measure == "PFT":
        from blinameta.frequentist.escalc import transf_ipft_hm

        return transf_ipft_hm(values, ni)
    return transf_proportion(measure, values, ni)


def _try(notes: list[str], what: str, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except (ValueError, UserError, ArithmeticError, np.linalg.LinAlgError) as exc:
        notes.append(f"{what}: not computed ({exc})")
        return None


def run_analysis(evidence: Evidence, spec: AnalysisSpec, *, sensitivity_strip: bool = True) -> AnalysisResult:
    """Select, fit and diagnose one analysis (``sensitivity_strip=False``: without the strip, as ``query`` needs)."""
    from blinameta.frequentist.confint import confint_tau2
    from blinameta.frequentist.diagnostics import influence, leave1out, ranktest, regtest, trimfill
    from blinameta.frequentist.escalc import ci_clopper_pearson
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    notes: list[str] = []
    selection = select(evidence, spec)
    notes.extend(selection.notes)
    k = selection.k
    rows = selection.rows
    scale = "proportion" if spec.kind == "proportion" else "ratio"
    if k == 0:
        return AnalysisResult(spec, selection, np.empty(0), np.empty(0), scale,
                              notes=("no study matches this analysis",))
    es = effect_sizes(spec, rows)
    yi, vi = es.yi, es.vi
    s = spec.frequentist
    study_ci = None
    if spec.kind == "proportion":
        study_ci = ci_clopper_pearson(rows["events"].to_numpy(int), rows["total"].to_numpy(int), level=s.level)
    else:
        from scipy.stats import norm

        z = norm.ppf(0.5 + s.level / 200)
        study_ci = (yi - z * np.sqrt(vi), yi + z * np.sqrt(vi))

    parts: dict[str, Any] = {}
    if k >= 2:
        parts["main"] = _try(notes, f"{s.method} model", rma, yi, vi, method=s.method, test=s.test, level=s.level)
        parts["common"] = _try(notes, "common-effect model", rma, yi, vi, method="EE", test="z", level=s.level)
    else:
        notes.append("one study only: no pooled estimate")
    main = parts.get("main")
    if main is not None:
        parts["prediction"] = predict(main)
        if s.method != "EE":
            parts["tau2_ci"] = _try(notes, "tau² confidence interval", confint_tau2, main)
    if spec.kind == "proportion" and s.glmm and k >= 2:
        from blinameta.frequentist.glmm import rma_glmm

        parts["glmm"] = _try(notes, "binomial-normal GLMM", rma_glmm, rows["events"].to_numpy(int),
                             rows["total"].to_numpy(int), level=s.level)
    if spec.bayes.enabled and k >= 2:
        parts["bayes"] = _try(notes, "Bayesian model", _fit_bayes, spec, rows, yi, vi)
    elif spec.bayes.enabled and k == 1:
        # a random-effects posterior of one study is its estimate widened by the heterogeneity
        # prior, not a pooled result: the headline is the study's own estimate (primary.py)
        notes.append("one study: no Bayesian random-effects model (nothing to pool)")

    subgroups = []
    for moderator in spec.subgroups:
        if moderator not in rows or main is None:
            continue
        values = rows[moderator]
        use = values.notna().to_numpy()
        levels = sorted(set(values[use].astype(str)))
        if len(levels) < 2:
            notes.append(f"subgroups by {moderator}: all included studies are {levels[0] if levels else 'unknown'}")
            continue
        from blinameta.frequentist.subgroup import subgroup

        result = _try(notes, f"subgroups by {moderator}", subgroup, yi[use], vi[use],
                      values[use].astype(str).to_numpy(), tau2="separate", method=s.method, test=s.test, level=s.level)
        if result is not None:
            subgroups.append(_honest_subgroups(moderator, result, values, yi, vi, s, notes))

    metaregs = []
    for moderator in spec.moderators:
        if moderator not in rows or main is None:
            continue
        metareg = _metaregression(spec, rows, yi, vi, moderator, notes)
        if metareg is not None:
            metaregs.append(metareg)

    if main is not None and k >= 3:
        parts["leave1out"] = _try(notes, "leave-one-out", leave1out, main)
        parts["influence"] = _try(notes, "influence diagnostics", influence, main)
        if k >= SMALL_STUDY_MIN_K:
            if spec.kind == "proportion":
                from blinameta.frequentist.diagnostics import peters_test

                test = _try(notes, "Peters' test", peters_test, main, rows["total"].to_numpy(float))
                parts["small_study"] = ("Peters' test", test) if test is not None else None
            else:
                parts["egger"] = _try(notes, "Egger's test", regtest, main)
                parts["small_study"] = ("Egger's test", parts["egger"]) if parts["egger"] is not None else None
            parts["begg"] = _try(notes, "Begg's test", ranktest, main)
            parts["trimfill"] = _try(notes, "trim-and-fill", trimfill, main)
        else:
            notes.append(f"small-study tests not run: {k} studies, fewer than {SMALL_STUDY_MIN_K} "
                         "(Cochrane Handbook 13.3.5.4)")
    elif main is not None:
        notes.append("fewer than 3 studies: no small-study or leave-one-out diagnostics")

    parts["primary"] = _primary(spec, selection, parts.get("bayes"), notes)
    from blinameta.analysis.sensitivity import sensitivity_strip as strip

    sensitivity = (_try(notes, "sensitivity analyses", strip, evidence, spec, selection, yi, vi, main=main,
                        common=parts.get("common"), glmm=parts.get("glmm"), primary=parts["primary"]) or ()
                   if sensitivity_strip else ())
    if k < 3:
        notes.append(f"only {k} stud{'y' if k == 1 else 'ies'}: estimates of heterogeneity are unreliable")
    if main is not None and main.i2 > 50:
        notes.append(f"substantial heterogeneity (I² = {main.i2:.0f}%)")
    if spec.exploratory_moderators and k >= 1:
        from blinameta.analysis.moderators import moderator_models

        parts["moderator_models"] = _try(notes, "exploratory moderators", moderator_models, spec, rows) or ()
    parts["certainty"] = _try(notes, "GRADE certainty", _certainty, evidence, spec, selection, yi, main,
                              parts["primary"], parts.get("small_study"))
    return AnalysisResult(
        spec=spec, selection=selection, yi=yi, vi=vi, scale=scale,
        subgroups=tuple(subgroups), metaregressions=tuple(metaregs), sensitivity=tuple(sensitivity),
        notes=tuple(notes), study_ci=study_ci, **parts,
    )


#: Grid of the exact path for sensitivity refits: summaries within about 1e-4 of the default grid
#: (checked on the MRD data, k = 8) at a tenth of the time, without the shrunken-study summaries' cost.
FAST_GRID = {"n_mu": 31, "n_tau": 31, "refine": 3, "studies": False}


def _fit_bayes(spec: AnalysisSpec, rows: pd.DataFrame, yi: np.ndarray, vi: np.ndarray, prior_tau: str | None = None,
               fast: bool = False):
    """Exact-path Bayesian fit (binomial-normal for proportions, normal-normal for log ratios)."""
    from blinameta.bayes.exact import fit_exact
    from blinameta.bayes.models import binomial_normal, normal_normal

    labels = list(rows["label"])
    b = spec.bayes
    tau = b.prior_tau if prior_tau is None else prior_tau
    if spec.kind == "proportion":
        model = binomial_normal(rows["events"].to_numpy(int), rows["total"].to_numpy(int), study=labels,
                                prior_mu=b.prior_mu, prior_tau=tau)
        return fit_exact(model, thresholds=exceedance_thresholds(spec), **(FAST_GRID if fast else {}))
    model = normal_normal(yi, vi, study=labels, prior_mu=b.prior_mu, prior_tau=tau)
    return fit_exact(model, **(FAST_GRID if fast else {}))


def exceedance_thresholds(spec: AnalysisSpec) -> tuple[float, ...]:
    """The model's exceedance thresholds and its decision threshold, sorted."""
    values = set(spec.bayes.thresholds)
    if spec.decision_threshold is not None and spec.kind == "proportion":
        values.add(spec.decision_threshold.value)
    return tuple(sorted(values))


def _primary(spec: AnalysisSpec, selection: Selection, bayes, notes: list[str]):
    """The headline: the Bayesian posterior (k >= 2) or the single study's own estimate."""
    from blinameta.analysis.primary import headline

    if selection.k >= 2 and bayes is None:
        notes.append("no headline estimate: the Bayesian model could not be fitted")
        return None
    return _try(notes, "headline estimate", headline, spec, selection.rows, bayes=bayes)


def grade_framework(evidence: Evidence) -> dict[str, Any]:
    """The GRADE framework and starting levels: review.yaml's ``grade:`` section over the defaults."""
    from blinameta.analysis.grade import GRADE_FRAMEWORK

    section = getattr(evidence.review, "grade", None)
    if section is None:
        return dict(GRADE_FRAMEWORK)
    extra = section if isinstance(section, dict) else section.model_dump(exclude_none=True)
    return {**GRADE_FRAMEWORK, **extra}


def _study_rob(evidence: Evidence, spec: AnalysisSpec, study_id: str) -> str | None:
    """A study's overall risk-of-bias judgement for this outcome (RoB 2 per result where given)."""
    pub = next((p for p in evidence.publications if p.id == study_id), None)
    rob = getattr(pub, "risk_of_bias", None)
    if rob is None:
        return None
    codes = {spec.outcome, *spec.endpoints}
    for result in getattr(rob, "results", ()) or ():
        if codes & set(result.outcomes):
            return result.overall
    return rob.overall


def _dominant_share(values: pd.Series, weights: np.ndarray) -> tuple[list[str], float]:
    """Distinct values and the weight share of the studies outside the heaviest value."""
    labels = values.fillna("unspecified").astype(str).to_numpy()
    totals = {v: float(weights[labels == v].sum()) for v in sorted(set(labels))}
    top = max(totals, key=totals.get)
    return [f"{v} ({int((labels == v).sum())})" for v in totals], 1.0 - totals[top] / float(weights.sum())


#: Denominators that count the same patients for the question (all treated = the safety set).
_SAME_DENOMINATOR = {"safety_set": "all_treated", "assessed": "evaluable"}


def _indirectness(evidence: Evidence, spec: AnalysisSpec, rows: pd.DataFrame, weights: np.ndarray) -> list:
    out = []
    if "family" in rows and rows["family"].notna().any():
        stated = rows["family"].notna().to_numpy() & (rows["family"].astype(str) != "unspecified").to_numpy()
        if rows["family"][stated].nunique() > 1:
            levels, share = _dominant_share(rows["family"][stated], weights[stated])
            share *= float(weights[stated].sum() / weights.sum())
            out.append((f"outcome definitions differ: {', '.join(levels)}", share))
    if spec.kind == "proportion" and "denominator" in rows:
        denominators = rows["denominator"].map(lambda d: _SAME_DENOMINATOR.get(d, d))
        if denominators.nunique(dropna=True) > 1:
            levels, share = _dominant_share(denominators, weights)
            out.append((f"denominators differ: {', '.join(levels)}", share))
    if "flags" in rows:
        flagged = rows["flags"].fillna("").astype(str).str.contains("treatment_related_only|lower_bound|upper_bound")
        if flagged.any():
            share = float(weights[flagged.to_numpy()].sum() / weights.sum())
            out.append((f"counts limited or bounded in {int(flagged.sum())} stud{'y' if flagged.sum() == 1 else 'ies'} "
                        "(treatment-related only, or a bound)", share))
    if "blast_burden" not in spec.filter and spec.kind == "proportion" and spec.outcome in ("cr",):
        out.append(("complete remission pooled over cohorts with and without overt disease", 1.0))
    return out


def _certainty(evidence: Evidence, spec: AnalysisSpec, selection: Selection, yi, main, primary, small_study):
    """Assemble the GRADE inputs from the analysis and rate them (blinameta.analysis.grade)."""
    from dataclasses import replace

    from blinameta.analysis.grade import GradeInputs, StudyRob, certainty

    if primary is None:
        return None
    rows = selection.rows
    k = selection.k
    weights = np.asarray(main.weights, dtype=float) if main is not None else np.ones(k)
    framework = grade_framework(evidence)
    randomized = spec.kind != "proportion"
    threshold = spec.decision_threshold
    if spec.kind == "proportion":
        study_estimates = tuple(float(v) for v in rows["events"] / rows["total"])
    else:
        study_estimates = tuple(float(v) for v in np.exp(yi))
    control_risk = None
    if spec.kind == "risk_ratio":
        control_risk = float(rows["ci"].sum() / rows["n2i"].sum())
    inputs = GradeInputs(
        design="randomized" if randomized else "single_arm", scale=primary.scale, k=k, patients=primary.patients,
        estimate=primary.estimate, ci_lb=primary.ci_lb, ci_ub=primary.ci_ub, pi_lb=primary.pi_lb, pi_ub=primary.pi_ub,
        threshold=(threshold.value, threshold.direction) if threshold is not None else None,
        i2=float(main.i2) if main is not None else None,
        tau=float(np.sqrt(main.tau2)) if main is not None else None,
        study_estimates=study_estimates,
        rob=tuple(StudyRob(sid, _study_rob(evidence, spec, sid), float(w)) for sid, w in zip(rows["study_id"], weights)),
        indirect=tuple(_indirectness(evidence, spec, rows, weights)),
        small_study_p=float(small_study[1].pval) if small_study else None,
        small_study_test=small_study[0] if small_study else "",
        events=primary.events, control_risk=control_risk,
        measure={"hazard_ratio": "HR", "risk_ratio": "RR"}.get(spec.kind, ""),
        start=framework["start_randomized" if randomized else "start_single_arm"],
        outcome_label=evidence.review.outcomes[spec.outcome].label if spec.outcome in evidence.review.outcomes else "",
    )
    if "source_type" in rows and k:
        secondary = (rows["source_type"].astype(str) == "secondary").to_numpy()
        if secondary.any():
            share = float(weights[secondary].sum() / weights.sum())
            inputs = replace(inputs, notes=(f"{share:.0%} of the weight comes from numbers quoted by another "
                                            f"publication (secondary reports: {', '.join(rows['study_id'][secondary])})",))
    overrides = {d: (o.levels, o.reason) for d, o in spec.grade.override.items()}
    return certainty(inputs, overrides, framework)


def _honest_subgroups(moderator: str, result, values: pd.Series, yi, vi, s, notes: list[str]) -> SubgroupAnalysis:
    """Subgroups shown as fitted; the test for differences leaves out single-study subgroups.

    A subgroup with one study has no within-subgroup heterogeneity estimate and falls back to a
    Wald z interval; comparing it by the fixed-effect Q test is optimistic (metafor warns). The
    test is therefore repeated among the subgroups with two or more studies; when fewer than two
    such subgroups remain it is kept but labelled z-based and optimistic. Studies that do not
    report the moderator are counted and stated with the test (Cochrane Handbook 10.11.3.1).
    """
    from dataclasses import replace

    from blinameta.frequentist.subgroup import subgroup

    labels = tuple("not reported" if pd.isna(v) else str(v) for v in values)
    missing = int(values.isna().sum())
    singles = tuple(g for g, kk in zip(result.groups, result.k) if kk == 1)
    multi = [g for g, kk in zip(result.groups, result.k) if kk >= 2]
    tested = tuple(result.groups)
    if singles and len(multi) >= 2:
        keep = np.array([lab in multi for lab in labels])
        restricted = _try(notes, f"subgroup test by {moderator}", subgroup, yi[keep], vi[keep],
                          np.array(labels)[keep], tau2="separate", method=s.method, test=s.test, level=s.level)
        if restricted is not None:
            result = replace(result, qb=restricted.qb, qb_df=restricted.qb_df, qb_p=restricted.qb_p)
            tested = tuple(multi)
        label = (f"test among subgroups with 2 or more studies; single-study subgroups shown but not tested "
                 f"({', '.join(singles)})")
    elif singles:
        label = ("z-based test including single-study subgroups (" + ", ".join(singles) + "): optimistic, "
                 "read with caution")
    else:
        label = "test for subgroup differences (separate τ² per subgroup)"
    if missing:
        label += f"; {missing} stud{'y' if missing == 1 else 'ies'} not reporting {moderator} left out"
        notes.append(f"subgroups by {moderator}: {missing} of {len(values)} studies do not report it and are not in the test")
    return SubgroupAnalysis(moderator, result, labels, missing, singles, label, tested)


def _metaregression(spec: AnalysisSpec, rows: pd.DataFrame, yi, vi, moderator: str, notes: list[str]):
    from blinameta.frequentist.permutest import permutest
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    s = spec.frequentist
    values = rows[moderator]
    use = values.notna().to_numpy()
    idx = np.flatnonzero(use)
    numeric = pd.api.types.is_numeric_dtype(values[use]) and not pd.api.types.is_bool_dtype(values[use])
    if numeric:
        x = values[use].astype(float).to_numpy()
        if len(np.unique(x)) < 2:
            notes.append(f"meta-regression on {moderator}: no variation among the included studies")
            return None
        mods = pd.DataFrame({moderator: x})
        p = 2
    else:
        x = values[use].astype(str).to_numpy()
        levels = sorted(set(x))
        if len(levels) < 2:
            notes.append(f"meta-regression on {moderator}: all included studies are {levels[0] if levels else 'unknown'}")
            return None
        mods = pd.DataFrame({moderator: pd.Categorical(x, categories=levels)})
        p = len(levels)
    if len(idx) < p + 2:
        notes.append(f"meta-regression on {moderator}: {len(idx)} studies are too few for {p} coefficients")
        return None
    fit = _try(notes, f"meta-regression on {moderator}", rma, yi[idx], vi[idx], mods=mods,
               method=s.method, test=s.test, level=s.level)
    if fit is None:
        return None
    perm = None
    if s.permutations > 0:
        perm = _try(notes, f"permutation test on {moderator}", permutest, fit, n_perm=s.permutations, seed=PERMUTATION_SEED)
    if numeric:
        grid = tuple(np.linspace(float(x.min()), float(x.max()), 50))
        newmods = pd.DataFrame({moderator: np.asarray(grid)})
    else:
        grid = tuple(sorted(set(x)))
        newmods = pd.DataFrame({moderator: pd.Categorical(list(grid), categories=sorted(set(x)))})
    prediction = _try(notes, f"predictions for {moderator}", predict, fit, newmods)
    return MetaRegression(moderator, not numeric, fit, perm, tuple(x.tolist()), tuple(int(i) for i in idx), grid, prediction)
