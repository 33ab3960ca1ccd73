"""Speed of the binomial-normal GLMM and of influence diagnostics at k = 15, beside metafor.

Run: ``.venv/bin/python benchmarks/bench_glmm.py``. Prints fits per second of
:func:`blinameta.frequentist.glmm.rma_glmm` (nAGQ = 7) and the time of :func:`blinameta.frequentist.diagnostics.influence`
on a REML model; when ``Rscript`` with metafor is on the PATH, the same two figures for
``rma.glmm(measure="PLO")`` (glmer defaults) and ``influence(rma(...))``.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np

from blinameta.frequentist.diagnostics import influence
from blinameta.frequentist.glmm import rma_glmm
from blinameta.frequentist.rma import rma

K = 15


def _data(seed: int = 2026) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = rng.integers(15, 120, size=K)
    logit = rng.normal(-0.2, 0.5, size=K)
    events = rng.binomial(total, 1 / (1 + np.exp(-logit)))
    return events, total


def _rate(fn, min_seconds: float = 2.0) -> tuple[float, int]:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n, n


def main() -> None:
    events, total = _data()
    yi = np.log((events + 0.5) / (total - events + 0.5))
    vi = 1 / (events + 0.5) + 1 / (total - events + 0.5)
    t_glmm, n_glmm = _rate(lambda: rma_glmm(events, total))
    res = rma(yi, vi)
    t_inf, n_inf = _rate(lambda: influence(res))
    print(f"k = {K}")
    print(f"blinameta rma_glmm (nAGQ=7): {1 / t_glmm:8.1f} fits/s  ({1000 * t_glmm:.1f} ms/fit, {n_glmm} runs)")
    print(f"blinameta influence (REML):  {1000 * t_inf:8.2f} ms       ({n_inf} runs)")
    if shutil.which("Rscript") is None:
        print("Rscript not found: metafor figures skipped")
        return
    r_code = f"""
suppressPackageStartupMessages(library(metafor))
xi <- c({', '.join(map(str, events))}); ni <- c({', '.join(map(str, total))})
dat <- escalc(measure = "PLO", xi = xi, ni = ni)
f <- function() rma.glmm(measure = "PLO", xi = xi, ni = ni)
invisible(f()); n <- 0; t0 <- proc.time()[3]
while (proc.time()[3] - t0 < 2) {{ f(); n <- n + 1 }}
tg <- (proc.time()[3] - t0) / n
res <- rma(yi, vi, data = dat)
g <- function() influence(res)
invisible(g()); m <- 0; t0 <- proc.time()[3]
while (proc.time()[3] - t0 < 2) {{ g(); m <- m + 1 }}
ti <- (proc.time()[3] - t0) / m
cat(sprintf("metafor %s rma.glmm (nAGQ=7): %8.1f fits/s  (%.1f ms/fit, %d runs)\\n", packageVersion("metafor"), 1 / tg, 1000 * tg, n))
cat(sprintf("metafor influence (REML):  %8.2f ms       (%d runs)\\n", 1000 * ti, m))
"""
    out = subprocess.run(["Rscript", "-e", r_code], capture_output=True, text=True, timeout=300)
    print(out.stdout.strip() or f"Rscript failed: {out.stderr.strip()[-300:]}")


if __name__ == "__main__":
    main()
