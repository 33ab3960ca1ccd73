"""Shrinkage plot: each study's observed proportion against its partial-pooling estimate.

Two markers per study, joined by an arrow from the observed to the shrunken estimate, each with
its interval; an optional vertical line (and band) marks the pooled estimate the studies are
pulled towards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from blinameta.plots._common import (
    BLUE,
    GREY,
    INK,
    SMALL_SIZE,
    as_float,
    as_float_array,
    check_interval,
    house_style,
    new_figure,
    optional_float,
    same_length,
    save,
)

__all__ = ["shrinkage_plot"]

_OFF = 0.17  # vertical offset of the two markers from the study's row


def shrinkage_plot(
    stem: str | os.PathLike[str],
    labels: Sequence[str],
    observed: Sequence[float] | np.ndarray,
    observed_lb: Sequence[float] | np.ndarray,
    observed_ub: Sequence[float] | np.ndarray,
    shrunk: Sequence[float] | np.ndarray,
    shrunk_lb: Sequence[float] | np.ndarray,
    shrunk_ub: Sequence[float] | np.ndarray,
    *,
    pooled: float | Mapping[str, Any] | None = None,
    xlabel: str = "Proportion",
    xlim: tuple[float, float] | None = None,
    observed_name: str = "Observed (95% CI)",
    shrunk_name: str = "Partial pooling (95% CrI)",
    title: str | None = None,
) -> list[Path]:
    """Draw observed vs shrunken estimates and write ``stem.png`` and ``stem.svg``.

    Parameters
    ----------
    labels : study labels, top to bottom.
    observed, observed_lb, observed_ub : observed proportions and their intervals.
    shrunk, shrunk_lb, shrunk_ub : partial-pooling (posterior) estimates and intervals.
    pooled : the pooled estimate, a number or ``{estimate, ci_lb=None, ci_ub=None,
        label="Pooled"}``; drawn as a dashed line with a light band for its interval.

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    n = same_length(labels=labels, observed=observed, observed_lb=observed_lb,
                    observed_ub=observed_ub, shrunk=shrunk, shrunk_lb=shrunk_lb,
                    shrunk_ub=shrunk_ub)
    if n == 0:
        raise ValueError("labels: no studies to plot")
    names = [str(s) for s in labels]
    obs = as_float_array("observed", observed)
    olb = as_float_array("observed_lb", observed_lb)
    oub = as_float_array("observed_ub", observed_ub)
    shr = as_float_array("shrunk", shrunk)
    slb = as_float_array("shrunk_lb", shrunk_lb)
    sub = as_float_array("shrunk_ub", shrunk_ub)
    check_interval("observed", obs, olb, oub)
    check_interval("shrunk", shr, slb, sub)
    pool: dict[str, Any] | None = None
    if pooled is not None:
        if isinstance(pooled, Mapping):
            pool = {"estimate": as_float("pooled['estimate']", pooled.get("estimate")),
                    "ci_lb": optional_float("pooled['ci_lb']", pooled.get("ci_lb")),
                    "ci_ub": optional_float("pooled['ci_ub']", pooled.get("ci_ub")),
                    "label": str(pooled.get("label") or "Pooled")}
        else:
            pool = {"estimate": as_float("pooled", pooled), "ci_lb": None, "ci_ub": None,
                    "label": "Pooled"}

    y = np.arange(n, dtype=float)
    with house_style():
        fig = new_figure(6.2, 1.3 + 0.42 * n, constrained=True)
        ax = fig.add_subplot()
        if pool is not None:
            if pool["ci_lb"] is not None and pool["ci_ub"] is not None:
                ax.axvspan(pool["ci_lb"], pool["ci_ub"], color=GREY, alpha=0.12, linewidth=0,
                           zorder=0)
            ax.axvline(pool["estimate"], color=GREY, lw=0.9, ls=(0, (4, 3)), zorder=0)
        ax.hlines(y - _OFF, olb, oub, color=GREY, lw=1.0, zorder=1)
        ax.hlines(y + _OFF, slb, sub, color=BLUE, lw=1.6, zorder=1)
        for i in range(n):
            if abs(shr[i] - obs[i]) > 1e-12:
                ax.annotate("", xy=(shr[i], y[i] + _OFF - 0.05), xytext=(obs[i], y[i] - _OFF + 0.05),
                            arrowprops=dict(arrowstyle="-|>", color=INK, lw=0.7,
                                            mutation_scale=8, shrinkA=3, shrinkB=3), zorder=2)
        ax.plot(obs, y - _OFF, "s", markersize=6, markerfacecolor="white", markeredgecolor=INK,
                markeredgewidth=1.0, linestyle="none", zorder=3)
        ax.plot(shr, y + _OFF, "o", markersize=6, color=BLUE, linestyle="none", zorder=3)
        ax.set_yticks(y, names)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(n - 0.4, -0.6)
        if xlim is not None:
            ax.set_xlim(as_float("xlim[0]", xlim[0]), as_float("xlim[1]", xlim[1]))
        ax.set_xlabel(xlabel)
        handles = [
            Line2D([], [], marker="s", markerfacecolor="white", markeredgecolor=INK, color=GREY,
                   lw=1.0, markersize=6, label=observed_name),
            Line2D([], [], marker="o", color=BLUE, lw=1.6, markersize=6, label=shrunk_name),
        ]
        if pool is not None:
            handles.append(Line2D([], [], color=GREY, lw=0.9, ls=(0, (4, 3)),
                                  label=pool["label"]))
        fig.legend(handles=handles, loc="outside upper left", ncols=2, handlelength=2.0,
                   fontsize=SMALL_SIZE)
        if title:
            fig.suptitle(title, x=0.02, ha="left", fontweight="bold", fontsize=10)
        return save(fig, stem)
