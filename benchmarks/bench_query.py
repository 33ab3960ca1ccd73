"""Speed of ``blinameta query``: a cold command line against the warm Python API.

Prints:
1. the wall time of a cold ``blinameta query --outcome cr --n 30 --p0 0.3 --simon 0.3,0.05,0.2,0.4``
   in a fresh interpreter (best of 3), and of ``python -c "import ..."`` for the modules the
   command imports, so the cost of start-up and imports is separated from the computation;
2. in one warm process, the same query through the Python API (evidence already loaded), and
   the design computations alone on its predictive distribution: assurance of the exact test,
   the sample-size search over 1..500, Simon's designs for p0 = 0.3, p1 = 0.4 (optimum at
   n = 168, searched to 300), Lee & Liu monitoring (searched thresholds) and safety boundaries.

Run: ``.venv/bin/python benchmarks/bench_query.py`` from the repository root. Warm timings are
printed as wall time and CPU time: on a shared machine the CPU time is the better guide to what
the same call costs on an idle one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--outcome", "cr", "--n", "30", "--p0", "0.3", "--simon", "0.3,0.05,0.2,0.4"]


def _cold(code: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def _warm(func, repeat: int = 3) -> tuple[float, float]:
    """Best wall time and best CPU time of ``repeat`` calls (CPU time is what a loaded machine hides)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    print("cold (fresh interpreter, best of 3):")
    cli = f"from blinameta.cli import main; main({['query', *ARGS]!r})"
    rows = [
        ("python -c pass", "pass"),
        ("import numpy, scipy.stats", "import numpy, scipy.stats"),
        ("import blinameta.cli", "import blinameta.cli"),
        ("import blinameta.cli + evidence loader (pydantic, YAML)", "import blinameta.cli, blinameta.evidence.loader"),
        ("import blinameta.cli + analysis (frequentist, bayes.exact)", "import blinameta.cli, blinameta.analysis.run, blinameta.bayes.exact"),
        ("import the loader and load the evidence folder", "from blinameta.evidence.loader import load_evidence; load_evidence('evidence')"),
        ("blinameta query " + " ".join(ARGS), cli),
    ]
    for label, code in rows:
        print(f"  {_cold(code):7.2f} s  {label}")

    from blinameta.analysis.query import query
    from blinameta.design import (
        assurance_test,
        predictive_monitoring,
        safety_boundaries,
        sample_size_for_assurance,
        simon_two_stage,
    )
    from blinameta.evidence.loader import load_evidence

    evidence = load_evidence(ROOT / "evidence")
    result = query("cr", evidence=evidence, models=ROOT / "models")
    pred = result._predictive
    print(f"\nwarm (one process, evidence loaded; predictive: {pred.nodes.size} nodes; best of 3; wall / CPU):")
    timings = [
        ("query('cr') (selection, exact Bayesian fit, headline)",
         lambda: query("cr", evidence=evidence, models=ROOT / "models")),
        ("query('cr', n=30, p0=0.3, simon=(0.3, 0.05, 0.2, 0.4))",
         lambda: query("cr", evidence=evidence, models=ROOT / "models", n=30, p0=0.3, simon=(0.3, 0.05, 0.2, 0.4))),
        ("assurance_test(30, 0.3)", lambda: assurance_test(30, 0.3, pred)),
        ("sample_size_for_assurance(0.8, 0.3), N = 1..500", lambda: sample_size_for_assurance(0.8, 0.3, pred)),
        ("simon_two_stage(0.3, 0.4, 0.05, 0.2) with assurance", lambda: simon_two_stage(0.3, 0.4, 0.05, 0.2, predictive=pred)),
        ("simon_two_stage(0.3, 0.5, 0.05, 0.2)", lambda: simon_two_stage(0.3, 0.5, 0.05, 0.2)),
        ("predictive_monitoring(0.3, 0.5, Nmax 46, thresholds searched)",
         lambda: predictive_monitoring(0.3, 0.5, 0.54, n_max=46, predictive=pred)),
        ("safety_boundaries(limit 0.15, N 46)", lambda: safety_boundaries("crs", 0.15, 0.03, n_max=46)),
    ]
    for label, func in timings:
        wall, cpu = _warm(func)
        print(f"  {wall:7.3f} s / {cpu:6.3f} s  {label}")


if __name__ == "__main__":
    main()
