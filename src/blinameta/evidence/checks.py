"""Semantic checks of the evidence that the schema alone cannot make.

Errors: unknown outcome, moderator, source or cohort references; totals above the cohort's n;
subgroups larger than their parent; overlaps that point nowhere or are not declared back with
the inverse relation (resolved against the folder the file lives in, so that one file can be
validated alone); duplicate outcome rows; derivations or external blocks naming fields that do
not exist; proportion rows without counts; survival rows without a time point or median; a
definition family the review does not define for the outcome; a risk-of-bias block with an
unknown tool, a missing, repeated or unknown item, or a judgement the tool does not allow;
problems of the folder's ``exclusions.yaml`` (:mod:`blinameta.evidence.exclusions`).

Flagged discrepancies (kept, not errors): a printed percentage that does not match
events/total, alternative readings of a contradictory source, a patient table whose size
differs from its cohort's n. Warnings: an overlap that is not transitively consistent (A
overlaps B, C is the same patients as B or a subset of them, and A does not declare C); a stated
overall risk of bias that differs from the
tool's rule (:func:`blinameta.evidence.rob.overall_from_items`) without an ``override:``
reason. Error: a publication with results but no risk-of-bias block
(:data:`MISSING_RISK_OF_BIAS_SEVERITY`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from blinameta.evidence.exclusions import check_exclusions
from blinameta.evidence.loader import Evidence, Problem, evidence_files, format_path
from blinameta.evidence.placeholders import placeholder_fields
from blinameta.evidence.rob import overall_from_items, worst
from blinameta.evidence.schema import Derivation, External, Provenance, Publication, RobItem
from blinameta.evidence.yamlsafe import parse_yaml

__all__ = [
    "check_evidence",
    "percent_matches",
    "iter_provenanced",
    "INVERSE_RELATION",
    "MISSING_RISK_OF_BIAS_SEVERITY",
    "overlap_index",
]

_RESERVED_MODERATORS = {"design", "setting"}

#: Severity of a publication with outcome rows or comparisons but no ``risk_of_bias`` block: an
#: error, since every publication of the evidence base is judged (Cochrane Handbook ch. 7-8).
MISSING_RISK_OF_BIAS_SEVERITY = "error"

#: The relation the other publication of an overlap must declare back.
INVERSE_RELATION = {"same_patients": "same_patients", "subset": "superset", "superset": "subset",
                    "partial": "partial"}
_NOT_NUMBERS = {"provenance", "derived", "external", "alternatives", "primary_reason", "moderators"}


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
    index = overlap_index(evidence)
    for publication in evidence.publications:
        path = evidence.files[publication.id]
        parsed = evidence.lines[publication.id]

        def report(loc: tuple[Any, ...], message: str, severity: str = "error") -> None:
            problems.append(
                Problem(path, parsed.line_of(loc), format_path(loc), message, severity)  # type: ignore[arg-type]
            )

        _check_publication(evidence, publication, path, index, report)
        _check_risk_of_bias(evidence, publication, report)
        for loc, text in placeholder_fields(parsed.value):
            report(loc, f"still holds the template's placeholder {text!r}: replace it with the "
                        "publication's own value")
    problems.extend(check_exclusions(evidence.directory, set(index), set(evidence.review.sources)))
    return problems


def overlap_index(evidence: Evidence) -> dict[str, dict[str, str | None]]:
    """Publication id -> {other id: relation} for every publication of the loaded files' folders.

    The loaded publications come first; the other files of the folder each loaded file lives in
    are read too (only their ``id`` and ``overlaps``, leniently: a file that does not parse is
    skipped), so that validating one file resolves its overlaps against its neighbours.
    """
    index: dict[str, dict[str, str | None]] = {
        p.id: {o.with_: o.relation for o in p.overlaps} for p in evidence.publications
    }
    loaded = {path.resolve() for path in evidence.files.values()}
    for folder in sorted({path.parent for path in evidence.files.values()}):
        for path in evidence_files(folder):
            if path.resolve() in loaded:
                continue
            parsed, _ = parse_yaml(path)
            value = parsed.value if parsed is not None else None
            if not isinstance(value, dict) or not isinstance(value.get("id"), str) or value["id"] in index:
                continue
            entries = value.get("overlaps")
            index[value["id"]] = {
                e["with"]: e.get("relation") for e in (entries if isinstance(entries, list) else [])
                if isinstance(e, dict) and isinstance(e.get("with"), str)
            }
    return index


def _check_publication(
    evidence: Evidence, pub: Publication, path: Path, index: dict[str, dict[str, str | None]], report
) -> None:
    review = evidence.review
    if pub.id != path.stem:
        report(("id",), f"id {pub.id!r} must equal the file name {path.stem!r}")
    for i, source in enumerate(pub.reported_in):
        if source not in review.sources:
            report(("reported_in", i), f"unknown source {source!r}; known: {', '.join(review.sources)}")
    if pub.own_source is not None and pub.own_source not in review.sources:
        report(("own_source",), f"unknown source {pub.own_source!r}; known: {', '.join(review.sources)}")
    elif pub.own_source is not None and pub.own_source not in pub.reported_in:
        report(("own_source",), f"own_source {pub.own_source!r} must also be listed in reported_in")
    else:
        others = [p.id for p in evidence.publications if p.id != pub.id and pub.own_source is not None
                  and p.own_source == pub.own_source]
        if others:
            report(("own_source",), f"{pub.own_source!r} is already the own report of {', '.join(others)}; "
                                    "a source document is the own report of one publication only")
    for i, block in enumerate(pub.external):
        for name in block.fields:
            if name not in type(pub).model_fields or name in _NOT_NUMBERS | {"id", "external", "overlaps"}:
                report(("external", i, "fields"), f"{name!r} is no field of the publication")
    seen_with: set[str] = set()
    for i, overlap in enumerate(pub.overlaps):
        loc = ("overlaps", i, "with")
        if overlap.with_ == pub.id:
            report(loc, "a publication cannot overlap itself")
            continue
        if overlap.with_ in seen_with:
            report(loc, f"{overlap.with_!r} is listed twice")
        seen_with.add(overlap.with_)
        if overlap.with_ not in index:
            report(loc, f"overlap points to {overlap.with_!r}, which is no publication here")
            continue
        inverse = INVERSE_RELATION[overlap.relation]
        back = index[overlap.with_]
        if pub.id not in back:
            report(loc, f"one-sided overlap: {overlap.with_} does not list {pub.id} back "
                        f"(add 'with: {pub.id}, relation: {inverse}' to its overlaps)")
        elif back[pub.id] != inverse:
            report(("overlaps", i, "relation"),
                   f"{pub.id} is {overlap.relation} of {overlap.with_}, but {overlap.with_} declares "
                   f"{back[pub.id]!r} back; the inverse relation is {inverse!r}")
        # transitive consistency: whoever is within the other publication may share our patients
        within = sorted(c for c, rel in back.items() if rel in ("superset", "same_patients")
                        and c != pub.id and c not in {o.with_ for o in pub.overlaps})
        if within:
            report(loc, f"{', '.join(within)} {'is' if len(within) == 1 else 'are'} within {overlap.with_} "
                        f"(same patients or a subset), which {pub.id} overlaps: declare "
                        f"{'it' if len(within) == 1 else 'them'} too (e.g. relation: partial)", "warning")
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

    seen_rows: dict[tuple[Any, ...], int] = {}
    for i, outcome in enumerate(pub.outcomes):
        loc = ("outcomes", i)
        definition = review.outcomes.get(outcome.code)
        if definition is None:
            report(loc + ("code",), f"unknown outcome code {outcome.code!r}; known: {', '.join(review.outcomes)}")
        survival = definition is not None and definition.kind == "time_to_event"
        if definition is not None and not survival and outcome.events is None:
            report(loc, f"{outcome.code} is a proportion: it needs 'events' and 'total'")
        if survival and outcome.time_months is None and outcome.median is None:
            report(loc, f"survival row ({outcome.code}) without a time point: give 'time_months' "
                        "(with 'percent') or a 'median'")
        if not survival and (outcome.time_months is not None or outcome.median is not None
                             or outcome.n_at_risk is not None):
            report(loc, f"time_months, median and n_at_risk belong to survival rows; {outcome.code} is a proportion")
        if outcome.family is not None and definition is not None:
            families = definition.families or {}
            if outcome.family not in families:
                known = ", ".join(families) if families else "none defined"
                report(loc + ("family",), f"unknown family {outcome.family!r} for {outcome.code}; known: {known}")
        cohort = cohorts.get(outcome.cohort)
        if cohort is None:
            report(loc + ("cohort",), f"no cohort {outcome.cohort!r} in this publication; known: {', '.join(cohorts)}")
        elif outcome.total is not None and outcome.total > cohort.n:
            report(loc + ("total",), f"total ({outcome.total}) exceeds the cohort's n ({cohort.n})")
        key = (outcome.cohort, outcome.code, outcome.timepoint, outcome.time_months, outcome.denominator
               if survival else None)
        if key in seen_rows:
            report(loc, f"same outcome, cohort and timepoint as outcomes[{seen_rows[key]}]")
        seen_rows[key] = i
        if (not survival and outcome.percent is not None and outcome.events is not None
                and outcome.total is not None
                and not percent_matches(outcome.percent, outcome.events, outcome.total)):
            report(loc + ("percent",),
                   f"printed {outcome.percent:g}% but {outcome.events}/{outcome.total} = "
                   f"{100 * outcome.events / outcome.total:.1f}%", "discrepancy")
        for j, alt in enumerate(outcome.alternatives):
            report(loc + ("alternatives", j),
                   f"{outcome.code} in {outcome.cohort}: primary {_reading(outcome)}, "
                   f"alternative {_reading(alt)}: {alt.reason}", "discrepancy")
            if not survival and alt.events is None:
                report(loc + ("alternatives", j), f"{outcome.code} is a proportion: it needs 'events' and 'total'")
            if cohort is not None and alt.total is not None and alt.total > cohort.n:
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
        external = getattr(record, "external", None)
        if isinstance(external, External):
            for name in external.fields:
                if name not in type(record).model_fields or name in _NOT_NUMBERS:
                    report(loc + ("external", "fields"), f"{name!r} is no numeric field of this record")


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


def _reading(record) -> str:
    if record.events is not None:
        return f"{record.events}/{record.total}"
    return f"{record.percent:g}%" if record.percent is not None else "median"


def _check_items(tool, items: list[RobItem], loc: tuple[Any, ...], report) -> list[Any] | None:
    """Each item of the tool once, with an allowed judgement; the judgements in tool order."""
    by_id: dict[str, Any] = {}
    for j, item in enumerate(items):
        if item.item not in tool.items:
            report(loc + (j, "item"), f"unknown item {item.item!r}; the tool's items: {', '.join(tool.items)}")
        elif item.item in by_id:
            report(loc + (j, "item"), f"item {item.item!r} is listed twice")
        else:
            by_id[item.item] = item.judgement
        if item.judgement not in tool.judgements:
            allowed = ", ".join(str(v) for v in tool.judgements)
            report(loc + (j, "judgement"), f"{item.judgement!r} is not a judgement of this tool; allowed: {allowed}")
    missing = [k for k in tool.items if k not in by_id]
    if missing:
        report(loc, f"risk-of-bias item(s) missing: {', '.join(missing)} (every item of the tool, each once)")
        return None
    return [by_id[k] for k in tool.items]


def _check_overall(tool_id: str, judgements, overall: str, reason: str, loc: tuple[Any, ...], report) -> None:
    expected = overall_from_items(tool_id, judgements) if judgements is not None else None
    if expected is not None and expected != overall and not reason.startswith("override:"):
        report(loc + ("overall",), f"stated overall {overall!r}, but the {tool_id} rule gives {expected!r}; "
                                   "correct it or start overall_reason with 'override:'", "warning")


def _check_risk_of_bias(evidence: Evidence, pub: Publication, report) -> None:
    rob = pub.risk_of_bias
    if rob is None:
        if pub.outcomes or pub.comparisons:
            report(("id",), "no risk_of_bias block: every publication with outcome rows or comparisons needs one",
                   MISSING_RISK_OF_BIAS_SEVERITY)
        return
    loc = ("risk_of_bias",)
    tool = evidence.review.risk_of_bias_tools.get(rob.tool)
    if tool is None:
        known = ", ".join(evidence.review.risk_of_bias_tools) or "none defined in the review file"
        report(loc + ("tool",), f"unknown risk-of-bias tool {rob.tool!r}; known: {known}")
        return
    if not tool.per_result:
        if rob.results:
            report(loc + ("results",), f"{rob.tool} is not judged per result; give 'items' only")
        judgements = _check_items(tool, rob.items, loc + ("items",), report)
        _check_overall(rob.tool, judgements, rob.overall, rob.overall_reason, loc, report)
        return
    if not rob.results:
        report(loc, f"{rob.tool} is judged per result: give 'results' (outcomes, items, overall)")
        return
    if rob.items:
        _check_items(tool, rob.items, loc + ("items",), report)
    codes = set(evidence.review.outcomes) | {c.endpoint for c in pub.comparisons}
    for k, result in enumerate(rob.results):
        rloc = loc + ("results", k)
        for m, code in enumerate(result.outcomes):
            if code not in codes:
                report(rloc + ("outcomes", m), f"unknown outcome or endpoint {code!r}")
        judgements = _check_items(tool, result.items, rloc + ("items",), report)
        _check_overall(rob.tool, judgements, result.overall, result.overall_reason, rloc, report)
    expected = worst(r.overall for r in rob.results)
    if expected is not None and expected != rob.overall and not rob.overall_reason.startswith("override:"):
        report(loc + ("overall",), f"stated overall {rob.overall!r}, but the worst of the results is "
                                   f"{expected!r}; correct it or start overall_reason with 'override:'",
               "warning")
