"""Subgroup analysis: per-subgroup pooled estimates and the test for subgroup differences.

Two ways, as in the literature and software:

- ``tau2="separate"`` (RevMan; R meta's ``subgroup`` with separate tau²): each subgroup is
  pooled on its own with :func:`blinameta.frequentist.rma.rma` (its own tau²); the subgroup estimates
  :math:`\\hat\\mu_g` with variances :math:`SE_g^2` are then compared by the fixed-effect
  heterogeneity statistic :math:`Q_b = \\sum_g (\\hat\\mu_g - \\bar\\mu)^2/SE_g^2` on G - 1 df
  (``rma(mu_g, se_g^2, method="EE")``'s Q_E).
- ``tau2="common"``: one mixed-effects meta-regression with the subgroup factor
  (treatment coding, first group the reference); the test is its omnibus Q_M (chi² on G - 1 df,
  or F on (G - 1, k - G) df under knha), and the subgroup estimates are its predictions per
  level (all sharing one residual tau²).

Reference: Borenstein, M. & Higgins, J. P. T. (2013). Meta-analysis and subgroups.
*Prev Sci* 14, 134-143.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from blinameta.frequentist.predict import predict
from blinameta.frequentist.rma import T_TESTS, RmaResult, rma

__all__ = ["SubgroupResult", "subgroup"]


@dataclass(frozen=True)
class SubgroupResult:
    """Per-subgroup estimates (arrays in ``groups`` order) and the between-subgroup test.

    ``qb`` is a chi² statistic on ``qb_df[0]`` df, or under ``test="knha"`` with common tau²
    an F statistic on ``qb_df`` df (``stat`` says which).
    """

    groups: tuple[str, ...]
    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    tau2: np.ndarray
    qb: float
    qb_df: tuple[int, float]
    qb_p: float
    stat: str
    tau2_mode: str
    method: str
    test: str
    fits: tuple[RmaResult, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for key in ("groups", "k", "estimate", "se", "ci_lb", "ci_ub", "tau2", "qb", "qb_df",
                    "qb_p", "stat", "tau2_mode", "method", "test"):
            value = getattr(self, key)
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


def subgroup(
    yi: Any,
    vi: Any,
    groups: Any,
    *,
    tau2: Literal["separate", "common"] = "separate",
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    control: dict[str, Any] | None = None,
) -> SubgroupResult:
    """Subgroup analysis with separate or common tau² (see the module docstring).

    Parameters
    ----------
    yi, vi : array_like (k,)
    groups : array_like (k,)
        Subgroup labels; groups are ordered as a pandas Categorical's categories, else sorted.
    tau2 : {"separate", "common"}
    method, test, level, control :
        Passed to :func:`blinameta.frequentist.rma.rma` for the subgroup fits (the comparison of the
        subgroup estimates under "separate" is always a fixed-effect Q test).
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    g = pd.Series(groups)
    if isinstance(g.dtype, pd.CategoricalDtype):
        labels = g.astype(str).to_numpy()
        levels = tuple(str(c) for c in g.cat.categories if (labels == str(c)).any())
    else:
        labels = g.astype(str).to_numpy()
        levels = tuple(sorted(set(labels)))
    if labels.size != y.size:
        raise ValueError("groups and yi differ in length")
    if len(levels) < 2:
        raise ValueError("a subgroup analysis needs at least two subgroups")
    counts = np.array([(labels == lev).sum() for lev in levels])
    if tau2 == "separate":
        fits = tuple(
            rma(y[labels == lev], v[labels == lev], method=method, test=test, level=level,
                control=control)
            for lev in levels
        )
        est = np.array([f.beta[0] for f in fits])
        se = np.array([f.se[0] for f in fits])
        between = rma(est, se**2, method="EE")
        return SubgroupResult(
            groups=levels, k=counts, estimate=est, se=se,
            ci_lb=np.array([f.ci_lb[0] for f in fits]),
            ci_ub=np.array([f.ci_ub[0] for f in fits]),
            tau2=np.array([f.tau2 for f in fits]),
            qb=between.qe, qb_df=(len(levels) - 1, math.nan), qb_p=between.qe_p, stat="chisq",
            tau2_mode="separate", method=fits[0].method, test=test, fits=fits,
        )
    if tau2 != "common":
        raise ValueError("tau2 must be 'separate' or 'common'")
    frame = pd.DataFrame({"group": pd.Categorical(labels, categories=list(levels))})
    fit = rma(y, v, mods=frame, method=method, test=test, level=level, control=control)
    pr = predict(fit, newmods=pd.DataFrame({"group": list(levels)}))
    return SubgroupResult(
        groups=levels, k=counts, estimate=pr.pred, se=pr.se, ci_lb=pr.ci_lb, ci_ub=pr.ci_ub,
        tau2=np.full(len(levels), fit.tau2), qb=fit.qm, qb_df=fit.qm_df, qb_p=fit.qm_p,
        stat="F" if fit.test in T_TESTS else "chisq", tau2_mode="common", method=fit.method,
        test=fit.test, fits=(fit,),
    )
