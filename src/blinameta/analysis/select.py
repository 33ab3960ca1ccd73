"""Which rows of the evidence an analysis pools, and why the others are left out.

The rules, applied in this order (each exclusion is kept with its reason):

1. the publication is excluded by hand in the specification;
2. the publication reports no data for the outcome (or no comparison for the endpoint);
3. none of its rows passes the filter (the reason names the values that failed);
4. a randomized arm that did not receive the analysed treatment is left out of single-arm
   pooling;
5. one row per publication: the least nested cohort (a whole cohort before a subgroup), then
   the largest total, then a row without a time point before one with;
6. overlapping publications: where two included publications may report the same patients, the
   one listed first in ``prefer`` is kept, else the one with the larger total, else the more
   recent one.

Evidence v2 rules:

- rows that use numbers from outside the source documents (``external`` in the tidy table)
  are left out (kind ``external``) unless the specification opts in with
  ``include_external: true``; then the selection's notes say which studies and citations;
- survival rows (time-to-event outcomes: percentages at a time point, medians) never enter
  proportion or risk-ratio analyses;
- overlaps are followed transitively through containment (:func:`overlap_closure`): if C is
  the same patients as B or within B, whatever may overlap B may overlap C; chains of
  partial overlaps do not propagate (A partial B partial C says nothing about A and C);
- a study dropped only because of a *partial* overlap is kept under the primary rule above
  but recorded in :attr:`Selection.partial_overlap_dropped` (with its row in
  :attr:`Selection.partial_overlap_rows`), and ``include_partial_overlaps=True`` adds it back
  (sensitivity analysis);
- rows flagged ``lower_bound`` or ``unclear_denominator`` stay in the primary analysis and are
  listed in :attr:`Selection.flagged_for_sensitivity`; ``exclude_flags=`` drops them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from blinameta.analysis.spec import AnalysisSpec
from blinameta.evidence.loader import Evidence
from blinameta.evidence.tidy import tidy

__all__ = ["Excluded", "Selection", "select", "study_label", "overlap_closure", "SENSITIVITY_FLAGS"]

#: Outcome flags whose rows stay in the primary analysis but that a sensitivity analysis drops.
SENSITIVITY_FLAGS = ("lower_bound", "unclear_denominator")


@dataclass(frozen=True)
class Excluded:
    """A publication left out of an analysis, with the reason."""

    study_id: str
    reason: str
    kind: Literal["manual", "no_data", "filter", "arm", "overlap", "external"] = "filter"

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
    partial_overlap_dropped: tuple[str, ...] = ()
    partial_overlap_rows: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)

    @property
    def study_ids(self) -> list[str]:
        return list(self.rows["study_id"])

    @property
    def external_ids(self) -> list[str]:
        """Studies whose pooled row uses numbers from outside the sources (with the opt-in)."""
        if "external" not in self.rows:
            return []
        return list(self.rows.loc[self.rows["external"].fillna(False).astype(bool), "study_id"])

    @property
    def flagged_for_sensitivity(self) -> list[str]:
        """Studies whose pooled row is flagged lower_bound or unclear_denominator."""
        if "flags" not in self.rows:
            return []
        return [sid for sid, flags in zip(self.rows["study_id"], self.rows["flags"])
                if any(f in SENSITIVITY_FLAGS for f in _flag_list(flags))]

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


def _suffix(n: int) -> str:
    """1 -> ``a``, 26 -> ``z``, 27 -> ``aa``, 28 -> ``ab``: letters for same author-year labels, unbounded."""
    letters = ""
    while n > 0:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _matches(value, accepted: list) -> bool:
    if _missing(value):
        return False
    return any(value == a or str(value) == str(a) for a in accepted)


def _flag_list(value) -> list[str]:
    return [] if _missing(value) or not value else [f.strip() for f in str(value).split(";")]


def overlap_closure(evidence: Evidence) -> dict[str, dict[str, str]]:
    """Which publications may share patients: id -> {other id: ``"contained"`` | ``"partial"``}.

    ``up[X]`` is X with every publication that holds all of X's patients (its supersets and
    same-patient reports, followed transitively). X and Y may share patients when one is in
    the other's ``up`` (``"contained"``: one holds the other's patients) or when some member of
    ``up[X]`` and some member of ``up[Y]`` declare an overlap (``"partial"``). Chains of
    partial overlaps are not followed.
    """
    ids = [p.id for p in evidence.publications]
    contains: dict[str, set[str]] = {pid: set() for pid in ids}  # X -> publications that hold X's patients
    edges: set[frozenset[str]] = set()
    for pub in evidence.publications:
        for overlap in pub.overlaps:
            if overlap.with_ not in contains or overlap.with_ == pub.id:
                continue
            edges.add(frozenset((pub.id, overlap.with_)))
            if overlap.relation in ("subset", "same_patients"):
                contains[pub.id].add(overlap.with_)
            if overlap.relation in ("superset", "same_patients"):
                contains[overlap.with_].add(pub.id)
    up: dict[str, set[str]] = {}
    for pid in ids:
        seen, stack = {pid}, [pid]
        while stack:
            for nxt in contains[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        up[pid] = seen
    closure: dict[str, dict[str, str]] = {pid: {} for pid in ids}
    for x in ids:
        for y in ids:
            if x == y:
                continue
            if x in up[y] or y in up[x]:
                closure[x][y] = "contained"
            elif any(frozenset((p, q)) in edges for p in up[x] for q in up[y]):
                closure[x][y] = "partial"
    return closure


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
                "external": comparison.external is not None,
                "external_citation": comparison.external.citation if comparison.external is not None else None,
                "flags": "", "source_type": "primary" if pub.own_source is not None and all(
                    p.source == pub.own_source for p in comparison.provenance) else "secondary",
                "timepoint": comparison.timepoint, "treatment": arm.treatment if arm else None,
                "denominator": None, "source": prov.source, "location": prov.location, "quote": prov.quote,
                **{k: v for k, v in moderators.items() if k not in ("design", "setting")},
            })
    return pd.DataFrame(rows)


def _outcome_rows(evidence: Evidence, readings: str, outcome: str, counts: bool) -> pd.DataFrame:
    """The tidy rows of one outcome (with ``counts``, only rows with events and total: never a
    survival row), computed once per evidence object; not to be modified."""
    def rows() -> pd.DataFrame:
        table = tidy(evidence, readings=readings)
        table = table[table.outcome == outcome]
        if not table.empty and counts:
            table = table[table.events.notna() & table.total.notna()]
        return table

    return evidence.memo(("outcome rows", readings, outcome, counts), rows)


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
                    "external": bool(e.external or c.external),
                    "external_citation": "; ".join(dict.fromkeys(
                        _text(v) for v in (e.external_citation, c.external_citation) if _text(v))) or None,
                    "flags": "; ".join(dict.fromkeys(_flag_list(e.flags) + _flag_list(c.flags))),
                })
                rows.append(row)
    return pd.DataFrame(rows)


def _text(value) -> str:
    return "" if _missing(value) else str(value)


def _preference(col: dict[str, list], i: int) -> tuple:
    """Sort key of rule 5 (least nested, then largest total, then untimed before timed; after
    ``endpoint_rank`` where there is one); missing numbers sort last, as in pandas."""
    key: tuple = ()
    if "endpoint_rank" in col:
        rank = col["endpoint_rank"][i]
        key += (_missing(rank), 0 if _missing(rank) else rank)
    total = col["total"][i]
    timed = "timepoint" in col and not _missing(col["timepoint"][i])
    return key + (col["cohort_kind"][i] == "subgroup", _missing(total), 0 if _missing(total) else -total, timed)


def select(
    evidence: Evidence,
    spec: AnalysisSpec,
    *,
    readings: Literal["primary", "alternative"] = "primary",
    exclude_derived: bool = False,
    exclude_flags: Iterable[str] = (),
    include_partial_overlaps: bool = False,
) -> Selection:
    """Choose the rows an analysis pools; see the module docstring for the rules.

    Parameters
    ----------
    evidence, spec
        The evidence and the analysis specification (``spec.include_external`` opts in to
        numbers from outside the sources).
    readings
        The primary readings, or the first alternative reading where there is one.
    exclude_derived
        Leave out counts derived from percentages (sensitivity analysis).
    exclude_flags
        Leave out rows with any of these outcome flags, e.g. :data:`SENSITIVITY_FLAGS`.
    include_partial_overlaps
        Keep studies that only partially overlap an included one (sensitivity analysis);
        by default they are dropped and listed in ``partial_overlap_dropped``.
    """
    flags = tuple(sorted(set(exclude_flags)))
    key = ("select", spec.model_dump_json(), readings, bool(exclude_derived), flags, bool(include_partial_overlaps))
    # A report selects the same rows several times (its fingerprint, the fit, the sensitivity
    # analyses): computed once per evidence object; each caller gets its own copy of the tables.
    chosen = evidence.memo(key, lambda: _select(evidence, spec, readings, exclude_derived, flags,
                                                include_partial_overlaps))
    return replace(chosen, spec=spec, rows=chosen.rows.copy(), partial_overlap_rows=chosen.partial_overlap_rows.copy())


def _select(evidence: Evidence, spec: AnalysisSpec, readings: str, exclude_derived: bool,
            exclude_flags: tuple[str, ...], include_partial_overlaps: bool) -> Selection:
    drop_flags = set(exclude_flags)
    publications = {p.id: p for p in evidence.publications}
    excluded: list[Excluded] = []
    manual = {e.id: e.reason for e in spec.exclude}
    for pid, reason in manual.items():
        excluded.append(Excluded(pid, f"excluded by the analysis: {reason}", "manual"))

    if spec.kind == "hazard_ratio":
        table = _hazard_rows(evidence, spec)
    else:
        if spec.kind == "risk_ratio":
            table = _risk_ratio_rows(tidy(evidence, readings=readings), spec)
        else:
            table = _outcome_rows(evidence, readings, spec.outcome, spec.kind == "proportion")
    what = (f"no hazard ratio for {', '.join(spec.endpoints or [spec.outcome])}" if spec.kind == "hazard_ratio"
            else f"no randomized {spec.treatment} vs {spec.control} counts for {spec.outcome}"
            if spec.kind == "risk_ratio" else f"reports no {spec.outcome} data")
    present = set(table["study_id"]) if not table.empty else set()
    for pid in publications:
        if pid not in present and pid not in manual:
            excluded.append(Excluded(pid, what, "no_data"))
    if table.empty:
        return Selection(spec, table, tuple(sorted(excluded, key=lambda e: e.study_id)), readings)
    if manual:
        table = table[~table.study_id.isin(manual)]

    candidates = []
    notes: list[str] = []
    # Plain lists, one per column, instead of pandas operations per study (a report selects
    # hundreds of times); the chosen rows are taken from the table itself, as pandas rows.
    col = {c: table[c].tolist() for c in table.columns}
    n_rows = len(table)
    absent = [None] * n_rows
    groups: dict[str, list[int]] = {}
    for i, sid in enumerate(col["study_id"]):
        groups.setdefault(sid, []).append(i)
    for study_id, pos in groups.items():
        keep = [True] * len(pos)
        failures: list[str] = []
        for column, accepted in spec.filter.items():
            values = [col.get(column, absent)[i] for i in pos]
            ok = [_matches(v, accepted) for v in values]
            for v in sorted({"not reported" if _missing(v) else str(v)
                             for v, good, kept in zip(values, ok, keep) if kept and not good}):
                failures.append(f"{column} not reported" if v == "not reported" else f"{column} = {v}")
            keep = [a and b for a, b in zip(keep, ok)]
        if spec.kind == "proportion":
            other_arm = [col["cohort_kind"][i] == "arm" and col["treatment"][i] != spec.treatment for i in pos]
            if any(keep) and not any(kp and not o for kp, o in zip(keep, other_arm)):
                excluded.append(Excluded(study_id, f"only arms that did not receive {spec.treatment}", "arm"))
                continue
            keep = [kp and not o for kp, o in zip(keep, other_arm)]
        if not spec.include_external and "external" in col:
            external = [False if _missing(col["external"][i]) else bool(col["external"][i]) for i in pos]
            if any(keep) and not any(kp and not e for kp, e in zip(keep, external)):
                cites = "; ".join(dict.fromkeys(_text(col["external_citation"][i])
                                                for i, kp, e in zip(pos, keep, external) if kp and e))
                excluded.append(Excluded(study_id, f"uses numbers from outside the sources ({cites}); the "
                                         "analysis does not opt in (include_external: true)", "external"))
                continue
            keep = [kp and not e for kp, e in zip(keep, external)]
        if drop_flags and "flags" in col:
            flagged = [bool(drop_flags & set(_flag_list(col["flags"][i]))) for i in pos]
            if any(keep) and not any(kp and not f for kp, f in zip(keep, flagged)):
                excluded.append(Excluded(study_id, "only rows flagged " + ", ".join(sorted(drop_flags))
                                         + " (sensitivity analysis)", "filter"))
                continue
            keep = [kp and not f for kp, f in zip(keep, flagged)]
        if exclude_derived and "derived" in col:
            derived = [bool(col["derived"][i]) for i in pos]
            if any(keep) and not any(kp and not d for kp, d in zip(keep, derived)):
                excluded.append(Excluded(study_id, "only counts derived from percentages (sensitivity analysis)", "filter"))
                continue
            keep = [kp and not d for kp, d in zip(keep, derived)]
        if not any(keep):
            excluded.append(Excluded(study_id, "outside the filter: " + "; ".join(dict.fromkeys(failures)), "filter"))
            continue
        chosen = sorted((i for i, kp in zip(pos, keep) if kp), key=lambda i: _preference(col, i))
        first = chosen[0]
        depth, total = col["cohort_kind"][first] == "subgroup", col["total"][first]
        ties = [i for i in chosen if (col["cohort_kind"][i] == "subgroup") == depth and col["total"][i] == total]
        timepoints = [_text(col["timepoint"][i]) if "timepoint" in col else "" for i in ties]
        if len(ties) > 1 and len(set(timepoints)) > 1:
            notes.append(f"{study_id}: {len(ties)} rows qualify equally ({'; '.join(timepoints)}); "
                         f"the first in the file ({timepoints[0] or 'no time point'}) is used")
        candidates.append(table.iloc[first])

    # overlaps: greedy in order of preference, followed transitively through containment
    closure = overlap_closure(evidence)
    prefer = {pid: i for i, pid in enumerate(spec.prefer)}
    candidates.sort(key=lambda r: (prefer.get(r.study_id, len(prefer)), -int(r.total), -int(r.year), r.study_id))
    kept: list[pd.Series] = []
    kept_ids: set[str] = set()
    dropped_partial: list[pd.Series] = []
    for row in candidates:
        links = closure.get(row.study_id, {})
        clash = sorted(set(links) & kept_ids)
        if clash:
            why = ("listed first in 'prefer'" if clash[0] in prefer else "larger or more recent")
            partial = all(links[c] == "partial" for c in clash)
            if partial and include_partial_overlaps:
                notes.append(f"{row.study_id}: kept despite a partial overlap with {', '.join(clash)} "
                             "(sensitivity analysis)")
                kept.append(row)
                kept_ids.add(row.study_id)
                continue
            kind = "a partial overlap (kept in a sensitivity analysis)" if partial else "the same patients"
            excluded.append(Excluded(row.study_id, f"overlaps with {', '.join(clash)} ({why}), which is included; "
                                     f"{kind}", "overlap"))
            if partial:
                dropped_partial.append(row)
            continue
        kept.append(row)
        kept_ids.add(row.study_id)
    external_kept = [r for r in kept if bool(r.get("external", False)) is True]
    if external_kept:
        notes.append("includes numbers from outside the sources (include_external): " + "; ".join(
            f"{r.study_id} ({_text(r.get('external_citation'))})" for r in external_kept))
    partial_rows = _labelled(pd.DataFrame(dropped_partial)) if dropped_partial else table.iloc[0:0].copy()
    partial_ids = tuple(sorted(r.study_id for r in dropped_partial))
    if not kept:
        empty = table.iloc[0:0].copy()
        empty.insert(0, "label", pd.Series(dtype=str))
        return Selection(spec, empty.reset_index(drop=True), tuple(sorted(excluded, key=lambda e: e.study_id)), readings,
                         tuple(notes), partial_ids, partial_rows)
    rows = _labelled(pd.DataFrame(kept))
    return Selection(spec, rows, tuple(sorted(excluded, key=lambda e: e.study_id)), readings, tuple(notes),
                     partial_ids, partial_rows)


def _labelled(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order of the forest plot (year, id) with unique study labels in front."""
    rows = rows.reset_index(drop=True).sort_values(["year", "study_id"], kind="stable").reset_index(drop=True)
    labels = [study_label(a, int(y)) for a, y in zip(rows.first_author, rows.year)]
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        if counts[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}{_suffix(seen[label])}"
        unique.append(label)
    rows.insert(0, "label", unique)
    return rows
