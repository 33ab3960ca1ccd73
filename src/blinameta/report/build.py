"""``blinameta report``: regenerate the static HTML report from evidence/ and models/.

Incremental: each analysis has a fingerprint (a hash of its specification, the rows it selects
under every reading it uses, the publications it leaves out and why, and the report format);
an analysis whose fingerprint is unchanged is copied from the previous report, not refitted.
Atomic and confined: the new report is built in a sibling folder and swapped in atomically, so a
failed or killed run leaves the previous report as it was; the output folder must be new, empty
or a report of ours, and only the report's own files are replaced (see
:mod:`blinameta.report.outdir`). A reused analysis is checked file by file against the SHA-256
digests in the manifest. Nothing in ``evidence/`` or ``models/`` is written.
"""

from __future__ import annotations

import datetime as _dt
import functools
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
from blinameta.io import atomic_write_text, current_umask
from blinameta.report.outdir import (
    GENERATOR,
    MANIFEST,
    Interrupted,
    carry_user_files,
    check_out_dir,
    file_digests,
    interrupts,
    output_lock,
    owned_files,
    read_manifest,
    recover,
    refuse_in_the_way,
    signals_blocked,
    swap_in,
    user_files,
    verify_files,
)

__all__ = ["ReportSummary", "build_report", "analysis_fingerprint", "evidence_hash", "REPORT_FORMAT"]

#: Bumped whenever the report's pages or figures change shape, to invalidate old analyses.
REPORT_FORMAT = "4"
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
    notes: tuple[str, ...] = ()


@functools.lru_cache(maxsize=1)
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
    from blinameta.report.history import code_hash

    payload = {
        "format": REPORT_FORMAT,
        "code": code_hash(),  # pages and figures follow the code that draws them
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


def _fingerprint_and_size(evidence: Evidence, spec: AnalysisSpec) -> tuple[str, int]:
    """:func:`analysis_fingerprint` and the number of studies the analysis pools."""
    return analysis_fingerprint(evidence, spec), select(evidence, spec).k


def _generated_at() -> _dt.datetime:
    """The report's time stamp: ``$SOURCE_DATE_EPOCH`` if set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    return _dt.datetime.now(_dt.timezone.utc)


def _checked_out_dir(out_dir: Path, evidence_dir: Path, models_dir: Path, sources_dir: Path | None) -> Path:
    from blinameta.commands.validate import default_sources_dir  # where validate finds the sources

    protected = {"evidence": evidence_dir, "models": models_dir}
    sources = sources_dir if sources_dir is not None else default_sources_dir(evidence_dir)
    if sources is not None:
        protected["sources"] = sources
    return check_out_dir(out_dir, protected=protected, project_root=evidence_dir.resolve().parent)


def _refuse_user_files_in_the_way(out_dir: Path, old: dict[str, Any] | None, fingerprints: dict[str, str]) -> None:
    """Refuse before fitting if a user's file stands where the report will write one."""
    pages = {"index.html", "evidence.html", "style.css", MANIFEST, "analyses", "methods.html", "studies.html",
             "history.json", "summary_of_findings.csv", "flow.svg", "flow.png"}
    pages |= {f"analyses/{aid}.html" for aid in fingerprints} | {f"analyses/{aid}" for aid in fingerprints}
    folders = tuple(f"analyses/{aid}/" for aid in fingerprints)
    refuse_in_the_way(out_dir, [rel for rel in user_files(out_dir, owned_files(out_dir, old))
                                if (rel in pages or rel.startswith(folders))
                                and ((out_dir / rel).is_symlink() or not (out_dir / rel).is_dir())])


def _reusable(out_dir: Path, old: dict[str, Any] | None, fingerprints: dict[str, str],
              force: bool) -> tuple[set[str], list[str]]:
    """Analyses whose fingerprint is unchanged and whose every file is intact; notes for the rest."""
    if force or old is None or not isinstance(old.get("files"), dict):
        return set(), []
    files = old["files"]
    old_analyses = old.get("analyses") if isinstance(old.get("analyses"), dict) else {}
    reuse, notes = set(), []
    for aid, fp in fingerprints.items():
        entry = old_analyses.get(aid)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fp:
            continue
        page, summary = f"analyses/{aid}.html", f"analyses/{aid}/summary.json"
        mine = {rel: d for rel, d in files.items() if rel == page or rel.startswith(f"analyses/{aid}/")}
        bad = [rel for rel in (page, summary) if rel not in mine] or verify_files(out_dir, mine)
        if not bad:
            try:
                data = json.loads((out_dir / summary).read_text(encoding="utf-8"))
                if not isinstance(data, dict) or data.get("id") != aid:
                    bad = [summary]
            except (OSError, ValueError):
                bad = [summary]
        if bad:
            notes.append(f"{out_dir / bad[0]}: missing or changed since the report wrote it; {aid} refitted")
            continue
        reuse.add(aid)
    return reuse, notes


def build_report(
    evidence_dir: str | Path = "evidence",
    models_dir: str | Path = "models",
    out_dir: str | Path = "reports",
    *,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    sources_dir: str | Path | None = None,
) -> ReportSummary:
    """Regenerate the report; see the module docstring and :mod:`blinameta.report.outdir`.

    Parameters
    ----------
    evidence_dir, models_dir, out_dir
        The folders. ``out_dir`` must be new, empty or a report written by blinameta, and may not
        be, contain or lie inside ``evidence_dir``, ``models_dir`` or the sources folder, nor be or
        contain the project folder (the parent of ``evidence_dir``) or the current folder.
    force
        Rebuild every analysis even if unchanged.
    progress
        Called as ``progress(analysis_id, done, total)`` while fitting.
    sources_dir
        The source documents' folder (protected); default as ``blinameta validate`` finds it.

    Raises
    ------
    UserError
        For a refused output folder, invalid evidence or models, or a folder that cannot be written
        (the previous report is kept).
    """
    start = time.perf_counter()
    evidence_dir, models_dir = Path(evidence_dir), Path(models_dir)
    given_out = Path(out_dir)
    out_dir = _checked_out_dir(given_out, evidence_dir, models_dir,
                               Path(sources_dir) if sources_dir is not None else None)

    # fast path: the same evidence, models and code as the report's manifest records, and every
    # file of the report intact -> nothing to do (no validation, no selection: well under a second)
    quick_key = _quick_key(evidence_dir, models_dir) if evidence_dir.is_dir() and models_dir.is_dir() else None
    leftovers = any(out_dir.parent.glob(f".{out_dir.name}.*"))  # an earlier run to clean up: the full path
    if not force and quick_key is not None and out_dir.is_dir() and not leftovers:
        seen = read_manifest(out_dir)
        if (seen is not None and seen.get("quick_key") == quick_key and isinstance(seen.get("files"), dict)
                and isinstance(seen.get("analyses"), dict) and not verify_files(out_dir, seen["files"])):
            ids = tuple(seen["analyses"])
            return ReportSummary(out_dir, ids, (), ids, True, time.perf_counter() - start, ())
    evidence = load_evidence_or_fail(evidence_dir)
    from blinameta.report.render import worker_pool

    # the workers start now and import what they need while this process goes on
    with worker_pool(evidence) as pool:
        return _build(evidence, evidence_dir, models_dir, given_out, out_dir, force, progress, sources_dir, pool, start,
                      quick_key)


def _build(evidence: Evidence, evidence_dir: Path, models_dir: Path, given_out: Path, out_dir: Path, force: bool,
           progress, sources_dir, pool, start: float, quick_key: str | None) -> ReportSummary:
    from blinameta.report.history import code_hash

    from blinameta.report.render import _run_jobs

    specs, spec_files = load_specs_or_fail(models_dir, evidence.review, {p.id for p in evidence.publications})
    # each analysis' fingerprint and number of studies, in the worker processes when there are
    got = _run_jobs(evidence, [(spec.id, _fingerprint_and_size, (spec,)) for spec in specs], None, 0, pool)
    fingerprints = {spec.id: got[spec.id][0] for spec in specs}
    sizes = {spec.id: got[spec.id][1] for spec in specs}
    content = evidence_hash(evidence_dir, models_dir)
    # a new version of the code (pages, figures) is a new version of the report
    index_key = hashlib.sha256(json.dumps([content, fingerprints, REPORT_FORMAT, code_hash()]).encode()).hexdigest()
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with interrupts() as interrupted, output_lock(out_dir.parent):
            notes = recover(out_dir)
            # checked again under the lock: the folder may have changed while we loaded
            _checked_out_dir(given_out, evidence_dir, models_dir, Path(sources_dir) if sources_dir else None)
            old = read_manifest(out_dir) if out_dir.is_dir() else None
            if (not force and old is not None and old.get("index_key") == index_key
                    and isinstance(old.get("files"), dict) and not verify_files(out_dir, old["files"])):
                return ReportSummary(out_dir, tuple(fingerprints), (), tuple(fingerprints), True,
                                     time.perf_counter() - start, tuple(notes))
            _refuse_user_files_in_the_way(out_dir, old, fingerprints)
            reuse, reuse_notes = _reusable(out_dir, old, fingerprints, force)
            notes += reuse_notes
            rebuilt = _build_and_swap(evidence, specs, spec_files, out_dir, old, reuse, fingerprints, content,
                                      index_key, progress, interrupted, quick_key, pool, sizes)
    except OSError as exc:
        where = exc.filename or out_dir
        raise UserError(f"{where}: cannot write the report ({exc.strerror or exc}); "
                        "the previous report is kept") from None
    return ReportSummary(out_dir, tuple(fingerprints), tuple(rebuilt), tuple(sorted(reuse)), False,
                         time.perf_counter() - start, tuple(notes))


def _quick_key(evidence_dir: Path, models_dir: Path) -> str:
    """Hash of every file in the evidence and models folders (exclusions, README rules included),
    the code and the report format: equal keys mean an identical report."""
    from blinameta.report.history import code_hash

    h = hashlib.sha256(f"{REPORT_FORMAT}\0{code_hash()}\0".encode())
    for folder in (evidence_dir, models_dir):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _build_and_swap(evidence: Evidence, specs, spec_files, out_dir: Path, old: dict[str, Any] | None,
                    reuse: set[str], fingerprints: dict[str, str], content: str, index_key: str,
                    progress, interrupted, quick_key: str | None = None, pool=None,
                    sizes: dict[str, int] | None = None) -> list[str]:
    """Write the report into a staging folder beside ``out_dir`` and swap it in (lock held)."""
    from blinameta.report.history import read_history
    from blinameta.report.render import render_site

    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        (staging / "analyses").mkdir()
        for aid in sorted(reuse):
            shutil.copy2(out_dir / "analyses" / f"{aid}.html", staging / "analyses" / f"{aid}.html")
            shutil.copytree(out_dir / "analyses" / aid, staging / "analyses" / aid)
        meta = {
            "evidence_hash": content,
            "generated": _generated_at().strftime("%Y-%m-%d %H:%M UTC"),
            "versions": _package_versions(),
        }
        rebuilt = render_site(
            evidence, specs, spec_files, staging, meta=meta, fingerprints=fingerprints, reuse=reuse,
            progress=progress, history=read_history(out_dir), pool=pool, sizes=sizes,
        )
        manifest = {
            "generator": GENERATOR,
            "index_key": index_key,
            "quick_key": quick_key,
            "format": REPORT_FORMAT,
            "evidence_hash": content,
            "analyses": {aid: {"fingerprint": fp} for aid, fp in fingerprints.items()},
            "files": file_digests(staging),
        }
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        carry_user_files(out_dir, staging, owned_files(out_dir, old))
        os.chmod(staging, 0o777 & ~current_umask())
        with signals_blocked():
            if interrupted.is_set():
                raise Interrupted()
            swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rebuilt
