"""Numbers of one analysis as a plain, JSON-ready dictionary (display scale).

The report's pages, its summary-of-findings table and ``blinameta query`` all read this one
summary, so they cannot disagree. Values are full precision; rounding happens in templates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blinameta.analysis.run import AnalysisResult, back_transform

__all__ = ["summarise", "interval"]


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
    return _clean(out)


def _clean(value: Any) -> Any:
    """Replace NaN and infinity by None, numpy scalars by Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _f(value)
    return value


def _param(p) -> dict[str, float | None]:
    return {"mean": _f(p.mean), "sd": _f(p.sd), "lb": _f(p.lb), "ub": _f(p.ub)}
