"""Random- and common-effect meta-analysis and meta-regression, as metafor's ``rma.uni``.

The model is :math:`y_i = x_i^\\top\\beta + u_i + \\varepsilon_i` with
:math:`u_i \\sim N(0, \\tau^2)` and :math:`\\varepsilon_i \\sim N(0, v_i)`, the sampling variances
:math:`v_i` taken as known. :func:`rma` estimates :math:`\\tau^2` with one of the estimators of
metafor's ``rma.uni`` (same formulas, same starting values, same iteration and truncation rules),
then :math:`\\beta` by weighted least squares with weights :math:`w_i = 1/(v_i + \\hat\\tau^2)`.

The numerical core works on a *stack* of problems at once (arrays with a leading batch axis), so
that :mod:`blinameta.frequentist.permutest` can fit thousands of permuted data sets in one
vectorised pass and :func:`rma_batch` many intercept-only data sets of the same k;
:func:`rma` with moderators is the same code run on a stack of one. Each tau² estimator and the
standard error of tau² exist once (``_estimate_tau2``, ``_se_tau2``), written over projection
quantities whose intercept-only branch uses power sums of the weights instead of k x k
projections; an intercept-only :func:`rma` (the common single analysis) calls the same
functions, its Fisher scoring iterating in Python floats.

References
----------
Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators in the
random-effects model. *J Educ Behav Stat* 30, 261-293.
Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. *J Stat Softw*
36(3), 1-48.
DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. *Control Clin Trials* 7.
Paule, R. C. & Mandel, J. (1982). Consensus values and weighting factors. *J Res NBS* 87, 377-385.
Hartung, J. & Knapp, G. (2001). A refined method for the meta-analysis of controlled clinical
trials with binary outcome. *Stat Med* 20, 3875-3889.
Sidik, K. & Jonkman, J. N. (2005). Simple heterogeneity variance estimation for meta-analysis.
*J R Stat Soc C* 54, 367-384.
Higgins, J. P. T. & Thompson, S. G. (2002). Quantifying heterogeneity in a meta-analysis.
*Stat Med* 21, 1539-1558.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from blinameta.frequentist._present import RmaPresentation

__all__ = [
    "RmaResult",
    "RmaBatchResult",
    "rma",
    "rma_batch",
    "model_matrix",
    "ModelMatrix",
    "METHODS",
    "TESTS",
    "T_TESTS",
    "DEFAULT_CONTROL",
    "METAFOR_CONTROL",
]

#: Estimators of tau^2 accepted by :func:`rma` ("FE" is an alias of "EE").
METHODS = ("EE", "FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")

#: Defaults of the ``control`` mapping. metafor's own defaults are ``threshold=1e-5`` and
#: ``tol=.Machine$double.eps^0.25``; blinameta iterates to a tighter tolerance so that its
#: numbers agree with metafor run with ``control=list(threshold=1e-12, tol=1e-12)``.
DEFAULT_CONTROL: dict[str, Any] = {
    "tau2_init": None,  # starting value of ML/REML/EB; None = metafor's (the HE estimate)
    "tau2_min": 0.0,
    "tau2_max": None,  # None = metafor's max(100, 10 * mad(yi)^2)
    "threshold": 1e-10,  # Fisher scoring stops when |change in tau2| <= threshold
    "tol": 1e-12,  # root finding (PM) and metafor's ll0check tolerance
    "maxiter": 1000,  # metafor: 100; more room for the tighter threshold
    "stepadj": 1.0,
    "ll0check": True,
}

#: metafor's own defaults (``rma.uni``: ``threshold=1e-5``, ``tol=.Machine$double.eps^0.25``,
#: ``maxiter=100``): pass ``control=METAFOR_CONTROL`` (``blinameta pool --control metafor``) to get
#: the numbers of a default ``rma()`` call to print precision.
METAFOR_CONTROL: dict[str, Any] = {"threshold": 1e-5, "tol": float(np.finfo(float).eps) ** 0.25,
                                   "maxiter": 100}
#: Values of ``test`` (metafor's ``rma.uni``): Wald z; t without rescaling; Knapp-Hartung;
#: Knapp-Hartung with the scaling factor truncated below at 1 (the "ad hoc" variant).
TESTS = ("z", "t", "knha", "adhoc")
#: The tests with t and F reference distributions on k - p df.
T_TESTS = ("t", "knha", "adhoc")
_KNHA_TESTS = ("knha", "adhoc")

_EPS = np.finfo(float).eps
_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# model matrix
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMatrix:
    """A design matrix and the recipe that made it (to build rows for new moderator values).

    Attributes
    ----------
    X : ndarray, shape (k, p)
    names : tuple of str
        Column names; ``"intrcpt"`` for the intercept, ``"{column}{level}"`` for a treatment
        dummy (as R's ``model.matrix``).
    int_incl : bool
        Whether the first column is the intercept.
    terms : tuple
        One ``(column, levels)`` per moderator: ``levels`` is ``None`` for a numeric column and
        the tuple of factor levels (the first the reference) for a categorical one.
    """

    X: np.ndarray
    names: tuple[str, ...]
    int_incl: bool
    terms: tuple[tuple[str, tuple[str, ...] | None], ...] = ()

    def new_rows(self, newmods: Any) -> np.ndarray:
        """Rows of the design matrix for new moderator values (without the intercept column).

        ``newmods`` is a DataFrame/mapping with the original moderator columns (categorical
        values as labels), or a numeric array laid out like the non-intercept columns of ``X``.
        """
        m = self.X.shape[1] - int(self.int_incl)
        if isinstance(newmods, (pd.DataFrame, dict)) and self.terms:
            frame = pd.DataFrame(newmods)
            cols = []
            for name, levels in self.terms:
                if name not in frame.columns:
                    raise ValueError(f"newmods has no column {name!r}")
                values = frame[name]
                if levels is None:
                    cols.append(np.asarray(values, dtype=float)[:, None])
                else:
                    labels = values.astype(str).to_numpy()
                    unknown = sorted(set(labels) - set(levels))
                    if unknown:
                        raise ValueError(f"newmods column {name!r}: unknown level(s) {unknown}")
                    cols.append(
                        np.stack([(labels == lev).astype(float) for lev in levels[1:]], axis=1)
                    )
            return np.concatenate(cols, axis=1)
        arr = np.asarray(newmods, dtype=float)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            # metafor: with one moderator a vector holds one value per prediction
            arr = arr[:, None] if m == 1 else arr[None, :]
        if arr.shape[1] != m:
            raise ValueError(f"newmods has {arr.shape[1]} columns; the model has {m} moderators")
        return arr


def model_matrix(mods: Any, k: int, *, intercept: bool = True) -> ModelMatrix:
    """Build the design matrix from moderators, like R's ``model.matrix`` with treatment coding.

    Parameters
    ----------
    mods : None, array_like (k,) or (k, m), or pandas.DataFrame
        Moderators. DataFrame columns that are not numeric (object, string, category, bool)
        become treatment dummies with the first level as the reference (pandas category order
        if categorical, else sorted, as R's ``factor``).
    k : int
        Number of studies.
    intercept : bool
        Add an intercept column named ``"intrcpt"``.
    """
    terms: list[tuple[str, tuple[str, ...] | None]] = []
    cols: list[np.ndarray] = []
    names: list[str] = []
    if mods is not None:
        if isinstance(mods, pd.Series):
            mods = mods.to_frame()
        if isinstance(mods, pd.DataFrame):
            for name in mods.columns:
                col = mods[name]
                if isinstance(col.dtype, pd.CategoricalDtype):
                    levels = tuple(str(c) for c in col.cat.categories)
                    labels = col.astype(str).to_numpy()
                elif pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
                    labels = col.astype(str).to_numpy()
                    levels = tuple(sorted(set(labels)))
                else:
                    terms.append((str(name), None))
                    cols.append(col.to_numpy(dtype=float))
                    names.append(str(name))
                    continue
                terms.append((str(name), levels))
                for lev in levels[1:]:
                    cols.append((labels == lev).astype(float))
                    names.append(f"{name}{lev}")
        else:
            arr = np.asarray(mods, dtype=float)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError("mods must be a vector or a 2-D array")
            for j in range(arr.shape[1]):
                cols.append(arr[:, j])
                names.append(f"mod{j + 1}" if arr.shape[1] > 1 else "mods")
                terms.append((names[-1], None))
    for c in cols:
        if c.shape[0] != k:
            raise ValueError(f"mods has {c.shape[0]} rows; there are {k} studies")
    int_incl = intercept
    # a constant column of ones given as a moderator counts as the intercept (as metafor)
    keep = [j for j, c in enumerate(cols) if not np.all(c == 1.0)]
    if len(keep) < len(cols):
        int_incl = True
        cols = [cols[j] for j in keep]
        names = [names[j] for j in keep]
    if int_incl:
        cols = [np.ones(k)] + cols
        names = ["intrcpt"] + names
    if not cols:
        cols, names, int_incl = [np.ones(k)], ["intrcpt"], True
    X = np.column_stack(cols).astype(float)
    if not np.all(np.isfinite(X)):
        raise ValueError("moderators must be finite (no missing values)")
    return ModelMatrix(X=X, names=tuple(names), int_incl=int_incl, terms=tuple(terms))


# --------------------------------------------------------------------------------------------
# batched numerical core: arrays with a leading batch axis B
# --------------------------------------------------------------------------------------------


def _wls_parts(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W X`` and ``(X' W X)^{-1}`` for a stack: X (B, k, p), w (B, k)."""
    WX = X * w[:, :, None]
    XtWX = np.matmul(X.transpose(0, 2, 1), WX)
    return WX, np.linalg.inv(XtWX)


def _proj(X: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:math:`P = W - W X (X^\\top W X)^{-1} X^\\top W` for a stack, shape (B, k, k).

    ``out``: a (B, k, k) array to write P into (iterations reuse one instead of allocating,
    and page-faulting, B k² doubles each time).
    """
    WX, inv = _wls_parts(X, w)
    P = np.matmul(np.matmul(WX, inv), WX.transpose(0, 2, 1), out=out)
    np.negative(P, out=P)
    idx = np.arange(X.shape[1])
    P[:, idx, idx] += w
    return P


# --------------------------------------------------------------------------------------------
# the tau² estimators: one implementation each, over a batch axis
#
# Every estimator (metafor's formulas) is written once in terms of a few quantities of the
# projection P = W - W X (X'WX)^{-1} X'W, W = diag(w):
#   Σw, Σw², y'Py, |Py|², tr P, ΣP²  (_pstats)   and   tr PV, Σ(PV)∘(PV)', Σ(PV)∘P  (_pvstats).
# They work on a stack of problems (Y, V of shape (B, k), X of shape (B, k, p)) as used by
# rma with moderators (B = 1), rma_batch and permutest. X = None is the intercept-only model,
# the fast branch: with X = 1, P = W - w wᵀ/S₁ and every quantity is a combination of the power
# sums Σ wᵃ zᵇ (a = 1..3, b = 0..2; z = y or v), one (3 x k)(k x 3) product per problem
# instead of a k x k projection:
#   y'Py = Σwy² - b Σwy (b = Σwy/S₁),  |Py|² = Σw²y² - 2b Σw²y + b² S₂,
#   tr P = S₁ - S₂/S₁,  ΣP² = S₂ - 2S₃/S₁ + (S₂/S₁)²,  tr PV = Σwv - Σw²v/S₁, ...
# One intercept-only problem may also be given as 1-D arrays (the single rma()): the power sums
# then come back as Python floats and the same formulas run in float arithmetic, and Fisher
# scoring iterates in a scalar loop with the same rules (numpy calls on length-1 arrays would
# cost several times the arithmetic; see benchmarks/README.md). Paule-Mandel runs the single
# problem as a stack of one.
# --------------------------------------------------------------------------------------------

_POWERS = np.array([[1.0], [2.0], [3.0]])
#: estimators fitted by Fisher scoring
_SCORING = ("ML", "REML", "EB")


def _zpow(z: np.ndarray) -> np.ndarray:
    """``[1, z, z²]`` along a new last axis, shape (..., k, 3)."""
    Z = np.empty(z.shape + (3,))
    Z[..., 0] = 1.0
    Z[..., 1] = z
    np.multiply(z, z, out=Z[..., 2])
    return Z


def _col(t: Any) -> Any:
    """A per-problem value ready to broadcast against (..., k): (B,) -> (B, 1); scalars as is."""
    return t[:, None] if isinstance(t, np.ndarray) and t.ndim else t


def _power_sums(w: np.ndarray, Z: np.ndarray, buf: np.ndarray | None = None) -> Any:
    """``S[a-1][b] = Σ_i w_i^a Z_ib`` (a = 1, 2, 3) in one matrix product per problem.

    ``w`` (k,) and ``Z`` (k, 3) give a nested 3 x 3 list of Python floats; ``w`` (B, k) and
    ``Z`` (B, k, 3) a (3, 3, B) array (rows unpack as the list does). ``buf``, an array of at
    least (B, 3, k), is used for the powers of ``w`` (a loop reusing it saves allocating, and
    page-faulting, megabytes per iteration).
    """
    if w.ndim == 1:  # fewest numpy calls
        return ((w**_POWERS) @ Z).tolist()
    if buf is None:
        W = np.empty((w.shape[0], 3, w.shape[1]))
    else:
        W = buf[: w.shape[0]]
    W[..., 0, :] = w
    np.multiply(w, w, out=W[..., 1, :])
    np.multiply(W[..., 1, :], w, out=W[..., 2, :])
    return (W @ Z).transpose(1, 2, 0)


def _div(num: Any, den: Any) -> Any:
    """``num / den``; a zero float denominator follows numpy's rules (nan for 0/0, else ±inf).

    Arrays are divided as they are (the caller sets ``np.errstate``).
    """
    if type(den) is float and den == 0.0:
        return math.nan if num == 0.0 or math.isnan(num) else math.copysign(math.inf, num)
    return num / den


#: the terms of :func:`_pstats`, and those each Fisher-scoring step uses
_ALL_STATS = ("s1", "s2", "yPy", "PyPy", "trP", "PP")
_SCORING_NEEDS = {"REML": ("PyPy", "trP", "PP"), "ML": ("PyPy", "s1", "s2"), "EB": ("yPy", "s1")}


def _pstats(
    w: np.ndarray,
    Ymc: np.ndarray | None,
    X: np.ndarray | None,
    Z: np.ndarray | None = None,
    need: tuple[str, ...] = _ALL_STATS,
    buf: np.ndarray | None = None,
    P: np.ndarray | None = None,
) -> tuple:
    """``(Σw, Σw², y'Py, |Py|², tr P, ΣP²)`` per problem at weights ``w``.

    ``X`` None: intercept only, from the power sums (``Z = _zpow(Ymc)`` may be passed in to
    save recomputing it; 1-D ``w``, ``Ymc`` give Python floats). Else ``X`` (B, k, p) and P is
    formed, and only the terms named in ``need`` (of :data:`_ALL_STATS`) are computed, the
    others being None (the power sums give them all at once). Without ``Ymc`` (and ``Z``) the
    two terms in y are None. ``buf``: for X None as in :func:`_power_sums`, else room for P
    (at least (B, k, k)); ``P`` the projection if the caller has formed it.
    """
    yPy = PyPy = None
    if X is None:
        if Ymc is None and Z is None:
            if w.ndim == 1:
                s1, s2, s3 = (w**_POWERS).sum(axis=1).tolist()
            else:
                w2 = w * w
                s1, s2, s3 = w.sum(axis=1), w2.sum(axis=1), (w2 * w).sum(axis=1)
        else:
            (s1, swy, swyy), (s2, s2y, s2yy), (s3, _, _) = _power_sums(
                w, _zpow(Ymc) if Z is None else Z, buf
            )
            b = swy / s1
            yPy, PyPy = swyy - b * swy, s2yy - 2.0 * b * s2y + b * b * s2
        r2 = s2 / s1
        return s1, s2, yPy, PyPy, s1 - r2, s2 - 2.0 * s3 / s1 + r2 * r2
    n = w.shape[0]
    if P is None:
        P = _proj(X, w, None if buf is None else buf[:n])
    if Ymc is not None and ("yPy" in need or "PyPy" in need):
        Py = np.einsum("bij,bj->bi", P, Ymc)
        yPy = np.vecdot(Ymc, Py) if "yPy" in need else None
        PyPy = np.vecdot(Py, Py) if "PyPy" in need else None
    flat = P.reshape(n, -1)
    return (
        w.sum(axis=1) if "s1" in need else None,
        np.vecdot(w, w) if "s2" in need else None,
        yPy,
        PyPy,
        np.trace(P, axis1=1, axis2=2) if "trP" in need else None,
        np.vecdot(flat, flat) if "PP" in need else None,
    )


def _quiet(a: Any) -> Any:
    """``np.errstate`` silencing division warnings for arrays; a no-op context for scalars."""
    if isinstance(a, np.ndarray) and a.ndim > 1:
        return np.errstate(divide="ignore", invalid="ignore")
    return contextlib.nullcontext()


def _pvstats(
    w: np.ndarray,
    v: np.ndarray,
    X: np.ndarray | None,
    full: bool = True,
    P: np.ndarray | None = None,
) -> tuple:
    """``(tr PV, Σ_ij (PV)_ij (PV)_ji, Σ_ij (PV)_ij P_ij)`` per problem, V = diag(v).

    ``full`` False: only ``tr PV`` (the others None) when P is formed; ``P`` as in
    :func:`_pstats`.
    """
    if X is None:
        (s1, swv, _), (s2, s2v, s2vv), (s3, s3v, s3vv) = _power_sums(w, _zpow(v))
        r = s2v / s1
        return swv - r, s2vv - 2.0 * s3vv / s1 + r * r, s2v - 2.0 * s3v / s1 + s2 * r / s1
    if P is None:
        P = _proj(X, w)
    if not full:
        return np.einsum("bii,bi->b", P, v), None, None
    PV = P * v[:, None, :]
    return (
        np.trace(PV, axis1=1, axis2=2), (PV * PV.transpose(0, 2, 1)).sum(axis=(1, 2)),
        (PV * P).sum(axis=(1, 2)),
    )  # fmt: skip


def _ols_stats(Ymc: np.ndarray, vi: np.ndarray, X: np.ndarray | None, full: bool = False):
    """``(y'P0y, tr P0V, Σ(P0V)∘(P0V)')`` of the OLS projection P0 = I - X(X'X)^{-1}X' (HE).

    The last is None unless ``full``. For X = None, P0 = I - 11'/k (``Ymc`` is centred).
    """
    if X is None:
        k = Ymc.shape[-1]
        sv = vi.sum(axis=-1)
        pvpv = (1.0 - 2.0 / k) * np.vecdot(vi, vi) + sv * sv / k**2 if full else None
        return np.vecdot(Ymc, Ymc), (1.0 - 1.0 / k) * sv, pvpv
    ones = np.ones_like(vi)
    P0 = _proj(X, ones)
    return (
        _pstats(ones, Ymc, X, need=("yPy",), P=P0)[2], *_pvstats(ones, vi, X, full, P0)[:2]
    )


def _dims(Ymc: np.ndarray, X: np.ndarray | None) -> tuple[int, int]:
    """``(k, p)``: studies and coefficients (p = 1 for the intercept-only X = None)."""
    return Ymc.shape[-1], 1 if X is None else X.shape[2]


def _tau2_closed(method: str, Ymc: np.ndarray, X: np.ndarray | None, vi: np.ndarray) -> np.ndarray:
    """The non-iterative estimators DL, HE, HS and SJ (metafor's formulas).

    For a stack, or one intercept-only problem as 1-D arrays (``X`` None; a scalar comes back).
    """
    k, p = _dims(Ymc, X)
    if method == "HE":  # (y'P0y - tr(P0 V))/(k - p), P0 the OLS projection
        yPy, trPV, _ = _ols_stats(Ymc, vi, X)
        return (yPy - trPV) / (k - p)
    if method == "SJ":
        tau2_0 = np.vecdot(Ymc, Ymc) / k
        return tau2_0 * _pstats(1.0 / (vi + _col(tau2_0)), Ymc, X, need=("yPy",))[2] / (k - p)
    s1, _, q, _, trP, _ = _pstats(1.0 / vi, Ymc, X, need=("s1", "yPy", "trP"))
    if method == "HS":
        return (q - k) / s1
    if method == "DL":
        with _quiet(Ymc):
            return _div(q - (k - p), trP)
    raise ValueError(method)


def _scoring_adj(method: str, k: int, p: int, stats: tuple) -> Any:
    """Fisher-scoring increment of ML / REML / EB from :func:`_pstats` at the current tau2."""
    s1, s2, yPy, PyPy, trP, PP = stats
    if method == "REML":
        return _div(PyPy - trP, PP)
    if method == "ML":
        return _div(PyPy - s1, s2)
    return _div(yPy * k / (k - p) - k, s1)  # EB


def _scoring_step(tau2, iters, conv, active, t, adj, stepadj, tmin, thr, maxiter):
    """One Fisher-scoring update of the active fits, in place, with metafor's step halving.

    The step is scaled by ``stepadj`` and halved until ``tau2`` stays at or above ``tmin``;
    fits whose change is at most ``thr`` converge, those over ``maxiter`` iterations fail.
    Returns the mask of ``active`` still iterating.
    """
    adj = adj * stepadj
    adj[np.isnan(adj)] = 0.0
    # at the bound, halving a negative step ends (after ~1075 halvings) at a step too small to
    # move tau2: the same tau2 at once
    adj[(adj < 0.0) & (t <= tmin)] = 0.0
    low = np.flatnonzero(t + adj < tmin)
    while low.size:  # halving only the rows still below
        adj[low] /= 2.0
        low = low[t[low] + adj[low] < tmin]
    new = t + adj
    tau2[active] = new
    iters[active] += 1
    change = np.abs(new - t)
    failed = iters[active] > maxiter
    conv[active[failed]] = False
    return (change > thr) & ~failed


def _tau2_scoring(
    method: str,
    Ymc: np.ndarray,
    X: np.ndarray | None,
    vi: np.ndarray,
    con: dict[str, Any],
    Z: np.ndarray | None = None,
) -> tuple[Any, Any, Any]:
    """ML / REML / EB by metafor's Fisher scoring from the HE estimate, with step halving.

    A stack (``Ymc``, ``vi`` of shape (B, k)) is iterated together, each problem stopping at
    its own iteration as a single metafor fit would; one intercept-only problem may be given as
    1-D arrays (``X`` None), iterated in Python floats with the same rules. Returns tau2, the
    number of iterations and a convergence flag (arrays, or scalars for 1-D input). ``Z`` is
    ``_zpow(Ymc)`` if the caller has it (intercept only).
    """
    k, p = _dims(Ymc, X)
    one = Ymc.ndim == 1
    tmin, thr, stepadj, maxiter = con["tau2_min"], con["threshold"], con["stepadj"], con["maxiter"]
    if X is None and Z is None:
        Z = _zpow(Ymc)  # the power sums' right-hand side, fixed
    if con["tau2_init"] is None:
        init = np.maximum(np.maximum(0.0, _tau2_closed("HE", Ymc, X, vi)), tmin)
    else:
        init = np.full(Ymc.shape[:-1], float(con["tau2_init"]))
    if one:
        t, it = float(init), 0
        while True:
            adj = _scoring_adj(method, k, p, _pstats(1.0 / (vi + t), Ymc, None, Z)) * stepadj
            if math.isnan(adj) or (adj < 0.0 and t <= tmin):  # (see _scoring_step)
                adj = 0.0
            while t + adj < tmin:
                adj /= 2.0
            new = t + adj
            it += 1
            change = abs(new - t)
            t = new
            if it > maxiter:
                return t, it, False
            if not change > thr:
                return t, it, True
    B = Ymc.shape[0]
    tau2 = init
    iters = np.zeros(B, dtype=int)
    conv = np.ones(B, dtype=bool)
    active = np.arange(B)
    buf = np.empty((B, 3, k) if X is None else (B, k, k))
    # the data of the active problems (vi, then Z or Ymc and X), compacted only when some stop
    # (the long tail of slow problems then iterates without copying)
    work = [vi, Z] if X is None else [vi, Ymc, X]
    compact = _Compactor(work)
    with np.errstate(invalid="ignore", divide="ignore"):
        while active.size:
            t = tau2[active]  # a copy: _scoring_step compares it with the update
            w = 1.0 / (work[0] + t[:, None])
            if X is None:
                stats = _pstats(w, None, None, work[1], _SCORING_NEEDS[method], buf)
            else:
                stats = _pstats(w, work[1], work[2], None, _SCORING_NEEDS[method], buf)
            adj = _scoring_adj(method, k, p, stats)
            keep = _scoring_step(tau2, iters, conv, active, t, adj, stepadj, tmin, thr, maxiter)
            if not keep.all():
                active = active[keep]
                work = compact(work, keep)
    return tau2, iters, conv


class _Compactor:
    """Keeps rows of a set of arrays, writing them alternately into two buffers per array.

    Allocated once (at the first call), so an iteration that drops finished problems neither
    allocates nor page-faults megabytes; the arrays first given are never written to.
    """

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.bufs: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.phase = 0
        self.shapes = [a.shape for a in arrays]

    def __call__(self, arrays: list[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
        if self.bufs is None:
            self.bufs = [(np.empty(s), np.empty(s)) for s in self.shapes]
        rows = np.flatnonzero(keep)
        out = []
        for a, pair in zip(arrays, self.bufs):
            # take with mode="clip" writes straight into out (the rows are in range)
            out.append(np.take(a, rows, axis=0, out=pair[self.phase][: rows.size], mode="clip"))
        self.phase = 1 - self.phase
        return out


def _loglik_at(
    method: str,
    Ymc: np.ndarray,
    X: np.ndarray | None,
    vi: np.ndarray,
    tau2: Any,
    Z: np.ndarray | None = None,
) -> Any:
    """ML or REML log-likelihood (metafor's ll0check form, without log det X'X).

    For a stack, or one intercept-only problem as 1-D arrays with a float ``tau2`` (``Z`` as
    in :func:`_tau2_scoring`).
    """
    k, p = _dims(Ymc, X)
    vt = vi + (tau2[:, None] if isinstance(tau2, np.ndarray) else tau2)
    w = 1.0 / vt
    if X is None:
        s1, _, rss = _pstats(w, Ymc, None, Z)[:3]
        logdet = np.log(s1)  # log det X'WX = log S1
    else:
        _, inv = _wls_parts(X, w)
        beta = np.einsum("bpq,bkq,bk->bp", inv, X, w * Ymc)
        rss = np.sum(w * (Ymc - np.einsum("bkp,bp->bk", X, beta)) ** 2, axis=1)
        logdet = -np.linalg.slogdet(inv)[1]
    sumlog = np.log(vt).sum(axis=-1)
    if method == "ML":
        return -0.5 * k * _LOG_2PI - 0.5 * sumlog - 0.5 * rss
    return -0.5 * (k - p) * _LOG_2PI - 0.5 * sumlog - 0.5 * logdet - 0.5 * rss


def _tau2_pm(
    Ymc: np.ndarray,
    X: np.ndarray | None,
    vi: np.ndarray,
    con: dict[str, Any],
    tau2_max: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Paule-Mandel: root of the generalized Q, :math:`Q(\\tau^2) = k - p`, vectorised.

    metafor uses ``uniroot`` on ``[tau2_min, tau2_max]``; here a bracketed Newton iteration
    (bisection when a Newton step leaves the bracket) on the same monotone function, run to
    ``control["tol"]``. Q is decreasing in tau2, :math:`dQ/d\\tau^2 = -y^\\top P P y`.
    """
    B = Ymc.shape[0]
    k, p = _dims(Ymc, X)
    target = k - p
    tmin = float(con["tau2_min"])
    tau2 = np.full(B, np.nan)
    conv = np.ones(B, dtype=bool)
    Z = _zpow(Ymc) if X is None else None
    buf = np.empty((B, 3, k) if X is None else (B, k, k))

    def q_and_slope(sel, t):
        w = 1.0 / (vi[sel] + t[:, None])
        if X is None:
            stats = _pstats(w, Ymc, None, Z[sel], buf=buf)
        else:
            stats = _pstats(w, Ymc[sel], X[sel], need=("yPy", "PyPy"), buf=buf)
        return stats[2] - target, -stats[3]

    every = slice(None)
    f_min, _ = q_and_slope(every, np.full(B, tmin))
    f_max, _ = q_and_slope(every, tau2_max)
    at_min = f_min < 0
    tau2[at_min] = tmin
    too_low = ~at_min & (f_max > 0)
    conv[too_low] = False
    active = np.flatnonzero(~at_min & ~too_low)
    lo = np.full(B, tmin)
    hi = tau2_max.astype(float).copy()
    x = np.full(B, tmin)
    tol = float(con["tol"])
    for _ in range(500):
        if not active.size:
            break
        f, fp = q_and_slope(active, x[active])
        pos = f > 0
        lo[active[pos]] = x[active[pos]]
        hi[active[~pos]] = x[active[~pos]]
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = x[active] - f / fp
        bad = ~np.isfinite(xn) | (xn <= lo[active]) | (xn >= hi[active])
        xn[bad] = 0.5 * (lo[active][bad] + hi[active][bad])
        step = np.abs(xn - x[active])
        x[active] = xn
        done = (step <= tol * 1e-3 + 4 * _EPS * np.abs(xn)) | (f == 0) | (
            hi[active] - lo[active] <= 4 * _EPS * np.abs(xn)
        )
        tau2[active[done]] = xn[done]
        active = active[~done]
    conv[active] = False
    return tau2, conv


def _r_mad(y: np.ndarray) -> np.ndarray:
    """R's ``mad``: 1.4826 * median(|y - median(y)|), per row."""
    med = np.median(y, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(y - med), axis=1)


def _estimate_tau2(
    method: str, Y: np.ndarray, X: np.ndarray | None, vi: np.ndarray, con: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """tau2 with metafor's rules; returns (tau2, iterations, converged).

    ``Y``, ``vi`` (B, k) and ``X`` (B, k, p), or ``X`` None for intercept-only models (the
    fast branch; an ``X`` of ones is recognised as such). One intercept-only problem may be
    given as 1-D ``Y`` and ``vi`` (``X`` None): scalars come back. As in metafor, the
    estimators work on the mean-centred outcomes; non-converged problems get NaN.
    """
    k = Y.shape[-1]
    if Y.ndim == 1 and (method in ("PM", "EE") or k == 1):  # one problem as a stack of one
        tau2, iters, conv = _estimate_tau2(method, Y[None], None, vi[None], con)
        return float(tau2[0]), int(iters[0]), bool(conv[0])
    if X is not None and X.shape[2] == 1 and np.all(X == 1.0):
        X = None
    tmin, thr = con["tau2_min"], con["threshold"]
    ll0check = method in ("ML", "REML") and con["ll0check"]
    if Y.ndim == 1:  # one intercept-only problem, in Python floats
        Ymc = Y - float(Y.sum()) / k
        if method not in _SCORING:
            return max(tmin, float(_tau2_closed(method, Ymc, X, vi))), 0, True
        Z = _zpow(Ymc)
        tau2, iters, conv = _tau2_scoring(method, Ymc, X, vi, con, Z)
        if ll0check and conv and tau2 > thr and _ll0_higher(method, Ymc, X, vi, tau2, con, Z):
            tau2 = 0.0
        return max(tmin, tau2) if conv else math.nan, iters, conv
    B = Y.shape[0]
    Ymc = Y - Y.sum(axis=1, keepdims=True) / k  # (as np.mean)
    iters = np.zeros(B, dtype=int)
    conv = np.ones(B, dtype=bool)
    if method == "EE" or k == 1:
        return np.zeros(B), iters, conv
    if method in ("HS", "HE", "DL", "SJ"):
        tau2 = _tau2_closed(method, Ymc, X, vi)
    elif method == "PM":
        if con["tau2_max"] is None:
            tau2_max = np.maximum(100.0, 10.0 * _r_mad(Y) ** 2)
        else:
            tau2_max = np.full(B, float(con["tau2_max"]))
        tau2, conv = _tau2_pm(Ymc, X, vi, con, tau2_max)
    else:
        Z = _zpow(Ymc) if X is None else None
        tau2, iters, conv = _tau2_scoring(method, Ymc, X, vi, con, Z)
        if ll0check and np.all(vi > 0):
            with np.errstate(invalid="ignore"):
                stuck = conv & (tau2 > thr) & _ll0_higher(method, Ymc, X, vi, tau2, con, Z)
            tau2 = np.where(stuck, 0.0, tau2)
    tau2 = np.maximum(tmin, tau2)
    tau2[~conv] = np.nan
    return tau2, iters, conv


def _ll0_higher(
    method: str,
    Ymc: np.ndarray,
    X: np.ndarray | None,
    vi: np.ndarray,
    tau2: Any,
    con: dict[str, Any],
    Z: np.ndarray | None = None,
) -> Any:
    """metafor's ll0check: does tau2 = 0 have a log-likelihood higher by more than ``tol``?

    (Then the estimate goes back to 0: scoring can stop at a stationary point off the
    boundary.)
    """
    zero = np.zeros_like(tau2) if isinstance(tau2, np.ndarray) else 0.0
    ll0 = _loglik_at(method, Ymc, X, vi, zero, Z)
    return ll0 - _loglik_at(method, Ymc, X, vi, tau2, Z) > con["tol"]


def _se_tau2(
    method: str, Ymc: np.ndarray, X: np.ndarray | None, vi: np.ndarray, tau2: np.ndarray
) -> np.ndarray:
    """Standard error of tau2, metafor's formula per estimator (NaN for EE).

    For a stack, or one intercept-only problem as 1-D arrays (``X`` None; a scalar comes back).
    """
    k, p = _dims(Ymc, X)
    t = np.maximum(tau2, 0.0) if isinstance(tau2, np.ndarray) else max(tau2, 0.0)
    with _quiet(Ymc):
        if method in ("HS", "DL"):
            s1, _, _, _, trP, PP = _pstats(1.0 / vi, None, X, need=("s1", "trP", "PP"))
            den = s1 if method == "HS" else trP
            return np.sqrt(1 / den**2 * (2 * (k - p) + 4 * t * trP + 2 * t**2 * PP))
        if method == "HE":
            _, trPV, PVPV = _ols_stats(Ymc, vi, X, full=True)
            return np.sqrt(1 / (k - p) ** 2 * (2 * PVPV + 4 * t * trPV + 2 * t**2 * (k - p)))
        if method == "SJ":
            tau2_0 = np.vecdot(Ymc, Ymc) / k
            w = 1.0 / (vi + _col(tau2_0))
            P = None if X is None else _proj(X, w)
            PP = _pstats(w, None, X, need=("PP",), P=P)[5]
            _, PVPV, PVP = _pvstats(w, vi, X, P=P)
            return np.sqrt(
                tau2_0**2 / (k - p) ** 2 * (2 * PVPV + 4 * t * PVP + 2 * t**2 * PP)
            )
        w = 1.0 / (vi + _col(tau2))
        if method == "ML":
            return np.sqrt(2 / (w * w).sum(axis=-1))
        if method == "REML":
            return np.sqrt(2 / _pstats(w, None, X, need=("PP",))[5])
        if method in ("EB", "PM"):
            return np.sqrt(2 * k**2 / (k - p) / w.sum(axis=-1) ** 2)
    return np.full(Ymc.shape[:-1], np.nan)


def _fixed_effects(
    Y: np.ndarray,
    X: np.ndarray,
    vi: np.ndarray,
    tau2: np.ndarray,
    test: str,
    btt: np.ndarray,
) -> dict[str, np.ndarray]:
    """WLS estimates, (knha-scaled) covariance, test statistics and QM for a stack."""
    B, k, p = X.shape
    w = 1.0 / (vi + _col(tau2))
    WX, inv = _wls_parts(X, w)
    beta = np.einsum("bpq,bkq,bk->bp", inv, X, w * Y)
    resid = Y - np.einsum("bkp,bp->bk", X, beta)
    rss = np.sum(w * resid**2, axis=-1)
    if test in _KNHA_TESTS:
        s2w = np.where(rss <= _EPS, 0.0, rss / (k - p) if k > p else np.nan)
        if test == "adhoc":
            s2w = np.where(s2w < 1.0, 1.0, s2w)  # metafor: s2w[s2w < 1] <- 1
    else:
        s2w = np.ones(B)
    vb = inv * s2w[:, None, None]
    se = np.sqrt(np.diagonal(vb, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
        bb = beta[:, btt]
        vbb = vb[:, btt[:, None], btt[None, :]]
        try:
            qm = np.einsum("bi,bi->b", bb, np.linalg.solve(vbb, bb[:, :, None])[:, :, 0])
        except np.linalg.LinAlgError:
            qm = np.full(B, np.nan)
    if test in T_TESTS:
        qm = qm / len(btt)
    return {"beta": beta, "vb": vb, "se": se, "zval": zval, "qm": qm, "s2w": s2w, "rss": rss}


# --------------------------------------------------------------------------------------------
# the result and the user-facing fit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RmaResult(RmaPresentation):
    """A fitted ``rma`` model (field names follow metafor's ``rma.uni`` object).

    Attributes
    ----------
    beta, se, zval, pval, ci_lb, ci_ub : ndarray (p,)
        Coefficients (intercept first), standard errors, z (``test="z"``) or t (``"knha"``)
        statistics, p-values and confidence bounds.
    vb : ndarray (p, p)
        Variance-covariance matrix of ``beta`` (multiplied by ``s2w`` under knha).
    tau2, se_tau2 : float
        Estimated (residual, with moderators) between-study variance and its standard error
        (metafor's formula per estimator; NaN for EE).
    qe, qe_p, qe_df : float, float, int
        Test of (residual) heterogeneity, :math:`Q_E = \\sum_i (y_i - x_i^\\top b_{EE})^2/v_i`
        on ``k - p`` df.
    i2 : float
        I² **in percent** (metafor's ``I2``): :math:`100\\,\\hat\\tau^2/(\\hat\\tau^2 + \\tilde v)`
        with the "typical" within-study variance :math:`\\tilde v = (k-p)/\\mathrm{tr}(P)`
        (Higgins & Thompson 2002; for EE models :math:`100\\max(0, (Q_E-(k-p))/Q_E)`).
    h2 : float
        H² = :math:`\\hat\\tau^2/\\tilde v + 1` (EE: :math:`Q_E/(k-p)`).
    vt : float
        The typical within-study variance :math:`\\tilde v`.
    qm, qm_p, qm_df : float, float, tuple
        Omnibus test of the coefficients in ``btt`` (all but the intercept; the intercept in an
        intercept-only model): chi² on m df (z) or F on (m, k-p) df (knha; ``qm`` is then F).
    r2 : float or None
        Pseudo-R² in percent,
        :math:`\\max(0, 100(\\hat\\tau^2_{RE} - \\hat\\tau^2)/\\hat\\tau^2_{RE})`,
        for models with moderators and an intercept (EE: weighted adjusted R², as metafor).
    s2w : float
        Knapp-Hartung scaling factor (1 under ``test="z"`` and ``"t"``); not truncated at 1
        under ``"knha"``, truncated below at 1 under ``"adhoc"`` (as metafor).
    ddf : float
        Degrees of freedom of the t and F tests (``k - p``; NaN for ``test="z"``).
    fit_stats : dict
        ``ll``, ``dev``, ``AIC``, ``BIC``, ``AICc`` under ``"ML"`` and ``"REML"``.
    yi, vi, X, coef_names, terms, k, p, m, btt, int_only, int_incl :
        The data and the design (``terms`` rebuilds rows for :func:`blinameta.frequentist.predict.predict`).
    method, test, level, control, iterations, converged :
        Settings as used (``method`` "FE" is stored as "EE").
    """

    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    tau2: float
    se_tau2: float
    qe: float
    qe_p: float
    qe_df: int
    i2: float
    h2: float
    vt: float
    qm: float
    qm_p: float
    qm_df: tuple[int, float]
    r2: float | None
    s2w: float
    ddf: float
    fit_stats: dict[str, dict[str, float]]
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    coef_names: tuple[str, ...]
    terms: tuple[tuple[str, tuple[str, ...] | None], ...]
    k: int
    p: int
    m: int
    btt: tuple[int, ...]
    int_only: bool
    int_incl: bool
    method: str
    test: str
    level: float
    control: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    converged: bool = True

    @property
    def estimate(self) -> float:
        """The first coefficient (the pooled estimate of an intercept-only model)."""
        return float(self.beta[0])

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2) if self.tau2 >= 0 else math.nan

    @property
    def weights(self) -> np.ndarray:
        """Percentage weights :math:`100\\,w_i/\\sum w_i`, :math:`w_i = 1/(v_i+\\hat\\tau^2)`."""
        w = 1.0 / (self.vi + self.tau2)
        return 100.0 * w / w.sum()

    @property
    def model_matrix(self) -> ModelMatrix:
        return ModelMatrix(
            X=self.X, names=self.coef_names, int_incl=self.int_incl, terms=self.terms
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (arrays as lists), e.g. for JSON."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            out[key] = value
        return out


def _canonical_method(method: str) -> str:
    m = str(method).upper()
    if m == "FE":
        m = "EE"
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return m


def _control(control: dict[str, Any] | None) -> dict[str, Any]:
    con = dict(DEFAULT_CONTROL)
    for key, value in (control or {}).items():
        key = key.replace(".", "_")
        if key not in con:
            raise ValueError(f"unknown control setting {key!r}; known: {', '.join(con)}")
        con[key] = value
    return con


# --------------------------------------------------------------------------------------------
# distribution tails: scipy.special directly (scipy.stats distribution objects cost ~30 us/call)
# --------------------------------------------------------------------------------------------


def _norm_sf2(z: Any) -> Any:
    """Two-sided normal p-value ``2 P(Z > |z|)`` (as ``2 * stats.norm.sf(abs(z))``)."""
    return 2.0 * special.ndtr(-np.abs(z))


def _t_sf2(t: Any, df: float) -> Any:
    """Two-sided t p-value ``2 P(T_df > |t|)`` (as ``2 * stats.t.sf(abs(t), df)``)."""
    return 2.0 * special.stdtr(df, -np.abs(t))


def _norm_isf(q: float) -> float:
    """Upper quantile of the standard normal (as ``stats.norm.isf``)."""
    return -float(special.ndtri(q))


def _t_isf(q: float, df: float) -> float:
    """Upper quantile of the t distribution (as ``stats.t.isf``)."""
    return -float(special.stdtrit(df, q))


def _chi2_sf(x: Any, df: float) -> Any:
    """Chi² upper tail (as ``stats.chi2.sf``)."""
    return special.chdtrc(df, x)


def _f_sf(x: Any, dfn: float, dfd: float) -> Any:
    """F upper tail (as ``stats.f.sf``)."""
    return special.fdtrc(dfn, dfd, x)


_IO_NAMES = ("intrcpt",)
_BTT0 = (0,)


def _rma_int_only(
    y: np.ndarray,
    v: np.ndarray,
    method: str,
    test: str,
    level: float,
    con: dict[str, Any],
    allvipos: bool,
) -> RmaResult:
    """:func:`rma` for an intercept-only model, in closed-form 1-D algebra.

    The tau² estimators are the shared ones (their intercept-only branch, see
    :func:`_estimate_tau2`); the rest (WLS, tests, heterogeneity, fit statistics) is written out
    for X = 1.
    """
    k = y.size
    if k == 1 and test != "z":
        test = "z"  # metafor: test="z" when k = 1
    alpha = 1.0 - level / 100.0 if level > 1 else 1.0 - level
    ybar = float(y.sum()) / k
    ymc = y - ybar
    if method == "EE" or k == 1:
        tau2, iters, conv = 0.0, 0, True
    else:  # the shared estimators, given one problem as 1-D arrays
        tau2, iters, conv = _estimate_tau2(method, y, None, v, con)
    if not conv:
        raise ValueError(
            f"the {method} estimator of tau2 did not converge (try control maxiter/stepadj/"
            "tau2_max, or another method)"
        )
    tau2 = max(con["tau2_min"], tau2)

    # fixed effect (WLS) and its test
    vt_i = v + tau2
    w = 1.0 / vt_i
    s1 = float(w.sum())
    beta0 = float(w @ y) / s1
    r = y - beta0
    rss_f = float((w * r) @ r)
    if test in T_TESTS:
        ddf = float(k - 1)
        s2w = 1.0
        if test in _KNHA_TESTS:
            s2w = 0.0 if rss_f <= _EPS else rss_f / ddf
            if test == "adhoc" and s2w < 1.0:
                s2w = 1.0
    else:
        ddf = math.nan
        s2w = 1.0
    vb0 = s2w / s1
    se0 = math.sqrt(vb0)
    zval0 = _div(beta0, se0)
    qm = math.nan if vb0 == 0.0 or math.isnan(vb0) else beta0 * beta0 / vb0
    if test in T_TESTS:
        qm_df: tuple[int, float] = (1, ddf)
        qm_p = float(_f_sf(qm, 1, ddf))
        pval0 = float(_t_sf2(zval0, ddf))
        crit = _t_isf(alpha / 2, ddf)
    else:
        qm_df = (1, math.nan)
        qm_p = float(_chi2_sf(qm, 1))
        pval0 = float(_norm_sf2(zval0))
        crit = _norm_isf(alpha / 2)

    # heterogeneity
    if allvipos:
        if k > 1:
            wfe = 1.0 / v
            sfe = float(wfe.sum())
            rfe = ymc - float(wfe @ ymc) / sfe
            qe = max(0.0, float((wfe * rfe) @ rfe))
            qe_p = float(_chi2_sf(qe, k - 1))
            vt = (k - 1) / (sfe - float(wfe @ wfe) / sfe)
            if method == "EE":
                i2 = max(0.0, 100.0 * (qe - (k - 1)) / qe) if qe > 0 else 0.0
                h2 = qe / (k - 1)
            else:
                i2 = 100.0 * tau2 / (vt + tau2)
                h2 = tau2 / vt + 1.0
        else:
            qe, qe_p, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    else:
        qe = qe_p = i2 = h2 = vt = math.nan
    se_tau2 = math.nan
    if method != "EE" and k > 1:
        se_tau2 = float(_se_tau2(method, ymc, None, v, tau2))

    # fit statistics (log det X'X = log k, log det X'WX = log S1)
    parms = 1 + (0 if method == "EE" else 1)
    sumlog = float(np.log(vt_i).sum())
    ll_ml = -0.5 * k * _LOG_2PI - 0.5 * sumlog - 0.5 * rss_f
    ll_reml = -0.5 * (k - 1) * _LOG_2PI + 0.5 * math.log(k) - 0.5 * sumlog - 0.5 * math.log(s1)
    ll_reml -= 0.5 * rss_f
    if k > 1:
        ll_sat = -0.5 * (k * math.log(2 * math.pi) + float(np.log(v).sum())) if allvipos else 0.0
        dev_ml = -2 * (ll_ml - ll_sat)
    else:
        dev_ml = 0.0
    fit_stats = {
        "ML": _ic(ll_ml, k, dev_ml, parms),
        "REML": _ic(ll_reml, k - 1, -2 * ll_reml, parms),
    }

    return RmaResult(
        beta=np.array([beta0]),
        se=np.array([se0]),
        zval=np.array([zval0]),
        pval=np.array([pval0]),
        ci_lb=np.array([beta0 - crit * se0]),
        ci_ub=np.array([beta0 + crit * se0]),
        vb=np.array([[vb0]]),
        tau2=tau2,
        se_tau2=se_tau2,
        qe=qe,
        qe_p=qe_p,
        qe_df=k - 1,
        i2=i2,
        h2=h2,
        vt=vt,
        qm=qm,
        qm_p=qm_p,
        qm_df=qm_df,
        r2=None,
        s2w=s2w,
        ddf=ddf,
        fit_stats=fit_stats,
        yi=y,
        vi=v,
        X=np.ones((k, 1)),
        coef_names=_IO_NAMES,
        terms=(),
        k=k,
        p=1,
        m=1,
        btt=_BTT0,
        int_only=True,
        int_incl=True,
        method=method,
        test=test,
        level=level if level > 1 else 100 * level,
        control=con,
        iterations=iters,
        converged=True,
    )


def _ic(ll: float, n: int, dev: float, parms: int) -> dict[str, float]:
    """metafor's ll, deviance, AIC, BIC and AICc for ``parms`` parameters and ``n`` obs."""
    big = max(n, parms + 2)
    return {
        "ll": ll,
        "dev": dev,
        "AIC": -2 * ll + 2 * parms,
        "BIC": -2 * ll + parms * math.log(n) if n > 0 else math.nan,
        "AICc": -2 * ll + 2 * parms * big / (big - parms - 1),
    }


def rma(
    yi: Any,
    vi: Any,
    *,
    mods: Any = None,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    intercept: bool = True,
    control: dict[str, Any] | None = None,
) -> RmaResult:
    """Fit a common-effect, random-effects or mixed-effects (meta-regression) model.

    Parameters
    ----------
    yi, vi : array_like (k,)
        Effect sizes and their sampling variances (all > 0 for the tau² estimators).
    mods : None, array_like or pandas.DataFrame
        Moderators (see :func:`model_matrix`; categorical DataFrame columns become treatment
        dummies with the first level as reference).
    method : {"REML", "ML", "EB", "PM", "DL", "HE", "HS", "SJ", "EE", "FE"}
        Estimator of tau², as metafor's ``rma.uni``:

        - DL: :math:`(Q - (k-p))/\\mathrm{tr}(P)` with :math:`W = \\mathrm{diag}(1/v_i)`;
        - HE: :math:`(y^\\top P_0 y - \\mathrm{tr}(P_0 V))/(k-p)` with the OLS projection
          :math:`P_0 = I - X(X^\\top X)^{-1}X^\\top`;
        - HS: :math:`(Q - k)/\\sum_i 1/v_i`;
        - SJ: :math:`\\tau_0^2\\, y^\\top P y/(k-p)`, :math:`\\tau_0^2 = \\sum(y_i-\\bar y)^2/k`,
          :math:`W = \\mathrm{diag}(1/(v_i+\\tau_0^2))`;
        - ML, REML, EB: metafor's Fisher scoring from the HE estimate (truncated at 0), with
          step halving to stay above ``tau2_min``; ML and REML fits are checked against
          tau² = 0 (metafor's ``ll0check``);
        - PM: root of the generalized Q, :math:`y^\\top P(\\tau^2) y = k - p`;
        - EE (alias FE): tau² = 0.

        All estimates are truncated at ``tau2_min`` (0). As metafor, the estimators work on the
        mean-centred outcomes.
    test : {"z", "t", "knha", "adhoc"}
        As metafor's ``rma.uni(test=)``. ``"z"``: Wald z tests and chi² omnibus test.
        ``"knha"``: Hartung-Knapp/Sidik-Jonkman t tests on k-p df, with the covariance of beta
        multiplied by :math:`s^2 = \\sum w_i (y_i - x_i^\\top b)^2/(k-p)` (not truncated at 1;
        Hartung & Knapp 2001, Sidik & Jonkman 2002). ``"adhoc"``: the same with
        :math:`\\max(1, s^2)`, so the interval is never narrower than the Wald interval with
        t quantiles (Knapp & Hartung 2003; Röver, Knapp & Friede 2015, *BMC Med Res Methodol*
        15:99). ``"t"``: t and F tests on k-p df without rescaling the covariance.
    level : float
        Confidence level in percent.
    intercept : bool
        Include an intercept.
    control : dict, optional
        Keys of :data:`DEFAULT_CONTROL` (``threshold``, ``maxiter``, ``stepadj``, ``tau2_init``,
        ``tau2_min``, ``tau2_max``, ``tol``, ``ll0check``; metafor's dotted names accepted).

    Returns
    -------
    RmaResult

    Raises
    ------
    ValueError
        For bad input: lengths differ, non-finite values, non-positive variances for the
        tau² estimators, too few studies (k ≤ p for a tau² estimator, k < p for EE), a model
        matrix not of full rank, or an estimator that did not converge.
    """
    method = _canonical_method(method)
    test = str(test).lower()
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    con = _control(control)
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    k = y.size
    if v.size == 1 and k > 1:
        v = np.full(k, float(v[0]))
    if v.size != k:
        raise ValueError(f"yi has {k} values but vi has {v.size}")
    if k < 1:
        raise ValueError("no studies")
    if not (np.isfinite(y).all() and np.isfinite(v).all()):
        raise ValueError("yi and vi must be finite")
    vmin = float(v.min())
    if vmin < 0:
        raise ValueError("sampling variances must not be negative")
    allvipos = vmin > 0
    if method != "EE" and not allvipos:
        raise ValueError(f"the {method} estimator needs all sampling variances > 0")
    level = float(level)
    if mods is None:  # intercept-only: closed-form 1-D algebra
        return _rma_int_only(y, v, method, test, level, con, allvipos)
    mm = model_matrix(mods, k, intercept=intercept)
    X = mm.X
    p = X.shape[1]
    int_only = p == 1 and mm.int_incl
    if not (int_only and k == 1):
        if method == "EE" and p > k:
            raise ValueError(f"{p} coefficients but only {k} studies")
        if method != "EE" and p + 1 > k:
            raise ValueError(
                f"{p} coefficient(s) and tau2 need at least {p + 1} studies; there are {k}"
            )
    if np.any(np.linalg.eigvalsh(X.T @ X) <= 1e-7):
        raise ValueError("the model matrix is not of full rank (redundant moderators)")
    if k == 1 and test != "z":
        test = "z"  # metafor: test="z" when k = 1
    alpha = 1.0 - level / 100.0 if level > 1 else 1.0 - level

    Y = y[None, :]
    Xb = X[None]
    V = v[None, :]
    tau2_arr, iters, conv = _estimate_tau2(method, Y, Xb, V, con)
    if not conv[0]:
        raise ValueError(
            f"the {method} estimator of tau2 did not converge (try control maxiter/stepadj/"
            "tau2_max, or another method)"
        )
    tau2 = float(tau2_arr[0])
    if int_only or not mm.int_incl:
        btt = np.arange(p)
    else:
        btt = np.arange(1, p)
    if p == 1:
        btt = np.arange(1)
    m = len(btt)
    fe = _fixed_effects(Y, Xb, V, tau2_arr, test, btt)
    beta, vb, se, zval = fe["beta"][0], fe["vb"][0], fe["se"][0], fe["zval"][0]
    qm, s2w, rss_f = float(fe["qm"][0]), float(fe["s2w"][0]), float(fe["rss"][0])
    if test in T_TESTS:
        ddf = float(k - p)
        qm_df: tuple[int, float] = (m, ddf)
        qm_p = float(_f_sf(qm, m, ddf)) if ddf > 0 else math.nan
        pval = _t_sf2(zval, ddf) if ddf > 0 else np.full(p, np.nan)
        crit = _t_isf(alpha / 2, ddf) if ddf > 0 else math.nan
    else:
        ddf = math.nan
        qm_df = (m, math.nan)
        qm_p = float(_chi2_sf(qm, m))
        pval = _norm_sf2(zval)
        crit = _norm_isf(alpha / 2)
    ci_lb, ci_ub = beta - crit * se, beta + crit * se

    # heterogeneity
    Ymc = y - y.mean()
    if allvipos:
        if k > p:
            P_fe = _proj(Xb, 1.0 / V)[0]
            qe = max(0.0, float(Ymc @ P_fe @ Ymc))
            qe_p = float(_chi2_sf(qe, k - p))
            vt = (k - p) / float(np.trace(P_fe))
            if method == "EE":
                i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
                h2 = qe / (k - p)
            else:
                i2 = 100.0 * tau2 / (vt + tau2)
                h2 = tau2 / vt + 1.0
        else:
            qe, qe_p, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    else:
        qe = qe_p = i2 = h2 = vt = math.nan

    se_tau2 = math.nan
    if method != "EE" and k > p:
        se_tau2 = float(_se_tau2(method, Ymc[None], Xb, V, tau2_arr)[0])

    # fit statistics (metafor's ll, deviance, AIC, BIC, AICc under ML and REML)
    parms = p + (0 if method == "EE" else 1)
    w = 1.0 / (v + tau2)
    ll_ml = -0.5 * k * _LOG_2PI - 0.5 * float(np.sum(np.log(v + tau2))) - 0.5 * rss_f
    ll_reml = (
        -0.5 * (k - p) * _LOG_2PI
        + 0.5 * float(np.linalg.slogdet(X.T @ X)[1])
        - 0.5 * float(np.sum(np.log(v + tau2)))
        - 0.5 * float(np.linalg.slogdet(X.T @ (w[:, None] * X))[1])
        - 0.5 * rss_f
    )
    if k > p:
        ll_saturated = float(np.sum(-0.5 * np.log(2 * math.pi * v))) if allvipos else 0.0
        dev_ml = -2 * (ll_ml - ll_saturated)
    else:
        dev_ml = 0.0

    fit_stats = {
        "ML": _ic(ll_ml, k, dev_ml, parms),
        "REML": _ic(ll_reml, k - p, -2 * ll_reml, parms),
    }

    # pseudo-R^2
    r2: float | None = None
    if not int_only and mm.int_incl:
        if method == "EE":
            if np.var(y) == 0:
                r2 = 0.0
            else:
                wfe = 1.0 / v
                ybar = np.sum(wfe * y) / wfe.sum()
                rss = float(np.sum(wfe * (y - X @ beta) ** 2))
                tss = float(np.sum(wfe * (y - ybar) ** 2))
                adj = 1.0 - (rss / tss) * (k - 1) / (k - p)
                r2 = max(0.0, 100.0 * adj)
        else:
            try:
                res0 = rma(y, v, method=method, test=test, level=level, control=con)
                tau2_re = res0.tau2
                r2 = 0.0 if tau2_re == 0 else max(0.0, 100.0 * (tau2_re - tau2) / tau2_re)
            except ValueError:
                r2 = math.nan

    return RmaResult(
        beta=beta,
        se=se,
        zval=zval,
        pval=np.asarray(pval, dtype=float),
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        vb=vb,
        tau2=tau2,
        se_tau2=se_tau2,
        qe=qe,
        qe_p=qe_p,
        qe_df=k - p,
        i2=i2,
        h2=h2,
        vt=vt,
        qm=qm,
        qm_p=qm_p,
        qm_df=qm_df,
        r2=r2,
        s2w=s2w,
        ddf=ddf,
        fit_stats=fit_stats,
        yi=y,
        vi=v,
        X=X,
        coef_names=mm.names,
        terms=mm.terms,
        k=k,
        p=p,
        m=m,
        btt=tuple(int(b) for b in btt),
        int_only=int_only,
        int_incl=mm.int_incl,
        method=method,
        test=test,
        level=level if level > 1 else 100 * level,
        control=con,
        iterations=int(iters[0]),
        converged=True,
    )


# --------------------------------------------------------------------------------------------
# many independent intercept-only fits at once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RmaBatchResult:
    """Intercept-only fits of ``n_fits`` independent data sets of ``k`` studies each.

    Every array has shape ``(n_fits,)``; row ``b`` holds what :func:`rma` (and
    :func:`blinameta.frequentist.predict.predict` for ``pi_lb``/``pi_ub``) gives for data set ``b``. Rows
    whose tau² estimator did not converge have ``converged`` False and NaN estimates.

    Attributes
    ----------
    beta, se, zval, pval, ci_lb, ci_ub : ndarray
        Pooled estimate, its standard error, z or t statistic, p-value and confidence bounds.
    pi_lb, pi_ub : ndarray
        Prediction interval (NaN for EE models, as metafor).
    tau2, se_tau2, qe, qe_p, i2, h2, vt, s2w : ndarray
        As the fields of :class:`RmaResult` (``i2`` in percent).
    iterations : ndarray of int
    converged : ndarray of bool
    k, n_fits, method, test, level, ddf, control :
        Settings as used.
    """

    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    tau2: np.ndarray
    se_tau2: np.ndarray
    qe: np.ndarray
    qe_p: np.ndarray
    i2: np.ndarray
    h2: np.ndarray
    vt: np.ndarray
    s2w: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    k: int
    n_fits: int
    method: str
    test: str
    level: float
    ddf: float
    control: dict[str, Any] = field(default_factory=dict)

    _COLUMNS = (
        "beta", "se", "zval", "pval", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "se_tau2",
        "qe", "qe_p", "i2", "h2", "vt", "s2w", "iterations", "converged",
    )  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """One row per data set, one column per array field."""
        return pd.DataFrame({name: getattr(self, name) for name in self._COLUMNS})

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (arrays as lists), e.g. for JSON."""
        out = {}
        for key, value in asdict(self).items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


def rma_batch(
    yi: Any,
    vi: Any,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    control: dict[str, Any] | None = None,
) -> RmaBatchResult:
    """Fit the same intercept-only model to many independent data sets at once.

    Row ``b`` of the result equals ``rma(yi[b], vi[b], method=method, test=test, ...)``: the
    same estimators, stopping rules and formulas, run by the vectorised core that
    :mod:`blinameta.frequentist.permutest` uses (each row iterating to its own convergence). Use it for
    simulation studies or bootstraps; for one analysis call :func:`rma`.

    Parameters
    ----------
    yi, vi : array_like (n_fits, k)
        Effect sizes and sampling variances, one data set per row (``vi`` broadcast to the
        shape of ``yi``; a 1-D ``yi`` is one data set).
    method, test, level, control :
        As :func:`rma`.

    Returns
    -------
    RmaBatchResult
        A row that did not converge has NaN estimates and ``converged`` False (no error).

    Raises
    ------
    ValueError
        For bad input, as :func:`rma` (naming the first offending row).
    """
    method = _canonical_method(method)
    test = str(test).lower()
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    con = _control(control)
    Y = np.atleast_2d(np.asarray(yi, dtype=float))
    if Y.ndim != 2:
        raise ValueError("yi must be a 2-D array (one data set per row)")
    try:
        V = np.broadcast_to(np.asarray(vi, dtype=float), Y.shape).copy()
    except ValueError:
        raise ValueError(f"vi of shape {np.shape(vi)} does not fit yi of shape {Y.shape}") from None
    B, k = Y.shape
    if k < 1 or B < 1:
        raise ValueError("no studies")
    bad = ~(np.isfinite(Y).all(1) & np.isfinite(V).all(1))
    if bad.any():
        raise ValueError(f"yi and vi must be finite (row {int(np.argmax(bad))})")
    if (V < 0).any():
        row = int(np.argmax((V < 0).any(1)))
        raise ValueError(f"sampling variances must not be negative (row {row})")
    allvipos = (V > 0).all(1)
    if method != "EE" and not allvipos.all():
        row = int(np.argmin(allvipos))
        raise ValueError(f"the {method} estimator needs all sampling variances > 0 (row {row})")
    if k == 1:
        test = "z"  # metafor: test="z" when k = 1
    level = float(level)
    alpha = 1.0 - level / 100.0 if level > 1 else 1.0 - level

    tau2, iters, conv = _estimate_tau2(method, Y, None, V, con)
    with np.errstate(divide="ignore", invalid="ignore"):  # EE rows with a zero variance
        w = 1.0 / (V + tau2[:, None])
        s1 = w.sum(1)
        beta = (w * Y).sum(1) / s1
        resid = Y - beta[:, None]
        rss = (w * resid * resid).sum(1)
    if test in T_TESTS:
        ddf = float(k - 1)
        s2w = np.ones(B)
        if test in _KNHA_TESTS:
            s2w = np.where(rss <= _EPS, 0.0, rss / ddf)
        if test == "adhoc":
            s2w = np.where(s2w < 1.0, 1.0, s2w)
        crit = _t_isf(alpha / 2, ddf)
    else:
        ddf = math.nan
        s2w = np.ones(B)
        crit = _norm_isf(alpha / 2)
    vb = s2w / s1
    se = np.sqrt(vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    pval = _t_sf2(zval, ddf) if test in T_TESTS else _norm_sf2(zval)
    if method == "EE":
        pi_lb = pi_ub = np.full(B, np.nan)
    else:
        half = crit * np.sqrt(vb + tau2)
        pi_lb, pi_ub = beta - half, beta + half

    Ymc = Y - Y.mean(axis=1, keepdims=True)
    if k > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            wfe = 1.0 / V
            sfe = wfe.sum(1)
            rfe = Ymc - ((wfe * Ymc).sum(1) / sfe)[:, None]
            qe = np.maximum(0.0, (wfe * rfe * rfe).sum(1))
            vt = (k - 1) / (sfe - (wfe * wfe).sum(1) / sfe)
            if method == "EE":
                i2 = np.where(qe > 0, np.maximum(0.0, 100.0 * (qe - (k - 1)) / qe), 0.0)
                h2 = qe / (k - 1)
            else:
                i2 = 100.0 * tau2 / (vt + tau2)
                h2 = tau2 / vt + 1.0
        qe_p = _chi2_sf(qe, k - 1)
        qe, qe_p, i2, h2, vt = (np.where(allvipos, a, np.nan) for a in (qe, qe_p, i2, h2, vt))
        if method == "EE":
            se_tau2 = np.full(B, np.nan)
        else:
            se_tau2 = _se_tau2(method, Ymc, None, V, tau2)
    else:
        qe, qe_p, i2, h2, vt = (np.full(B, x) for x in (0.0, 1.0, 0.0, 1.0, 0.0))
        se_tau2 = np.full(B, np.nan)

    return RmaBatchResult(
        beta=beta,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=beta - crit * se,
        ci_ub=beta + crit * se,
        pi_lb=pi_lb,
        pi_ub=pi_ub,
        tau2=tau2,
        se_tau2=se_tau2,
        qe=qe,
        qe_p=qe_p,
        i2=i2,
        h2=h2,
        vt=vt,
        s2w=s2w,
        iterations=iters,
        converged=conv,
        k=k,
        n_fits=B,
        method=method,
        test=test,
        level=level if level > 1 else 100 * level,
        ddf=ddf,
        control=con,
    )
