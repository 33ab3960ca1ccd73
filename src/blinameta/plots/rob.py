"""Risk-of-bias figures as robvis draws them (McGuinness LA, Higgins JPT. Risk-of-bias
VISualization (robvis). Res Syn Meth 2021;12:55-61): a traffic-light plot (one row per study,
one column per domain and the overall judgement, a coloured circle with a symbol in each cell)
and a weighted-free summary bar chart (per domain, the share of studies at each judgement).

Colours and symbols are robvis' "cochrane" palette: low (green, +), some concerns (yellow, −),
high (red, ×), no information (blue, ?), not applicable (grey, blank). The symbol carries the
judgement for readers who cannot tell the colours apart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.patches import Circle, Rectangle

from blinameta.plots._common import FONT_SIZE, INK, SMALL_SIZE, TextMeasurer, canvas, house_style, save

__all__ = ["rob_traffic_light", "rob_summary", "JUDGEMENTS"]

#: category -> (label, fill colour, symbol)
JUDGEMENTS = {
    "low": ("Low risk", "#02C100", "+"),
    "some_concerns": ("Some concerns", "#E2DF07", "−"),
    "high": ("High risk", "#BF0000", "×"),
    "no_information": ("No information or unclear", "#4EA1F7", "?"),
    "not_applicable": ("Not applicable", "#cccccc", ""),
}


def _check(studies: Sequence[str], domains: Sequence[str], judgements: Sequence[Sequence[str]]) -> None:
    if len(judgements) != len(studies):
        raise ValueError(f"judgements: expected {len(studies)} rows (one per study), got {len(judgements)}")
    for i, row in enumerate(judgements):
        if len(row) != len(domains):
            raise ValueError(f"judgements[{i}]: expected {len(domains)} values (one per domain), got {len(row)}")
        bad = [j for j in row if j not in JUDGEMENTS]
        if bad:
            raise ValueError(f"judgements[{i}]: unknown judgement(s) {', '.join(map(repr, bad))}; "
                             f"known: {', '.join(JUDGEMENTS)}")


def rob_traffic_light(stem: str | os.PathLike[str], studies: Sequence[str], domains: Sequence[str],
                      judgements: Sequence[Sequence[str]], *, domain_names: Sequence[str] | None = None,
                      title: str | None = None) -> list[Path]:
    """Traffic-light plot; ``domains`` are short column heads (D1, ..., Overall), ``domain_names``
    their full wording for the key under the plot. Returns the PNG and SVG paths."""
    _check(studies, domains, judgements)
    with house_style():
        m = TextMeasurer()
        cell = max(0.34, max(m.width(d, size=SMALL_SIZE, weight="bold") for d in domains) + 0.08)
        w_label = max([m.width(s) for s in studies] + [m.width("Study", weight="bold")]) + 0.25
        names = list(domain_names or [])
        key_lines = [f"{d}: {n}" for d, n in zip(domains, names)] if names else []
        legend_h = 0.28 * (len(key_lines) + 2)
        w = w_label + cell * len(domains) + 0.3
        w = max(w, 0.2 + max([m.width(k, size=SMALL_SIZE) for k in key_lines] + [0]) + 0.2, 3.6)
        top = 0.45 + (0.3 if title else 0)
        h = top + cell * len(studies) + 0.2 + legend_h
        fig, ax = canvas(w, h, title)
        y0 = top
        ax.text(0.1, y0 - 0.18, "Study", fontweight="bold", color=INK, va="center", parse_math=False)
        for j, d in enumerate(domains):
            ax.text(w_label + cell * (j + 0.5), y0 - 0.18, d, fontweight="bold", color=INK, ha="center", va="center",
                    fontsize=SMALL_SIZE, parse_math=False)
        for i, s in enumerate(studies):
            yc = y0 + cell * (i + 0.5)
            ax.text(0.1, yc, s, color=INK, va="center", parse_math=False)
            for j, jd in enumerate(judgements[i]):
                _, colour, sym = JUDGEMENTS[jd]
                xc = w_label + cell * (j + 0.5)
                ax.add_patch(Rectangle((xc - cell / 2, yc - cell / 2), cell, cell, facecolor="none", edgecolor="#bbbbbb", lw=0.5))
                circ = Circle((xc, yc), cell * 0.38, facecolor=colour, edgecolor=INK, lw=0.4)
                circ.set_gid(f"blinameta-rob-{i}-{j}-{jd}")
                ax.add_patch(circ)
                if sym:
                    ax.text(xc, yc, sym, ha="center", va="center_baseline", fontsize=FONT_SIZE, fontweight="bold",
                            color="black", parse_math=False)
        yk = y0 + cell * len(studies) + 0.35
        for line in key_lines:
            ax.text(0.1, yk, line, fontsize=SMALL_SIZE, color=INK, va="center", parse_math=False)
            yk += 0.28
        x = 0.1
        used = [k for k in JUDGEMENTS if any(k in row for row in judgements)]
        for k in used:
            label, colour, sym = JUDGEMENTS[k]
            ax.add_patch(Circle((x + 0.08, yk), 0.08, facecolor=colour, edgecolor=INK, lw=0.4))
            ax.text(x + 0.08, yk, sym, ha="center", va="center_baseline", fontsize=SMALL_SIZE - 1, parse_math=False)
            ax.text(x + 0.22, yk, label, fontsize=SMALL_SIZE, va="center", color=INK, parse_math=False)
            x += 0.4 + m.width(label, size=SMALL_SIZE)
        return save(fig, stem)


def rob_summary(stem: str | os.PathLike[str], domains: Sequence[str], judgements: Sequence[Sequence[str]], *,
                title: str | None = None) -> list[Path]:
    """Summary bar chart: per domain (full names, top to bottom), the percentage of studies at each
    judgement, unweighted, as robvis' ``rob_summary(weighted = FALSE)``."""
    if judgements and any(len(r) != len(domains) for r in judgements):
        raise ValueError("judgements: each row needs one value per domain")
    n = len(judgements)
    with house_style():
        m = TextMeasurer()
        w_label = max([m.width(d) for d in domains] + [0.5]) + 0.3
        bar_w = 4.0
        row = 0.32
        h = 0.35 + (0.3 if title else 0) + row * len(domains) + 0.75
        w = w_label + bar_w + 0.3
        fig, ax = canvas(w, h, title)
        top = 0.35 + (0.3 if title else 0)
        order = list(JUDGEMENTS)
        for j, d in enumerate(domains):
            yc = top + row * (j + 0.5)
            ax.text(w_label - 0.1, yc, d, ha="right", va="center", color=INK, parse_math=False)
            x = w_label
            for k in order:
                share = sum(1 for r in judgements if r[j] == k) / n if n else 0.0
                if share <= 0:
                    continue
                rect = Rectangle((x, yc - row * 0.4), bar_w * share, row * 0.8, facecolor=JUDGEMENTS[k][1],
                                 edgecolor=INK, lw=0.4)
                rect.set_gid(f"blinameta-robsum-{j}-{k}")
                ax.add_patch(rect)
                if bar_w * share > 0.35:
                    ax.text(x + bar_w * share / 2, yc, f"{100 * share:.0f}%", ha="center", va="center",
                            fontsize=SMALL_SIZE - 1, color="black", parse_math=False)
                x += bar_w * share
        yb = top + row * len(domains) + 0.15
        for t in (0, 25, 50, 75, 100):
            xt = w_label + bar_w * t / 100
            ax.plot([xt, xt], [yb - 0.05, yb], color=INK, lw=0.5)
            ax.text(xt, yb + 0.12, f"{t}%", ha="center", va="center", fontsize=SMALL_SIZE - 1, color=INK)
        x = 0.1
        yl = yb + 0.42
        for k in order:
            if not any(r[j] == k for r in judgements for j in range(len(domains))):
                continue
            label, colour, _ = JUDGEMENTS[k]
            ax.add_patch(Rectangle((x, yl - 0.07), 0.14, 0.14, facecolor=colour, edgecolor=INK, lw=0.4))
            ax.text(x + 0.2, yl, label, fontsize=SMALL_SIZE, va="center", color=INK, parse_math=False)
            x += 0.45 + m.width(label, size=SMALL_SIZE)
        return save(fig, stem)
