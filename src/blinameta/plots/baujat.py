"""Baujat plot (Baujat et al. 2002; metafor ``baujat``): each study's contribution to the
heterogeneity statistic against its influence on the pooled result.

The coordinates come from :func:`blinameta.frequentist.diagnostics.baujat`; a study whose leave-one-out fit
failed has ``y = NaN`` and is listed under the plot instead of drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blinameta.plots._common import (
    BLUE,
    GREY,
    SMALL_SIZE,
    as_float_array,
    as_labels,
    house_style,
    label_points,
    new_figure,
    same_length,
    save,
)

__all__ = ["baujat_plot"]


def baujat_plot(
    stem: str | os.PathLike[str],
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    *,
    xlabel: str = "Squared Pearson residual (contribution to Q)",
    ylabel: str = "Influence on the pooled result",
    title: str | None = None,
) -> list[Path]:
    """Draw a Baujat plot and write ``stem.png`` and ``stem.svg``.

    Parameters
    ----------
    x : contribution of each study to the heterogeneity statistic (finite, >= 0).
    y : influence of each study on the pooled estimate (>= 0; NaN when not computable).
    labels : study labels written next to the points.

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    n = same_length(x=x, y=y, labels=labels)
    if n == 0:
        raise ValueError("x: no studies to plot")
    xs = as_float_array("x", x)
    ys = as_float_array("y", y, allow_nan=True)
    names = as_labels("labels", labels, n)
    if (xs < 0).any() or (ys[~np.isnan(ys)] < 0).any():
        raise ValueError("x, y: Baujat coordinates must be >= 0")
    shown = ~np.isnan(ys)
    if not shown.any():
        raise ValueError("y: no study has a finite influence value")
    missing = [names[i] for i in np.flatnonzero(~shown)]

    with house_style():
        fig = new_figure(5.6, 4.4, constrained=True)
        ax = fig.add_subplot()
        ax.scatter(xs[shown], ys[shown], s=30, facecolor=BLUE, edgecolor="white", linewidth=0.6,
                   zorder=2)
        ax.set_xlim(left=0, right=float(xs.max()) * 1.25 or 1.0)
        ax.set_ylim(bottom=0, top=float(np.nanmax(ys)) * 1.2 or 1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left", fontweight="bold", parse_math=False)
        if missing:
            fig.text(0.02, 0.01, "Not shown (leave-one-out fit failed): " + ", ".join(missing),
                     ha="left", va="bottom", fontsize=SMALL_SIZE - 0.5, color=GREY,
                     parse_math=False)
            fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
        keep = np.flatnonzero(shown)
        label_points(ax, xs[keep], ys[keep], [names[i] for i in keep], size=SMALL_SIZE - 0.5,
                     color="#444444")
        return save(fig, stem)
