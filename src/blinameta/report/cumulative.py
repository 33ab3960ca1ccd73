"""Cumulative meta-analysis by publication year (Lau et al. N Engl J Med 1992;327:248-54).

For each publication year, the analysis' frequentist random-effects model refitted on the studies
published up to that year; a table on each analysis page shows how the estimate settled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blinameta.analysis.run import AnalysisResult, back_transform

__all__ = ["cumulative"]


def cumulative(result: AnalysisResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per publication year: studies up to that year, the pooled estimate and its CI."""
    if result.k == 0 or result.main is None:
        return []
    from blinameta.frequentist.rma import rma

    s = result.spec.frequentist
    years = np.array([r["year"] for r in rows])
    ni = np.array([float(r.get("total") or 0) + float(r.get("control_total") or 0) for r in rows])
    out = []
    for year in sorted(set(years.tolist())):
        mask = years <= year
        k = int(mask.sum())
        added = [r["label"] for r, m, y in zip(rows, mask, years) if m and y == year]
        entry: dict[str, Any] = {"year": int(year), "k": k, "added": added, "patients": int(ni[mask].sum())}
        if k >= 2:
            try:
                fit = rma(result.yi[mask], result.vi[mask], method=s.method, test=s.test, level=s.level)
            except Exception:  # noqa: BLE001 - a failed step is shown as not estimable
                fit = None
            if fit is not None:
                est, lb, ub = back_transform(result, [fit.beta[0], fit.ci_lb[0], fit.ci_ub[0]], ni[mask])
                entry.update(estimate=float(est), ci_lb=float(lb), ci_ub=float(ub), i2=float(fit.i2))
        else:
            r = rows[int(np.flatnonzero(mask)[0])]
            entry.update(estimate=r["estimate"], ci_lb=r["ci_lb"], ci_ub=r["ci_ub"], i2=None)
        out.append(entry)
    return out
