"""The figures of one analysis page, drawn from a fitted :class:`AnalysisResult`.

Figures read results; the only computation here is turning the exact posterior grid into
densities on the display scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blinameta.analysis.run import AnalysisResult, back_transform

__all__ = ["draw_figures", "posterior_densities"]


def _expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def posterior_densities(result: AnalysisResult, n: int = 400) -> list[dict[str, Any]]:
    """Densities of the pooled (median) rate and of a new study's rate, from the exact grid.

    The pooled rate is ``g(mu)``; the new study's rate ``g(mu + tau z)``, z ~ N(0, 1), with
    ``g`` = inverse logit for proportions and exp for ratios. Densities are on ``g``'s scale.
    """
    from blinameta.bayes.exact import posterior_grid

    b = result.bayes
    grid = posterior_grid(b.spec)
    w = grid.weight  # (n_mu, n_tau), sums to 1
    mu, tau = grid.mu, grid.tau
    proportion = result.spec.kind == "proportion"
    if proportion:
        x = np.linspace(1e-4, 1 - 1e-4, n)
        t = np.log(x / (1 - x))
        jac = 1.0 / (x * (1 - x))
    else:
        lo, hi = np.exp(b.theta_new.lb) / 1.5 if b.theta_new else np.exp(b.mu.lb) / 1.5, \
            np.exp(b.theta_new.ub) * 1.5 if b.theta_new else np.exp(b.mu.ub) * 1.5
        x = np.exp(np.linspace(np.log(lo), np.log(hi), n))
        t = np.log(x)
        jac = 1.0 / x
    # smooth mixture densities: each grid node spreads its weight with a Gaussian kernel of the
    # grid spacing (pooled) or with its own tau (new study); exact up to that tiny kernel.
    h = mu[1] - mu[0]
    w_mu = w.sum(axis=1)
    kern = np.exp(-0.5 * ((t[None, :] - mu[:, None]) / h) ** 2) / (np.sqrt(2 * np.pi) * h)
    dens_mu = (w_mu @ kern) * jac
    sd = np.sqrt(tau ** 2 + h ** 2)[None, :, None]
    comp = np.exp(-0.5 * ((t[None, None, :] - mu[:, None, None]) / sd) ** 2) / (np.sqrt(2 * np.pi) * sd)
    dens_new = np.einsum("ij,ijk->k", w, comp) * jac
    median = b.p_median if proportion else b.mu
    new = b.p_new if proportion else b.theta_new
    to = (lambda v: v) if proportion else np.exp
    return [
        {"label": "pooled rate (median of the random-effects distribution)" if proportion else "pooled ratio",
         "x": x, "density": dens_mu, "lb": float(to(median.lb)), "ub": float(to(median.ub))},
        {"label": "rate in a new study (predictive)" if proportion else "ratio in a new trial (predictive)",
         "x": x, "density": dens_new, "lb": float(to(new.lb)) if new else None, "ub": float(to(new.ub)) if new else None},
    ]


def _fmt_detail(result: AnalysisResult, row: pd.Series) -> str:
    if result.spec.kind == "proportion":
        return f"{int(row.events)}/{int(row.total)}"
    if result.spec.kind == "risk_ratio":
        return f"{int(row.ai)}/{int(row.n1i)} vs {int(row.ci)}/{int(row.n2i)}"
    return str(row.get("outcome", "")).upper()


def _study_rows(result: AnalysisResult, groups: tuple[str, ...] | None = None) -> pd.DataFrame:
    rows = result.selection.rows
    lb, ub = result.study_ci
    if result.spec.kind == "proportion":
        estimate = rows["events"].to_numpy(float) / rows["total"].to_numpy(float)
    else:
        estimate = np.exp(result.yi)
        lb, ub = np.exp(lb), np.exp(ub)
    weight = result.main.weights if result.main is not None else np.full(len(rows), np.nan)
    frame = pd.DataFrame({
        "label": rows["label"],
        "detail": [_fmt_detail(result, r) for _, r in rows.iterrows()],
        "estimate": estimate, "ci_lb": lb, "ci_ub": ub, "weight": weight,
        "flag": ["†" if (bool(r.get("derived", False)) or bool(r.get("flagged", False))) else "" for _, r in rows.iterrows()],
        "tooltip": [f"{r.get('location', '')}: “{r.get('quote', '')}”" for _, r in rows.iterrows()],
    })
    if groups is not None:
        frame["subgroup"] = list(groups)
    return frame


def _pooled_entries(result: AnalysisResult) -> list[dict[str, Any]]:
    ni = result.selection.rows["total"].to_numpy(float)
    entries = []
    if result.common is not None:
        c = result.common
        est, lb, ub = back_transform(result, [c.beta[0], c.ci_lb[0], c.ci_ub[0]], ni)
        entries.append({"label": "Common-effect model", "estimate": est, "ci_lb": lb, "ci_ub": ub, "kind": "common"})
    if result.main is not None:
        m, p = result.main, result.prediction
        est, lb, ub, plb, pub = back_transform(result, [m.beta[0], m.ci_lb[0], m.ci_ub[0], p.pi_lb[0], p.pi_ub[0]], ni)
        entries.append({"label": f"Random-effects model ({m.method}, {'Hartung-Knapp' if m.test == 'knha' else 'Wald'})",
                        "estimate": est, "ci_lb": lb, "ci_ub": ub, "pi_lb": plb, "pi_ub": pub, "kind": "random"})
    return entries


def _het_text(result: AnalysisResult) -> str | None:
    m = result.main
    if m is None:
        return None
    p = f"p = {m.qe_p:.3f}" if m.qe_p >= 0.001 else "p < 0.001"
    return f"Heterogeneity: Q = {m.qe:.2f} (df = {m.qe_df}, {p}); I² = {m.i2:.0f}%; τ² = {m.tau2:.3f}"


def _bayes_row(result: AnalysisResult) -> dict[str, Any] | None:
    b = result.bayes
    if b is None:
        return None
    if result.spec.kind == "proportion":
        return {"label": "Bayesian: pooled rate (95% CrI); predictive", "estimate": b.p_median.mean,
                "ci_lb": b.p_median.lb, "ci_ub": b.p_median.ub, "pi_lb": b.p_new.lb, "pi_ub": b.p_new.ub}
    new = b.theta_new
    return {"label": "Bayesian: pooled ratio (95% CrI); predictive", "estimate": float(np.exp(b.mu.mean)),
            "ci_lb": float(np.exp(b.mu.lb)), "ci_ub": float(np.exp(b.mu.ub)),
            "pi_lb": float(np.exp(new.lb)) if new else None, "pi_ub": float(np.exp(new.ub)) if new else None}


def draw_figures(result: AnalysisResult, folder: Path, level_labels: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """Draw every figure of the analysis into ``folder``; return name -> file stem (relative).

    ``level_labels`` maps moderator -> level code -> label (from the review) for subgroup panels.
    """
    level_labels = level_labels or {}
    from blinameta import plots

    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    if result.k == 0:
        return figures
    proportion = result.spec.kind == "proportion"
    xlabel = "Proportion" if proportion else ("Hazard ratio" if result.spec.kind == "hazard_ratio" else "Risk ratio")
    scale = "proportion" if proportion else "log"
    null = None if proportion else 1.0
    xlim = None
    if not proportion:  # clip the log axis around the studies; wider intervals end in arrows
        lb, ub = np.exp(result.study_ci[0]), np.exp(result.study_ci[1])
        xlim = (max(0.01, min(float(lb.min()), 1.0) / 3), min(100.0, max(float(ub.max()), 1.0) * 3))
    plots.forest_plot(folder / "forest", _study_rows(result), pooled=_pooled_entries(result),
                      heterogeneity=_het_text(result), bayes=_bayes_row(result), xlabel=xlabel, scale=scale,
                      null_value=null, title=None, xlim=xlim)
    figures["forest"] = "forest"
    ni_all = result.selection.rows["total"].to_numpy(float)
    for sg in result.subgroups:
        r = sg.result
        names = level_labels.get(sg.moderator, {})
        pooled = []
        for g, est, lb, ub, kk in zip(r.groups, r.estimate, r.ci_lb, r.ci_ub, r.k):
            mask = np.array([lab == g for lab in sg.labels])
            e, l, u = back_transform(result, [est, lb, ub], ni_all[mask] if mask.any() else ni_all)
            pooled.append({"label": f"Subtotal ({int(kk)} stud{'y' if kk == 1 else 'ies'})", "estimate": e,
                           "ci_lb": l, "ci_ub": u, "subgroup": names.get(g, g), "kind": "random"})
        pooled += [p for p in _pooled_entries(result) if p["kind"] == "random"]
        pval = f"p = {r.qb_p:.3f}" if r.qb_p >= 0.001 else "p < 0.001"
        test = f"Test for subgroup differences: Q = {r.qb:.2f}, df = {int(r.qb_df[0])}, {pval}"
        stem = f"forest_{sg.moderator}"
        plots.forest_plot(folder / stem, _study_rows(result, tuple(names.get(g, g) for g in sg.labels)), pooled=pooled,
                          heterogeneity=_het_text(result), subgroup_test=test, xlabel=xlabel, scale=scale,
                          null_value=null)
        figures[stem] = stem
    if result.main is not None and result.k >= 3:
        egger = None
        if result.egger is not None:
            e = result.egger
            egger = f"Egger's test: {'t' if result.main.test == 'knha' else 'z'} = {e.zval:.2f}, p = {e.pval:.3f}"
        elabel = {"PLO": "Logit proportion", "PR": "Proportion", "PLN": "Log proportion",
                  "PAS": "Arcsine proportion", "PFT": "Freeman-Tukey proportion"}.get(result.spec.frequentist.measure) \
            if proportion else f"Log {xlabel.lower()}"
        plots.funnel_plot(folder / "funnel", result.yi, np.sqrt(result.vi), estimate=float(result.main.beta[0]),
                          egger_text=egger, xlabel=elabel, labels=list(result.selection.rows["label"]))
        figures["funnel"] = "funnel"
    for mr in result.metaregressions:
        if mr.prediction is None:
            continue
        idx = np.asarray(mr.rows)
        pred = mr.prediction
        fit_y = back_transform(result, pred.pred, ni_all)
        fit_lb = back_transform(result, pred.ci_lb, ni_all)
        fit_ub = back_transform(result, pred.ci_ub, ni_all)
        y = (result.selection.rows["events"].to_numpy(float) / ni_all)[idx] if proportion else np.exp(result.yi[idx])
        stem = f"bubble_{mr.moderator}"
        plots.bubble_plot(folder / stem, list(mr.values), y, result.vi[idx], fit_x=list(mr.grid), fit_y=fit_y,
                          fit_lb=fit_lb, fit_ub=fit_ub, xlabel=mr.moderator.replace("_", " "), ylabel=xlabel,
                          labels=list(result.selection.rows["label"].iloc[idx]), categorical=mr.categorical)
        figures[stem] = stem
    if result.bayes is not None:
        plots.posterior_plot(folder / "posterior", posterior_densities(result), xlabel=xlabel,
                             thresholds=list(result.spec.bayes.thresholds) if proportion else [1.0],
                             scale="linear" if proportion else "log")
        figures["posterior"] = "posterior"
        b = result.bayes
        rows = result.selection.rows
        if proportion:
            obs = rows["events"].to_numpy(float) / ni_all
            olb, oub = result.study_ci
            conv = (lambda v: np.asarray(v, float))
        else:
            obs, (olb, oub) = np.exp(result.yi), (np.exp(result.study_ci[0]), np.exp(result.study_ci[1]))
            conv = np.exp
        shrunk = conv([s.mean for s in b.study])
        if not proportion:
            shrunk = np.exp([s.mean for s in b.study])
        plots.shrinkage_plot(folder / "shrinkage", list(rows["label"]), obs, olb, oub, shrunk,
                             conv([s.lb for s in b.study]), conv([s.ub for s in b.study]),
                             pooled=float(b.p_median.mean) if proportion else float(np.exp(b.mu.mean)), xlabel=xlabel)
        figures["shrinkage"] = "shrinkage"
    return figures
