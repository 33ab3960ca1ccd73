"""A PRISMA 2020-style flow diagram (Page MJ, McKenzie JE, Bossuyt PM, et al. The PRISMA 2020
statement. BMJ 2021;372:n71), drawn from counts given by the caller: main boxes down the left
(identified, screened, included), exclusion boxes to the right with their reasons."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from blinameta.plots._common import FONT_SIZE, GREY, INK, SMALL_SIZE, canvas, house_style, save

__all__ = ["flow_diagram"]

_LINE = 0.19  # inches per text line


def _box(ax, x: float, y: float, w: float, lines: list[str], *, bold_first: bool = True, fill: str = "white",
         gid: str | None = None) -> float:
    h = _LINE * len(lines) + 0.2
    patch = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.05", facecolor=fill,
                           edgecolor=INK, lw=0.8)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    for i, line in enumerate(lines):
        ax.text(x + 0.1, y + 0.1 + _LINE * (i + 0.5), line, va="center", ha="left", color=INK,
                fontsize=FONT_SIZE if i == 0 else SMALL_SIZE, fontweight="bold" if (i == 0 and bold_first) else "normal",
                parse_math=False)
    return h


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def flow_diagram(stem: str | os.PathLike[str], stages: Sequence[dict], *, title: str | None = None) -> list[Path]:
    """Draw the diagram. ``stages``: ``[{"phase": "Identification", "main": [lines], "side": [lines] or None}, ...]``;
    the first line of each box is its heading. Returns the PNG and SVG paths."""
    if not stages:
        raise ValueError("stages: nothing to draw")
    with house_style():
        main_w, side_w, gap, phase_w = 3.6, 3.4, 0.5, 0.35
        wrapped = []
        for st in stages:
            main = [ln for i, x in enumerate(st["main"]) for ln in _wrap(str(x), 44 if i == 0 else 56)]
            side = ([ln for i, x in enumerate(st["side"]) for ln in _wrap(str(x), 40 if i == 0 else 52)]
                    if st.get("side") else None)
            wrapped.append((st.get("phase", ""), main, side))
        heights = [max(_LINE * len(m) + 0.2, (_LINE * len(s) + 0.2) if s else 0) for _, m, s in wrapped]
        top = 0.45 if title else 0.15
        total_h = top + sum(heights) + gap * (len(stages) - 1) + 0.15
        w = phase_w + 0.15 + main_w + gap + side_w + 0.15
        fig, ax = canvas(w, total_h, title)
        x_main = phase_w + 0.15
        x_side = x_main + main_w + gap
        y = top
        prev_bottom = None
        for i, ((phase, main, side), hrow) in enumerate(zip(wrapped, heights)):
            h_main = _box(ax, x_main, y, main_w, main, gid=f"blinameta-flow-main-{i}")
            if phase:
                ax.add_patch(FancyBboxPatch((0.08, y), phase_w - 0.05, hrow, boxstyle="round,pad=0,rounding_size=0.05",
                                            facecolor="#dce9f5", edgecolor="none"))
                ax.text(0.08 + (phase_w - 0.05) / 2, y + hrow / 2, phase, rotation=90, ha="center", va="center",
                        fontsize=SMALL_SIZE, fontweight="bold", color=INK, parse_math=False)
            if side:
                h_side = _box(ax, x_side, y, side_w, side, gid=f"blinameta-flow-side-{i}")
                ya = y + min(h_main, h_side) / 2
                ax.add_patch(FancyArrowPatch((x_main + main_w, ya), (x_side, ya), arrowstyle="-|>", mutation_scale=10,
                                             color=INK, lw=0.8))
            if prev_bottom is not None:
                ax.add_patch(FancyArrowPatch((x_main + main_w / 2, prev_bottom), (x_main + main_w / 2, y),
                                             arrowstyle="-|>", mutation_scale=10, color=INK, lw=0.8))
            prev_bottom = y + h_main
            y += hrow + gap
        ax.text(w - 0.1, total_h - 0.08, "PRISMA 2020-style flow of this evidence base", ha="right", va="bottom",
                fontsize=SMALL_SIZE - 1, color=GREY, parse_math=False)
        return save(fig, stem)
