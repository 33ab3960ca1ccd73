"""Forest plot of study estimates and pooled estimates (the layout of metafor ``forest.rma``).

The plot draws numbers it is given; it never refits a model. Estimates and intervals arrive on
the display scale (proportions, or hazard ratios with ``scale="log"``).

Layout, top to bottom: column headers; for each subgroup panel (in order of first appearance) a
bold panel header, its studies, its pooled diamond(s) and prediction interval; then the overall
pooled diamond(s), their prediction interval, the heterogeneity and subgroup-test lines, and the
Bayesian row. Text columns: study (with ``flag``), ``detail`` (events/total) on the left; estimate
[95% CI] and weight on the right. Square area is proportional to the weight.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from blinameta.plots._common import (
    FONT_SIZE,
    GREY,
    INK,
    BLUE,
    SMALL_SIZE,
    VERMILLION,
    TextMeasurer,
    as_float,
    fmt,
    fmt_ci,
    house_style,
    new_figure,
    optional_float,
    save,
)

__all__ = ["forest_plot", "BAYES_LABEL"]

BAYES_LABEL = "Bayesian (posterior median, 95% CrI; predictive)"

_ROW_H = 0.25  # inches per row
_BLANK_H = 0.5  # a spacer is half a row
_PAD = 0.12  # figure edge padding, inches
_GAP = 0.22  # gap between columns, inches
_INDENT = 0.14  # indentation of rows under a subgroup header, inches
_STRIPE = "#f2f2f2"
PRIMARY_BAND = "#fff3c4"  # pale yellow behind the primary analysis' row
BAYES_TEXT = "#a04000"  # darker vermillion: 6.5:1 on white, 5.9:1 on the primary band (WCAG AA)
_NICE_LOG = [m * 10.0**e for e in range(-3, 4) for m in (1.0, 2.0, 5.0)]

Kind = Literal["header", "study", "pooled", "pi", "bayes", "bayes_pi", "text", "blank", "totals"]


@dataclass
class _Item:
    kind: Kind
    label: str = ""
    detail: str = ""
    est: float | None = None
    lb: float | None = None
    ub: float | None = None
    right: str = ""
    weight_text: str = ""
    weight_common_text: str = ""
    weight: float = math.nan
    cells: dict[str, str] = field(default_factory=dict)
    primary: bool = False
    common: bool = False
    indent: int = 0
    tooltip: str = ""
    study_index: int = -1
    stripe: bool = False
    y: float = 0.0  # centre, in row units from the top of the body
    h: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- input checks


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _group_key(value: Any) -> str | None:
    s = _text(value)
    return s if s else None


def _check_rows(rows: pd.DataFrame, log: bool) -> pd.DataFrame:
    if not isinstance(rows, pd.DataFrame):
        raise ValueError(f"rows: expected a pandas DataFrame, got {type(rows).__name__}")
    needed = ["label", "detail", "estimate", "ci_lb", "ci_ub", "weight"]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise ValueError(f"rows: missing column(s) {', '.join(missing)}")
    if len(rows) == 0:
        raise ValueError("rows: no studies to plot")
    out = rows.reset_index(drop=True)
    for col in ("estimate", "ci_lb", "ci_ub", "weight"):
        try:
            vals = pd.to_numeric(out[col], errors="raise").astype(float).to_numpy()
        except (TypeError, ValueError):
            raise ValueError(f"rows: column {col!r} must be numeric") from None
        if col == "weight":
            bad = np.isinf(vals) | (vals < 0)
            if bad.any():
                raise ValueError(f"rows: weight must be >= 0 or NaN, bad at row(s) "
                                 f"{', '.join(map(str, np.flatnonzero(bad)))}")
        else:
            bad = ~np.isfinite(vals)
            if bad.any():
                raise ValueError(f"rows: non-finite {col} at row(s) "
                                 f"{', '.join(map(str, np.flatnonzero(bad)))}")
            if log and (vals <= 0).any():
                raise ValueError(f"rows: {col} must be > 0 on a log scale")
        out[col] = vals
    est, lb, ub = (out[c].to_numpy() for c in ("estimate", "ci_lb", "ci_ub"))
    tol = 1e-9 * np.maximum(1.0, np.abs(est))
    bad = (lb > est + tol) | (ub < est - tol)
    if bad.any():
        raise ValueError("rows: ci_lb <= estimate <= ci_ub fails at row(s) "
                         f"{', '.join(map(str, np.flatnonzero(bad)))}")
    return out


def _check_interval_dict(name: str, d: Mapping[str, Any], log: bool, keys: Sequence[str],
                         optional: Sequence[str]) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{name}: expected a dict, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{name}: missing key(s) {', '.join(missing)}")
    out: dict[str, Any] = dict(d)
    for k in keys:
        if k != "label":
            out[k] = as_float(f"{name}[{k!r}]", d[k])
    for k in optional:
        out[k] = optional_float(f"{name}[{k!r}]", d.get(k))
    nums = [out[k] for k in (*keys, *optional) if k != "label" and out.get(k) is not None]
    if log and any(v <= 0 for v in nums):
        raise ValueError(f"{name}: values must be > 0 on a log scale")
    if not out["ci_lb"] <= out["estimate"] <= out["ci_ub"]:
        raise ValueError(f"{name}: expected ci_lb <= estimate <= ci_ub, got "
                         f"{out['ci_lb']}, {out['estimate']}, {out['ci_ub']}")
    lo, hi = out.get("pi_lb"), out.get("pi_ub")
    if (lo is None) != (hi is None):
        raise ValueError(f"{name}: give both pi_lb and pi_ub, or neither")
    if lo is not None and not lo <= out["estimate"] <= hi:
        raise ValueError(f"{name}: expected pi_lb <= estimate <= pi_ub")
    return out


def _check_pooled(pooled: Any, log: bool) -> list[dict[str, Any]]:
    if isinstance(pooled, Mapping):
        pooled = [pooled]
    out = []
    for i, p in enumerate(pooled or []):
        d = _check_interval_dict(f"pooled[{i}]", p, log, ("label", "estimate", "ci_lb", "ci_ub"),
                                 ("pi_lb", "pi_ub"))
        kind = d.get("kind", "random") or "random"
        if kind not in ("random", "common"):
            raise ValueError(f"pooled[{i}]: kind must be 'random' or 'common', got {kind!r}")
        d["kind"] = kind
        d["subgroup"] = _group_key(d.get("subgroup"))
        d["label"] = _text(d["label"])
        out.append(d)
    return out


# --------------------------------------------------------------------------- layout


def _build_items(rows: pd.DataFrame, pooled: list[dict[str, Any]],
                 heterogeneity: str | Mapping[str | None, str] | None,
                 subgroup_test: str | Sequence[str] | None, bayes: dict[str, Any] | None,
                 digits: int, columns: Sequence[tuple[str, str]] = (),
                 total_events: Mapping[str, str] | None = None, percent: bool = False) -> list[_Item]:
    has_groups = "subgroup" in rows.columns and any(_group_key(v) for v in rows["subgroup"])
    keys = [_group_key(v) for v in rows["subgroup"]] if has_groups else [None] * len(rows)
    order: list[str | None] = list(dict.fromkeys(keys))
    if has_groups:
        unknown = sorted({p["subgroup"] for p in pooled if p["subgroup"] is not None} - set(order))
        if unknown:
            raise ValueError(f"pooled: subgroup(s) {', '.join(map(repr, unknown))} not in rows")
    elif any(p["subgroup"] is not None for p in pooled):
        raise ValueError("pooled: entries name a subgroup but rows has no subgroup column")
    def lines(v: Any) -> list[str]:
        if not v:
            return []
        return [str(v)] if isinstance(v, str) else [str(x) for x in v if x]

    if isinstance(heterogeneity, Mapping):
        het_map: dict[str | None, list[str]] = {_group_key(k): lines(v) for k, v in heterogeneity.items()}
    else:
        het_map = {None: lines(heterogeneity)} if heterogeneity else {}
    scale_k = 100.0 if percent else 1.0

    def ci_text(est: float, lb: float, ub: float) -> str:
        return fmt_ci(scale_k * est, scale_k * lb, scale_k * ub, digits)

    def pi_text(lb: float, ub: float) -> str:
        return f"[{fmt(scale_k * lb, digits)}, {fmt(scale_k * ub, digits)}]"

    weights = rows["weight"].to_numpy()
    has_weight = bool(np.isfinite(weights).any())
    has_common = "weight_common" in rows.columns and bool(
        np.isfinite(pd.to_numeric(rows["weight_common"], errors="coerce").to_numpy(float)).any())
    items: list[_Item] = []

    def add_pooled(entries: list[dict[str, Any]], indent: int) -> None:
        for p in entries:
            cells = {str(k): _text(v) for k, v in (p.get("cells") or {}).items()}
            items.append(_Item("pooled", label=p["label"], est=p["estimate"], lb=p["ci_lb"],
                               ub=p["ci_ub"], right=ci_text(p["estimate"], p["ci_lb"], p["ci_ub"]),
                               common=p["kind"] == "common", indent=indent, cells=cells,
                               primary=bool(p.get("primary")),
                               weight_text=_text(p.get("weight_text")),
                               weight_common_text=_text(p.get("weight_common_text"))))
            if p.get("pi_lb") is not None:
                items.append(_Item("pi", label="Prediction interval", est=p["estimate"],
                                   lb=p["pi_lb"], ub=p["pi_ub"], right=pi_text(p["pi_lb"], p["pi_ub"]),
                                   indent=indent + 1))

    for g in order:
        indent = 1 if g is not None else 0
        if g is not None:
            items.append(_Item("header", label=g))
        stripe = False
        for i in (j for j, k in enumerate(keys) if k == g):
            r = rows.iloc[i]
            flag = _text(r.get("flag")) if "flag" in rows.columns else ""
            label = _text(r["label"]) + (f" {flag}" if flag else "")
            w = float(r["weight"])
            wc = optional_float("weight_common", r["weight_common"]) if has_common else None
            items.append(_Item(
                "study", label=label, detail=_text(r["detail"]), est=float(r["estimate"]),
                lb=float(r["ci_lb"]), ub=float(r["ci_ub"]),
                right=ci_text(float(r["estimate"]), float(r["ci_lb"]), float(r["ci_ub"])),
                cells={key: _text(r[key]) if key in rows.columns else "" for _, key in columns},
                weight_common_text=(f"{wc:.1f}%" if wc is not None else "—") if has_common else "",
                weight=w, weight_text=(f"{w:.1f}%" if math.isfinite(w) else "—") if has_weight else "",
                indent=indent,
                tooltip=_text(r.get("tooltip")) if "tooltip" in rows.columns else "",
                study_index=i, stripe=stripe))
            stripe = not stripe
        if g is not None:
            add_pooled([p for p in pooled if p["subgroup"] == g], indent)
            for line in het_map.get(g, []):
                items.append(_Item("text", label=line, indent=indent))
            items.append(_Item("blank", h=_BLANK_H))

    overall = [p for p in pooled if p["subgroup"] is None]
    if overall and (not items or items[-1].kind != "blank"):
        items.append(_Item("blank", h=_BLANK_H))
    add_pooled(overall, 0)
    if total_events:
        items.append(_Item("totals", label="Total events", cells={str(k): _text(v) for k, v in total_events.items()}))
    for line in het_map.get(None, []):
        items.append(_Item("text", label=line))
    for line in lines(subgroup_test):
        items.append(_Item("text", label=line))
    if bayes is not None:
        if items[-1].kind != "blank":
            items.append(_Item("blank", h=_BLANK_H))
        items.append(_Item("bayes", label=bayes.get("label") or BAYES_LABEL, est=bayes["estimate"],
                           lb=bayes["ci_lb"], ub=bayes["ci_ub"], primary=bool(bayes.get("primary")),
                           right=ci_text(bayes["estimate"], bayes["ci_lb"], bayes["ci_ub"])))
        for line in lines(bayes.get("note")):
            items.append(_Item("text", label=line, indent=1, extra={"bayes": True}))
        if bayes.get("pi_lb") is not None:
            items.append(_Item("bayes_pi", label=bayes.get("pi_label") or "Predictive interval (new study)",
                               est=bayes["estimate"], lb=bayes["pi_lb"], ub=bayes["pi_ub"],
                               right=pi_text(bayes["pi_lb"], bayes["pi_ub"]), indent=1))
    while items and items[-1].kind == "blank":
        items.pop()

    y = 0.0
    for it in items:
        it.y = y + it.h / 2
        y += it.h
    return items


def _auto_xlim(values: list[float], scale: str, null_value: float | None) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if null_value is not None:
        vals.append(null_value)
    lo, hi = min(vals), max(vals)
    if scale == "log":
        lo, hi = max(lo, 0.01), min(hi, 100.0)
        lo = max([v for v in _NICE_LOG if v <= lo * (1 + 1e-9)], default=_NICE_LOG[0])
        hi = min([v for v in _NICE_LOG if v >= hi * (1 - 1e-9)], default=_NICE_LOG[-1])
        if hi / lo < 4:
            lo, hi = lo / 2, hi * 2
        return lo, hi
    if scale == "proportion":
        lo = max(0.0, math.floor(lo * 10 + 1e-9) / 10)
        hi = min(1.0, math.ceil(hi * 10 - 1e-9) / 10)
        if hi - lo < 0.2:
            mid = (lo + hi) / 2
            lo, hi = max(0.0, mid - 0.1), min(1.0, mid + 0.1)
        return lo, hi
    if hi - lo <= 0:
        lo, hi = lo - 1, hi + 1
    ticks = MaxNLocator(nbins=5).tick_values(lo, hi)
    return float(ticks[0]), float(ticks[-1])


def _clipped_hline(ax: Axes, y: float, lo: float, hi: float, xlim: tuple[float, float], *,
                   color: str, lw: float, caps: bool = False, zorder: float = 2,
                   gid: str | None = None) -> None:
    """A horizontal interval, cut at the axis limits with an arrow head where it is cut."""
    x0, x1 = xlim
    a, b = max(lo, x0), min(hi, x1)
    if a < b:
        (line,) = ax.plot([a, b], [y, y], color=color, lw=lw, solid_capstyle="butt",
                          zorder=zorder, clip_on=False)
        if gid:
            line.set_gid(gid)
    arrow = dict(arrowstyle="-|>", color=color, lw=lw, mutation_scale=9, shrinkA=0, shrinkB=0)
    for cut, edge, dx, side in ((lo < x0, x0, 7, "left"), (hi > x1, x1, -7, "right")):
        if cut:
            ann = ax.annotate("", xy=(edge, y), xytext=(dx, 0), textcoords="offset points",
                              arrowprops=arrow, zorder=zorder, annotation_clip=False)
            if gid:
                ann.arrow_patch.set_gid(f"{gid}-arrow-{side}")
    if caps:
        for v, inside in ((lo, lo >= x0), (hi, hi <= x1)):
            if inside:
                ax.plot([v], [y], marker="|", markersize=6, markeredgewidth=lw, color=color,
                        zorder=zorder, clip_on=False)


# --------------------------------------------------------------------------- the plot


def forest_plot(
    stem: str | os.PathLike[str],
    rows: pd.DataFrame,
    *,
    pooled: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    heterogeneity: str | Sequence[str] | Mapping[str | None, str | Sequence[str]] | None = None,
    subgroup_test: str | Sequence[str] | None = None,
    bayes: Mapping[str, Any] | None = None,
    xlabel: str = "Proportion",
    xlim: tuple[float, float] | None = None,
    scale: Literal["proportion", "linear", "log"] = "proportion",
    title: str | None = None,
    null_value: float | None = None,
    detail_header: str | None = None,
    estimate_header: str | None = None,
    favours: tuple[str, str] | None = None,
    footnote: str | None = None,
    digits: int | None = None,
    plot_width: float = 3.0,
    columns: Sequence[tuple[str, str]] | None = None,
    column_groups: Sequence[tuple[str, int]] | None = None,
    total_events: Mapping[str, str] | None = None,
    percent: bool = False,
) -> list[Path]:
    """Draw a forest plot and write ``stem.png`` and ``stem.svg``.

    The layout follows the Cochrane RevMan 5 forest plot (Higgins et al., Cochrane Handbook
    2023, chapter 10; the ``layout = "RevMan5"`` of R's ``meta::forest.meta``): study, data
    columns, the plot, the estimate with its interval, the weights; pooled rows with their
    totals; heterogeneity and overall-effect lines under them.

    Parameters
    ----------
    stem : path without suffix; ``.png`` and ``.svg`` are written next to each other.
    rows : DataFrame with ``label``, ``detail``, ``estimate``, ``ci_lb``, ``ci_ub``, ``weight``
        (percent; NaN allowed) and optional ``weight_common`` (a second, common-effect weight
        column), ``subgroup``, ``flag`` and ``tooltip`` (text of the SVG ``<title>`` of the
        row, e.g. the verbatim quote), and the keys named in ``columns``.
    pooled : dicts ``{label, estimate, ci_lb, ci_ub, pi_lb=None, pi_ub=None, subgroup=None,
        kind="random"|"common", cells={column key: text}, primary=False, weight_text="",
        weight_common_text=""}``; random: filled diamond, common: hollow diamond; the
        prediction interval gets its own row under its diamond; ``primary`` marks the row.
    heterogeneity : text (or lines) under the overall diamond, or a mapping ``{subgroup:
        text or lines}`` (key ``None`` for the overall lines).
    subgroup_test : text (or lines) of the test for subgroup differences.
    bayes : ``{label, estimate, ci_lb, ci_ub, pi_lb, pi_ub, note=None, primary=False}``, an open
        circle with its credible interval (thick) and a row with the predictive interval (thin);
        ``note`` (e.g. the priors) is printed under it.
    scale : ``"proportion"`` (linear, limits within [0, 1]), ``"linear"`` or ``"log"``.
    null_value : position of a dashed reference line (e.g. 1 for hazard ratios).
    detail_header, estimate_header : column titles; defaults "Events/total" (proportion scale)
        and ``f"{xlabel} [95% CI]"``.
    favours : texts put left and right of ``null_value`` under the axis.
    footnote : small text under the plot (e.g. what a ``flag`` means).
    digits : decimals of the estimates; default 1 with ``percent`` and 2 otherwise.
    columns : ``[(header, key), ...]`` data columns left of the plot (replacing ``detail``),
        e.g. ``[("Events", "events"), ("Total", "total")]``.
    column_groups : ``[(title, n_columns), ...]`` spanning titles over ``columns`` (e.g. the
        arms of a randomized trial); an empty title leaves its columns without one.
    total_events : cells of a "Total events" row under the overall pooled rows.
    percent : proportions printed and ticked as percentages (x 100).

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    if scale not in ("proportion", "linear", "log"):
        raise ValueError(f"scale must be 'proportion', 'linear' or 'log', got {scale!r}")
    log = scale == "log"
    if digits is None:
        digits = 1 if percent else 2
    rows = _check_rows(rows, log)
    pooled_list = _check_pooled(pooled, log)
    bayes_d = None
    if bayes is not None:
        bayes_d = _check_interval_dict("bayes", {"label": BAYES_LABEL, **bayes}, log,
                                       ("estimate", "ci_lb", "ci_ub"), ("pi_lb", "pi_ub"))
    nv = optional_float("null_value", null_value)
    if log and nv is not None and nv <= 0:
        raise ValueError("null_value must be > 0 on a log scale")
    if xlim is not None:
        if len(xlim) != 2:
            raise ValueError(f"xlim: expected (lower, upper), got {xlim!r}")
        x0, x1 = as_float("xlim[0]", xlim[0]), as_float("xlim[1]", xlim[1])
        if not x0 < x1 or (log and x0 <= 0):
            raise ValueError(f"xlim: expected 0 < lower < upper on a log scale, lower < upper "
                             f"otherwise; got {xlim!r}")
        limits = (x0, x1)
    else:
        values = [*rows["ci_lb"], *rows["ci_ub"]]
        for p in [*pooled_list, *([bayes_d] if bayes_d else [])]:
            values += [p["ci_lb"], p["ci_ub"], p.get("pi_lb"), p.get("pi_ub")]
        limits = _auto_xlim(values, scale, nv)

    cols = list(columns or [])
    items = _build_items(rows, pooled_list, heterogeneity, subgroup_test, bayes_d, digits, cols,
                         total_events, percent)
    has_weight = bool(np.isfinite(rows["weight"].to_numpy()).any())
    has_common = any(it.weight_common_text for it in items if it.kind == "study")
    has_detail = not cols and any(it.detail for it in items)
    if detail_header is None:
        detail_header = "Events/total" if scale == "proportion" else ""
    if estimate_header is None:
        estimate_header = f"{xlabel} [95% CI]"
    w_head_random = "Weight (random)" if has_common else "Weight"
    w_head_common = "Weight (common)"

    with house_style():
        m = TextMeasurer()

        def label_width(it: _Item) -> float:
            if it.kind in ("header", "pooled", "bayes", "totals"):
                w = m.width(it.label, weight="bold")
            elif it.kind in ("pi", "bayes_pi"):
                w = m.width(it.label, size=SMALL_SIZE, style="italic")
            elif it.kind == "study":
                w = m.width(it.label)
            else:
                return 0.0  # text lines may run over the detail column
            return w + it.indent * _INDENT

        w_label = max([m.width("Study", weight="bold")] + [label_width(it) for it in items])
        col_w = [max([m.width(h, weight="bold")] + [m.width(it.cells.get(k, ""), weight="bold")
                                                    for it in items]) for h, k in cols]
        w_detail = (max([m.width(detail_header, weight="bold")]
                        + [m.width(it.detail) for it in items]) if has_detail else 0.0)
        if cols and column_groups:  # widen a group's first column until its title fits
            start = 0
            for gtitle, n in column_groups:
                span = sum(col_w[start:start + n]) + _GAP * (n - 1)
                need = m.width(gtitle, weight="bold") if gtitle else 0.0
                if need > span and start < len(col_w):
                    col_w[start] += need - span
                start += n
        if cols:
            w_detail = sum(col_w) + _GAP * (len(cols) - 1)
            has_detail = True
        w_est = max([m.width(estimate_header, weight="bold")]
                    + [m.width(it.right, weight="bold") for it in items])
        w_weight = max(m.width(w_head_random, weight="bold"), m.width("100.0%")) if has_weight else 0.0
        w_wc = max(m.width(w_head_common, weight="bold"), m.width("100.0%")) if has_common else 0.0
        w_text = max([m.width(it.label, size=SMALL_SIZE) + it.indent * _INDENT
                      for it in items if it.kind == "text"] + [0.0])

        x_label = _PAD
        x_detail = x_label + w_label + (_GAP + w_detail if has_detail else 0.0)  # right edge
        col_right = []
        x = x_label + w_label
        for w in col_w:
            x += _GAP + w
            col_right.append(x)
        ax_left = x_detail + _GAP
        ax_right = ax_left + plot_width
        x_est = ax_right + _GAP + w_est  # right edge
        x_wc = x_est + (_GAP + w_wc if has_common else 0.0)
        x_weight = x_wc + (_GAP + w_weight if has_weight else 0.0)  # right edge
        fig_w = max(x_weight + _PAD, x_label + w_text + _PAD)
        if title:
            fig_w = max(fig_w, x_label + m.width(title, size=FONT_SIZE + 1, weight="bold") + _PAD)
        if footnote:
            fig_w = max(fig_w, x_label + m.width(footnote, size=SMALL_SIZE - 0.5) + _PAD)

        body_units = items[-1].y + items[-1].h / 2
        body_h = body_units * _ROW_H
        n_head = 2 if column_groups else 1
        top_h = (0.35 if title else 0.08) + (0.2 + n_head) * _ROW_H  # title, column headers
        bottom_h = 0.55 + (0.2 if favours else 0.0) + (0.22 * (footnote.count("\n") + 1) if footnote else 0.0)
        fig_h = top_h + body_h + bottom_h

        fig = new_figure(fig_w, fig_h)
        ax = fig.add_axes((ax_left / fig_w, bottom_h / fig_h, plot_width / fig_w, body_h / fig_h))
        ax.set_ylim(body_units, 0)
        if log:
            ax.set_xscale("log")
        ax.set_xlim(*limits)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.yaxis.set_major_locator(NullLocator())
        ax.yaxis.set_minor_locator(NullLocator())
        ax.patch.set_visible(False)
        if log:
            ticks = [v for v in _NICE_LOG if limits[0] * (1 - 1e-9) <= v <= limits[1] * (1 + 1e-9)]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        k_axis = 100.0 if percent else 1.0
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(k_axis * v, 10).rstrip("0").rstrip(".")
                                                   if abs(v) < 1e6 else f"{v:g}"))
        ax.set_xlabel(xlabel, labelpad=14 if favours else 4)

        tr = blended_transform_factory(fig.dpi_scale_trans, ax.transData)

        def put(x: float, y: float, s: str, *, ha: str = "left", size: float = FONT_SIZE,
                weight: str = "normal", style: str = "normal", color: str = INK,
                gid: str | None = None) -> None:
            if not s:
                return
            t = ax.text(x, y, s, transform=tr, ha=ha, va="center_baseline", fontsize=size,
                        fontweight=weight, fontstyle=style, color=color, clip_on=False,
                        parse_math=False)
            if gid:
                t.set_gid(gid)

        def put_cells(it: _Item, weight: str = "normal", color: str = INK) -> None:
            for (_, key), xr in zip(cols, col_right):
                put(xr, it.y, it.cells.get(key, ""), ha="right", weight=weight, color=color)

        # column headers (with spanning group titles) and a rule under them
        y_head = -0.75
        if column_groups:
            start = 0
            for gtitle, n in column_groups:
                span = col_right[start:start + n]
                if gtitle and span:
                    left_edge = (col_right[start] - col_w[start])
                    put((left_edge + span[-1]) / 2, y_head - 1.0, gtitle, ha="center", weight="bold")
                    ax.plot([left_edge, span[-1]], [y_head - 0.55, y_head - 0.55], transform=tr,
                            color=INK, lw=0.5, clip_on=False)
                start += n
        put(x_label, y_head, "Study", weight="bold")
        if cols:
            for (header, _), xr in zip(cols, col_right):
                put(xr, y_head, header, ha="right", weight="bold")
        elif has_detail:
            put(x_detail, y_head, detail_header, ha="right", weight="bold")
        put(x_est, y_head, estimate_header, ha="right", weight="bold")
        if has_common:
            put(x_wc, y_head, w_head_common, ha="right", weight="bold")
        if has_weight:
            put(x_weight, y_head, w_head_random, ha="right", weight="bold")
        ax.plot([x_label, x_weight], [-0.15, -0.15], transform=tr, color=INK, lw=0.6,
                clip_on=False)

        null_lines: list[Any] = []
        # reference line, interrupted where full-width text lines sit
        if nv is not None and limits[0] < nv < limits[1]:
            spans: list[list[float]] = []
            for it in items:
                if it.kind == "text":
                    spans.append([])
                elif it.kind != "blank" or spans:
                    if not spans:
                        spans.append([])
                    spans[-1].append(it.y - it.h / 2)
                    spans[-1].append(it.y + it.h / 2)
            for s in spans:
                if s:
                    (ref,) = ax.plot([nv, nv], [min(s), max(s)], color=GREY, lw=0.7,
                                     ls=(0, (4, 3)), zorder=1)
                    ref.set_gid(f"blinameta-forest-null-{len(null_lines)}")
                    null_lines.append(ref)

        max_w = np.nanmax(rows["weight"].to_numpy()) if has_weight else math.nan
        max_side = 0.78 * _ROW_H * 72  # points
        min_side = 3.5
        tooltips: dict[str, str] = {}
        x0, x1 = limits
        n_diamonds = 0

        def mark_primary(it: _Item, gid: str) -> None:
            band = Rectangle((x_label - 0.05, it.y - 0.5), x_weight - x_label + 0.1, 1.0,
                             transform=tr, facecolor=PRIMARY_BAND, edgecolor="none", zorder=0,
                             clip_on=False)
            band.set_gid(gid)
            ax.add_patch(band)

        for it in items:
            ind = x_label + it.indent * _INDENT
            if it.kind == "header":
                put(ind, it.y, it.label, weight="bold")
            elif it.kind == "text":
                put(ind, it.y, it.label, size=SMALL_SIZE, color=BAYES_TEXT if it.extra.get("bayes") else GREY)
            elif it.kind == "totals":
                put(ind, it.y, it.label, weight="bold")
                put_cells(it, weight="bold")
            elif it.kind == "study":
                gid = f"blinameta-forest-row-{it.study_index}"
                band = Rectangle((x_label - 0.05, it.y - 0.5), x_weight - x_label + 0.1, 1.0,
                                 transform=tr, facecolor=_STRIPE if it.stripe else "white",
                                 edgecolor="none", zorder=0, clip_on=False)
                band.set_gid(gid + "-band")
                ax.add_patch(band)
                put(ind, it.y, it.label, gid=gid + "-label")
                if cols:
                    put_cells(it)
                else:
                    put(x_detail, it.y, it.detail, ha="right")
                put(x_est, it.y, it.right, ha="right")
                put(x_wc, it.y, it.weight_common_text, ha="right")
                put(x_weight, it.y, it.weight_text, ha="right")
                if it.tooltip:
                    tooltips[gid + "-band"] = it.tooltip
                    tooltips[gid + "-label"] = it.tooltip
                _clipped_hline(ax, it.y, it.lb, it.ub, limits, color=INK, lw=0.9,
                               gid=gid + "-ci")
                if x0 <= it.est <= x1:
                    if math.isfinite(it.weight) and max_w > 0:
                        side = max(min_side, max_side * math.sqrt(it.weight / max_w))
                    else:
                        side = min_side + 1.0
                    (sq,) = ax.plot([it.est], [it.y], marker="s", markersize=side, color=BLUE,
                                    markeredgewidth=0, zorder=3, linestyle="none", clip_on=False)
                    sq.set_gid(gid + "-marker")
                    if it.tooltip:
                        tooltips[gid + "-marker"] = it.tooltip
            elif it.kind == "pooled":
                if it.primary:
                    mark_primary(it, f"blinameta-forest-primary-{n_diamonds}")
                put(ind, it.y, it.label, weight="bold")
                put_cells(it, weight="bold")
                put(x_est, it.y, it.right, ha="right", weight="bold")
                put(x_wc, it.y, it.weight_common_text, ha="right", weight="bold")
                put(x_weight, it.y, it.weight_text, ha="right", weight="bold")
                half = 0.36
                a, b = max(it.lb, x0), min(it.ub, x1)
                e = min(max(it.est, x0), x1)
                diamond = Polygon([(a, it.y), (e, it.y - half), (b, it.y),
                                   (e, it.y + half)], closed=True,
                                  facecolor="white" if it.common else INK, edgecolor=INK,
                                  lw=0.9, zorder=3, joinstyle="miter", clip_on=False)
                diamond.set_gid(f"blinameta-forest-diamond-{n_diamonds}-"
                                f"{'common' if it.common else 'random'}")
                n_diamonds += 1
                ax.add_patch(diamond)
                if it.lb < x0 or it.ub > x1:
                    _clipped_hline(ax, it.y, it.lb, it.ub, limits, color=INK, lw=0.9,
                                   gid=f"blinameta-forest-diamond-{n_diamonds - 1}-cut")
            elif it.kind == "pi":
                put(ind, it.y, it.label, size=SMALL_SIZE, style="italic", color=GREY)
                put(x_est, it.y, it.right, ha="right", size=SMALL_SIZE, color=GREY)
                _clipped_hline(ax, it.y, it.lb, it.ub, limits, color=INK, lw=0.9, caps=True)
            elif it.kind == "bayes":
                if it.primary:
                    mark_primary(it, "blinameta-forest-primary-bayes")
                put(ind, it.y, it.label, weight="bold", color=BAYES_TEXT)
                put(x_est, it.y, it.right, ha="right", weight="bold", color=BAYES_TEXT)
                _clipped_hline(ax, it.y, it.lb, it.ub, limits, color=VERMILLION, lw=2.2,
                               gid="blinameta-forest-bayes-ci")
                if x0 <= it.est <= x1:
                    ax.plot([it.est], [it.y], marker="o", markersize=7, markerfacecolor="white",
                            markeredgecolor=VERMILLION, markeredgewidth=1.6, linestyle="none",
                            zorder=4, clip_on=False)
            elif it.kind == "bayes_pi":
                put(ind, it.y, it.label, size=SMALL_SIZE, style="italic", color=BAYES_TEXT)
                put(x_est, it.y, it.right, ha="right", size=SMALL_SIZE, color=BAYES_TEXT)
                _clipped_hline(ax, it.y, it.lb, it.ub, limits, color=VERMILLION, lw=0.9,
                               caps=True)

        if favours and nv is not None:
            left_txt, right_txt = favours
            for txt, ha, dx in ((f"← {left_txt}", "right", -4), (f"{right_txt} →", "left", 4)):
                ax.annotate(txt, xy=(nv, 0), xycoords=("data", "axes fraction"),
                            xytext=(dx, -15), textcoords="offset points", ha=ha, va="top",
                            fontsize=SMALL_SIZE - 0.5, color=GREY, annotation_clip=False)
        if title:
            fig.text(x_label / fig_w, 1 - 0.1 / fig_h, title, ha="left", va="top",
                     fontsize=FONT_SIZE + 1, fontweight="bold", color=INK, parse_math=False)
        if footnote:
            fig.text(x_label / fig_w, 0.08 / fig_h, footnote, ha="left", va="bottom",
                     fontsize=SMALL_SIZE - 0.5, color=GREY, parse_math=False)
        return save(fig, stem, tooltips)
