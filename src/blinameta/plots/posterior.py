"""Posterior densities (e.g. of the pooled median rate and of the rate in a new study).

The densities arrive already evaluated on a grid (from the fitted model's draws); this module
only draws them, shading each curve between its ``lb`` and ``ub`` when given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.ticker import FuncFormatter

from blinameta.plots._common import (
    GREY,
    PALETTE,
    SMALL_SIZE,
    as_float,
    as_float_array,
    fmt,
    house_style,
    new_figure,
    optional_float,
    save,
)

__all__ = ["posterior_plot"]


def _thresholds(thresholds: Any) -> list[tuple[float, str]]:
    if thresholds is None:
        return []
    if isinstance(thresholds, Mapping):
        return [(as_float(f"thresholds[{k!r}]", v), str(k)) for k, v in thresholds.items()]
    out = []
    for i, t in enumerate(thresholds):
        if isinstance(t, tuple | list):
            out.append((as_float(f"thresholds[{i}]", t[0]), str(t[1])))
        else:
            value = as_float(f"thresholds[{i}]", t)
            out.append((value, f"{value:g}"))  # an unlabelled threshold shows its value
    return out


def posterior_plot(
    stem: str | os.PathLike[str],
    densities: Sequence[Mapping[str, Any]],
    *,
    xlabel: str = "Proportion",
    thresholds: Sequence[float | tuple[float, str]] | Mapping[str, float] | None = None,
    ylabel: str = "Posterior density",
    interval_name: str = "95% CrI",
    digits: int = 2,
    scale: Literal["linear", "log"] = "linear",
    title: str | None = None,
) -> list[Path]:
    """Overlay posterior densities and write ``stem.png`` and ``stem.svg``.

    Parameters
    ----------
    densities : dicts ``{label, x, density, lb=None, ub=None}``; ``x`` increasing, ``density``
        >= 0; with ``lb``/``ub`` the area under the curve between them is shaded and the
        interval is added to the legend.
    thresholds : values (or ``(value, label)`` pairs, or ``{label: value}``) drawn as vertical
        dashed lines, e.g. a clinically relevant response rate; an unlabelled one is labelled
        with its value.
    scale : ``"log"`` for ratios (the x values must then be > 0); densities are drawn as given.

    Returns
    -------
    list of Path : the PNG and the SVG.
    """
    if isinstance(densities, Mapping):
        densities = [densities]
    if len(densities) == 0:
        raise ValueError("densities: nothing to plot")
    curves = []
    for i, d in enumerate(densities):
        missing = [k for k in ("label", "x", "density") if k not in d]
        if missing:
            raise ValueError(f"densities[{i}]: missing key(s) {', '.join(missing)}")
        if len(d["x"]) != len(d["density"]):
            raise ValueError(f"densities[{i}]: x has {len(d['x'])} values, density "
                             f"{len(d['density'])}")
        x = as_float_array(f"densities[{i}]['x']", d["x"])
        dens = as_float_array(f"densities[{i}]['density']", d["density"])
        if len(x) < 2 or np.any(np.diff(x) <= 0):
            raise ValueError(f"densities[{i}]: x must have >= 2 strictly increasing values")
        if (dens < 0).any():
            raise ValueError(f"densities[{i}]: density must be >= 0")
        lb, ub = optional_float(f"densities[{i}]['lb']", d.get("lb")), \
            optional_float(f"densities[{i}]['ub']", d.get("ub"))
        if (lb is None) != (ub is None) or (lb is not None and not lb < ub):
            raise ValueError(f"densities[{i}]: give lb < ub, or neither")
        curves.append((str(d["label"]), x, dens, lb, ub))
    lines = _thresholds(thresholds)
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
    if scale == "log" and (any(c[1][0] <= 0 for c in curves) or any(v <= 0 for v, _ in lines)):
        raise ValueError("x and thresholds must be > 0 on a log scale")

    with house_style():
        fig = new_figure(5.8, 3.8, constrained=True)
        ax = fig.add_subplot()
        if scale == "log":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v)), 6) in (2, 5)
                else ""))
        for k, (label, x, dens, lb, ub) in enumerate(curves):
            color = PALETTE[k % len(PALETTE)]
            text = label
            if lb is not None:
                text += f" ({interval_name} {fmt(lb, digits)}–{fmt(ub, digits)})"
                inside = (x >= lb) & (x <= ub)
                xs = np.concatenate([[lb], x[inside], [ub]])
                ys = np.interp(xs, x, dens)
                ax.fill_between(xs, 0, ys, color=color, alpha=0.18, linewidth=0, zorder=1)
            ax.plot(x, dens, color=color, lw=1.6, label=text, zorder=2)
        ax.set_ylim(bottom=0)
        ax.margins(x=0)
        for value, label in lines:
            ax.axvline(value, color=GREY, lw=0.9, ls=(0, (4, 3)), zorder=0)
            if label:
                ax.annotate(label, xy=(value, 1), xycoords=("data", "axes fraction"),
                            xytext=(-3, -3), textcoords="offset points", ha="right", va="top",
                            rotation=90, fontsize=SMALL_SIZE - 0.5, color=GREY,
                            parse_math=False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        fig.legend(loc="outside upper left", ncols=1, handlelength=1.8)
        if title:
            fig.suptitle(title, x=0.02, ha="left", fontweight="bold", fontsize=10)
        return save(fig, stem)
