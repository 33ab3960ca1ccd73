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

from blinameta.analysis.select import Selection, select
from blinameta.analysis.spec import AnalysisSpec
from blinameta.errors import UserError
from blinameta.evidence.loader import Evidence

__all__ = [
    "SubgroupAnalysis",
    "MetaRegression",
    "Sensitivity",
    "AnalysisResult",
    "run_analysis",
    "effect_sizes",
    "back_transform",
]

#: Seed of the permutation tests in the report (reproducible reports).
PERMUTATION_SEED = 20240101


@dataclass(frozen=True)
class SubgroupAnalysis:
    """A subgroup analysis by one moderator."""

    moderator: str
    result: Any  # blinameta.frequentist.subgroup.SubgroupResult
    labels: tuple[str, ...]  # group of each included study (in row order)


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
class Sensitivity:
    """The main model re-fitted on another selection."""

    label: str
    k: int
    estimate: float
    ci_lb: float
    ci_ub: float
    tau2: float
    i2: float
    studies: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisResult:
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
    sensitivity: tuple[Sensitivity, ...] = ()
    notes: tuple[str, ...] = ()
    study_ci: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    primary: Any = None  # blinameta.analysis.primary.Primary (None when no study qualifies)

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
        }
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


def _refit_summary(spec: AnalysisSpec, selection: Selection, label: str) -> Sensitivity | None:
    from blinameta.frequentist.rma import rma

    if selection.k < 2:
        return None
    es = effect_sizes(spec, selection.rows)
    s = spec.frequentist
    fit = rma(es.yi, es.vi, method=s.method, test=s.test, level=s.level)
    ni = selection.rows["total"].to_numpy(float)
    est, lb, ub = back_transform(spec, np.array([fit.beta[0], fit.ci_lb[0], fit.ci_ub[0]]), ni)
    return Sensitivity(label, selection.k, float(est), float(lb), float(ub), float(fit.tau2), float(fit.i2),
                       tuple(selection.study_ids))


def run_analysis(evidence: Evidence, spec: AnalysisSpec) -> AnalysisResult:
    """Select, fit and diagnose one analysis."""
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
    if spec.bayes.enabled:
        parts["bayes"] = _try(notes, "Bayesian model", _fit_bayes, spec, rows, yi, vi)

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
            subgroups.append(SubgroupAnalysis(moderator, result, tuple("not reported" if pd.isna(v) else str(v) for v in values)))

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
        parts["egger"] = _try(notes, "Egger's test", regtest, main)
        parts["begg"] = _try(notes, "Begg's test", ranktest, main)
        parts["trimfill"] = _try(notes, "trim-and-fill", trimfill, main)
    elif main is not None:
        notes.append("fewer than 3 studies: no small-study or leave-one-out diagnostics")

    sensitivity = []
    if main is not None:
        sensitivity.append(Sensitivity(
            "main analysis", k, *[float(v) for v in back_transform(spec, [main.beta[0], main.ci_lb[0], main.ci_ub[0]], rows["total"].to_numpy(float))],
            float(main.tau2), float(main.i2), tuple(selection.study_ids)))
        if spec.sensitivity.alternatives and spec.kind != "hazard_ratio" and bool(rows.get("flagged", pd.Series(dtype=bool)).any()):
            alt = select(evidence, spec, readings="alternative")
            cols = ["study_id", "ai", "n1i", "ci", "n2i"] if spec.kind == "risk_ratio" else ["study_id", "events", "total"]
            same = len(alt.rows) == len(rows) and alt.rows[cols].reset_index(drop=True).equals(rows[cols].reset_index(drop=True))
            if same:
                notes.append("sensitivity (alternative readings): the alternative readings do not change the pooled data")
            else:
                item = _try(notes, "sensitivity (alternative readings)", _refit_summary, spec, alt,
                            "alternative readings of contradictory sources")
                if item is not None:
                    sensitivity.append(item)
                else:
                    notes.append(f"sensitivity (alternative readings): {alt.k} stud{'y' if alt.k == 1 else 'ies'}, too few to refit")
        if spec.sensitivity.exclude_derived and bool(rows.get("derived", pd.Series(dtype=bool)).any()):
            nd = select(evidence, spec, exclude_derived=True)
            item = _try(notes, "sensitivity (without derived counts)", _refit_summary, spec, nd,
                        "without counts derived from percentages")
            if item is not None:
                sensitivity.append(item)
            else:
                notes.append(f"sensitivity without derived counts: {nd.k} stud{'y' if nd.k == 1 else 'ies'} left, too few to refit")
        if parts.get("glmm") is not None and spec.kind == "proportion":
            g = parts["glmm"]
            est, lb, ub = (1 / (1 + np.exp(-np.array([g.beta[0], g.ci_lb[0], g.ci_ub[0]]))))
            sensitivity.append(Sensitivity("binomial-normal GLMM (exact likelihood)", k, float(est), float(lb), float(ub),
                                           float(g.tau2), float(g.i2), tuple(selection.study_ids)))
    parts["primary"] = _primary(spec, selection, parts.get("bayes"), study_ci, yi, notes)
    if k < 3:
        notes.append(f"only {k} stud{'y' if k == 1 else 'ies'}: estimates of heterogeneity are unreliable")
    if main is not None and main.i2 > 50:
        notes.append(f"substantial heterogeneity (I² = {main.i2:.0f}%)")
    return AnalysisResult(
        spec=spec, selection=selection, yi=yi, vi=vi, scale=scale,
        subgroups=tuple(subgroups), metaregressions=tuple(metaregs), sensitivity=tuple(sensitivity),
        notes=tuple(notes), study_ci=study_ci, **parts,
    )


def _fit_bayes(spec: AnalysisSpec, rows: pd.DataFrame, yi: np.ndarray, vi: np.ndarray, prior_tau: str | None = None):
    """Exact-path Bayesian fit (binomial-normal for proportions, normal-normal for log ratios)."""
    from blinameta.bayes.exact import fit_exact
    from blinameta.bayes.models import binomial_normal, normal_normal

    labels = list(rows["label"])
    b = spec.bayes
    tau = b.prior_tau if prior_tau is None else prior_tau
    if spec.kind == "proportion":
        model = binomial_normal(rows["events"].to_numpy(int), rows["total"].to_numpy(int), study=labels,
                                prior_mu=b.prior_mu, prior_tau=tau)
        return fit_exact(model, thresholds=exceedance_thresholds(spec))
    model = normal_normal(yi, vi, study=labels, prior_mu=b.prior_mu, prior_tau=tau)
    return fit_exact(model)


def exceedance_thresholds(spec: AnalysisSpec) -> tuple[float, ...]:
    """The model's exceedance thresholds and its decision threshold, sorted."""
    values = set(spec.bayes.thresholds)
    if spec.decision_threshold is not None and spec.kind == "proportion":
        values.add(spec.decision_threshold.value)
    return tuple(sorted(values))


def _primary(spec: AnalysisSpec, selection: Selection, bayes, study_ci, yi, notes: list[str]):
    """The headline: the Bayesian posterior (k >= 2) or the single study's own estimate."""
    from blinameta.analysis.primary import primary_from_bayes, primary_single_study

    rows = selection.rows
    k = selection.k
    patients = int(rows["total"].sum()) if k else 0
    if spec.kind == "proportion":
        events = int(rows["events"].sum())
    elif spec.kind == "risk_ratio":
        events = int(rows["ai"].sum() + rows["ci"].sum())
    else:
        events = None
    if k == 1:
        if spec.kind == "proportion":
            est = float(rows["events"].iloc[0]) / float(rows["total"].iloc[0])
            lb, ub = float(study_ci[0][0]), float(study_ci[1][0])
        elif spec.kind == "hazard_ratio":
            est, lb, ub = float(rows["hr"].iloc[0]), float(rows["ci_lb"].iloc[0]), float(rows["ci_ub"].iloc[0])
        else:
            est, lb, ub = (float(v) for v in np.exp([yi[0], study_ci[0][0], study_ci[1][0]]))
        return primary_single_study(spec, estimate=est, ci_lb=lb, ci_ub=ub, patients=patients, events=events,
                                    label=str(rows["label"].iloc[0]))
    if bayes is None:
        notes.append("no headline estimate: the Bayesian model could not be fitted")
        return None
    return _try(notes, "headline estimate", primary_from_bayes, spec, bayes, k=k, patients=patients, events=events)


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
