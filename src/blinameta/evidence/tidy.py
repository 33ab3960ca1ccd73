"""The tidy table: one row per publication x cohort x outcome (x reading).

Moderator columns are resolved by inheritance: the publication's ``design`` and ``setting``,
then its ``moderators``, then those of each parent cohort, then the cohort's own. Columns
derived from characteristics: ``prior_hsct_pct`` (patients with a prior HSCT, percent of n) and
the moderator shares (fractions 0..1, for meta-regression on continuous moderators):
``share_refractory``, ``share_first_relapse``, ``share_second_or_later``, ``share_post_hsct``
(relapse-line counts / n), ``share_ge5``, ``share_ge25`` (marrow blasts >=5% and >=25%: counts
/ n, or the printed percentage / 100). Where the cohort's categorical moderator is pure, the
shares it implies are filled in (``relapse_line: first_relapse`` gives share_first_relapse 1 and
share_refractory and share_second_or_later 0; ``blast_burden: ge5`` gives share_ge5 1;
``blast_burden: lt5`` gives share_ge5 and share_ge25 0); so are the relapse-line shares left
out where the three lines (refractory, first, second or later) given add up to n.

Evidence v2 columns: ``source_type`` (``primary`` when every quote of the row is from the
publication's ``own_source``, else ``secondary``), ``external`` and ``external_citation`` (a
number of the row comes from outside the sources), ``flags``, the definition family columns
(``family``, ``grading``, ``mrd_method``, ``mrd_threshold``, ``assessment``), the survival
columns (``time_months``, ``estimate_pct``, ``ci_lb_pct``, ``ci_ub_pct``, ``n_at_risk``,
``median_months``, ``median_reached``), ``arm`` and ``stratum`` (the cohort's label when it is an arm or a
subgroup). Survival rows (outcome kind ``time_to_event``) are listed only with
``survival=True``: they have no events/total and never enter proportion analyses.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from blinameta.evidence.loader import Evidence
from blinameta.evidence.rob import overall_from_items, worst
from blinameta.evidence.schema import AlternativeReading, Cohort, Outcome, Publication

__all__ = ["tidy", "risk_of_bias_table", "BASE_COLUMNS", "V2_COLUMNS", "SHARE_COLUMNS", "source_type",
           "row_external", "cohort_shares"]

#: Columns that every tidy table has, before the moderator columns.
BASE_COLUMNS = (
    "study_id", "cohort_id", "cohort_label", "cohort_kind", "parent", "treatment", "outcome",
    "events", "total", "proportion", "percent_printed", "denominator", "timepoint", "reading",
    "derived", "flagged", "first_author", "year", "n", "design", "setting",
)
#: Moderator shares (fractions 0..1) computed from the cohort's characteristics.
SHARE_COLUMNS = (
    "share_refractory", "share_first_relapse", "share_second_or_later", "share_post_hsct",
    "share_ge5", "share_ge25",
)
#: Columns added by evidence v2, after the moderator columns.
V2_COLUMNS = (
    "source_type", "external", "external_citation", "flags", "family", "grading", "mrd_method",
    "mrd_threshold", "assessment", "time_months", "estimate_pct", "ci_lb_pct", "ci_ub_pct",
    "n_at_risk", "median_months", "median_reached", "arm", "stratum", *SHARE_COLUMNS,
)
_LINES = ("refractory", "first_relapse", "second_or_later")


def _prior_hsct_pct(pub: Publication, cohort: Cohort) -> float | None:
    chars = cohort.characteristics
    if chars is not None and chars.prior_hsct is not None:
        return 100.0 * chars.prior_hsct.n / cohort.n
    return None


def cohort_shares(pub: Publication, cohort: Cohort) -> dict[str, float | None]:
    """The moderator shares of a cohort (fractions 0..1); see the module docstring."""
    shares: dict[str, float | None] = dict.fromkeys(SHARE_COLUMNS)
    chars = cohort.characteristics
    lines = chars.relapse_lines if chars is not None else None
    if lines is not None:
        for name in (*_LINES, "post_hsct"):
            value = getattr(lines, name)
            if value is not None:
                shares[f"share_{name}"] = value / cohort.n
        given = [getattr(lines, name) for name in _LINES]
        if sum(v for v in given if v is not None) == cohort.n:
            for name in _LINES:
                if getattr(lines, name) is None:
                    shares[f"share_{name}"] = 0.0
    blasts = chars.blast_burden if chars is not None else None
    if blasts is not None:
        if blasts.n_ge5 is not None:
            shares["share_ge5"] = blasts.n_ge5 / cohort.n
        elif blasts.pct_ge5 is not None:
            shares["share_ge5"] = blasts.pct_ge5 / 100.0
        elif blasts.n_lt5 is not None:
            shares["share_ge5"] = 1.0 - blasts.n_lt5 / cohort.n
        elif blasts.pct_lt5 is not None:
            shares["share_ge5"] = 1.0 - blasts.pct_lt5 / 100.0
        if blasts.n_ge25 is not None:
            shares["share_ge25"] = blasts.n_ge25 / cohort.n
        elif blasts.pct_ge25 is not None:
            shares["share_ge25"] = blasts.pct_ge25 / 100.0
    moderators = pub.resolved_moderators(cohort.id)
    line = moderators.get("relapse_line")
    if line in _LINES:
        for name in _LINES:
            if shares[f"share_{name}"] is None:
                shares[f"share_{name}"] = 1.0 if name == line else 0.0
        if line == "refractory" and shares["share_post_hsct"] is None:
            shares["share_post_hsct"] = 0.0
    elif line == "post_hsct" and shares["share_post_hsct"] is None:
        shares["share_post_hsct"] = 1.0
    burden = moderators.get("blast_burden")
    if burden == "ge5" and shares["share_ge5"] is None:
        shares["share_ge5"] = 1.0
    elif burden == "lt5":
        for name in ("share_ge5", "share_ge25"):
            if shares[name] is None:
                shares[name] = 0.0
    return shares


def source_type(pub: Publication, reading: Outcome | AlternativeReading) -> str:
    """``primary`` when every quote of the reading is from the publication's own report."""
    own = pub.own_source
    return "primary" if own is not None and all(p.source == own for p in reading.provenance) else "secondary"


def row_external(pub: Publication, cohort: Cohort, reading: Outcome | AlternativeReading) -> list[str]:
    """Citations of the external numbers a row uses (empty if none).

    A row is external when its own numbers are listed in an ``external`` block, or when its
    total is the size of a cohort (this one or an ancestor) whose ``n`` is external.
    """
    citations: list[str] = []
    if reading.external is not None:
        citations.append(reading.external.citation)
    current: Cohort | None = cohort
    seen: set[str] = set()
    ids = {c.id: c for c in pub.cohorts}
    while current is not None and current.id not in seen:
        seen.add(current.id)
        if (current.external is not None and "n" in current.external.fields
                and reading.total is not None and reading.total == current.n):
            citations.append(current.external.citation)
        current = ids.get(current.parent) if current.parent else None
    return list(dict.fromkeys(citations))


def tidy(
    evidence: Evidence,
    readings: Literal["primary", "all", "alternative"] = "primary",
    *,
    survival: bool = False,
) -> pd.DataFrame:
    """One row per publication x cohort x outcome.

    Parameters
    ----------
    evidence
        The loaded evidence.
    readings
        ``"primary"``: the primary reading of each outcome only; ``"alternative"``: where an
        outcome has alternative readings, the first alternative instead of the primary one (for
        sensitivity analyses); ``"all"``: every reading, labelled in the ``reading`` column.
    survival
        Also list survival rows (outcomes of kind ``time_to_event``: a percentage at a time
        point or a median, usually without counts). Off by default so that every row has
        events and total.
    """
    frame = evidence.memo(("tidy", readings, survival), lambda: _tidy(evidence, readings, survival))
    return frame.copy()


def _tidy(evidence: Evidence, readings: str, survival: bool) -> pd.DataFrame:
    from blinameta.evidence.checks import percent_matches

    moderator_names = [m for m in evidence.review.moderators]
    rows = []
    for pub in evidence.publications:
        overlaps = ";".join(o.with_ for o in pub.overlaps)
        parsed = evidence.lines.get(pub.id)
        path = evidence.files.get(pub.id)
        for index, outcome in enumerate(pub.outcomes):
            definition = evidence.review.outcomes.get(outcome.code)
            is_survival = definition is not None and definition.kind == "time_to_event"
            if is_survival and not survival:
                continue
            cohort = pub.cohort(outcome.cohort)
            moderators = pub.resolved_moderators(cohort.id)
            base = {
                "study_id": pub.id,
                "cohort_id": cohort.id,
                "cohort_label": cohort.label,
                "cohort_kind": cohort.kind,
                "parent": cohort.parent,
                "treatment": cohort.treatment,
                "outcome": outcome.code,
                "denominator": outcome.denominator,
                "timepoint": outcome.timepoint,
                "first_author": pub.first_author,
                "year": pub.year,
                "n": cohort.n,
                "design": pub.design,
                "setting": pub.setting,
            }
            for name in moderator_names:
                base[name] = moderators.get(name)
            base["prior_hsct_pct"] = _prior_hsct_pct(pub, cohort)
            base["overlaps"] = overlaps
            base.update({
                "flags": "; ".join(outcome.flags),
                "family": outcome.family,
                "grading": outcome.grading,
                "mrd_method": outcome.mrd_method,
                "mrd_threshold": outcome.mrd_threshold,
                "assessment": outcome.assessment,
                "arm": cohort.label if cohort.kind == "arm" else None,
                "stratum": cohort.label if cohort.kind == "subgroup" else None,
                **cohort_shares(pub, cohort),
            })
            readings_list: list[tuple[str, Outcome | AlternativeReading]] = [("primary", outcome)]
            readings_list += [(f"alternative_{j + 1}", alt) for j, alt in enumerate(outcome.alternatives)]
            if readings == "primary":
                chosen = readings_list[:1]
            elif readings == "alternative":
                chosen = readings_list[1:2] or readings_list[:1]
            else:
                chosen = readings_list
            for label, reading in chosen:
                counted = reading.events is not None and reading.total is not None
                if not counted and not is_survival:
                    continue  # not valid evidence (the validator reports it)
                flagged = bool(outcome.alternatives) or (
                    not is_survival and counted and reading.percent is not None
                    and not percent_matches(reading.percent, reading.events, reading.total)  # type: ignore[arg-type]
                )
                prov = reading.provenance[0]
                citations = row_external(pub, cohort, reading)
                median = outcome.median if label == "primary" else None
                rows.append({
                    **base,
                    "events": reading.events,
                    "total": reading.total,
                    "proportion": reading.events / reading.total if counted else None,  # type: ignore[operator]
                    "percent_printed": reading.percent,
                    "reading": label,
                    "derived": reading.derived is not None,
                    "flagged": flagged,
                    "source_type": source_type(pub, reading),
                    "external": bool(citations),
                    "external_citation": "; ".join(citations) or None,
                    "time_months": outcome.time_months if is_survival else None,
                    "estimate_pct": reading.percent if is_survival else None,
                    "ci_lb_pct": outcome.ci_lb if is_survival and label == "primary" else None,
                    "ci_ub_pct": outcome.ci_ub if is_survival and label == "primary" else None,
                    "n_at_risk": outcome.n_at_risk if is_survival and label == "primary" else None,
                    "median_months": median.months if median is not None else None,
                    "median_reached": median.reached if median is not None else None,
                    "source": prov.source,
                    "location": prov.location,
                    "quote": prov.quote,
                    # folder/name, not the absolute path: the same evidence moved elsewhere gives the same table
                    "file": f"{path.parent.name}/{path.name}" if path is not None else None,
                    "line": parsed.line_of(("outcomes", index)) if parsed is not None else None,
                })
    columns = (list(BASE_COLUMNS) + moderator_names + ["prior_hsct_pct", "overlaps"] + list(V2_COLUMNS)
               + ["source", "location", "quote", "file", "line"])
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("events", "total", "n_at_risk"):
        if frame[name].isna().any():
            frame[name] = frame[name].astype("Int64")
    return frame.sort_values(["study_id", "cohort_id", "outcome", "reading"], kind="stable").reset_index(drop=True)


def risk_of_bias_table(evidence: Evidence) -> pd.DataFrame:
    """One row per publication (and per result for RoB 2): tool, item judgements, overall.

    Columns: ``study_id``, ``tool``, ``scope`` (``publication`` or ``result``), ``outcomes``
    (the codes a RoB 2 result covers), ``items`` (``id: judgement`` joined by ``; ``),
    ``overall`` (as stated), ``rule_overall`` (what the tool's rule gives,
    :func:`blinameta.evidence.rob.overall_from_items`; for a RoB 2 publication the worst of its
    results), ``overall_reason``, ``reasons`` (``id: reason`` joined). Publications with outcome
    rows or comparisons but no judgement are listed with tool and overall empty.
    """
    rows = []
    for pub in sorted(evidence.publications, key=lambda p: p.id):
        rob = pub.risk_of_bias
        if rob is None:
            if pub.outcomes or pub.comparisons:
                rows.append({"study_id": pub.id, "tool": None, "scope": "publication", "outcomes": None,
                             "items": None, "overall": None, "rule_overall": None,
                             "overall_reason": "not assessed", "reasons": None})
            continue
        results = [("result", ", ".join(r.outcomes), r.items, r.overall, r.overall_reason) for r in rob.results]
        rule = (worst(r.overall for r in rob.results) if rob.results
                else overall_from_items(rob.tool, [i.judgement for i in rob.items]))
        for scope, outcomes, items, overall, reason in [("publication", None, rob.items, rob.overall,
                                                         rob.overall_reason), *results]:
            rows.append({
                "study_id": pub.id, "tool": rob.tool, "scope": scope, "outcomes": outcomes,
                "items": "; ".join(f"{i.item}: {i.judgement}" for i in items) or None,
                "overall": overall,
                "rule_overall": rule if scope == "publication" else overall_from_items(rob.tool, [i.judgement for i in items]),
                "overall_reason": reason,
                "reasons": " | ".join(f"{i.item}: {i.reason}" for i in items) or None,
            })
    columns = ["study_id", "tool", "scope", "outcomes", "items", "overall", "rule_overall", "overall_reason", "reasons"]
    return pd.DataFrame(rows, columns=columns)
