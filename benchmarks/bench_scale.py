"""Time and peak memory of ``pool`` and ``bayes --exact`` as the number of studies grows.

Issue 15 ("bounded resources"): the intercept-only fit, its Q-profile interval for tau² and the
exact posterior must not build k × k or k × grid × grid × nodes arrays, so ``pool`` and
``bayes --exact`` on 100,000 rows answer within a few GB, or refuse early with a message that
names the limit (the exact path stops at ``MAX_EXACT_STUDIES``, 20,000 studies).

Each run is a fresh process (``blinameta pool|bayes FILE.csv ... --json``) so that its peak
resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) and the peak of Python-tracked
allocations (``tracemalloc``, numpy included) are its own.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--max-k 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

_CHILD = textwrap.dedent("""
    import io, json, resource, sys, time, tracemalloc
    from contextlib import redirect_stderr, redirect_stdout
    from blinameta.cli import main
    tracemalloc.start()
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(sys.argv[1:])
    seconds = time.perf_counter() - start
    peak_traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"status": status, "seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_traced_mb": peak_traced / 2**20, "error": err.getvalue().strip()[:160]}))
""")


def _csv(folder: Path, k: int, kind: str) -> Path:
    rng = np.random.default_rng(k)
    path = folder / f"{kind}_{k}.csv"
    if kind == "yi":
        v = rng.uniform(0.02, 0.5, k)
        y = rng.normal(-0.3, np.sqrt(v + 0.1))
        rows = "\n".join(f"{a:.6f},{b:.6f}" for a, b in zip(y, v))
        path.write_text("yi,vi\n" + rows + "\n")
    else:
        n = rng.integers(10, 200, k)
        p = 1 / (1 + np.exp(-rng.normal(-0.5, 0.6, k)))
        x = rng.binomial(n, p)
        path.write_text("events,total\n" + "\n".join(f"{a},{b}" for a, b in zip(x, n)) + "\n")
    return path


def _run(args: list[str]) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env,
                          timeout=3600)
    if proc.returncode != 0:
        return {"status": proc.returncode, "seconds": float("nan"), "peak_rss_mb": float("nan"),
                "peak_traced_mb": float("nan"), "error": proc.stderr.strip().splitlines()[-1][:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-k", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [k for k in (1_000, 10_000, 100_000) if k <= args.max_k]
    cases = [
        ("pool REML+knha (yi, vi)", "yi", ["pool", "{f}", "--yi", "yi", "--vi", "vi", "--test", "knha", "--json"]),
        ("pool PM (yi, vi)", "yi", ["pool", "{f}", "--yi", "yi", "--vi", "vi", "--method", "PM", "--json"]),
        ("bayes --exact normal-normal", "yi", ["bayes", "{f}", "--yi", "yi", "--vi", "vi", "--exact", "--json"]),
        ("bayes --exact binomial-normal", "ev", ["bayes", "{f}", "--events", "events", "--total", "total",
                                                 "--exact", "--json"]),
    ]
    print(f"{'case':34} {'k':>8} {'status':>6} {'seconds':>9} {'peak RSS MB':>12} {'traced MB':>10}  note")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, template in cases:
            for k in sizes:
                path = _csv(Path(tmp), k, kind)
                r = _run([a.replace("{f}", str(path)) for a in template])
                note = r["error"] if r["status"] != 0 else ""
                print(f"{name:34} {k:>8,} {r['status']:>6} {r['seconds']:>9.2f} {r['peak_rss_mb']:>12.0f} "
                      f"{r['peak_traced_mb']:>10.0f}  {note}", flush=True)


if __name__ == "__main__":
    main()
