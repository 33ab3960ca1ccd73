"""Speed of ``blinameta report`` on the committed evidence and models.

Prints wall times of:
1. a warm-up build (fills the posterior cache if it is cold; not a target). The report fits
   every posterior exactly (no MCMC), so this is also the fully cold build;
2. a cold build: an empty output folder, the posterior cache warm (target < 10 s on 2 cores);
3. the same cold build as a user runs it, ``blinameta report`` in a new process (Python start-up
   and imports included), with its CPU time;
4. an unchanged re-run: the same inputs, nothing to do (target < 1 s);
5. a forced rebuild of the same version (every analysis refitted; the pages must come out
   byte-identical, which the script checks).

Analyses are fitted and drawn in ``BLINAMETA_JOBS`` worker processes (default 2). Run from the
repository root: ``.venv/bin/python benchmarks/bench_report.py``. The machine's other load shows
in the numbers; run it twice before believing one.
"""

from __future__ import annotations

import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def main() -> int:
    t0 = time.perf_counter()
    from blinameta.report import build_report

    print(f"import blinameta.report: {time.perf_counter() - t0:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "evidence", root / "evidence")
        shutil.copytree(ROOT / "models", root / "models")
        out = root / "reports"

        def timed(label: str, **kw) -> float:
            t = time.perf_counter()
            summary = build_report(root / "evidence", root / "models", out, **kw)
            dt = time.perf_counter() - t
            print(f"{label:<44} {dt:7.2f} s   ({len(summary.rebuilt)} analyses fitted, "
                  f"{'unchanged' if summary.unchanged else 'written'})")
            return dt

        timed("warm-up build (fills the posterior cache)")
        shutil.rmtree(out)
        cold = timed("cold build, posterior cache warm")
        shutil.rmtree(out)
        before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "blinameta", "report", "-q", "--evidence", str(root / "evidence"),
                        "--models", str(root / "models"), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        cli = time.perf_counter() - t
        after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after_cpu.ru_utime + after_cpu.ru_stime) - (before_cpu.ru_utime + before_cpu.ru_stime)
        print(f"{'cold build, blinameta report in a new process':<44} {cli:7.2f} s   (CPU {cpu:.1f} s)")
        before = _digest(out)
        unchanged = timed("unchanged re-run")
        timed("forced rebuild of the same version", force=True)
        same = _digest(out) == before
        print(f"forced rebuild byte-identical: {same}")
        print(f"targets: cold < 10 s: {'met' if max(cold, cli) < 10 else 'NOT met'}; unchanged < 1 s: "
              f"{'met' if unchanged < 1 else 'NOT met'}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
