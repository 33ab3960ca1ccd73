"""Which rows of the evidence an analysis pools, and why the others are left out.

The rules, applied in this order (each exclusion is kept with its reason):

1. the publication is excluded by hand in the specification;
2. the publication reports no data for the outcome (or no comparison for the endpoint);
3. none of its rows passes the filter (the reason names the values that failed);
4. a randomized arm that did not receive the analysed treatment is left out of single-arm
   pooling;
5. one row per publication: the least nested cohort (a whole cohort before a subgroup), then
   the largest total, then a row without a time point before one with;
6. overlapping publications: where two included publications report the same patients, the
   one listed first in ``prefer`` is kept, else the one with the larger total, else the more
   recent one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from blinameta.analysis.spec import AnalysisSpec
from blinameta.evidence.loader import Evidence
from blinameta.evidence.tidy import tidy

__all__ = ["Excluded", "Selection", "select", "study_label"]


@dataclass(frozen=True)
class Excluded:
    """A publication left out of an analysis, with the reason."""

    study_id: str
    reason: str
    kind: Literal["manual", "no_data", "filter", "arm", "overlap"] = "filter"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.study_id, "reason": self.reason, "kind": self.kind}


@dataclass(frozen=True)
class Selection:
    """The rows an analysis pools (one per publication) and the publications left out."""

    spec: AnalysisSpec
    rows: pd.DataFrame
    excluded: tuple[Excluded, ...] = ()
    readings: str = "primary"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def study_ids(self) -> list[str]:
        return list(self.rows["study_id"])

    @property
    def k(self) -> int:
        return len(self.rows)


def study_label(first_author: str, year: int) -> str:
    """``"Locatelli F"`` and 2020 -> ``"Locatelli 2020"``; ``"von Stackelberg A"`` -> ``"von Stackelberg 2016"``.

    The first author is written "Surname Initials"; trailing tokens of capital letters (with
    optional dots or hyphens) are the initials.
    """
    tokens = first_author.replace(",", " ").split()
    while len(tokens) > 1 and re.fullmatch(r"[A-Z][A-Z.\-]*", tokens[-1]):
        tokens.pop()
    surname = " ".join(tokens) if tokens else "?"
    return f"{surname} {year}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _matches(value, accepted: list) -> bool:
    if _missing(value):
        return False
    return any(value == a or str(value) == str(a) for a in accepted)


def _overlap_graph(evidence: Evidence) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p.id: set() for p in evidence.publications}
    for pub in evidence.publications:
        for overlap in pub.overlaps:
            if overlap.with_ in graph:
                graph[pub.id].add(overlap.with_)
                graph[overlap.with_].add(pub.id)
    return graph


def _hazard_rows(evidence: Evidence, spec: AnalysisSpec) -> pd.DataFrame:
    endpoints = spec.endpoints or [spec.outcome]
    rows = []
    for pub in evidence.publications:
        for comparison in pub.comparisons:
            if comparison.measure != "hr" or comparison.endpoint not in endpoints:
                continue
            arm = pub.cohort(comparison.experimental) if any(c.id == comparison.experimental for c in pub.cohorts) else None
            control = pub.cohort(comparison.control) if any(c.id == comparison.control for c in pub.cohorts) else None
            moderators = pub.resolved_moderators(arm.id) if arm is not None else {}
            prov = comparison.provenance[0]
            rows.append({
                "study_id": pub.id, "cohort_id": comparison.experimental,
                "cohort_label": comparison.id, "cohort_kind": "arm", "outcome": comparison.endpoint,
                "endpoint_rank": endpoints.index(comparison.endpoint),
                "hr": comparison.estimate, "ci_lb": comparison.ci_lb, "ci_ub": comparison.ci_ub,
                "level": comparison.level, "n_experimental": arm.n if arm else None,
                "n_control": control.n if control else None,
                "total": (arm.n if arm else 0) + (control.n if control else 0),
                "first_author": pub.first_author, "year": pub.year, "design": pub.design,
                "setting": pub.setting, "derived": comparison.derived is not None, "flagged": False,
                "timepoint": comparison.timepoint, "treatment": arm.treatment if arm else None,
                "denominator": None, "source": prov.source, "location": prov.location, "quote": prov.quote,
                **{k: v for k, v in moderators.items() if k not in ("design", "setting")},
            })
    return pd.DataFrame(rows)


def _risk_ratio_rows(table: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """One candidate row per pair of arms of a trial with the same time point and denominator."""
    arms = table[(table.cohort_kind == "arm") & (table.outcome == spec.outcome)]
    rows = []
    key = lambda r: (_text(r.timepoint), _text(r.denominator))  # noqa: E731
    for study_id, group in arms.groupby("study_id", sort=False):
        exp = group[group.treatment == spec.treatment]
        ctl = group[group.treatment == spec.control]
        for _, e in exp.iterrows():
            for _, c in ctl.iterrows():
                if key(e) != key(c):
                    continue
                row = e.to_dict()
                row.update({
                    "ai": int(e.events), "n1i": int(e.total), "ci": int(c.events), "n2i": int(c.total),
                    "control_cohort_id": c.cohort_id, "total": int(e.total) + int(c.total),
                    "derived": bool(e.derived or c.derived), "flagged": bool(e.flagged or c.flagged),
                    "control_quote": c.quote, "control_location": c.location,
                })
                rows.append(row)
    return pd.DataFrame(rows)


def _text(value) -> str:
    return "" if _missing(value) else str(value)


def select(
    evidence: Evidence,
    spec: AnalysisSpec,
    *,
    readings: Literal["primary", "alternative"] = "primary",
    exclude_derived: bool = False,
) -> Selection:
    """Choose the rows an analysis pools; see the module docstring for the rules."""
    publications = {p.id: p for p in evidence.publications}
    excluded: list[Excluded] = []
    manual = {e.id: e.reason for e in spec.exclude}
    for pid, reason in manual.items():
        excluded.append(Excluded(pid, f"excluded by the analysis: {reason}", "manual"))

    if spec.kind == "hazard_ratio":
        table = _hazard_rows(evidence, spec)
    else:
        table = tidy(evidence, readings=readings)
        if spec.kind == "risk_ratio":
            table = _risk_ratio_rows(table, spec)
        else:
            table = table[table.outcome == spec.outcome]
    what = (f"no hazard ratio for {', '.join(spec.endpoints or [spec.outcome])}" if spec.kind == "hazard_ratio"
            else f"no randomized {spec.treatment} vs {spec.control} counts for {spec.outcome}"
            if spec.kind == "risk_ratio" else f"reports no {spec.outcome} data")
    present = set(table["study_id"]) if not table.empty else set()
    for pid in publications:
        if pid not in present and pid not in manual:
            excluded.append(Excluded(pid, what, "no_data"))
    if table.empty:
        return Selection(spec, table, tuple(sorted(excluded, key=lambda e: e.study_id)), readings)
    table = table[~table.study_id.isin(manual)]

    candidates = []
    notes: list[str] = []
    for study_id, group in table.groupby("study_id", sort=False):
        keep = np.ones(len(group), dtype=bool)
        failures: list[str] = []
        for column, accepted in spec.filter.items():
            values = group[column] if column in group else pd.Series([None] * len(group), index=group.index)
            ok = np.array([_matches(v, accepted) for v in values])
            for v in sorted({"not reported" if _missing(v) else str(v) for v, good in zip(values[keep], ok[keep]) if not good}):
                failures.append(f"{column} not reported" if v == "not reported" else f"{column} = {v}")
            keep &= ok
        if spec.kind == "proportion":
            is_other_arm = ((group.cohort_kind == "arm") & (group.treatment != spec.treatment)).to_numpy()
            if keep.any() and (keep & ~is_other_arm).sum() == 0:
                excluded.append(Excluded(study_id, f"only arms that did not receive {spec.treatment}", "arm"))
                continue
            keep &= ~is_other_arm
        if exclude_derived and "derived" in group:
            derived = group["derived"].to_numpy(dtype=bool)
            if keep.any() and not (keep & ~derived).any():
                excluded.append(Excluded(study_id, "only counts derived from percentages (sensitivity analysis)", "filter"))
                continue
            keep &= ~derived
        if not keep.any():
            excluded.append(Excluded(study_id, "outside the filter: " + "; ".join(dict.fromkeys(failures)), "filter"))
            continue
        chosen = group[keep].copy()
        chosen["_depth"] = (chosen.cohort_kind == "subgroup").astype(int)
        chosen["_timed"] = chosen.timepoint.notna().astype(int) if "timepoint" in chosen else 0
        sort_cols = ["endpoint_rank"] if "endpoint_rank" in chosen else []
        chosen = chosen.sort_values(sort_cols + ["_depth", "total", "_timed"],
                                    ascending=[True] * len(sort_cols) + [True, False, True], kind="stable")
        first = chosen.iloc[0]
        ties = chosen[(chosen._depth == first._depth) & (chosen.total == first.total)]
        if len(ties) > 1 and ties.timepoint.map(_text).nunique() > 1:
            notes.append(f"{study_id}: {len(ties)} rows qualify equally ({'; '.join(ties.timepoint.map(_text))}); "
                         f"the first in the file ({_text(first.timepoint) or 'no time point'}) is used")
        candidates.append(first.drop(labels=["_depth", "_timed"]))

    # overlaps: greedy in order of preference
    graph = _overlap_graph(evidence)
    prefer = {pid: i for i, pid in enumerate(spec.prefer)}
    candidates.sort(key=lambda r: (prefer.get(r.study_id, len(prefer)), -int(r.total), -int(r.year), r.study_id))
    kept: list[pd.Series] = []
    kept_ids: set[str] = set()
    for row in candidates:
        clash = sorted(graph.get(row.study_id, set()) & kept_ids)
        if clash:
            why = ("listed first in 'prefer'" if clash[0] in prefer else "larger or more recent")
            excluded.append(Excluded(row.study_id, f"overlaps with {', '.join(clash)} ({why}), which is included", "overlap"))
            continue
        kept.append(row)
        kept_ids.add(row.study_id)
    if not kept:
        empty = table.iloc[0:0].copy()
        empty.insert(0, "label", pd.Series(dtype=str))
        return Selection(spec, empty.reset_index(drop=True), tuple(sorted(excluded, key=lambda e: e.study_id)), readings,
                         tuple(notes))
    rows = pd.DataFrame(kept).reset_index(drop=True)
    rows = rows.sort_values(["year", "study_id"], kind="stable").reset_index(drop=True)
    labels = [study_label(a, int(y)) for a, y in zip(rows.first_author, rows.year)]
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        if counts[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}{'abcdefghij'[seen[label] - 1]}"
        unique.append(label)
    rows.insert(0, "label", unique)
    return Selection(spec, rows, tuple(sorted(excluded, key=lambda e: e.study_id)), readings, tuple(notes))
