"""Numbers of one analysis as a plain, JSON-ready dictionary (display scale).

The report's pages, its summary-of-findings table and ``blinameta query`` all read this one
summary, so they cannot disagree. Values are full precision; rounding happens in templates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blinameta.analysis.run import AnalysisResult, back_transform
from blinameta.io import json_safe

__all__ = ["summarise", "interval", "study_rows", "row_anchor"]


def row_anchor(study_id: str, cohort_id: str, outcome: str, line: Any = None, duplicated: bool = False) -> str:
    """The id of an evidence row on evidence.html (the line is added where a cohort reports an
    outcome twice, so that ids stay unique)."""
    base = f"{study_id}-{cohort_id}-{outcome}"
    if duplicated and line is not None and line == line:
        return f"{base}-l{int(line)}"
    return base


def study_rows(result: AnalysisResult, duplicated: set[tuple[str, str, str]] | frozenset = frozenset()) -> list[dict[str, Any]]:
    """Study-level data and results of an analysis, one dict per included study (display scale)."""
    rows = result.selection.rows
    if not result.k:
        return []
    kind = result.spec.kind
    lb, ub = result.study_ci
    if kind == "proportion":
        est = rows["events"].to_numpy(float) / rows["total"].to_numpy(float)
    elif kind == "hazard_ratio" and "hr" in rows:
        est, lb, ub = rows["hr"].to_numpy(float), rows["ci_lb"].to_numpy(float), rows["ci_ub"].to_numpy(float)
    else:
        est, lb, ub = np.exp(result.yi), np.exp(lb), np.exp(ub)
    wr = result.main.weights if result.main is not None else [None] * len(rows)
    wc = result.common.weights if result.common is not None else [None] * len(rows)
    out = []
    for i, (_, r) in enumerate(rows.iterrows()):
        if kind == "hazard_ratio":
            anchor = f"{r.study_id}-{r.cohort_label}"
        else:
            anchor = row_anchor(r.study_id, r.cohort_id, r.outcome, r.get("line"),
                                (r.study_id, r.cohort_id, r.outcome) in duplicated)
        d = {
            "study_id": r.study_id, "label": r["label"], "year": int(r.year), "cohort": _s(r.get("cohort_label")),
            "anchor": anchor, "yi": _f(result.yi[i]), "vi": _f(result.vi[i]),
            "estimate": _f(est[i]), "ci_lb": _f(lb[i]), "ci_ub": _f(ub[i]),
            "weight_random": _f(wr[i]), "weight_common": _f(wc[i]),
            "derived": bool(r.get("derived", False)), "flagged": bool(r.get("flagged", False)),
            "denominator": _s(r.get("denominator")), "timepoint": _s(r.get("timepoint")),
            "design": _s(r.get("design")), "setting": _s(r.get("setting")),
            "source": _s(r.get("source")), "location": _s(r.get("location")), "quote": _s(r.get("quote")),
            "source_type": _s(r.get("source_type")), "external": bool(r.get("external", False)) if r.get("external") == r.get("external") else False,
        }
        if kind == "proportion":
            d.update(events=int(r.events), total=int(r.total))
        elif kind == "risk_ratio":
            d.update(events=int(r.ai), total=int(r.n1i), control_events=int(r.ci), control_total=int(r.n2i),
                     control_anchor=row_anchor(r.study_id, r.control_cohort_id, r.outcome),
                     control_quote=_s(r.get("control_quote")), control_location=_s(r.get("control_location")))
        else:
            d.update(n_experimental=_i(r.get("n_experimental")), n_control=_i(r.get("n_control")),
                     endpoint=_s(r.get("outcome")))
            d["cohort"] = f"{_s(r.get('outcome')).upper()} hazard ratio, blinatumomab vs chemotherapy"
        for m in ("blast_burden", "relapse_line", "schedule", "line_of_use"):
            if m in rows:
                d[m] = _s(r.get(m))
        out.append(d)
    return out


def _s(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _i(v: Any) -> int | None:
    f = _f(v) if v is not None else None
    return int(f) if f is not None else None


def _f(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval(est: Any, lb: Any, ub: Any, **extra: Any) -> dict[str, float | None]:
    out = {"estimate": _f(est), "ci_lb": _f(lb), "ci_ub": _f(ub)}
    out.update({k: _f(v) for k, v in extra.items()})
    return out


def _expit(x: Any) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def summarise(result: AnalysisResult) -> dict[str, Any]:
    """The analysis' headline numbers on the display scale (proportion or ratio)."""
    spec = result.spec
    rows = result.selection.rows
    out: dict[str, Any] = {
        "id": spec.id,
        "title": spec.title,
        "kind": spec.kind,
        "outcome": spec.outcome,
        "scale": result.scale,
        "k": result.k,
        "patients": result.patients,
        "studies": list(result.selection.study_ids),
        "excluded": [e.to_dict() for e in result.selection.excluded if e.kind != "no_data"],
        "settings": spec.frequentist.model_dump(mode="json"),
        "level": spec.frequentist.level,
        "priors": {"mu": spec.bayes.prior_mu, "tau": spec.bayes.prior_tau},
        "notes": list(result.notes),
        "filter": {k: [str(x) for x in v] for k, v in spec.filter.items()},
        "events": (int(rows["events"].sum()) if spec.kind == "proportion" and result.k else
                   int(rows["ai"].sum()) if spec.kind == "risk_ratio" and result.k else None),
        "years": sorted({int(y) for y in rows["year"]}) if result.k else [],
    }
    ni = rows["total"].to_numpy(float) if result.k else None
    main = result.main
    if main is not None:
        pred = result.prediction
        est, lb, ub, pi_lb, pi_ub = back_transform(
            result, [main.beta[0], main.ci_lb[0], main.ci_ub[0], pred.pi_lb[0], pred.pi_ub[0]], ni)
        out["random"] = interval(est, lb, ub, pi_lb=pi_lb, pi_ub=pi_ub, se=main.se[0], pval=main.pval[0])
        out["random_effect_scale"] = interval(main.beta[0], main.ci_lb[0], main.ci_ub[0],
                                              pi_lb=pred.pi_lb[0], pi_ub=pred.pi_ub[0])
        out["heterogeneity"] = {
            "tau2": _f(main.tau2), "i2": _f(main.i2), "h2": _f(main.h2), "qe": _f(main.qe),
            "qe_df": int(main.qe_df), "qe_p": _f(main.qe_p),
            "tau2_ci_lb": _f(result.tau2_ci.tau2_lb) if result.tau2_ci is not None else None,
            "tau2_ci_ub": _f(result.tau2_ci.tau2_ub) if result.tau2_ci is not None else None,
            # metafor's signs: "<" when a bound sits at tau2_min because the interval lies below it,
            # ">" when it sits at tau2_max (the interval extends beyond the search range)
            "tau2_ci_lb_sign": (result.tau2_ci.lb_sign or "") if result.tau2_ci is not None else "",
            "tau2_ci_ub_sign": (result.tau2_ci.ub_sign or "") if result.tau2_ci is not None else "",
        }
    if result.common is not None:
        c = result.common
        est, lb, ub = back_transform(result, [c.beta[0], c.ci_lb[0], c.ci_ub[0]], ni)
        out["common"] = interval(est, lb, ub)
    if result.glmm is not None:
        g = result.glmm
        p = g.predict()
        est, lb, ub, pi_lb, pi_ub = _expit([p.pred[0] if np.ndim(p.pred) else p.pred, p.ci_lb[0] if np.ndim(p.ci_lb) else p.ci_lb,
                                            p.ci_ub[0] if np.ndim(p.ci_ub) else p.ci_ub,
                                            p.pi_lb[0] if np.ndim(p.pi_lb) else p.pi_lb, p.pi_ub[0] if np.ndim(p.pi_ub) else p.pi_ub])
        out["glmm"] = interval(est, lb, ub, pi_lb=pi_lb, pi_ub=pi_ub, tau2=g.tau2, i2=g.i2)
    b = result.bayes
    if b is not None:
        bayes: dict[str, Any] = {"method": b.method, "mu": _param(b.mu), "tau": _param(b.tau)}
        if b.p_median is not None:
            bayes.update(p_median=_param(b.p_median), p_mean=_param(b.p_mean), p_new=_param(b.p_new))
            bayes["exceedance"] = [e.to_dict() for e in b.exceedance]
        else:
            # ratio scale: exp of the posterior of mu (the 2.5% and 97.5% quantiles map exactly)
            bayes["ratio"] = {"exp_mean_mu": _f(math.exp(b.mu.mean)), "lb": _f(math.exp(b.mu.lb)),
                              "ub": _f(math.exp(b.mu.ub))}
            if b.theta_new is not None:
                bayes["ratio_new"] = {"exp_mean": _f(math.exp(b.theta_new.mean)),
                                      "lb": _f(math.exp(b.theta_new.lb)), "ub": _f(math.exp(b.theta_new.ub))}
        bayes["study"] = [s.to_dict() for s in b.study]
        out["bayes"] = bayes
    out.update(result.methods_summary())
    return json_safe(out)


def _param(p) -> dict[str, float | None]:
    return {"mean": _f(p.mean), "sd": _f(p.sd), "lb": _f(p.lb), "ub": _f(p.ub)}
