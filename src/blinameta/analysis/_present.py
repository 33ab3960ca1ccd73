"""Printing, tables and figures for one analysis of a review (``bm.run_analysis(...)``).

The report renders the same objects as HTML; here a notebook user gets ``print(result)``,
``result.summary()``, ``result.to_frame()`` (the studies), ``result.sensitivity_frame()`` and
``result.forest()``. Nothing here refits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from blinameta.frequentist._present import Summary

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["AnalysisPresentation", "format_analysis"]


def _value(x: float | None, scale: str) -> str:
    if x is None or not np.isfinite(x):
        return "NA"
    return f"{100 * x:.1f}%" if scale == "proportion" else f"{x:.2f}"


def format_analysis(res) -> str:
    """Title, the studies, the primary (headline) estimate, its GRADE certainty and the
    sensitivity strip, as plain text."""
    scale = "proportion" if res.spec.kind == "proportion" else "ratio"
    lines = [res.spec.title, "=" * len(res.spec.title), "",
             f"{res.k} studies, {res.patients} patients"]
    p = res.primary
    if p is not None:
        head = f"Primary analysis: {p.label}"
        lines += ["", head,
                  f"  estimate {_value(p.estimate, scale)} "
                  f"[{p.interval or '95% CrI'} {_value(p.ci_lb, scale)} to {_value(p.ci_ub, scale)}]"]
        if p.pi_lb is not None and p.pi_ub is not None:
            lines.append(f"  {p.prediction or 'prediction'}: {_value(p.pi_lb, scale)} to {_value(p.pi_ub, scale)}")
        if p.note:
            lines.append(f"  note: {p.note}")
    c = res.certainty
    if c is not None:
        lines += ["", f"Certainty of the evidence (GRADE): {c.level.replace('_', ' ')} {c.symbols}"]
        for d in c.downgrades:
            if d.levels > 0:
                lines.append(f"  - {d.domain.replace('_', ' ')} (-{d.levels}): {d.reason}")
        if c.plain_language:
            lines.append(f"  {c.plain_language}")
    frame = res.sensitivity_frame()
    if not frame.empty:
        lines += ["", "Sensitivity analyses:"]
        for _, row in frame.iterrows():
            if not row["available"]:
                lines.append(f"  {row['label']}: not available ({row['note']})")
                continue
            flag = "  <- changes the conclusion" if row.get("changes_conclusion") else ""
            lines.append(f"  {row['label']} (k = {row['k']}): {_value(row['estimate'], scale)} "
                         f"[{_value(row['ci_lb'], scale)} to {_value(row['ci_ub'], scale)}]{flag}")
    return "\n".join(lines)


class AnalysisPresentation:
    """``summary()``, ``to_frame()``, ``sensitivity_frame()`` and ``forest()`` of an analysis."""

    def to_frame(self) -> pd.DataFrame:
        """One row per study: label, counts (or ratio inputs), estimate and CI on the reported
        scale, and the random-effects weight in percent (inverse-variance model)."""
        import pandas as pd

        rows = self.selection.rows
        keep = [c for c in ("study_id", "label", "events", "total", "ai", "n1i", "ci", "n2i", "hr") if c in rows]
        frame = rows[keep].copy()
        if self.spec.kind == "proportion":  # the observed proportion, with its exact interval
            frame["estimate"] = rows["events"].to_numpy(float) / rows["total"].to_numpy(float)
            if self.study_ci is not None:
                frame["ci_lb"], frame["ci_ub"] = self.study_ci
        else:  # ratios: the study's Wald interval on the log scale, exponentiated
            frame["estimate"] = np.exp(self.yi)
            if self.study_ci is not None:
                frame["ci_lb"], frame["ci_ub"] = np.exp(self.study_ci[0]), np.exp(self.study_ci[1])
        if self.main is not None and getattr(self.main, "p", 1) == 1:
            frame["weight"] = np.asarray(self.main.weights, float)
        return pd.DataFrame(frame).reset_index(drop=True)

    def sensitivity_frame(self) -> pd.DataFrame:
        """The sensitivity strip: one row per alternative analysis (reported scale)."""
        import pandas as pd

        rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r.__dict__) for r in self.sensitivity]
        if not rows:
            return pd.DataFrame(columns=["id", "label", "k", "estimate", "ci_lb", "ci_ub", "available", "note"])
        return pd.DataFrame(rows)

    def summary(self) -> Summary:
        return Summary(text=format_analysis(self), table=self.to_frame())

    def __str__(self) -> str:
        return format_analysis(self)

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def forest(self, *, title: str | None = None) -> Figure:
        """Forest plot of the studies with the inverse-variance random-effects diamond on the
        reported scale (the report's figure adds the Bayesian headline and the subgroups)."""
        if self.main is None:
            raise ValueError("forest(): the analysis has no pooled model (fewer than two studies)")
        scale = "proportion" if self.spec.kind == "proportion" else "log"
        labels = list(self.selection.rows["label"])
        return self.main.forest(labels, transf=self.to_display, xlabel=self.spec.title, scale=scale,
                                title=title)
