"""``blinameta report``: regenerate the static HTML report from evidence/ and models/.

Incremental: each analysis has a fingerprint (a hash of its specification, the rows it selects
under every reading it uses, the publications it leaves out and why, and the report format);
an analysis whose fingerprint is unchanged is copied from the previous report, not refitted.
Atomic: the new report is built in a sibling folder and swapped in with two renames, so a
failed run leaves the previous report as it was. Nothing in ``evidence/`` or ``models/`` is
written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from blinameta.analysis.select import select
from blinameta.analysis.spec import AnalysisSpec, load_specs_or_fail
from blinameta.errors import UserError
from blinameta.evidence.loader import Evidence, evidence_files, load_evidence_or_fail
from blinameta.io import atomic_write_text

__all__ = ["ReportSummary", "build_report", "analysis_fingerprint", "evidence_hash", "REPORT_FORMAT"]

#: Bumped whenever the report's pages or figures change shape, to invalidate old analyses.
REPORT_FORMAT = "3"
MANIFEST = "manifest.json"
_PACKAGES = ("blinameta", "numpy", "scipy", "pandas", "statsmodels", "pymc", "arviz", "matplotlib", "pydantic")


@dataclass(frozen=True)
class ReportSummary:
    """What a run did."""

    out_dir: Path
    analyses: tuple[str, ...]
    rebuilt: tuple[str, ...]
    reused: tuple[str, ...]
    unchanged: bool
    seconds: float


def _package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "not installed"
    return out


def evidence_hash(evidence_dir: Path, models_dir: Path | None = None) -> str:
    """SHA-256 of the evidence files (and model files), names and contents, in sorted order."""
    h = hashlib.sha256()
    paths = [evidence_dir / "review.yaml", *evidence_files(evidence_dir)]
    if models_dir is not None:
        paths += sorted(models_dir.glob("*.yaml"))
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _rows_json(selection) -> Any:
    rows = selection.rows
    if rows.empty:
        return []
    return json.loads(rows.to_json(orient="records", double_precision=15))


def _quoted_sources(evidence: Evidence, selection) -> dict[str, Any]:
    """The source documents the selected publications quote (so that registering a new source
    document changes only the analyses whose publications quote it)."""
    used = set(selection.rows["study_id"]) if not selection.rows.empty else set()
    used |= {e.study_id for e in selection.excluded if e.kind != "no_data"}
    keys = sorted({key for pub in evidence.publications if pub.id in used for key in pub.reported_in})
    sources = evidence.review.sources
    return {key: sources[key].model_dump(mode="json") for key in keys if key in sources}


def analysis_fingerprint(evidence: Evidence, spec: AnalysisSpec) -> str:
    """Hash of everything an analysis page depends on (not of publications it never uses)."""
    main = select(evidence, spec)
    payload = {
        "format": REPORT_FORMAT,
        "blinameta": _package_versions()["blinameta"],
        "spec": spec.model_dump(mode="json"),
        "review": evidence.review.model_dump(mode="json", include={"outcomes", "moderators"}),
        "sources": _quoted_sources(evidence, main),
        "rows": _rows_json(main),
        "excluded": [e.to_dict() for e in main.excluded if e.kind != "no_data"],
        "alternative": _rows_json(select(evidence, spec, readings="alternative")) if spec.kind != "hazard_ratio" else [],
        "no_derived": _rows_json(select(evidence, spec, exclude_derived=True)),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _recover(out_dir: Path) -> None:
    """Finish a swap that an earlier run could not finish."""
    if not out_dir.exists():
        olds = sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"))
        if olds:
            os.replace(olds[-1], out_dir)
    for stale in out_dir.parent.glob(f".{out_dir.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.new-*"):
        if time.time() - stale.stat().st_mtime > 3600:  # not a concurrent run's staging folder
            shutil.rmtree(stale, ignore_errors=True)


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def build_report(
    evidence_dir: str | Path = "evidence",
    models_dir: str | Path = "models",
    out_dir: str | Path = "reports",
    *,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReportSummary:
    """Regenerate the report; see the module docstring.

    Parameters
    ----------
    evidence_dir, models_dir, out_dir
        The folders. ``out_dir`` must not be inside ``evidence_dir`` or ``models_dir``.
    force
        Rebuild every analysis even if unchanged.
    progress
        Called as ``progress(analysis_id, done, total)`` while fitting.
    """
    start = time.perf_counter()
    evidence_dir, models_dir, out_dir = Path(evidence_dir), Path(models_dir), Path(out_dir)
    for protected in (evidence_dir, models_dir):
        if protected.exists() and _inside(out_dir, protected):
            raise UserError(f"{out_dir}: the report may not be written inside {protected}")
    evidence = load_evidence_or_fail(evidence_dir)
    specs, spec_files = load_specs_or_fail(models_dir, evidence.review, {p.id for p in evidence.publications})
    _recover(out_dir)
    old = _read_manifest(out_dir)
    fingerprints = {spec.id: analysis_fingerprint(evidence, spec) for spec in specs}
    content = evidence_hash(evidence_dir, models_dir)
    index_key = hashlib.sha256(json.dumps([content, fingerprints, REPORT_FORMAT]).encode()).hexdigest()
    if not force and old.get("index_key") == index_key and (out_dir / "index.html").is_file():
        return ReportSummary(out_dir, tuple(fingerprints), (), tuple(fingerprints), True, time.perf_counter() - start)

    from blinameta.report.render import render_site

    old_analyses = old.get("analyses", {})
    reuse = {
        aid for aid, fp in fingerprints.items()
        if not force and old_analyses.get(aid, {}).get("fingerprint") == fp
        and (out_dir / "analyses" / f"{aid}.html").is_file()
        and (out_dir / "analyses" / aid / "summary.json").is_file()
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        (staging / "analyses").mkdir()
        for aid in reuse:
            shutil.copy2(out_dir / "analyses" / f"{aid}.html", staging / "analyses" / f"{aid}.html")
            shutil.copytree(out_dir / "analyses" / aid, staging / "analyses" / aid)
        meta = {
            "evidence_hash": content,
            "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": _package_versions(),
        }
        rebuilt = render_site(
            evidence, specs, spec_files, staging, meta=meta, fingerprints=fingerprints, reuse=reuse,
            progress=progress,
        )
        manifest = {
            "index_key": index_key,
            "format": REPORT_FORMAT,
            "evidence_hash": content,
            "analyses": {aid: {"fingerprint": fp} for aid, fp in fingerprints.items()},
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        # keep files in out_dir that are not ours (e.g. a .gitkeep)
        if out_dir.exists():
            for extra in out_dir.iterdir():
                if extra.name.startswith(".git") and extra.is_file() and not (staging / extra.name).exists():
                    shutil.copy2(extra, staging / extra.name)
        os.chmod(staging, 0o755)
        backup = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            os.replace(out_dir, backup)
        os.replace(staging, out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReportSummary(out_dir, tuple(fingerprints), tuple(rebuilt), tuple(sorted(reuse)), False,
                         time.perf_counter() - start)
