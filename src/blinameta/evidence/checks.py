"""Semantic checks of the evidence that the schema alone cannot make.

Errors: unknown outcome, moderator, source or cohort references; totals above the cohort's n;
subgroups larger than their parent; overlaps that point nowhere; duplicate outcome rows;
derivations naming fields that do not exist. Flagged discrepancies (kept, not errors): a printed
percentage that does not match events/total, alternative readings of a contradictory source, a
patient table whose size differs from its cohort's n.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from blinameta.evidence.loader import Evidence, Problem, format_path
from blinameta.evidence.schema import Derivation, Provenance, Publication

__all__ = ["check_evidence", "percent_matches", "iter_provenanced"]

_RESERVED_MODERATORS = {"design", "setting"}


def percent_matches(percent: float, events: int, total: int) -> bool:
    """Whether a printed percentage is ``100 * events / total`` rounded or truncated.

    The number of decimals is read from the printed value (``59.1`` has one); rounding half
    up or down and truncation are all accepted, as sources use each.
    """
    text = repr(float(percent))
    decimals = 0 if text.endswith(".0") else len(text.split(".")[1])
    exact = 100.0 * events / total
    scale = 10.0**decimals
    candidates = {
        math.floor(exact * scale + 0.5) / scale,
        math.ceil(exact * scale - 0.5) / scale,
        math.floor(exact * scale + 1e-9) / scale,
    }
    return any(abs(c - percent) < 0.5 / scale * 1e-6 + 1e-9 for c in candidates)


def iter_provenanced(
    record: BaseModel, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], BaseModel]]:
    """Every sub-record (with its path) that has a ``provenance`` field."""
    if "provenance" in type(record).model_fields:
        yield path, record
    for name in type(record).model_fields:
        value = getattr(record, name)
        if isinstance(value, BaseModel) and not isinstance(value, (Provenance, Derivation)):
            yield from iter_provenanced(value, path + (name,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel) and not isinstance(item, Provenance):
                    yield from iter_provenanced(item, path + (name, i))


def check_evidence(evidence: Evidence) -> list[Problem]:
    """All semantic problems of all publications, errors and flagged discrepancies."""
    problems: list[Problem] = []
    ids = {p.id for p in evidence.publications}
    for publication in evidence.publications:
        path = evidence.files[publication.id]
        parsed = evidence.lines[publication.id]

        def report(loc: tuple[Any, ...], message: str, severity: str = "error") -> None:
            problems.append(
                Problem(path, parsed.line_of(loc), format_path(loc), message, severity)  # type: ignore[arg-type]
            )

        _check_publication(evidence, publication, path, ids, report)
    return problems


def _check_publication(evidence: Evidence, pub: Publication, path: Path, ids: set[str], report) -> None:
    review = evidence.review
    if pub.id != path.stem:
        report(("id",), f"id {pub.id!r} must equal the file name {path.stem!r}")
    for i, source in enumerate(pub.reported_in):
        if source not in review.sources:
            report(("reported_in", i), f"unknown source {source!r}; known: {', '.join(review.sources)}")
    for i, overlap in enumerate(pub.overlaps):
        if overlap.with_ not in ids:
            report(("overlaps", i, "with"), f"overlap points to {overlap.with_!r}, which is no publication here")
        elif overlap.with_ == pub.id:
            report(("overlaps", i, "with"), "a publication cannot overlap itself")
    _check_moderators(review, pub.moderators, ("moderators",), report)

    cohorts = {c.id: c for c in pub.cohorts}
    for i, cohort in enumerate(pub.cohorts):
        loc = ("cohorts", i)
        _check_moderators(review, cohort.moderators, loc + ("moderators",), report)
        if cohort.parent is not None:
            parent = cohorts.get(cohort.parent)
            if parent is None:
                report(loc + ("parent",), f"no cohort {cohort.parent!r} in this publication")
            elif cohort.n > parent.n:
                report(loc + ("n",), f"subgroup n ({cohort.n}) exceeds its parent's n ({parent.n})")
            seen = {cohort.id}
            current = parent
            while current is not None and current.parent is not None:
                if current.parent in seen or current.parent == current.id:
                    report(loc + ("parent",), "cohort parents form a cycle")
                    break
                seen.add(current.id)
                current = cohorts.get(current.parent)
        if cohort.characteristics is not None:
            chars = cohort.characteristics
            if chars.prior_hsct is not None and chars.prior_hsct.n > cohort.n:
                report(loc + ("characteristics", "prior_hsct", "n"),
                       f"{chars.prior_hsct.n} exceeds the cohort's n ({cohort.n})")
            if chars.blast_burden is not None:
                for name in ("n_lt5", "n_ge5", "n_ge25", "n_ge50"):
                    value = getattr(chars.blast_burden, name)
                    if value is not None and value > cohort.n:
                        report(loc + ("characteristics", "blast_burden", name),
                               f"{value} exceeds the cohort's n ({cohort.n})")
            if chars.relapse_lines is not None:
                counts = [getattr(chars.relapse_lines, k) for k in
                          ("refractory", "first_relapse", "second_or_later")]
                total = sum(c for c in counts if c is not None)
                if total > cohort.n:
                    report(loc + ("characteristics", "relapse_lines"),
                           f"relapse-line counts add to {total}, more than the cohort's n ({cohort.n})",
                           "discrepancy")

    seen_rows: dict[tuple[str, str, str | None], int] = {}
    for i, outcome in enumerate(pub.outcomes):
        loc = ("outcomes", i)
        if outcome.code not in review.outcomes:
            report(loc + ("code",), f"unknown outcome code {outcome.code!r}; known: {', '.join(review.outcomes)}")
        cohort = cohorts.get(outcome.cohort)
        if cohort is None:
            report(loc + ("cohort",), f"no cohort {outcome.cohort!r} in this publication; known: {', '.join(cohorts)}")
        elif outcome.total > cohort.n:
            report(loc + ("total",), f"total ({outcome.total}) exceeds the cohort's n ({cohort.n})")
        key = (outcome.cohort, outcome.code, outcome.timepoint)
        if key in seen_rows:
            report(loc, f"same outcome, cohort and timepoint as outcomes[{seen_rows[key]}]")
        seen_rows[key] = i
        if outcome.percent is not None and not percent_matches(outcome.percent, outcome.events, outcome.total):
            report(loc + ("percent",),
                   f"printed {outcome.percent:g}% but {outcome.events}/{outcome.total} = "
                   f"{100 * outcome.events / outcome.total:.1f}%", "discrepancy")
        for j, alt in enumerate(outcome.alternatives):
            report(loc + ("alternatives", j),
                   f"{outcome.code} in {outcome.cohort}: primary {outcome.events}/{outcome.total}, "
                   f"alternative {alt.events}/{alt.total}: {alt.reason}", "discrepancy")
            if cohort is not None and alt.total > cohort.n:
                report(loc + ("alternatives", j, "total"),
                       f"total ({alt.total}) exceeds the cohort's n ({cohort.n})")

    for i, comparison in enumerate(pub.comparisons):
        loc = ("comparisons", i)
        for role in ("experimental", "control"):
            cid = getattr(comparison, role)
            if cid not in cohorts:
                report(loc + (role,), f"no cohort {cid!r} in this publication")
            elif cohorts[cid].kind != "arm":
                report(loc + (role,), f"cohort {cid!r} is not a randomized arm (kind: arm)")
        if pub.design != "randomized":
            report(loc, "comparisons belong to randomized publications (design: randomized)")

    if pub.patients is not None:
        table = pub.patients
        cohort = cohorts.get(table.cohort)
        if cohort is None:
            report(("patients", "cohort"), f"no cohort {table.cohort!r} in this publication")
        elif len(table.rows) != cohort.n:
            report(("patients", "rows"),
                   f"the patient table has {len(table.rows)} rows, the cohort's n is {cohort.n}",
                   "discrepancy")

    for loc, record in iter_provenanced(pub):
        for j, prov in enumerate(record.provenance):  # type: ignore[attr-defined]
            if prov.source not in review.sources:
                report(loc + ("provenance", j, "source"),
                       f"unknown source {prov.source!r}; known: {', '.join(review.sources)}")
        derived = getattr(record, "derived", None)
        if derived is not None:
            for name in derived.fields:
                if name not in type(record).model_fields or name in ("provenance", "derived"):
                    report(loc + ("derived", "fields"), f"{name!r} is no numeric field of this record")


def _check_moderators(review, values: dict, loc: tuple[Any, ...], report) -> None:
    for key, value in values.items():
        if key in _RESERVED_MODERATORS:
            report(loc + (key,), f"{key!r} is set by the publication's own field, not as a moderator")
            continue
        definition = review.moderators.get(key)
        if definition is None:
            report(loc + (key,), f"unknown moderator {key!r}; known: {', '.join(review.moderators)}")
        elif definition.type == "categorical":
            if not isinstance(value, str) or value not in (definition.levels or {}):
                report(loc + (key,), f"{value!r} is not a level of {key}; levels: {', '.join(definition.levels or {})}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            report(loc + (key,), f"{key} is continuous; {value!r} is not a number")
