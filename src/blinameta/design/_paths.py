"""Exact operating characteristics of a sequential rule on a binomial count, without simulation."""

from __future__ import annotations

import numpy as np

__all__ = ["propagate"]


def propagate(p, n_max: int, looks, lower, upper):
    """Absorb the paths that cross a boundary, patient by patient.

    Each row is one (rule, rate) pair: at look ``looks[j]`` row ``i`` stops with
    ``x <= lower[i, j]`` (``-1``: never) or ``x >= upper[i, j]`` (``> look``: never) events
    so far, the events arising at rate ``p[i]``. One-dimensional ``lower``/``upper`` apply to
    every row.

    Returns
    -------
    low, high : numpy.ndarray, shape (rows, len(looks))
        Probability of stopping at each look through the lower / upper boundary.
    final : numpy.ndarray, shape (rows, n_max + 1)
        Sub-distribution of the events among ``n_max`` patients on the paths never stopped.
    """
    p = np.atleast_1d(np.asarray(p, dtype=float))
    rows = p.size
    lower = np.broadcast_to(np.asarray(lower, dtype=int), (rows, len(looks)))
    upper = np.broadcast_to(np.asarray(upper, dtype=int), (rows, len(looks)))
    x = np.arange(n_max + 1)[None, :]
    f = np.zeros((rows, n_max + 1))
    f[:, 0] = 1.0
    low = np.zeros((rows, len(looks)))
    high = np.zeros((rows, len(looks)))
    at = {n: j for j, n in enumerate(looks)}
    q = p[:, None]
    for n in range(1, n_max + 1):
        f[:, 1:n + 1] = f[:, 1:n + 1] * (1 - q) + f[:, 0:n] * q
        f[:, 0] *= 1 - p
        j = at.get(n)
        if j is None:
            continue
        out_low = x <= lower[:, j, None]
        out_high = x >= upper[:, j, None]
        low[:, j] = np.where(out_low, f, 0.0).sum(axis=1)
        high[:, j] = np.where(out_high, f, 0.0).sum(axis=1)
        f[out_low | out_high] = 0.0
    return low, high, f
