"""Timings of the Bayesian engine: exact path, cold NUTS (PyMC's and nutpie's), cached load.

Run from the repository root (optionally only some: ``exact mcmc sequence reuse cache``)::

    .venv/bin/python benchmarks/bench_bayes.py

Every MCMC figure is measured in a fresh Python process (subprocess), 4 chains × 1000 draws +
1000 tuning steps on the pediatric CR data (k = 6). "cold" uses an empty pytensor compile
directory (and so an empty numba cache for pytensor's numba-compiled graphs); "fresh process"
reuses the compile directory of the previous run, as a user's second session would.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

CR = ([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14])

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from blinameta.bayes import binomial_normal, fit
t1 = time.perf_counter()
spec = binomial_normal(*json.loads(sys.argv[1]))
result = fit(spec, sampler=sys.argv[2], cache=sys.argv[3] == "cache", cache_dir=sys.argv[4])
t2 = time.perf_counter()
warm = None
if sys.argv[5] == "warm":
    s = time.perf_counter()
    fit(spec, sampler=sys.argv[2], cache=False, seed=7)
    warm = time.perf_counter() - s
print(json.dumps({"import": t1 - t0, "fit": t2 - t1, "warm": warm,
                  "from_cache": result.from_cache, "rhat": result.diagnostics.rhat_max,
                  "ess_bulk": result.diagnostics.ess_bulk_min}))
"""


def _child(sampler: str, cache: str, cache_dir: str, warm: str, compiledir: str) -> dict:
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"compiledir={compiledir}"
    env["NUMBA_CACHE_DIR"] = os.path.join(compiledir, "numba")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(CR), sampler, cache, cache_dir, warm],
        env=env, capture_output=True, text=True, check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["process"] = time.perf_counter() - start
    return data


def bench_exact() -> None:
    from blinameta.bayes import binomial_normal, fit_exact

    rng = np.random.default_rng(1)
    n30 = rng.integers(10, 200, 30)
    cases = {
        "k=6 (CR)": binomial_normal(*CR),
        "k=6 zero events, half_cauchy:0.5": binomial_normal(
            [0, 1, 5, 8, 3, 2], [12, 15, 30, 25, 20, 18], prior_tau="half_cauchy:0.5"
        ),
        "k=30": binomial_normal(rng.binomial(n30, 0.3), n30),
    }
    fit_exact(cases["k=6 (CR)"])  # imports, first-call overheads
    for label, spec in cases.items():
        times = []
        for _ in range(15):
            s = time.perf_counter()
            fit_exact(spec)
            times.append(time.perf_counter() - s)
        print(f"exact path, {label}: median {statistics.median(times) * 1e3:.0f} ms, "
              f"best {min(times) * 1e3:.0f} ms (15 runs)")


def bench_mcmc(repeats: int = 3) -> None:
    rows: dict[str, list[dict]] = {"pymc": [], "nutpie": []}
    for _ in range(repeats):
        for sampler, runs in rows.items():  # alternate, so background load hits both alike
            with tempfile.TemporaryDirectory() as compiledir, tempfile.TemporaryDirectory() as cd:
                cold = _child(sampler, "nocache", cd, "warm", compiledir)
                again = _child(sampler, "nocache", cd, "no", compiledir)
            runs.append({"cold": cold["fit"], "import": cold["import"],
                                  "again": again["fit"], "warm": cold["warm"],
                                  "rhat": cold["rhat"], "ess": cold["ess_bulk"]})
    for sampler, runs in rows.items():
        def med(key, runs=runs):
            return statistics.median(r[key] for r in runs)

        print(
            f"{sampler:6s} (median of {repeats}) cold, empty compile cache: fit {med('cold'):.1f} s "
            f"[runs {', '.join(f'{r['cold']:.1f}' for r in runs)}] (+ import {med('import'):.1f} s); "
            f"fresh process, compile cache kept: {med('again'):.1f} s; "
            f"second fit in the same process: {med('warm'):.1f} s "
            f"[R-hat {runs[0]['rhat']:.3f}, bulk ESS {runs[0]['ess']:.0f}]"
        )


_SEQUENCE = r"""
import json, sys, time
from blinameta.bayes import binomial_normal, fit
specs = [
    binomial_normal([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14]),
    binomial_normal([0, 1, 5, 8, 3, 2], [12, 15, 30, 25, 20, 18]),
    binomial_normal([2, 25, 8, 30, 1, 14, 5, 9, 11, 3], [40, 30, 45, 36, 25, 20, 22, 31, 40, 18]),
    binomial_normal([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14],
                    mods={"setting": list("aabbab")}),
]
out = []
for spec in specs:
    s = time.perf_counter()
    r = fit(spec, sampler=sys.argv[1], cache=False)
    out.append([time.perf_counter() - s, r.retried])
print(json.dumps(out))
"""


def bench_sequence() -> None:
    """Four different analyses in one process (a report, a sensitivity analysis, the tests)."""
    for sampler in ("pymc", "nutpie"):
        out = subprocess.run([sys.executable, "-c", _SEQUENCE, sampler], capture_output=True,
                             text=True, check=True)
        times = json.loads(out.stdout.strip().splitlines()[-1])
        total = sum(t for t, _ in times)
        shown = ", ".join(f"{t:.1f}{' (retried)' if r else ''}" for t, r in times)
        print(f"{sampler:6s} four different models in one process: {shown} s; total {total:.1f} s")


_REUSE = r"""
import json, time
from blinameta.bayes import binomial_normal, fit
specs = [
    ("CR, first fit (compiles)", binomial_normal([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14])),
    ("other counts, same structure", binomial_normal([10, 22, 31, 15, 38, 12], [25, 60, 45, 30, 100, 20])),
    ("CR again, other seed", binomial_normal([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14])),
    ("zero events (more quadrature nodes: compiles)", binomial_normal([0, 1, 5, 8, 3, 2], [12, 15, 30, 25, 20, 18])),
]
out = []
for i, (label, spec) in enumerate(specs):
    s = time.perf_counter()
    fit(spec, cache=False, seed=i + 1)
    out.append([label, time.perf_counter() - s])
print(json.dumps(out))
"""


def bench_reuse() -> None:
    """nutpie fits in one process: a compiled model is reused for data of the same structure."""
    out = subprocess.run([sys.executable, "-c", _REUSE], capture_output=True, text=True,
                         check=True)
    for label, seconds in json.loads(out.stdout.strip().splitlines()[-1]):
        print(f"nutpie, one process: {label}: {seconds:.2f} s")


def bench_cache() -> None:
    with tempfile.TemporaryDirectory() as compiledir, tempfile.TemporaryDirectory() as cd:
        _child("nutpie", "cache", cd, "no", compiledir)
        hits = [_child("nutpie", "cache", cd, "no", compiledir) for _ in range(3)]
    assert all(h["from_cache"] for h in hits)
    fit_t = statistics.median(h["fit"] for h in hits)
    proc = statistics.median(h["process"] for h in hits)
    imp = statistics.median(h["import"] for h in hits)
    print(f"cached fit (fresh process): fit() {fit_t * 1e3:.0f} ms "
          f"(+ import of blinameta.bayes {imp * 1e3:.0f} ms; whole process {proc:.1f} s)")
    from blinameta.bayes import binomial_normal, fit

    spec = binomial_normal(*CR)
    with tempfile.TemporaryDirectory() as cd:
        fit(spec, cache_dir=cd)
        fit(spec, cache_dir=cd)
        times = []
        for _ in range(10):
            s = time.perf_counter()
            r = fit(spec, cache_dir=cd)
            times.append(time.perf_counter() - s)
        assert r.from_cache
    print(f"cached fit (same process, repeated): median {statistics.median(times) * 1e3:.0f} ms")


BENCHES = {"exact": bench_exact, "mcmc": bench_mcmc, "sequence": bench_sequence,
           "reuse": bench_reuse, "cache": bench_cache}

if __name__ == "__main__":
    # optional arguments: the names of the benchmarks to run (default all)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for name in sys.argv[1:] or BENCHES:
        BENCHES[name]()
