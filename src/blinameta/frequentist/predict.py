"""Predicted (pooled) values with confidence and prediction intervals, as metafor's
``predict.rma``.

For a row :math:`x_0` of the design matrix: :math:`\\hat\\mu = x_0^\\top b`,
:math:`SE = \\sqrt{x_0^\\top V_b x_0}`, CI :math:`\\hat\\mu \\pm c\\,SE` and prediction interval
:math:`\\hat\\mu \\pm c\\sqrt{SE^2 + \\hat\\tau^2}`, where :math:`c` is the normal quantile
(``test="z"``) or the t quantile on k - p df (``test="knha"``; :math:`V_b` then includes the
Knapp-Hartung factor). For EE models the prediction interval is NaN (metafor reports none).
Riley, Higgins & Deeks (2011), *BMJ* 342:d549, discuss the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from blinameta.frequentist.rma import RmaResult, _norm_isf, _t_isf

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """Predictions (arrays, one value per row of ``X``; ``se`` is NaN after ``transf``)."""

    pred: np.ndarray
    se: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    X: np.ndarray
    level: float
    transformed: bool

    def to_dict(self) -> dict[str, Any]:
        items = asdict(self).items()
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in items}


def predict(
    res: RmaResult,
    newmods: Any = None,
    level: float | None = None,
    transf: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    intercept: bool = True,
) -> Prediction:
    """Predicted values for a fitted model.

    Parameters
    ----------
    res : RmaResult
    newmods : array_like or DataFrame, optional
        New moderator values (without the intercept): an array laid out like the moderator
        columns of the model (with one moderator, a vector gives one prediction per value),
        or a DataFrame with the original moderator columns (categorical ones as labels).
        Without it: the pooled estimate for an intercept-only model, else the fitted values.
    level : float, optional
        Percent; default the fit's level.
    transf : callable, optional
        Applied to pred and all bounds (e.g. :func:`blinameta.frequentist.escalc.transf_proportion`
        wrapped in a lambda); ``se`` is then NaN, as in metafor.
    intercept : bool
        Include the intercept in the new rows (metafor's ``intercept`` argument).
    """
    level = res.level if level is None else float(level)
    alpha = 1 - level / 100
    if newmods is None:
        X_new = np.ones((1, 1)) if res.int_only else res.X
    else:
        if res.int_only:
            raise ValueError("cannot give new moderator values for a model without moderators")
        rows = res.model_matrix.new_rows(newmods)
        if res.int_incl:
            rows = np.column_stack([np.full(rows.shape[0], 1.0 if intercept else 0.0), rows])
        X_new = rows
    if X_new.shape[1] != res.p:
        raise ValueError(f"newmods give {X_new.shape[1]} columns; the model has {res.p}")
    pred = X_new @ res.beta
    vpred = np.einsum("ij,jk,ik->i", X_new, res.vb, X_new)
    vpred = np.where(vpred < 0, np.nan, vpred)
    se = np.sqrt(vpred)
    if res.test == "knha":
        crit = _t_isf(alpha / 2, res.k - res.p) if res.k > res.p else np.nan
    else:
        crit = _norm_isf(alpha / 2)
    ci_lb, ci_ub = pred - crit * se, pred + crit * se
    if res.method == "EE":  # metafor reports no prediction interval for EE models
        pi_lb = pi_ub = np.full_like(pred, np.nan)
    else:
        half = crit * np.sqrt(vpred + res.tau2)
        pi_lb, pi_ub = pred - half, pred + half
    if transf is not None:
        pred, ci_lb, ci_ub, pi_lb, pi_ub = (
            np.asarray(transf(a), dtype=float) for a in (pred, ci_lb, ci_ub, pi_lb, pi_ub)
        )
        se = np.full_like(pred, np.nan)
        # metafor sorts the bounds after a decreasing transformation
        ci_lb, ci_ub = np.minimum(ci_lb, ci_ub), np.maximum(ci_lb, ci_ub)
        pi_lb, pi_ub = np.minimum(pi_lb, pi_ub), np.maximum(pi_lb, pi_ub)
    return Prediction(
        pred=pred,
        se=se,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        pi_lb=pi_lb,
        pi_ub=pi_ub,
        X=X_new,
        level=level,
        transformed=transf is not None,
    )
