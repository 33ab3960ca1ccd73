"""The tidy table: one row per publication x cohort x outcome (x reading).

Moderator columns are resolved by inheritance: the publication's ``design`` and ``setting``,
then its ``moderators``, then those of each parent cohort, then the cohort's own. Columns
derived from characteristics: ``prior_hsct_pct`` (patients with a prior HSCT, percent of n).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from blinameta.evidence.loader import Evidence
from blinameta.evidence.schema import Cohort, Publication

__all__ = ["tidy", "BASE_COLUMNS"]

#: Columns that every tidy table has, before the moderator columns.
BASE_COLUMNS = (
    "study_id", "cohort_id", "cohort_label", "cohort_kind", "parent", "treatment", "outcome",
    "events", "total", "proportion", "percent_printed", "denominator", "timepoint", "reading",
    "derived", "flagged", "first_author", "year", "n", "design", "setting",
)


def _prior_hsct_pct(pub: Publication, cohort: Cohort) -> float | None:
    chars = cohort.characteristics
    if chars is not None and chars.prior_hsct is not None:
        return 100.0 * chars.prior_hsct.n / cohort.n
    return None


def tidy(evidence: Evidence, readings: Literal["primary", "all", "alternative"] = "primary") -> pd.DataFrame:
    """One row per publication x cohort x outcome.

    Parameters
    ----------
    evidence
        The loaded evidence.
    readings
        ``"primary"``: the primary reading of each outcome only; ``"alternative"``: where an
        outcome has alternative readings, the first alternative instead of the primary one (for
        sensitivity analyses); ``"all"``: every reading, labelled in the ``reading`` column.
    """
    from blinameta.evidence.checks import percent_matches

    moderator_names = [m for m in evidence.review.moderators]
    rows = []
    for pub in evidence.publications:
        overlaps = ";".join(o.with_ for o in pub.overlaps)
        parsed = evidence.lines.get(pub.id)
        path = evidence.files.get(pub.id)
        for index, outcome in enumerate(pub.outcomes):
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
            readings_list = [("primary", outcome)]
            readings_list += [(f"alternative_{j + 1}", alt) for j, alt in enumerate(outcome.alternatives)]
            if readings == "primary":
                chosen = readings_list[:1]
            elif readings == "alternative":
                chosen = readings_list[1:2] or readings_list[:1]
            else:
                chosen = readings_list
            for label, reading in chosen:
                if reading.events is None or reading.total is None:
                    continue  # survival rows without counts: not in this table yet
                flagged = bool(outcome.alternatives) or (
                    reading.percent is not None
                    and not percent_matches(reading.percent, reading.events, reading.total)
                )
                prov = reading.provenance[0]
                rows.append({
                    **base,
                    "events": reading.events,
                    "total": reading.total,
                    "proportion": reading.events / reading.total,
                    "percent_printed": reading.percent,
                    "reading": label,
                    "derived": reading.derived is not None,
                    "flagged": flagged,
                    "source": prov.source,
                    "location": prov.location,
                    "quote": prov.quote,
                    # folder/name, not the absolute path: the same evidence moved elsewhere gives the same table
                    "file": f"{path.parent.name}/{path.name}" if path is not None else None,
                    "line": parsed.line_of(("outcomes", index)) if parsed is not None else None,
                })
    columns = list(BASE_COLUMNS) + moderator_names + ["prior_hsct_pct", "overlaps", "source", "location", "quote", "file", "line"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["study_id", "cohort_id", "outcome", "reading"], kind="stable").reset_index(drop=True)
