"""Figures for the report: forest, funnel, bubble, posterior, shrinkage, Baujat, risk-of-bias
and flow diagrams.

Each function takes already-computed numbers (plots never refit a model), writes ``stem.png``
(150 dpi) and ``stem.svg`` next to each other atomically (or only the formats chosen with
:func:`file_formats`), and returns the paths; with ``stem=None`` it writes nothing and returns
the matplotlib Figure. The SVG keeps text as text and
is byte-for-byte reproducible.
"""

from __future__ import annotations

from blinameta.plots._common import file_formats
from blinameta.plots.baujat import baujat_plot
from blinameta.plots.bubble import bubble_plot
from blinameta.plots.flow import flow_diagram
from blinameta.plots.forest import BAYES_LABEL, forest_plot
from blinameta.plots.funnel import funnel_plot
from blinameta.plots.posterior import posterior_plot
from blinameta.plots.rob import rob_summary, rob_traffic_light
from blinameta.plots.shrinkage import shrinkage_plot

__all__ = [
    "BAYES_LABEL",
    "baujat_plot",
    "bubble_plot",
    "file_formats",
    "flow_diagram",
    "forest_plot",
    "funnel_plot",
    "posterior_plot",
    "rob_summary",
    "rob_traffic_light",
    "shrinkage_plot",
]
