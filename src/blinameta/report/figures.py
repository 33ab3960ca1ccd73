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
from blinameta.report.labels import clean_quote, prior_text

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
    grid = b.grid if b.grid is not None else posterior_grid(b.spec)  # the fit's own grid
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


def _int_text(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return f"{int(f)}" if np.isfinite(f) else ""


def forest_columns(kind: str) -> tuple[list[tuple[str, str]], list[tuple[str, int]] | None]:
    """The data columns of the forest plot (RevMan 5): per arm for randomized comparisons."""
    if kind == "proportion":
        return [("Events", "events"), ("Total", "total")], None
    if kind == "risk_ratio":
        return ([("Events", "ai"), ("Total", "n1i"), ("Events", "ci"), ("Total", "n2i")],
                [("Blinatumomab", 2), ("Chemotherapy", 2)])
    return ([("log[HR]", "loghr"), ("SE", "se"), ("N", "n_experimental"), ("N", "n_control")],
            [("", 2), ("Blinatumomab", 1), ("Chemotherapy", 1)])


def _study_rows(result: AnalysisResult, groups: tuple[str, ...] | None = None,
                display: dict[str, str] | None = None) -> pd.DataFrame:
    rows = result.selection.rows
    lb, ub = result.study_ci
    if result.spec.kind == "proportion":
        estimate = rows["events"].to_numpy(float) / rows["total"].to_numpy(float)
    elif result.spec.kind == "hazard_ratio" and {"hr", "ci_lb", "ci_ub"} <= set(rows.columns):
        # the published hazard ratio and interval, as printed (not re-derived from log HR +- z SE)
        estimate = rows["hr"].to_numpy(float)
        lb, ub = rows["ci_lb"].to_numpy(float), rows["ci_ub"].to_numpy(float)
    else:
        estimate = np.exp(result.yi)
        lb, ub = np.exp(lb), np.exp(ub)
    weight = result.main.weights if result.main is not None else np.full(len(rows), np.nan)
    common = result.common.weights if getattr(result, "common", None) is not None else np.full(len(rows), np.nan)
    display = display or {}
    labels = []
    for _, r in rows.iterrows():
        base = str(r["label"])
        labels.append(display.get(r.study_id, base) if base[-1:].isdigit() else base)
    frame = pd.DataFrame({
        "label": labels,
        "detail": [_fmt_detail(result, r) for _, r in rows.iterrows()],
        "estimate": estimate, "ci_lb": lb, "ci_ub": ub, "weight": weight, "weight_common": common,
        "flag": ["†" if (bool(r.get("derived", False)) or bool(r.get("flagged", False))) else "" for _, r in rows.iterrows()],
        "tooltip": [f"{r.get('location', '')}: “{clean_quote(r.get('quote', ''))}”" for _, r in rows.iterrows()],
    })
    kind = result.spec.kind
    if kind == "proportion":
        frame["events"] = [_int_text(v) for v in rows["events"]]
        frame["total"] = [_int_text(v) for v in rows["total"]]
    elif kind == "risk_ratio":
        for c in ("ai", "n1i", "ci", "n2i"):
            frame[c] = [_int_text(v) for v in rows[c]]
    else:
        frame["loghr"] = [f"{v:.4f}".replace("-", "−") for v in result.yi]
        frame["se"] = [f"{v:.4f}" for v in np.sqrt(result.vi)]
        for c in ("n_experimental", "n_control"):
            frame[c] = [_int_text(v) for v in rows[c]] if c in rows else ""
    if groups is not None:
        frame["subgroup"] = list(groups)
    return frame


def _totals(result: AnalysisResult, mask: np.ndarray | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Cells of a pooled row (patients per column) and of the "Total events" row."""
    rows = result.selection.rows
    if mask is not None:
        rows = rows[mask]
    kind = result.spec.kind

    def tot(c: str) -> str:
        if c not in rows:
            return ""
        v = pd.to_numeric(rows[c], errors="coerce")
        return "" if v.isna().all() else f"{int(v.sum())}"

    if kind == "proportion":
        return {"total": tot("total")}, {"events": tot("events")}
    if kind == "risk_ratio":
        return {"n1i": tot("n1i"), "n2i": tot("n2i")}, {"ai": tot("ai"), "ci": tot("ci")}
    return {"n_experimental": tot("n_experimental"), "n_control": tot("n_control")}, {}


def _pooled_entries(result: AnalysisResult, primary_method: str | None = None) -> list[dict[str, Any]]:
    """Common- and random-effects rows as RevMan labels them (with ``Total`` cells)."""
    ni = result.selection.rows["total"].to_numpy(float)
    cells, _ = _totals(result)
    entries = []
    if result.common is not None:
        c = result.common
        est, lb, ub = back_transform(result, [c.beta[0], c.ci_lb[0], c.ci_ub[0]], ni)
        entries.append({"label": "Total (common effect, 95% CI)", "estimate": est, "ci_lb": lb, "ci_ub": ub,
                        "kind": "common", "cells": cells, "weight_common_text": "100.0%", "weight_text": "—",
                        "primary": primary_method == "common_effect"})
    if result.main is not None:
        m, p = result.main, result.prediction
        est, lb, ub, plb, pub = back_transform(result, [m.beta[0], m.ci_lb[0], m.ci_ub[0], p.pi_lb[0], p.pi_ub[0]], ni)
        test = "Hartung-Knapp" if m.test == "knha" else "Wald"
        entry = {"label": f"Total (random effects, {m.method}, {test}, 95% CI)",
                 "estimate": est, "ci_lb": lb, "ci_ub": ub, "kind": "random", "cells": cells,
                 "weight_text": "100.0%", "weight_common_text": "—" if result.common is not None else "",
                 "primary": primary_method == "reml_hksj"}
        if result.k >= 3:  # a prediction interval needs k - 2 >= 1 degrees of freedom (Riley et al. 2011)
            entry.update(pi_lb=plb, pi_ub=pub)
        entries.append(entry)
    return entries


def _het_text(fit: Any, proportion: bool) -> str | None:
    """RevMan's heterogeneity line: τ², χ² (Q) with df and p, I²."""
    if fit is None:
        return None
    p = f"P = {fit.qe_p:.3f}" if fit.qe_p >= 0.001 else "P < 0.001"
    scale = " (logit scale)" if proportion else ""
    return (f"Heterogeneity: τ² = {fit.tau2:.3f}{scale}; χ² = {fit.qe:.2f}, df = {fit.qe_df} ({p}); "
            f"I² = {fit.i2:.0f}%")


def _overall_test(fit: Any) -> str | None:
    """RevMan's "Test for overall effect: Z = 2.03 (P = 0.04)" (t under Hartung-Knapp)."""
    if fit is None:
        return None
    stat = "t" if getattr(fit, "test", "z") in ("knha", "t") else "Z"
    df = f"{int(fit.ddf)}" if stat == "t" and np.isfinite(getattr(fit, "ddf", np.nan)) else ""
    pv = float(fit.pval[0])
    p = f"P = {pv:.3f}" if pv >= 0.001 else "P < 0.001"
    return (f"Test for overall effect (random effects): {stat}{'(' + df + ')' if df else ''} = "
            f"{abs(float(fit.zval[0])):.2f} ({p})")


def _bayes_row(result: AnalysisResult, primary: bool = False) -> dict[str, Any] | None:
    b = result.bayes
    if b is None:
        return None
    spec = result.spec.bayes
    note = f"Priors: μ ~ {prior_text(spec.prior_mu)}; τ ~ {prior_text(spec.prior_tau)}"
    tag = " — primary analysis" if primary else ""
    if result.spec.kind == "proportion":
        return {"label": f"Bayesian random effects, 95% CrI{tag}", "estimate": b.p_median.mean,
                "ci_lb": b.p_median.lb, "ci_ub": b.p_median.ub,
                "pi_lb": b.p_new.lb if result.k >= 2 else None, "pi_ub": b.p_new.ub if result.k >= 2 else None,
                "pi_label": "Predictive interval for a new cohort (95%)", "note": note, "primary": primary}
    new = b.theta_new
    return {"label": f"Bayesian random effects, 95% CrI{tag}", "estimate": float(np.exp(b.mu.mean)),
            "ci_lb": float(np.exp(b.mu.lb)), "ci_ub": float(np.exp(b.mu.ub)),
            "pi_lb": float(np.exp(new.lb)) if new else None, "pi_ub": float(np.exp(new.ub)) if new else None,
            "pi_label": "Predictive interval for a new trial (95%)", "note": note, "primary": primary}


def forest_figure(result: AnalysisResult, stem: Path, *, display: dict[str, str] | None = None,
                  labels: Any = None, primary_method: str | None = None, moderator: str | None = None,
                  xlim: tuple[float, float] | None = None) -> None:
    """The RevMan 5-style forest plot of an analysis, overall or by one subgroup moderator."""
    from blinameta import plots

    kind = result.spec.kind
    proportion = kind == "proportion"
    xlabel = "Proportion (%)" if proportion else ("Hazard ratio" if kind == "hazard_ratio" else "Risk ratio")
    columns, groups = forest_columns(kind)
    bayes_primary = primary_method is not None and primary_method.startswith("bayes")
    favours = None
    if not proportion:
        favours = ("Favours blinatumomab", "Favours chemotherapy")
        if kind == "risk_ratio" and getattr(labels, "higher_is_better", lambda _c: True)(result.spec.outcome):
            favours = ("Favours chemotherapy", "Favours blinatumomab")
    pooled = _pooled_entries(result, primary_method)
    het: dict[str | None, list[str]] = {None: [t for t in (_het_text(result.main, proportion),) if t]}
    if not proportion:
        het[None] += [t for t in (_overall_test(result.main),) if t]
    sg_test = None
    frame_groups = None
    if moderator is not None:
        sg = next(s for s in result.subgroups if s.moderator == moderator)
        r = sg.result
        name = (lambda g: labels.level(moderator, g)) if labels is not None else (lambda g: g)
        ni_all = result.selection.rows["total"].to_numpy(float)
        sub = []
        fits = dict(zip(r.groups, getattr(r, "fits", ()) or ()))
        for g, est, lb, ub, kk in zip(r.groups, r.estimate, r.ci_lb, r.ci_ub, r.k):
            mask = np.array([lab == g for lab in sg.labels])
            e, l_, u = back_transform(result, [est, lb, ub], ni_all[mask] if mask.any() else ni_all)
            cells, _ = _totals(result, mask)
            sub.append({"label": f"Subtotal ({int(kk)} stud{'y' if kk == 1 else 'ies'}, 95% CI)", "estimate": e,
                        "ci_lb": l_, "ci_ub": u, "subgroup": name(g), "kind": "random", "cells": cells})
            fit = fits.get(g)
            lines = []
            if fit is not None and int(kk) >= 2:
                lines.append(_het_text(fit, proportion))
                if not proportion:
                    lines.append(_overall_test(fit))
            elif int(kk) == 1:
                lines.append("Heterogeneity: not applicable (one study)")
            het[name(g)] = [x for x in lines if x]
        for lab in sorted(set(sg.labels) - set(r.groups)):
            het[name(lab)] = ["Not pooled and not in the test for subgroup differences (moderator not reported)"]
        pooled = sub + [p for p in pooled if p["kind"] == "random"]
        stat = "F" if getattr(r, "stat", "") == "F" else "χ²"
        df = f"df = {int(r.qb_df[0])}" if stat == "χ²" else f"df = ({int(r.qb_df[0])}, {r.qb_df[1]:.0f})"
        pval = f"P = {r.qb_p:.3f}" if r.qb_p >= 0.001 else "P < 0.001"
        i2 = max(0.0, 100 * (r.qb - r.qb_df[0]) / r.qb) if stat == "χ²" and r.qb > 0 else None
        sg_test = (f"Test for subgroup differences: {stat} = {r.qb:.2f}, {df} ({pval})"
                   + (f", I² = {i2:.0f}%" if i2 is not None else ""))
        frame_groups = tuple(name(g) if g != "not reported" else "not reported" for g in sg.labels)
    _, total_events = _totals(result)
    footnote_parts = []
    rows = result.selection.rows
    if any(bool(r.get("derived", False)) or bool(r.get("flagged", False)) for _, r in rows.iterrows()):
        footnote_parts.append("† count derived from a printed percentage, or a source that contradicts itself "
                              "(see the sensitivity analyses)")
    if proportion:
        footnote_parts.append("Study intervals: exact Clopper-Pearson. Pooled: logit scale, back-transformed.")
    else:
        footnote_parts.append("Study hazard ratios and 95% CIs as published; pooled on the log scale (SE from the published CI)."
                              if kind == "hazard_ratio" else "Study intervals: Wald on the log risk ratio.")
    frame = _study_rows(result, frame_groups, display)
    if moderator is not None:  # subgroup panels: random-effects weights only, as RevMan
        frame = frame.drop(columns=["weight_common"])
    plots.forest_plot(stem, frame, pooled=pooled, heterogeneity=het,
                      subgroup_test=sg_test, bayes=_bayes_row(result, bayes_primary) if moderator is None else None,
                      xlabel=xlabel, scale="proportion" if proportion else "log", null_value=None if proportion else 1.0,
                      xlim=xlim, columns=columns, column_groups=groups, total_events=total_events or None,
                      percent=proportion, favours=favours,
                      estimate_header=("Proportion, % [95% CI]" if proportion else
                                       ("Hazard ratio [95% CI]" if kind == "hazard_ratio" else "Risk ratio [95% CI]")),
                      footnote="\n".join(footnote_parts))


def draw_figures(result: AnalysisResult, folder: Path, level_labels: dict[str, dict[str, str]] | None = None, *,
                 labels: Any = None, display: dict[str, str] | None = None,
                 primary_method: str | None = None) -> dict[str, str]:
    """Draw every figure of the analysis into ``folder`` as SVG; return name -> file stem (relative).

    ``labels`` (:class:`blinameta.report.labels.Labels`) names moderators and levels;
    ``display`` maps study id -> "Author Year (trial name)"; ``primary_method`` marks the
    primary analysis' row (a ``primary.method`` of the methods contract).
    """
    from blinameta import plots

    with plots.file_formats("svg"):
        return _draw_figures(result, folder, level_labels or {}, labels=labels, display=display,
                             primary_method=primary_method)


def _draw_figures(result: AnalysisResult, folder: Path, level_labels: dict[str, dict[str, str]], *,
                  labels: Any, display: dict[str, str] | None, primary_method: str | None) -> dict[str, str]:
    from blinameta import plots

    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    if result.k == 0:
        return figures
    proportion = result.spec.kind == "proportion"
    xlabel = "Proportion" if proportion else ("Hazard ratio" if result.spec.kind == "hazard_ratio" else "Risk ratio")
    xlim = None
    if not proportion:  # clip the log axis around the studies; wider intervals end in arrows
        lb, ub = np.exp(result.study_ci[0]), np.exp(result.study_ci[1])
        xlim = (max(0.01, min(float(lb.min()), 1.0) / 3), min(100.0, max(float(ub.max()), 1.0) * 3))
    forest_figure(result, folder / "forest", display=display, labels=labels, primary_method=primary_method, xlim=xlim)
    figures["forest"] = "forest"
    ni_all = result.selection.rows["total"].to_numpy(float)
    for sg in result.subgroups:
        stem = f"forest_{sg.moderator}"
        forest_figure(result, folder / stem, display=display, labels=labels, primary_method=primary_method,
                      moderator=sg.moderator, xlim=xlim)
        figures[stem] = stem
    # the funnel plot goes with the small-study tests, which need ten studies (run.SMALL_STUDY_MIN_K)
    if result.main is not None and result.small_study is not None:
        name, e = result.small_study
        egger = f"{name}: {'t' if np.isfinite(e.ddf) else 'z'} = {e.zval:.2f}, p = {e.pval:.3f}"
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
        values, grid = list(mr.values), list(mr.grid)
        if mr.categorical and labels is not None:  # level codes -> the review's labels
            values = [labels.level(mr.moderator, v) for v in values]
            grid = [labels.level(mr.moderator, v) for v in grid]
        plots.bubble_plot(folder / stem, values, y, result.vi[idx], fit_x=grid, fit_y=fit_y,
                          fit_lb=fit_lb, fit_ub=fit_ub, xlabel=labels.moderator(mr.moderator) if labels is not None else mr.moderator.replace("_", " "),
                          ylabel=xlabel,
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
