"""The evidence schema: typed, frozen records for the review file and for each publication.

One YAML file per publication in ``evidence/``, its file name equal to its ``id``; one review
file (``evidence/review.yaml``) that defines the source documents, the outcome codes and the
moderators, so that nothing in the engine is specific to one review.

Every number carries its provenance: objects that hold numbers (a cohort's ``n``, an outcome's
counts, a characteristic, a comparison, a patient table) have a ``provenance`` list of
:class:`Provenance` entries, each naming the source document, the location in it and a verbatim
quote. A number that does not stand in its quote must be declared in ``derived``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ID_PATTERN",
    "Design",
    "Setting",
    "Denominator",
    "Provenance",
    "Derivation",
    "SourceDocument",
    "OutcomeDefinition",
    "ModeratorDefinition",
    "Review",
    "Overlap",
    "BlastBurden",
    "RelapseLines",
    "PriorHsct",
    "Age",
    "Dose",
    "Characteristics",
    "Cohort",
    "AlternativeReading",
    "Outcome",
    "Comparison",
    "PatientColumn",
    "PatientTable",
    "Publication",
]

#: Pattern of every identifier (publication, cohort, outcome, moderator, source).
ID_PATTERN = r"^[a-z][a-z0-9_]*$"

Identifier = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
ShortText = Annotated[str, Field(min_length=1, max_length=500)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
PositiveCount = Annotated[int, Field(ge=1, le=10_000_000)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]

Design = Literal[
    "randomized", "single_arm_trial", "expanded_access", "retrospective_cohort", "case_series"
]
Setting = Literal["clinical_trial", "real_world"]
Denominator = Literal[
    "all_treated", "overt_disease", "responders", "assessed", "evaluable", "other"
]
ModeratorValue = str | float | bool


class _Record(BaseModel):
    """Base of all records: immutable, unknown keys rejected, no NaN or infinity."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=False)


class Provenance(_Record):
    """Where a number comes from: a source document, a place in it and a verbatim quote."""

    source: Identifier = Field(description="Key of a source document defined in the review file.")
    location: ShortText = Field(
        description="Section, table or paragraph of the source, e.g. 'Results, 3.2' or 'Table 1'."
    )
    quote: Text = Field(
        description="Verbatim text from the source (whitespace may be normalised) that holds the number."
    )


class Derivation(_Record):
    """A number that does not stand in its quote as such, and how it was derived."""

    fields: list[Identifier] = Field(
        min_length=1, description="Names of the fields that are derived, e.g. ['events']."
    )
    method: Text = Field(description="How, e.g. 'events = round(0.39 x 70) from the printed 39%'.")


class SourceDocument(_Record):
    """One source document of the review (a publication as converted to text)."""

    file: ShortText = Field(description="File name of the text in the sources folder.")
    citation: Text
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    kind: ShortText | None = None


class OutcomeDefinition(_Record):
    """An outcome code of the review."""

    label: ShortText
    description: Text
    kind: Literal["proportion", "time_to_event"] = "proportion"
    higher_is_better: bool = True


class ModeratorDefinition(_Record):
    """A moderator of the review: categorical (with its levels) or continuous."""

    label: ShortText
    description: Text
    type: Literal["categorical", "continuous"] = "categorical"
    levels: dict[Identifier, ShortText] | None = Field(
        default=None, description="For categorical moderators: level code -> label."
    )

    @model_validator(mode="after")
    def _levels_match_type(self) -> ModeratorDefinition:
        if self.type == "categorical" and not self.levels:
            raise ValueError("a categorical moderator needs 'levels'")
        if self.type == "continuous" and self.levels:
            raise ValueError("a continuous moderator has no 'levels'")
        return self


class Review(_Record):
    """The review file: question, source documents, outcome codes and moderators."""

    id: Identifier
    title: ShortText
    question: Text
    sources: dict[Identifier, SourceDocument] = Field(min_length=1)
    outcomes: dict[Identifier, OutcomeDefinition] = Field(min_length=1)
    moderators: dict[Identifier, ModeratorDefinition] = Field(default_factory=dict)


class Overlap(_Record):
    """Patients this publication shares with another one."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    with_: Identifier = Field(alias="with", description="Id of the other publication.")
    relation: Literal["same_patients", "subset", "superset", "partial"] = Field(
        description="This publication's patients relative to the other's: the same, a subset "
        "of them, a superset, or a partial overlap."
    )
    note: Text


class BlastBurden(_Record):
    """Marrow blast burden of a cohort, as far as the source reports it."""

    n_lt5: Count | None = Field(default=None, description="Patients with <5% marrow blasts.")
    n_ge5: Count | None = Field(default=None, description="Patients with >=5% marrow blasts.")
    n_ge25: Count | None = Field(default=None, description="Patients with >=25% marrow blasts.")
    n_ge50: Count | None = Field(default=None, description="Patients with >=50% marrow blasts.")
    pct_ge25: Percent | None = None
    pct_ge50: Percent | None = None
    median_pct: Percent | None = Field(default=None, description="Median marrow blast %.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None


class RelapseLines(_Record):
    """Disease status before blinatumomab: counts by relapse line."""

    refractory: Count | None = None
    first_relapse: Count | None = None
    second_or_later: Count | None = None
    post_hsct: Count | None = Field(default=None, description="Relapse after HSCT.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None


class PriorHsct(_Record):
    """Patients with an allogeneic HSCT before blinatumomab."""

    n: Count
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None


class Age(_Record):
    """Age at blinatumomab, in years."""

    median: float | None = Field(default=None, ge=0, le=30)
    mean: float | None = Field(default=None, ge=0, le=30)
    min: float | None = Field(default=None, ge=0, le=30)
    max: float | None = Field(default=None, ge=0, le=30)
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None


class Dose(_Record):
    """Dose and schedule as the source states them."""

    text: ShortText
    provenance: list[Provenance] = Field(min_length=1)


class Characteristics(_Record):
    """Reported characteristics of a cohort, subgroup or arm."""

    blast_burden: BlastBurden | None = None
    relapse_lines: RelapseLines | None = None
    prior_hsct: PriorHsct | None = None
    age: Age | None = None
    dose: Dose | None = None


class Cohort(_Record):
    """A cohort, a subgroup of one, or a randomized arm."""

    id: Identifier
    label: ShortText
    kind: Literal["cohort", "subgroup", "arm"] = "cohort"
    parent: Identifier | None = Field(
        default=None, description="For a subgroup: the id of the cohort it is part of."
    )
    treatment: ShortText | None = Field(
        default=None, description="For an arm: what it received, e.g. 'blinatumomab'."
    )
    n: PositiveCount
    moderators: dict[Identifier, ModeratorValue] = Field(
        default_factory=dict,
        description="Moderator code -> level (or number); a subgroup inherits its parent's.",
    )
    characteristics: Characteristics | None = None
    provenance: list[Provenance] = Field(min_length=1, description="Where n is stated.")
    derived: Derivation | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> Cohort:
        if self.kind == "subgroup" and self.parent is None:
            raise ValueError("a subgroup needs 'parent'")
        if self.kind == "arm" and self.treatment is None:
            raise ValueError("an arm needs 'treatment'")
        if self.parent == self.id:
            raise ValueError("a cohort cannot be its own parent")
        return self


class AlternativeReading(_Record):
    """Another reading of the same outcome where a source contradicts itself."""

    events: Count
    total: PositiveCount
    percent: Percent | None = None
    reason: Text = Field(description="Why this reading differs from the primary one.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None

    @model_validator(mode="after")
    def _events_within_total(self) -> AlternativeReading:
        if self.events > self.total:
            raise ValueError(f"events ({self.events}) exceed total ({self.total})")
        return self


class Outcome(_Record):
    """A binary outcome of one cohort: events out of total."""

    code: Identifier = Field(description="An outcome code defined in the review file.")
    cohort: Identifier = Field(description="Id of the cohort, subgroup or arm it belongs to.")
    events: Count
    total: PositiveCount
    percent: Percent | None = Field(default=None, description="The percentage the source printed.")
    denominator: Denominator = Field(
        description="Who the total counts: all treated, overt disease only, responders only, ..."
    )
    timepoint: ShortText | None = Field(default=None, description="E.g. 'within two cycles'.")
    definition: Text | None = Field(default=None, description="The source's definition.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    alternatives: list[AlternativeReading] = Field(default_factory=list)
    primary_reason: Text | None = Field(
        default=None, description="With alternatives: why this reading is the primary one."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Outcome:
        if self.events > self.total:
            raise ValueError(f"events ({self.events}) exceed total ({self.total})")
        if self.alternatives and not self.primary_reason:
            raise ValueError("an outcome with 'alternatives' needs 'primary_reason'")
        return self


class Comparison(_Record):
    """A comparative result of a randomized trial (hazard ratio, risk ratio, ...)."""

    id: Identifier
    endpoint: Identifier = Field(description="E.g. 'efs', 'dfs', 'os', or an outcome code.")
    measure: Literal["hr", "rr", "or", "rd"]
    estimate: float
    ci_lb: float
    ci_ub: float
    level: float = Field(default=95.0, gt=50.0, lt=100.0)
    pvalue: float | None = Field(default=None, ge=0.0, le=1.0)
    experimental: Identifier = Field(description="Cohort id of the experimental arm.")
    control: Identifier = Field(description="Cohort id of the control arm.")
    timepoint: ShortText | None = None
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None

    @model_validator(mode="after")
    def _interval(self) -> Comparison:
        if not self.ci_lb <= self.estimate <= self.ci_ub:
            raise ValueError(
                f"estimate {self.estimate} is not within its interval [{self.ci_lb}, {self.ci_ub}]"
            )
        if self.measure in ("hr", "rr", "or") and self.ci_lb <= 0:
            raise ValueError(f"a {self.measure} and its interval must be positive")
        return self


class PatientColumn(_Record):
    """A column of an individual-patient table."""

    description: Text
    type: Literal["number", "boolean", "text"] = "number"
    unit: ShortText | None = None


class PatientTable(_Record):
    """Individual patient rows, where a source prints them."""

    cohort: Identifier
    columns: dict[Identifier, PatientColumn] = Field(min_length=1)
    rows: list[dict[Identifier, float | bool | str | None]] = Field(min_length=1)
    provenance: list[Provenance] = Field(min_length=1)

    @model_validator(mode="after")
    def _rows_match_columns(self) -> PatientTable:
        for i, row in enumerate(self.rows):
            unknown = set(row) - set(self.columns) - {"id"}
            if unknown:
                raise ValueError(f"rows[{i}] has unknown columns: {', '.join(sorted(unknown))}")
            for name, value in row.items():
                if name == "id" or value is None:
                    continue
                kind = self.columns[name].type
                ok = (
                    (kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
                    or (kind == "boolean" and isinstance(value, bool))
                    or (kind == "text" and isinstance(value, str))
                )
                if not ok:
                    raise ValueError(f"rows[{i}].{name}: {value!r} is not of type {kind}")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"rows[{i}].{name}: not a finite number")
        return self


class Publication(_Record):
    """One publication: what it is, whom it reports, and its results."""

    id: Identifier = Field(description="Equal to the file name without '.yaml'.")
    first_author: ShortText
    year: int = Field(ge=1990, le=2100)
    title: ShortText
    journal: ShortText | None = None
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    registration: ShortText | None = Field(default=None, description="E.g. NCT number.")
    design: Design
    setting: Setting
    population: Text
    reported_in: list[Identifier] = Field(
        min_length=1, description="Source documents its numbers are taken from."
    )
    overlaps: list[Overlap] = Field(default_factory=list)
    moderators: dict[Identifier, ModeratorValue] = Field(
        default_factory=dict, description="Publication-level moderators, inherited by cohorts."
    )
    cohorts: list[Cohort] = Field(min_length=1)
    outcomes: list[Outcome] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    patients: PatientTable | None = None
    notes: Text | None = None

    @field_validator("cohorts")
    @classmethod
    def _unique_cohorts(cls, cohorts: list[Cohort]) -> list[Cohort]:
        seen: set[str] = set()
        for cohort in cohorts:
            if cohort.id in seen:
                raise ValueError(f"duplicate cohort id {cohort.id!r}")
            seen.add(cohort.id)
        return cohorts

    def cohort(self, cohort_id: str) -> Cohort:
        """The cohort with this id."""
        for cohort in self.cohorts:
            if cohort.id == cohort_id:
                return cohort
        raise KeyError(cohort_id)

    def resolved_moderators(self, cohort_id: str) -> dict[str, ModeratorValue]:
        """Moderators of a cohort, inherited from the publication and from parent cohorts."""
        chain: list[Cohort] = []
        current: Cohort | None = self.cohort(cohort_id)
        seen: set[str] = set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            chain.append(current)
            current = self.cohort(current.parent) if current.parent and any(
                c.id == current.parent for c in self.cohorts
            ) else None
        values: dict[str, ModeratorValue] = {"design": self.design, "setting": self.setting}
        values.update(self.moderators)
        for cohort in reversed(chain):
            values.update(cohort.moderators)
        return values
