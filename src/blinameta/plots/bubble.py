"""Meta-regression bubble plot (metafor ``regplot``): effect sizes against a moderator.

Bubble area is proportional to the study's weight (``1/vi`` unless weights are given). For a
continuous moderator the fitted line and its confidence band are drawn from the given
``fit_x``/``fit_y``/``fit_lb``/``fit_ub``; for a categorical moderator each level's fitted
value is drawn with its interval next to the studies of that level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from blinameta.plots._common import (
    BLUE,
    GREY,
    INK,
    as_float_array,
    as_labels,
    check_interval,
    house_style,
    label_points,
    new_figure,
    same_length,
    save,
)

__all__ = ["bubble_plot"]

_MAX_AREA = 420.0  # points², largest bubble
_MIN_AREA = 14.0


def _areas(w: np.ndarray) -> np.ndarray:
    return np.maximum(_MIN_AREA, _MAX_AREA * w / w.max())


def bubble_plot(
    stem: str | os.PathLike[str],
    x: Sequence[Any] | np.ndarray,
    yi: Sequence[float] | np.ndarray,
    vi: Sequence[float] | np.ndarray,
    *,
    fit_x: Sequence[Any] | np.ndarray,
    fit_y: Sequence[float] | np.ndarray,
    fit_lb: Sequence[float] | np.ndarray | None = None,
    fit_ub: Sequence[float] | np.ndarray | None = None,
    xlabel: str,
    ylabel: str,
    labels: Sequence[str] | None = None,
    categorical: bool = False,
    weights: Sequence[float] | np.ndarray | None = None,
    title: str | None = None,
) -> list[Path]:
    """Draw a bubble plot and write ``stem.png`` and ``stem.svg``.

    Parameters
    ----------
    x : moderator values (numbers), or level labels when ``categorical``.
    yi, vi : effect sizes and sampling variances (bubble area ∝ ``1/vi``).
    fit_x, fit_y, fit_lb, fit_ub : the fitted values and their confidence limits; for a
        categorical moderator ``fit_x`` are the level labels (their order is the axis order).
    weights : optional bubble weights replacing ``1/vi`` (e.g. random-effects weights).
    labels : optional study labels written next to the bubbles.

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    n = same_length(x=x, yi=yi, vi=vi)
    if n == 0:
        raise ValueError("yi: no studies to plot")
    y = as_float_array("yi", yi)
    v = as_float_array("vi", vi)
    if (v <= 0).any():
        raise ValueError("vi: sampling variances must be > 0")
    if weights is not None:
        same_length(yi=yi, weights=weights)
        w = as_float_array("weights", weights)
        if (w < 0).any() or w.max() <= 0:
            raise ValueError("weights: must be >= 0 with at least one > 0")
    else:
        w = 1.0 / v
    names = as_labels("labels", labels, n)
    if (fit_lb is None) != (fit_ub is None):
        raise ValueError("fit_lb, fit_ub: give both or neither")
    same_length(fit_x=fit_x, fit_y=fit_y, **({"fit_lb": fit_lb, "fit_ub": fit_ub}
                                            if fit_lb is not None else {}))
    fy = as_float_array("fit_y", fit_y)
    flb = fub = None
    if fit_lb is not None:
        flb = as_float_array("fit_lb", fit_lb)
        fub = as_float_array("fit_ub", fit_ub)
        check_interval("fit", fy, flb, fub)

    if categorical:
        levels = [str(v_) for v_ in fit_x]
        if len(set(levels)) != len(levels):
            raise ValueError("fit_x: level labels must be unique")
        xs = [str(v_) for v_ in x]
        unknown = sorted(set(xs) - set(levels))
        if unknown:
            raise ValueError(f"x: level(s) {', '.join(map(repr, unknown))} not in fit_x")
        pos = {lev: i for i, lev in enumerate(levels)}
        px = np.empty(n)
        for lev in levels:  # spread a level's studies deterministically, ordered by yi
            idx = [i for i in range(n) if xs[i] == lev]
            idx.sort(key=lambda i: y[i])
            offs = np.linspace(-0.3, -0.06, len(idx)) if len(idx) > 1 else np.array([-0.18])
            for i, o in zip(idx, offs, strict=True):
                px[i] = pos[lev] + o
    else:
        px = as_float_array("x", x)
        fx = as_float_array("fit_x", fit_x)
        if np.any(np.diff(fx) < 0):
            raise ValueError("fit_x: must be sorted in increasing order")

    with house_style():
        width = 5.6 if not categorical else max(4.2, 1.3 * len(levels) + 1.6)
        fig = new_figure(width, 4.3, constrained=True)
        ax = fig.add_subplot()
        ax.scatter(px, y, s=_areas(w), facecolor=BLUE, alpha=0.45, edgecolor=BLUE,
                   linewidth=0.8, zorder=2)
        if categorical:
            fpos = np.arange(len(levels)) + 0.18
            if flb is not None:
                ax.errorbar(fpos, fy, yerr=[fy - flb, fub - fy], fmt="none", ecolor=INK,
                            elinewidth=1.2, capsize=4, capthick=1.0, zorder=3)
            ax.plot(fpos, fy, "D", color=INK, markersize=6, zorder=4, linestyle="none")
            ax.set_xticks(np.arange(len(levels)), levels)
            ax.set_xlim(-0.6, len(levels) - 0.4)
        else:
            if flb is not None:
                ax.fill_between(fx, flb, fub, color=GREY, alpha=0.2, linewidth=0, zorder=1)
                for band in (flb, fub):
                    ax.plot(fx, band, color=GREY, lw=0.7, ls=(0, (4, 3)), zorder=1)
            ax.plot(fx, fy, color=INK, lw=1.3, zorder=3)
        handles = [Line2D([], [], marker="o", linestyle="none", markersize=8,
                          markerfacecolor=(0.0, 0.447, 0.698, 0.45), markeredgecolor=BLUE)]
        if categorical:
            handles.append(Line2D([], [], marker="D", color=INK, markersize=5, lw=1.2))
        else:
            line = Line2D([], [], color=INK, lw=1.3)
            handles.append((Patch(facecolor=GREY, alpha=0.2, lw=0), line)
                           if flb is not None else line)
        texts = ["Study (area ∝ weight)",
                 ("Fitted value" if categorical else "Fitted line")
                 + (" (95% CI)" if flb is not None else "")]
        fig.legend(handles=handles, labels=texts, loc="outside upper left", ncols=2,
                   handlelength=1.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left", fontweight="bold", parse_math=False)
        label_points(ax, px, y, names)
        return save(fig, stem)
