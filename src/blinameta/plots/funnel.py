"""Funnel plot (metafor ``funnel.rma`` layout): effect sizes against their standard errors.

The standard error runs down an inverted y-axis from 0; the white region is the pseudo
confidence funnel ``estimate ± z · sei`` around the pooled estimate (Sterne & Egger 2001).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blinameta.plots._common import (
    GREY,
    INK,
    SMALL_SIZE,
    as_float,
    as_float_array,
    as_labels,
    house_style,
    label_points,
    new_figure,
    same_length,
    save,
)

__all__ = ["funnel_plot"]

_Z975 = 1.959963984540054  # standard normal 97.5% quantile


def funnel_plot(
    stem: str | os.PathLike[str],
    yi: Sequence[float] | np.ndarray,
    sei: Sequence[float] | np.ndarray,
    *,
    estimate: float,
    egger_text: str | None = None,
    xlabel: str = "Logit proportion",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Draw a funnel plot and write ``stem.png`` and ``stem.svg``.

    Parameters
    ----------
    yi, sei : observed effect sizes and their standard errors (model scale, e.g. logits).
    estimate : the pooled estimate on the same scale (the funnel's axis).
    egger_text : e.g. ``"Egger's test: z = 1.23, p = 0.22"``, printed under the plot.
    labels : optional study labels written next to the points.

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    same_length(yi=yi, sei=sei)
    y = as_float_array("yi", yi)
    s = as_float_array("sei", sei)
    if len(y) == 0:
        raise ValueError("yi: no studies to plot")
    if (s <= 0).any():
        raise ValueError("sei: standard errors must be > 0")
    est = as_float("estimate", estimate)
    names = as_labels("labels", labels, len(y))

    s_max = float(s.max()) * 1.08
    half = _Z975 * s_max
    x_lo = min(est - half, float(y.min())) - 0.05 * half
    x_hi = max(est + half, float(y.max())) + 0.05 * half

    with house_style():
        fig = new_figure(5.6, 4.6 if egger_text else 4.3, constrained=True)
        ax = fig.add_subplot()
        ax.set_facecolor("#ebebeb")
        ax.fill([est - half, est, est + half], [s_max, 0.0, s_max], facecolor="white",
                edgecolor="none", zorder=0)
        for sign in (-1, 1):
            ax.plot([est, est + sign * half], [0.0, s_max], color=GREY, lw=0.8, ls=(0, (4, 3)),
                    zorder=1)
        ax.axvline(est, color=INK, lw=0.9, zorder=1)
        ax.scatter(y, s, s=28, color=INK, edgecolor="white", linewidth=0.6, zorder=3)
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(s_max, 0.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Standard error")
        if title:
            ax.set_title(title, loc="left", fontweight="bold", parse_math=False)
        if egger_text:
            fig.text(0.02, 0.01, egger_text, ha="left", va="bottom", fontsize=SMALL_SIZE,
                     color=GREY, parse_math=False)
            fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
        label_points(ax, y, s, names)
        return save(fig, stem)
