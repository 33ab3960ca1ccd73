"""Predicted (pooled) values with confidence and prediction intervals, as metafor's
``predict.rma``.

For a row :math:`x_0` of the design matrix: :math:`\\hat\\mu = x_0^\\top b`,
:math:`SE = \\sqrt{x_0^\\top V_b x_0}`, CI :math:`\\hat\\mu \\pm c\\,SE` and prediction interval
:math:`\\hat\\mu \\pm c\\sqrt{SE^2 + \\hat\\tau^2}`, where :math:`c` is the normal quantile
(``test="z"``) or the t quantile on k - p df (``test="knha"``; :math:`V_b` then includes the
Knapp-Hartung factor). For EE models the prediction interval is NaN (metafor reports none).
Riley, Higgins & Deeks (2011), *BMJ* 342:d549, discuss the interval.

``pi_type`` selects the prediction interval as metafor 3.8's ``predict(pi.type=)``:
``"default"`` (the critical value of the CI, as above), ``"riley"`` (t on k - p - 1 df, i.e.
:math:`t_{k-2}` for an intercept-only random-effects model, as Higgins, Thompson & Spiegelhalter
2009, *J R Stat Soc A* 172:137, and Riley et al. 2011), ``"t"`` (t on k - p df whatever the
test) and ``"simple"`` (:math:`\\hat\\mu \\pm z\\,\\hat\\tau`, ignoring the uncertainty of
:math:`\\hat\\mu`). Degrees of freedom below 1 are set to 1, as metafor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from blinameta.frequentist.rma import T_TESTS, RmaResult, _norm_isf, _t_isf

__all__ = ["PI_TYPES", "Prediction", "pi_critical", "predict"]

#: Prediction-interval variants (metafor 3.8 ``predict.rma(pi.type=)``).
PI_TYPES = ("default", "riley", "t", "simple")


def pi_critical(pi_type: str, default_crit: float, k: int, p: int, level: float) -> tuple[float, bool]:
    """Critical value of the prediction interval and whether it adds ``se^2`` (metafor).

    ``default_crit`` is the critical value of the confidence interval; ``k``, ``p`` the studies
    and coefficients of a random-effects model (one variance component, so metafor's
    ``ddf - parms + p`` is ``k - p - 1`` for ``"riley"``).
    """
    kind = str(pi_type).lower()
    if kind not in PI_TYPES:
        raise ValueError(f"unknown pi_type {pi_type!r}; choose one of {', '.join(PI_TYPES)}")
    alpha = 1 - level / 100
    if kind == "simple":
        return _norm_isf(alpha / 2), False
    if kind in ("riley", "t"):
        df = max(k - p - (1 if kind == "riley" else 0), 1)
        return _t_isf(alpha / 2, df), True
    return default_crit, True


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
    pi_type: str = "default",
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
    pi_type : {"default", "riley", "t", "simple"}
        Prediction-interval variant, as metafor's ``pi.type`` (see the module docstring);
        ``"riley"`` gives the :math:`t_{k-2}` interval of an intercept-only model.
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
    if res.test in T_TESTS:
        crit = _t_isf(alpha / 2, res.k - res.p) if res.k > res.p else np.nan
    else:
        crit = _norm_isf(alpha / 2)
    ci_lb, ci_ub = pred - crit * se, pred + crit * se
    pi_crit, with_se = pi_critical(pi_type, crit, res.k, res.p, level)
    if res.method == "EE":  # metafor reports no prediction interval for EE models
        pi_lb = pi_ub = np.full_like(pred, np.nan)
    else:
        half = pi_crit * np.sqrt((vpred if with_se else 0.0) + res.tau2)
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
