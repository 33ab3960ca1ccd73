"""The living review: versions, their machine-readable history and "what changed".

A version is the fingerprint of the evidence (every publication file and review.yaml), the
analysis specifications and the code (the blinameta package's source and templates). Each new
version appends one entry to ``reports/history.json``: its date and, per analysis, the primary
estimate and the certainty. Building the same version again reuses its entry and its date, so
the report is byte-identical. The index compares the current version with the one before it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from blinameta.report.labels import pct, ratio, symbols
from blinameta.report.sof import certainty_of, primary_of

__all__ = ["code_hash", "version_of", "read_history", "next_history", "changes", "HISTORY"]

HISTORY = "history.json"


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 of the package's Python sources and report templates (names and contents),
    computed once per process."""
    h = hashlib.sha256()
    root = files("blinameta")
    paths = sorted(p for p in Path(str(root)).rglob("*") if p.suffix in (".py", ".html", ".css", ".yaml")
                   and "__pycache__" not in p.parts)
    for p in paths:
        h.update(str(p.relative_to(Path(str(root)))).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def publication_hashes(evidence: Any) -> dict[str, dict[str, str]]:
    """Publication id -> hash of its file and its display label."""
    from blinameta.report.labels import study_display_label

    out = {}
    for pub in evidence.publications:
        path = evidence.files.get(pub.id)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
        out[pub.id] = {"hash": digest[:16], "label": study_display_label(pub)}
    return out


def version_of(evidence_hash: str, code: str) -> str:
    """The version id: 12 hex digits of the fingerprint of evidence + models (``evidence_hash``) and code."""
    return hashlib.sha256(f"{evidence_hash}\0{code}".encode()).hexdigest()[:12]


def read_history(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(out_dir) / HISTORY).read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("versions"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"versions": []}


def _estimates(summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for s in summaries:
        p = primary_of(s) or {}
        c = certainty_of(s)
        out[s["id"]] = {"title": s.get("title", ""), "kind": s.get("kind"), "k": s.get("k", 0),
                        "patients": s.get("patients", 0), "method": p.get("method"), "estimate": p.get("estimate"),
                        "ci_lb": p.get("ci_lb"), "ci_ub": p.get("ci_ub"), "certainty": c.get("level")}
    return out


def new_entry(version: str, evidence: Any, summaries: list[dict[str, Any]], date: str | None = None) -> dict[str, Any]:
    return {"version": version,
            "date": date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "publications": publication_hashes(evidence), "analyses": _estimates(summaries)}


def previous_version(history: dict[str, Any], version: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the last entry if it is ``version``, the entry to compare with).

    The history is chronological: a state seen before (a publication added, then removed) is a
    new entry with its own date; only a rerun of the latest version reuses its entry.
    """
    versions = history.get("versions", [])
    if versions and versions[-1].get("version") == version:
        return versions[-1], (versions[-2] if len(versions) > 1 else None)
    return None, (versions[-1] if versions else None)


def next_history(history: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The history with ``entry`` appended unless it is the latest version already."""
    versions = list(history.get("versions", []))
    if versions and versions[-1].get("version") == entry["version"]:
        return {"format": 1, "versions": versions}
    return {"format": 1, "versions": versions + [entry]}


def _fmt(kind: str | None, v: Any) -> str:
    return pct(v) if kind == "proportion" else ratio(v)


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """What changed between two history entries (None for the first version)."""
    if old is None:
        return None
    op, np_ = old.get("publications", {}), new.get("publications", {})
    added = [np_[k]["label"] for k in sorted(set(np_) - set(op))]
    removed = [op[k]["label"] for k in sorted(set(op) - set(np_))]
    changed = [np_[k]["label"] for k in sorted(set(op) & set(np_)) if op[k]["hash"] != np_[k]["hash"]]
    outcomes = []
    oa, na = old.get("analyses", {}), new.get("analyses", {})
    for aid, n in na.items():
        o = oa.get(aid)
        kind = n.get("kind")
        row = {"id": aid, "title": symbols(n.get("title", "")), "new": _est_text(kind, n),
               "new_certainty": n.get("certainty"), "old": _est_text(kind, o) if o else "not in the previous version",
               "old_certainty": (o or {}).get("certainty")}
        row["changed"] = o is None or row["old"] != row["new"] or row["old_certainty"] != row["new_certainty"]
        outcomes.append(row)
    for aid in sorted(set(oa) - set(na)):
        outcomes.append({"id": aid, "title": symbols(oa[aid].get("title", "")), "old": _est_text(oa[aid].get("kind"), oa[aid]),
                         "new": "removed", "old_certainty": oa[aid].get("certainty"), "new_certainty": None, "changed": True})
    return {"since": old.get("version"), "since_date": old.get("date"), "added": added, "removed": removed,
            "changed": changed, "outcomes": outcomes}


def _est_text(kind: str | None, e: dict[str, Any] | None) -> str:
    if not e or e.get("estimate") is None:
        return "no estimate"
    return f"{_fmt(kind, e['estimate'])} ({_fmt(kind, e.get('ci_lb'))} to {_fmt(kind, e.get('ci_ub'))}), k = {e.get('k')}"
