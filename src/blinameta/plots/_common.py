"""Shared plumbing for the plots: house style, input checks, text measuring and atomic saving.

Every plot is built on a :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot, no
global figure registry, nothing to close). The few settings matplotlib only reads from the global
``rcParams`` at draw time (``svg.hashsalt``, ``svg.fonttype``, the font family) are applied with
:func:`matplotlib.rc_context` while a module lock is held, so plots built from several threads do
not see each other's settings and the caller's ``rcParams`` are left as they were.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

# Okabe & Ito (2008) colour-blind-safe palette.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
PALETTE = (BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY_BLUE, BLACK)

INK = "#222222"  # text and lines
GREY = "#6b6b6b"  # secondary text, reference lines
LIGHT = "#d9d9d9"  # bands, funnel background

FONT_SIZE = 9.0
SMALL_SIZE = 8.0
DPI = 150
SVG_HASHSALT = "blinameta"

RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": FONT_SIZE,
    "axes.linewidth": 0.6,
    "axes.edgecolor": INK,
    "axes.labelcolor": INK,
    "axes.labelsize": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "xtick.color": INK,
    "ytick.color": INK,
    "xtick.labelsize": SMALL_SIZE,
    "ytick.labelsize": SMALL_SIZE,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "lines.linewidth": 1.0,
    "legend.frameon": False,
    "legend.fontsize": SMALL_SIZE,
    "svg.fonttype": "none",  # text stays text: searchable, selectable, small files
    "svg.hashsalt": SVG_HASHSALT,  # deterministic clip-path and marker ids
    "path.simplify": True,
    "axes.unicode_minus": True,
    # text from evidence files is shown as written: "$5 and $10" or "$\\nosuchcommand$" in an
    # author name is never parsed as mathtext (which would mangle it or raise)
    "text.parse_math": False,
    "text.usetex": False,
    "axes.formatter.use_mathtext": False,
}

_LOCK = threading.RLock()


@contextmanager
def house_style() -> Iterator[None]:
    """Hold the plot lock and apply the house ``rcParams`` for one figure's whole life."""
    with _LOCK, matplotlib.rc_context(RC):
        yield


def new_figure(width: float, height: float, *, constrained: bool = False) -> Figure:
    """A detached figure with an Agg canvas attached (no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def canvas(width: float, height: float, title: str | None = None):
    """A figure with one axes in inches, y downwards, no frame (diagrams); the title at the top left."""
    fig = new_figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    if title:
        ax.text(0.1, 0.22, title, fontsize=FONT_SIZE + 1, fontweight="bold", color=INK, va="center", parse_math=False)
    return fig, ax


# --------------------------------------------------------------------------- validation


def as_float_array(name: str, values: Any, *, allow_nan: bool = False) -> np.ndarray:
    """A 1-d float array; non-finite values raise unless ``allow_nan`` (NaN only, never inf)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: values must be numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if allow_nan:
        bad &= ~np.isnan(arr)
    if bad.any():
        where = ", ".join(str(i) for i in np.flatnonzero(bad)[:10])
        kind = "infinite" if allow_nan else "non-finite"
        raise ValueError(f"{name}: {kind} value(s) at position(s) {where}")
    return arr


def as_float(name: str, value: Any) -> float:
    """One finite float."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return out


def optional_float(name: str, value: Any) -> float | None:
    """``None`` (or NaN, the pandas spelling of missing) stays ``None``; else a finite float."""
    if value is None:
        return None
    try:
        if math.isnan(float(value)):
            return None
    except (TypeError, ValueError):
        pass
    return as_float(name, value)


def same_length(**arrays: Sequence[Any] | np.ndarray) -> int:
    """The common length of the arrays, or a ``ValueError`` naming each length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have the same length, got {detail}")
    return next(iter(lengths.values()), 0)


def check_interval(name: str, est: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> None:
    """``lb <= est <= ub`` element-wise (with a rounding tolerance)."""
    tol = 1e-9 * np.maximum(1.0, np.abs(est))
    bad = (lb > est + tol) | (ub < est - tol)
    if bad.any():
        where = ", ".join(str(i) for i in np.flatnonzero(bad)[:10])
        raise ValueError(f"{name}: lower <= estimate <= upper fails at position(s) {where}")


def as_labels(name: str, labels: Any, n: int) -> list[str]:
    """``n`` strings (``None`` gives empty labels)."""
    if labels is None:
        return [""] * n
    out = [str(x) for x in labels]
    if len(out) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(out)}")
    return out


# --------------------------------------------------------------------------- text


def fmt(x: float | None, digits: int = 2) -> str:
    """A number for display; the minus sign is the typographic one (U+2212)."""
    if x is None or not math.isfinite(x):
        return "—"
    s = f"{x:.{digits}f}"
    if s.startswith("-"):
        s = "−" + s[1:]
    return s


def fmt_ci(est: float, lb: float, ub: float, digits: int = 2) -> str:
    """``0.60 [0.51, 0.69]``."""
    return f"{fmt(est, digits)} [{fmt(lb, digits)}, {fmt(ub, digits)}]"


class TextMeasurer:
    """Width of strings in inches, using the Agg renderer's real font metrics."""

    def __init__(self) -> None:
        self._fig = Figure(figsize=(1, 1), dpi=72)
        self._renderer = FigureCanvasAgg(self._fig).get_renderer()

    def width(self, text: str, size: float = FONT_SIZE, weight: str = "normal",
              style: str = "normal") -> float:
        """Width of the widest line of ``text`` in inches."""
        if not text:
            return 0.0
        prop = FontProperties(family=RC["font.sans-serif"], size=size, weight=weight, style=style)
        widest = 0.0
        for line in text.split("\n"):
            w, _, _ = self._renderer.get_text_width_height_descent(line, prop, ismath=False)
            widest = max(widest, w)
        return widest / 72.0


# --------------------------------------------------------------------------- saving


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a fresh file in the same folder, then ``os.replace`` it over ``path``.

    The temporary file is created with mode 0o666 so that the umask applies as for ``open``.
    """
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _add_svg_titles(svg: str, titles: Mapping[str, str]) -> str:
    """Insert ``<title>`` as the first child of each ``<g id="gid">`` (a hover tooltip)."""
    for gid, title in titles.items():
        if not title:
            continue
        pattern = re.compile(r'(<g id="' + re.escape(gid) + r'"[^>]*>)')
        svg, n = pattern.subn(lambda m, t=title: m.group(1) + "\n  <title>" + escape(t) + "</title>",
                              svg, count=1)
        if n == 0:  # pragma: no cover - would mean matplotlib changed how it writes gids
            raise RuntimeError(f"internal error: SVG group {gid!r} not found for its tooltip")
    return svg


def stem_path(stem: str | os.PathLike[str]) -> Path:
    """The path stem as given: ``out/forest`` gives ``out/forest.png`` and ``out/forest.svg``."""
    p = Path(stem)
    if p.suffix.lower() in (".png", ".svg"):
        p = p.with_suffix("")
    if not p.name:
        raise ValueError(f"stem: {stem!r} has no file name")
    return p


#: The files :func:`save` writes for a stem (see :func:`file_formats`).
_FORMATS: ContextVar[tuple[str, ...]] = ContextVar("blinameta_plot_formats", default=("png", "svg"))


@contextmanager
def file_formats(*formats: str) -> Iterator[None]:
    """Within the block, plot functions given a ``stem`` write only these formats (``"png"``,
    ``"svg"``); the default is both. The report draws SVG only: vector figures stay sharp on a
    phone and on paper, and the Agg rendering and PNG encoding were half of its drawing time."""
    unknown = set(formats) - {"png", "svg"}
    if not formats or unknown:
        raise ValueError(f"file_formats: expected 'png' and/or 'svg', got {formats!r}")
    token = _FORMATS.set(tuple(formats))
    try:
        yield
    finally:
        _FORMATS.reset(token)


def save(fig: Figure, stem: str | os.PathLike[str] | None,
         tooltips: Mapping[str, str] | None = None) -> list[Path] | Figure:
    """Write ``stem.png`` (dpi 150) and ``stem.svg`` atomically (only those :func:`file_formats`
    selects, when called inside it); return the paths written.

    The SVG carries no date and uses a fixed hash salt, so a rerun gives identical bytes.
    ``tooltips`` maps artist gids to text added as SVG ``<title>`` elements.
    With ``stem=None`` nothing is written and the Figure itself is returned (the Python API's
    ``res.forest()``; every plot function passes its ``stem`` through to here).
    """
    if stem is None:
        return fig
    formats = _FORMATS.get()
    base = stem_path(stem)
    base.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "png" in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
        written.append(base.parent / (base.name + ".png"))
        _atomic_write(written[-1], buf.getvalue())
    if "svg" in formats:
        sbuf = io.BytesIO()
        fig.savefig(sbuf, format="svg", metadata={"Date": None, "Creator": None}, facecolor="white")
        svg = sbuf.getvalue().decode("utf-8")
        if tooltips:
            svg = _add_svg_titles(svg, tooltips)
        written.append(base.parent / (base.name + ".svg"))
        _atomic_write(written[-1], svg.encode("utf-8"))
    return written


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write one figure to ``path`` (``.svg`` or ``.png``, by its suffix) atomically and
    reproducibly (no date in the SVG, fixed hash salt as :func:`save`); return the path."""
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise ValueError(f"{path}: the file name must end in .svg or .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    else:
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, facecolor="white")
    _atomic_write(out, buf.getvalue())
    return out


# --------------------------------------------------------------------------- point labels


def label_points(ax: Any, xs: np.ndarray, ys: np.ndarray, names: Sequence[str], *,
                 size: float = SMALL_SIZE - 1, color: str = GREY) -> None:
    """Write ``names`` next to the points, moving labels up or down so that they do not overlap.

    A greedy one-dimensional placement: labels go to the right of their point, tried at
    offsets 0, -1, +1, -2, +2, ... line heights; a label moved away from its point gets a thin
    leader line. The layout is frozen first so that display positions are final.
    """
    fig = ax.figure
    fig.draw_without_rendering()
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")  # keep the positions the labels were placed for
    measure = TextMeasurer()
    to_pt = 72.0 / fig.dpi
    line = size * 1.25
    pts = ax.transData.transform(np.column_stack([xs, ys])) * to_pt
    right_edge = ax.get_window_extent().x1 * to_pt
    r = 3.5  # points kept clear around every marker
    placed: list[tuple[float, float, float, float]] = [
        (px - r, px + r, py - r, py + r) for px, py in pts]
    order = sorted((i for i, n in enumerate(names) if n), key=lambda i: (-pts[i, 1], pts[i, 0]))
    for i in order:
        px, py = pts[i]
        w = measure.width(names[i], size=size) * 72.0
        left = px + 5 + w > right_edge  # no room on the right: write it on the left
        x0, x1 = (px - 5 - w, px - 5) if left else (px + 5, px + 5 + w)
        others = [b for j, b in enumerate(placed) if j != i]
        dy = 0.0
        for k in range(0, 12):
            dy = (-1) ** k * ((k + 1) // 2) * line
            y0, y1 = py + 1 + dy, py + 1 + dy + line * 0.8
            if not any(x0 < b[1] and b[0] < x1 and y0 < b[3] and b[2] < y1 for b in others):
                break
        placed.append((x0, x1, y0, y1))
        ann = ax.annotate(
            names[i], (xs[i], ys[i]), xytext=(-5 if left else 5, 1 + dy),
            textcoords="offset points", ha="right" if left else "left", va="bottom",
            fontsize=size, color=color, parse_math=False, annotation_clip=False,
            arrowprops=dict(arrowstyle="-", color="#a8a8a8", lw=0.6, shrinkA=0, shrinkB=3)
            if abs(dy) > 0 else None)
        ann.set_in_layout(False)
