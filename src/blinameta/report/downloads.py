"""Downloads: per analysis a CSV of its study-level data and results; the summary-of-findings CSV.

Every text cell is neutralised against spreadsheet formula injection (OWASP "CSV injection"):
a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blinameta.io import atomic_write_text
from blinameta.report.labels import clean_quote
from blinameta.report.sof import primary_of, sof_csv, write_csv

__all__ = ["analysis_csv", "write_downloads"]

_STUDY_COLUMNS = ["study_id", "label", "year", "cohort", "events", "total", "control_events", "control_total",
                  "n_experimental", "n_control", "estimate", "ci_lb", "ci_ub", "yi", "vi", "weight_common",
                  "weight_random", "derived", "flagged", "source_type", "denominator", "timepoint", "source",
                  "location", "quote"]


def analysis_csv(summary: dict[str, Any]) -> str:
    """Study rows, then the pooled rows (``row_type`` says which), full precision."""
    header = ["row_type", *_STUDY_COLUMNS]
    out = []
    for r in summary.get("rows", []):
        values = [clean_quote(r.get(c)) if c == "quote" else r.get(c) for c in _STUDY_COLUMNS]
        out.append(["study", *values])
    blank = {c: None for c in _STUDY_COLUMNS}
    pooled = []
    p = primary_of(summary)
    if p:
        pooled.append(("primary: " + str(p.get("label") or p.get("method")), p))
    for key, name in (("random", "random effects (frequentist)"), ("common", "common effect"), ("glmm", "binomial-normal GLMM")):
        if summary.get(key):
            pooled.append((name, summary[key]))
    for name, d in pooled:
        row = dict(blank, label=name, estimate=d.get("estimate"), ci_lb=d.get("ci_lb"), ci_ub=d.get("ci_ub"))
        out.append(["pooled", *[row[c] for c in _STUDY_COLUMNS]])
    return write_csv(header, out)


def write_downloads(out: Path, sof: list[dict[str, Any]]) -> None:
    """The summary-of-findings CSV at the report's root."""
    atomic_write_text(Path(out) / "summary_of_findings.csv", sof_csv(sof))
