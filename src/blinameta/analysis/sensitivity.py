"""The sensitivity strip: the headline re-estimated under other methods and other data.

Two kinds of rows (the methods page renders :data:`SENSITIVITY_RULES`):

* **methods** on the same studies: inverse-variance common effect; REML with the
  Hartung-Knapp-Sidik-Jonkman (HKSJ) interval (and its ad hoc variant, when the engine has it);
  the binomial-normal GLMM (the first frequentist sensitivity analysis for proportions);
  inverse-variance logit with a 0.5 continuity correction added to every study (only where a
  study has no events or only events); the Bayesian headline with other heterogeneity priors;
  Mantel-Haenszel and Peto for 2×2 comparisons;
* **data**, re-estimated with the headline method: without counts derived from percentages;
  each alternative reading of a contradictory source; with the partially overlapping cohorts
  added back; restricted to one definition family; leaving out one study at a time; with or
  without numbers from outside the source documents.

A row **changes the conclusion** when its estimate lies on the other side of the model's
decision threshold than the headline, when its interval reaches the threshold while the
headline's does not, or when it moves the estimate by more than the model's margin (absolute
for proportions, relative for ratios).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np

__all__ = ["SensitivityRow", "SENSITIVITY_RULES", "TAU_PRIORS", "flag", "sensitivity_strip"]

#: Peto's odds ratio only below this overall event risk and arm-size ratio (Bradburn et al. 2007;
#: Cochrane Handbook 10.4.4.2).
PETO_MAX_RISK = 0.01
PETO_MAX_IMBALANCE = 1.5

#: Heterogeneity priors of the Bayesian sensitivity rows: (row id, prior text, label).
TAU_PRIORS = (
    ("bayes_tau_hn05", "half_normal:0.5", "half-normal(0.5)"),
    ("bayes_tau_hn1", "half_normal:1", "half-normal(1)"),
    ("bayes_tau_hc05", "half_cauchy:0.5", "half-Cauchy(0.5)"),
)

SENSITIVITY_RULES = (
    {"id": "strip",
     "title": "Sensitivity analyses",
     "text": "Every analysis is repeated with other methods on the same studies (common effect; REML with the "
             "Hartung-Knapp-Sidik-Jonkman interval; the binomial-normal GLMM for proportions; inverse-variance "
             "logit with a 0.5 continuity correction where a study has no events; the Bayesian model with other "
             "heterogeneity priors; Mantel-Haenszel and, where events are rare and arms balanced, Peto for 2x2 "
             "comparisons) and with other data, estimated with the headline method (without counts derived "
             "from percentages; with each alternative reading of a contradictory source; with partially "
             "overlapping cohorts added back; restricted to one definition of the outcome; leaving out one "
             "study at a time; with or without numbers from outside the source documents). A row is flagged "
             "when it changes the conclusion: its estimate lies on the other side of the decision threshold, "
             "its interval reaches the threshold while the headline's does not, or it moves the estimate by "
             "more than the stated margin.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 10.14",
                    "IntHout J, Ioannidis JPA, Borm GF. The Hartung-Knapp-Sidik-Jonkman method for random effects "
                    "meta-analysis is straightforward and considerably outperforms the standard DerSimonian-Laird "
                    "method. BMC Med Res Methodol 2014;14:25",
                    "Röver C, Knapp G, Friede T. Hartung-Knapp-Sidik-Jonkman approach and its modification for "
                    "random-effects meta-analysis with few studies. BMC Med Res Methodol 2015;15:99"]},
    {"id": "hksj_one_df",
     "title": "Hartung-Knapp with two studies",
     "text": "With two studies the HKSJ interval uses a t distribution with one degree of freedom and is "
             "uninformative (for example a hazard ratio interval from 0.004 to 58); it is shown only as a "
             "sensitivity analysis, never as the headline.",
     "references": ["Röver C, Knapp G, Friede T. BMC Med Res Methodol 2015;15:99",
                    "Bender R, Friede T, Koch A, et al. Methods for evidence synthesis in the case of very few "
                    "studies. Res Synth Methods 2018;9:382-92"]},
    {"id": "continuity",
     "title": "Continuity corrections",
     "text": "The headline and the GLMM use the exact binomial likelihood and need no correction for studies "
             "with no events. Inverse-variance analyses of logit proportions add 0.5 to the cells of such "
             "studies, which biases rare-event rates upwards; they appear only as sensitivity analyses.",
     "references": ["Stijnen T, Hamza TH, Ozdemir P. Stat Med 2010;29:3046-67",
                    "Schwarzer G, et al. Res Synth Methods 2019;10:476-83"]},
    {"id": "peto",
     "title": "Mantel-Haenszel and Peto",
     "text": "For randomized 2x2 comparisons the Mantel-Haenszel risk ratio is a sensitivity analysis. Peto's "
             "odds ratio is shown only where events are rare (below 1% overall) and the arms are balanced "
             "(sizes within a ratio of 1.5), the conditions under which it is least biased.",
     "references": ["Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 10.4.4.2",
                    "Bradburn MJ, Deeks JJ, Berlin JA, Localio AR. Much ado about nothing: a comparison of the "
                    "performance of meta-analytical methods with rare events. Stat Med 2007;26:53-77"]},
)


@dataclass(frozen=True)
class SensitivityRow:
    """One row of the sensitivity strip, on the reported scale (fraction or ratio).

    ``tau2`` and ``i2`` are given for frequentist rows (effect scale); ``range`` is the range
    of the leave-one-out estimates. ``available`` is false (with a ``note``) where the row could
    not be computed.
    """

    id: str
    label: str
    k: int
    estimate: float | None
    ci_lb: float | None
    ci_ub: float | None
    group: str = "method"
    available: bool = True
    note: str = ""
    pi_lb: float | None = None
    pi_ub: float | None = None
    tau2: float | None = None
    i2: float | None = None
    studies: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    changes_conclusion: bool = False
    flag_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["studies"] = list(self.studies)
        out["range"] = list(self.range) if self.range is not None else None
        return out


def _fmt_threshold(spec, value: float) -> str:
    return f"{value:.0%}" if spec.kind == "proportion" else f"{value:g}"


def flag(spec, primary, row: SensitivityRow) -> SensitivityRow:
    """Mark ``row`` when it changes the conclusion drawn from ``primary`` (see the module docstring)."""
    if primary is None or not row.available or row.estimate is None:
        return row
    reasons = []
    threshold = spec.decision_threshold
    if threshold is not None:
        text = _fmt_threshold(spec, threshold.value)
        if threshold.favourable(row.estimate) != threshold.favourable(primary.estimate):
            reasons.append(f"crosses the decision threshold {text}")
        elif row.ci_lb is not None and row.ci_ub is not None:
            head_excludes = not (primary.ci_lb <= threshold.value <= primary.ci_ub)
            row_includes = row.ci_lb <= threshold.value <= row.ci_ub
            if head_excludes and row_includes:
                reasons.append(f"its interval reaches the decision threshold {text}")
    margin = spec.margin
    if spec.kind == "proportion":
        moved = abs(row.estimate - primary.estimate)
        if moved > margin:
            reasons.append(f"moves the estimate by {100 * moved:.1f} percentage points (margin {100 * margin:g})")
    elif row.estimate > 0 and primary.estimate > 0:
        moved = abs(math.log(row.estimate / primary.estimate))
        if moved > math.log1p(margin):
            reasons.append(f"moves the ratio by {100 * (math.exp(moved) - 1):.0f}% (margin {100 * margin:g}%)")
    if not reasons:
        return row
    return replace(row, changes_conclusion=True, flag_reason="; ".join(reasons))


# ----------------------------------------------------------------------------- method rows


def _display(spec, rows, values) -> list[float]:
    from blinameta.analysis.run import back_transform

    ni = rows["total"].to_numpy(float)
    return [float(v) for v in back_transform(spec, np.asarray(values, dtype=float), ni)]


def _rma_row(row_id: str, label: str, spec, rows, fit, *, note: str = "") -> SensitivityRow:
    from blinameta.frequentist.predict import predict

    k = len(rows)
    est, lb, ub = _display(spec, rows, [fit.beta[0], fit.ci_lb[0], fit.ci_ub[0]])
    pi = (None, None)
    if k >= 3 and row_id != "common_effect":
        pred = predict(fit, pi_type="riley")
        pi = tuple(_display(spec, rows, [pred.pi_lb[0], pred.pi_ub[0]]))
    return SensitivityRow(row_id, label, k, est, lb, ub, note=note, pi_lb=pi[0], pi_ub=pi[1],
                          tau2=float(fit.tau2), i2=float(fit.i2), studies=tuple(rows["study_id"]))


def _unavailable(row_id: str, label: str, k: int, note: str, group: str = "method") -> SensitivityRow:
    return SensitivityRow(row_id, label, k, None, None, None, group=group, available=False, note=note)


def _method_rows(spec, rows, yi, vi, *, main, common, glmm) -> list[SensitivityRow]:
    from blinameta.frequentist.rma import rma

    out: list[SensitivityRow] = []
    k = len(rows)
    s = spec.frequentist
    scale = "logit" if spec.kind == "proportion" else "log"
    if k < 2:
        return [_unavailable("common_effect", "Common effect (inverse variance)", k, "one study: nothing to pool")]
    zero = spec.kind == "proportion" and bool(((rows["events"] == 0) | (rows["events"] == rows["total"])).any())
    cc_note = " (0.5 added to studies with no events or only events)" if zero else ""
    if common is not None:
        out.append(_rma_row("common_effect", f"Common effect, inverse variance on the {scale} scale", spec, rows, common,
                            note="assumes one true value for every study" + cc_note))
    if main is not None:
        test = "Hartung-Knapp-Sidik-Jonkman" if s.test == "knha" else "Wald z"
        note = ("no prediction interval with fewer than 3 studies" if k < 3
                else "prediction interval on t(k-2) (Higgins et al. 2009)")
        if k == 2 and s.test == "knha":
            note = "Hartung-Knapp on 1 degree of freedom: the interval is uninformative; " + note
        out.append(_rma_row("reml_hksj", f"{s.method} random effects, {test} interval", spec, rows, main,
                            note=note + cc_note))
        adhoc = rma(yi, vi, method=s.method, test="adhoc", level=s.level)
        out.append(_rma_row("reml_hksj_adhoc", f"{s.method}, ad hoc Hartung-Knapp (variance factor at least 1)",
                            spec, rows, adhoc, note=cc_note.strip(" ()")))
    if spec.kind == "proportion":
        if glmm is not None:
            p = glmm.predict(pi_type="riley")
            vals = [np.ravel(p.pred)[0], np.ravel(p.ci_lb)[0], np.ravel(p.ci_ub)[0],
                    np.ravel(p.pi_lb)[0], np.ravel(p.pi_ub)[0]]
            est, lb, ub, pl, pu = (float(v) for v in 1.0 / (1.0 + np.exp(-np.asarray(vals, dtype=float))))
            out.append(SensitivityRow("glmm", "Binomial-normal GLMM (exact likelihood, maximum likelihood)", k, est, lb,
                                      ub, pi_lb=pl if k >= 3 else None, pi_ub=pu if k >= 3 else None,
                                      tau2=float(glmm.tau2), i2=float(glmm.i2), studies=tuple(rows["study_id"]),
                                      note="first frequentist sensitivity analysis for proportions; Wald z interval; "
                                           "prediction interval on t(k-2)"))
        else:
            out.append(_unavailable("glmm", "Binomial-normal GLMM (exact likelihood, maximum likelihood)", k,
                                    "the GLMM could not be fitted (see the notes)"))
        if zero:
            from blinameta.frequentist.escalc import escalc_proportion

            es = escalc_proportion("PLO", rows["events"].to_numpy(int), rows["total"].to_numpy(int), add=0.5, to="all")
            fit = rma(es.yi, es.vi, method=s.method, test="z", level=s.level)
            out.append(_rma_row("iv_logit_cc", "Inverse-variance logit, 0.5 added to every study, Wald z", spec, rows,
                                fit, note="continuity-corrected: biased for rare events; shown for comparison only"))
    if spec.kind == "risk_ratio":
        out.extend(_two_by_two_rows(spec, rows))
    return out


def _two_by_two_rows(spec, rows) -> list[SensitivityRow]:
    """Mantel-Haenszel risk ratio, and Peto's odds ratio where events are rare and arms balanced."""
    from blinameta.frequentist.mh import rma_mh
    from blinameta.frequentist.peto import rma_peto

    k = len(rows)
    ai, n1, ci, n2 = (rows[c].to_numpy(int) for c in ("ai", "n1i", "ci", "n2i"))
    studies = tuple(rows["study_id"])
    mh = rma_mh(ai, n1, ci, n2, measure="RR", drop00=True, level=spec.frequentist.level)
    out = [SensitivityRow("mh", "Mantel-Haenszel risk ratio (common effect)", mh.k, mh.estimate, mh.estimate_lb,
                          mh.estimate_ub, studies=studies,
                          note="double-zero trials dropped" if mh.dropped00 else "")]
    risk = (ai.sum() + ci.sum()) / (n1.sum() + n2.sum())
    balance = float(np.max(np.maximum(n1, n2) / np.maximum(np.minimum(n1, n2), 1)))
    label = "Peto odds ratio (common effect)"
    if risk >= PETO_MAX_RISK or balance > PETO_MAX_IMBALANCE:
        why = [f"events are not rare ({risk:.0%} overall)"] if risk >= PETO_MAX_RISK else []
        why += [f"the arms are unbalanced (ratio {balance:.1f})"] if balance > PETO_MAX_IMBALANCE else []
        out.append(_unavailable("peto", label, k, "not appropriate: " + " and ".join(why)
                                + " (Cochrane Handbook 10.4.4.2)"))
    else:
        peto = rma_peto(ai, n1, ci, n2, drop00=True, level=spec.frequentist.level)
        out.append(SensitivityRow("peto", label, peto.k, peto.estimate, peto.estimate_lb, peto.estimate_ub,
                                  studies=studies, note="an odds ratio, not a risk ratio"))
    return out


def _bayes_rows(spec, rows, fit_headline: Callable) -> list[SensitivityRow]:
    out = []
    if len(rows) < 2:
        return out
    for row_id, prior, text in TAU_PRIORS:
        if prior.replace(" ", "") == spec.bayes.prior_tau.replace(" ", ""):
            continue
        p = fit_headline(rows, prior_tau=prior)
        if p is None:
            continue
        out.append(SensitivityRow(row_id, f"Bayesian, heterogeneity prior {text}", p.k, p.estimate, p.ci_lb, p.ci_ub,
                                  pi_lb=p.pi_lb, pi_ub=p.pi_ub, studies=tuple(rows["study_id"]),
                                  note=f"the headline uses {spec.bayes.prior_tau.replace(':', '(', 1).replace('_', '-')})"))
    return out


# ----------------------------------------------------------------------------- data rows


def _data_row(row_id: str, label: str, rows, fit_headline: Callable, note: str = "") -> SensitivityRow:
    if len(rows) == 0:
        return _unavailable(row_id, label, 0, "no study left", group="data")
    p = fit_headline(rows)
    if p is None:
        return _unavailable(row_id, label, len(rows), "could not be estimated", group="data")
    extra = "one study: its own estimate, not pooled" if not p.pooled else ""
    return SensitivityRow(row_id, label, p.k, p.estimate, p.ci_lb, p.ci_ub, group="data",
                          note="; ".join(x for x in (note, extra) if x), pi_lb=p.pi_lb, pi_ub=p.pi_ub,
                          studies=tuple(rows["study_id"]))


def _count_columns(spec) -> list[str]:
    if spec.kind == "risk_ratio":
        return ["ai", "n1i", "ci", "n2i"]
    if spec.kind == "hazard_ratio":
        return ["hr", "ci_lb", "ci_ub"]
    return ["events", "total"]


def _data_rows(evidence, spec, selection, fit_headline: Callable, primary) -> list[SensitivityRow]:
    from blinameta.analysis.select import select

    rows = selection.rows
    out: list[SensitivityRow] = []
    k = len(rows)
    if spec.sensitivity.exclude_derived and "derived" in rows and rows["derived"].astype(bool).any():
        nd = select(evidence, spec, exclude_derived=True)
        n_derived = int(rows["derived"].astype(bool).sum())
        out.append(_data_row("no_derived", "Without counts derived from percentages", nd.rows, fit_headline,
                             note=f"{n_derived} of {k} studies' counts are derived"))
    if spec.sensitivity.alternatives and spec.kind != "hazard_ratio":
        alt = select(evidence, spec, readings="alternative").rows
        cols = _count_columns(spec)
        for study in rows["study_id"]:
            a = alt[alt["study_id"] == study]
            mine = rows[rows["study_id"] == study]
            if a.empty or a[cols].reset_index(drop=True).equals(mine[cols].reset_index(drop=True)):
                continue
            swapped = rows.copy()
            for c in cols:
                swapped.loc[swapped["study_id"] == study, c] = a[c].iloc[0]
            label = mine["label"].iloc[0]
            before = "/".join(str(int(mine[c].iloc[0])) for c in cols[:2])
            after = "/".join(str(int(a[c].iloc[0])) for c in cols[:2])
            out.append(_data_row(f"alt_{study}", f"Alternative reading of {label} ({after} instead of {before})",
                                 swapped, fit_headline))
    dropped = getattr(selection, "partial_overlap_dropped", None)
    if dropped:
        with_partial = _with_partial_overlaps(evidence, spec, selection)
        if with_partial is None:
            out.append(_unavailable("with_partial_overlaps", "Including partially overlapping cohorts", k,
                                    f"{len(dropped)} partially overlapping cohort(s) left out; the selection "
                                    "cannot add them back yet", group="data"))
        else:
            out.append(_data_row("with_partial_overlaps", "Including partially overlapping cohorts", with_partial,
                                 fit_headline, note="patients counted twice where cohorts overlap"))
    if "family" in rows:
        families = rows["family"].astype(object).where(rows["family"].notna(), "unspecified").astype(str)
        specified = sorted(set(families) - {"unspecified"})
        if len(set(families)) > 1 and specified:
            labels = _family_labels(evidence, spec)
            for fam in specified:
                subset = rows[families.to_numpy() == fam].reset_index(drop=True)
                out.append(_data_row(f"family_{fam}", f"Only studies defining the outcome as {labels.get(fam, fam)}",
                                     subset, fit_headline,
                                     note=f"{int((families != fam).sum())} studies with another or no stated "
                                          "definition left out"))
    if "external" in rows and rows["external"].fillna(False).astype(bool).any():
        ext = rows["external"].fillna(False).astype(bool).to_numpy()
        out.append(_data_row("without_external", "Without numbers from outside the source documents",
                             rows[~ext].reset_index(drop=True), fit_headline,
                             note=f"{int(ext.sum())} stud{'y' if ext.sum() == 1 else 'ies'} with external numbers"))
    if not spec.include_external and any(e.kind == "external" for e in selection.excluded):
        with_ext = select(evidence, spec.model_copy(update={"include_external": True}))
        n_ext = sum(e.kind == "external" for e in selection.excluded)
        out.append(_data_row("with_external", "Including numbers from outside the source documents", with_ext.rows,
                             fit_headline, note=f"{n_ext} stud{'y' if n_ext == 1 else 'ies'} added"))
    flagged = list(getattr(selection, "flagged_for_sensitivity", []) or [])
    if flagged:
        kept = rows[~rows["study_id"].isin(flagged)].reset_index(drop=True)
        out.append(_data_row("without_flagged", "Without counts flagged as a bound or with an unclear denominator",
                             kept, fit_headline, note=f"left out: {', '.join(flagged)}"))
    if spec.sensitivity.leave_one_out and k >= 3 and primary is not None:
        out.append(_leave_one_out(rows, fit_headline, primary))
    return out


def _with_partial_overlaps(evidence, spec, selection):
    """Rows with the partially overlapping cohorts added back (evidence v2 selection), or None."""
    import inspect

    from blinameta.analysis.select import select

    if "include_partial_overlaps" not in inspect.signature(select).parameters:
        return None
    return select(evidence, spec, include_partial_overlaps=True).rows


def _family_labels(evidence, spec) -> dict[str, str]:
    definition = evidence.review.outcomes.get(spec.outcome)
    families = getattr(definition, "families", None) or {}
    return {str(k): str(v) for k, v in dict(families).items()}


def _leave_one_out(rows, fit_headline: Callable, base) -> SensitivityRow:
    fits = []
    for i in range(len(rows)):
        p = fit_headline(rows.drop(index=rows.index[i]).reset_index(drop=True))
        if p is not None:
            fits.append((rows["label"].iloc[i], p))
    label, worst = max(fits, key=lambda lp: abs(lp[1].estimate - base.estimate))
    estimates = [p.estimate for _, p in fits]
    return SensitivityRow("leave_one_out", "Leaving out one study at a time", worst.k, worst.estimate, worst.ci_lb,
                          worst.ci_ub, group="data", range=(min(estimates), max(estimates)),
                          note=f"estimates range from {_pct_or_ratio(min(estimates), base)} to "
                               f"{_pct_or_ratio(max(estimates), base)}; leaving out {label} moves it most (shown)")


def _pct_or_ratio(value: float, primary) -> str:
    return f"{value:.1%}" if primary.scale == "proportion" else f"{value:.2f}"


def sensitivity_strip(evidence, spec, selection, yi, vi, *, main=None, common=None, glmm=None,
                      primary=None, headline_fn: Callable | None = None) -> tuple[SensitivityRow, ...]:
    """Every row of the strip for one analysis, each flagged against ``primary``.

    Parameters
    ----------
    evidence : Evidence
    spec : AnalysisSpec
    selection : Selection
        The analysis' studies.
    yi, vi : ndarray
        Their effect sizes (logit, log ratio).
    main, common, glmm : fitted models of the analysis (RmaResult, RmaResult, GlmmResult), optional
    primary : Primary, optional
        The headline the rows are compared with.
    headline_fn : callable, optional
        ``headline_fn(rows, prior_tau=None) -> Primary``; defaults to
        :func:`blinameta.analysis.primary.headline` with ``spec``.
    """
    from blinameta.analysis.primary import headline

    if headline_fn is None:
        def headline_fn(rows, prior_tau=None):
            return headline(spec, rows, prior_tau=prior_tau, fast=True)
    rows = selection.rows
    strip = _method_rows(spec, rows, yi, vi, main=main, common=common, glmm=glmm)
    if spec.bayes.enabled:
        strip += _bayes_rows(spec, rows, headline_fn)
    strip += _data_rows(evidence, spec, selection, headline_fn, primary)
    return tuple(flag(spec, primary, row) for row in strip)

