"""Permutation tests for the coefficients of a meta-analytic model, as metafor's
``permutest.rma.uni``.

Models with moderators: the rows of the design matrix are permuted against (yi, vi) and the
model is refitted; the p-value of coefficient j is the share of permutations with
:math:`|z_j^*| \\ge |z_j| - \\epsilon` (:math:`\\epsilon = \\sqrt{\\text{machine eps}}`, metafor's
``comptol``), and for the omnibus test the share with :math:`Q_M^* \\ge Q_M - \\epsilon`.
Intercept-only models: the signs of the yi are flipped instead.

The test is *exact* (all distinct permutations enumerated: :math:`2^k` sign vectors, or
:math:`k!/\\prod_g n_g!` distinct row orders when rows of X repeat) when that number is at most
``n_perm`` (metafor's rule), otherwise ``n_perm`` random permutations are drawn, the first
replaced by the observed data (as metafor).

All refits run as one vectorised computation over the stack of permuted data sets (the same
numerical core as :func:`blinameta.frequentist.rma.rma`, each refit iterating to its own convergence).

Reference: Viechtbauer, W., López-López, J. A., Sánchez-Meca, J. & Marín-Martínez, F. (2015).
A comparison of procedures to test for moderators in mixed-effects meta-regression models.
*Psychol Methods* 20, 360-374.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from blinameta.frequentist.rma import RmaResult, _estimate_tau2, _fixed_effects

__all__ = ["PermutestResult", "permutest", "n_distinct_permutations"]

_COMPTOL = math.sqrt(np.finfo(float).eps)
_CHUNK_ELEMENTS = 4_000_000  # batch size * k * k per vectorised block


@dataclass(frozen=True)
class PermutestResult:
    """Permutation p-values (``pval`` per coefficient, ``qm_p`` for the omnibus test)."""

    pval: np.ndarray
    qm_p: float
    n_perm: int
    exact: bool
    exact_iter: float
    n_failed: int
    seed: int | None
    zval_perm: np.ndarray
    beta_perm: np.ndarray
    qm_perm: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        items = asdict(self).items()
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in items}


def _row_groups(X: np.ndarray) -> np.ndarray:
    """Index of the distinct row each row of X equals (0..G-1)."""
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    return inverse.ravel()


def n_distinct_permutations(X: np.ndarray) -> float:
    """Number of distinct row orders of X: :math:`k!/\\prod_g n_g!` (inf if it overflows)."""
    counts = np.bincount(_row_groups(X))
    k = X.shape[0]
    val = math.lgamma(k + 1) - sum(math.lgamma(c + 1) for c in counts)
    return float(round(math.exp(val))) if val < 700 else math.inf


def _multiset_permutations(labels: np.ndarray) -> np.ndarray:
    """All distinct arrangements of a multiset of labels, built position by position."""
    counts0 = np.bincount(labels)
    G, k = counts0.size, labels.size
    seqs = np.zeros((1, 0), dtype=np.int64)
    counts = counts0[None, :].copy()
    for _ in range(k):
        new_seqs, new_counts = [], []
        for g in range(G):
            ok = counts[:, g] > 0
            if not np.any(ok):
                continue
            s = np.concatenate([seqs[ok], np.full((ok.sum(), 1), g)], axis=1)
            c = counts[ok].copy()
            c[:, g] -= 1
            new_seqs.append(s)
            new_counts.append(c)
        seqs = np.concatenate(new_seqs)
        counts = np.concatenate(new_counts)
    return seqs


def _fit_stack(res: RmaResult, Y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, ...]:
    """beta, zval and QM for a stack of data sets, in memory-bounded chunks."""
    B, k = Y.shape
    vi = res.vi
    btt = np.asarray(res.btt)
    chunk = max(1, _CHUNK_ELEMENTS // (k * k))
    beta = np.full((B, res.p), np.nan)
    zval = np.full((B, res.p), np.nan)
    qm = np.full(B, np.nan)
    for start in range(0, B, chunk):
        sl = slice(start, min(B, start + chunk))
        Ys, Xs = Y[sl], X[sl]
        V = np.broadcast_to(vi, Ys.shape)
        with np.errstate(all="ignore"):
            tau2, _, _ = _estimate_tau2(res.method, Ys, Xs, V, res.control)
            fe = _fixed_effects(Ys, Xs, V, np.nan_to_num(tau2, nan=0.0), res.test, btt)
        bad = np.isnan(tau2)
        fe["beta"][bad] = np.nan
        fe["zval"][bad] = np.nan
        fe["qm"][bad] = np.nan
        beta[sl], zval[sl], qm[sl] = fe["beta"], fe["zval"], fe["qm"]
    return beta, zval, qm


def permutest(
    res: RmaResult,
    n_perm: int = 1000,
    seed: int | None = None,
    exact: bool | Literal["auto"] = "auto",
) -> PermutestResult:
    """Permutation test of a fitted :func:`blinameta.frequentist.rma.rma` model.

    Parameters
    ----------
    res : RmaResult
    n_perm : int
        Number of random permutations (metafor's ``iter``); also the threshold of the exact
        rule.
    seed : int, optional
        Seed of the ``numpy.random.default_rng`` used for random permutations.
    exact : "auto", True or False
        ``"auto"``: exact when the number of distinct permutations is <= ``n_perm``
        (metafor's ``exact=FALSE``); ``True``: always exact (metafor's ``exact=TRUE``);
        ``False``: always random.

    Returns
    -------
    PermutestResult
        ``pval`` per coefficient (two-sided, on the z or t statistics) and ``qm_p``.
    """
    n_perm = int(round(n_perm))
    if n_perm < 2:
        raise ValueError("n_perm must be >= 2")
    k = res.k
    if res.int_only:
        exact_iter = float(2**k) if k < 1024 else math.inf
    else:
        exact_iter = n_distinct_permutations(res.X)
    use_exact = exact is True or (exact == "auto" and exact_iter <= n_perm)
    if use_exact and not math.isfinite(exact_iter):
        raise ValueError("too many permutations for an exact test")
    if use_exact and exact_iter > 5e6:
        raise ValueError(f"an exact test needs {exact_iter:.0f} refits; use random permutations")
    rng = np.random.default_rng(seed)
    y = res.yi
    if res.int_only:
        if use_exact:
            B = int(exact_iter)
            bits = (np.arange(B)[:, None] >> np.arange(k)[None, :]) & 1
            signs = 1.0 - 2.0 * bits
        else:
            B = n_perm
            signs = rng.choice(np.array([-1.0, 1.0]), size=(B, k))
            signs[0] = 1.0
        Y = signs * y[None, :]
        X = np.broadcast_to(res.X, (B,) + res.X.shape)
    else:
        if use_exact:
            groups = _row_groups(res.X)
            # representative row of each group, in group order
            reps = np.array([np.flatnonzero(groups == g)[0] for g in range(groups.max() + 1)])
            arrangements = _multiset_permutations(np.sort(groups))
            X = res.X[reps[arrangements]]
            B = X.shape[0]
        else:
            B = n_perm
            order = np.argsort(rng.random((B, k)), axis=1)
            order[0] = np.arange(k)
            X = res.X[order]
        Y = np.broadcast_to(y, (B, k))
    beta, zval, qm = _fit_stack(res, np.ascontiguousarray(Y), np.ascontiguousarray(X))
    if not use_exact:
        beta[0], zval[0], qm[0] = res.beta, res.zval, res.qm
    ok = ~np.isnan(qm)
    pval = np.nanmean(np.abs(zval) >= np.abs(res.zval)[None, :] - _COMPTOL, axis=0,
                      where=~np.isnan(zval))
    pval = np.minimum(pval, 1.0)
    qm_p = float(np.mean(qm[ok] >= res.qm - _COMPTOL))
    return PermutestResult(
        pval=pval,
        qm_p=qm_p,
        n_perm=B,
        exact=bool(use_exact),
        exact_iter=exact_iter,
        n_failed=int((~ok).sum()),
        seed=seed,
        zval_perm=zval,
        beta_perm=beta,
        qm_perm=qm,
    )
