"""The evidence schema: typed, frozen records for the review file and for each publication.

One YAML file per publication in ``evidence/``, its file name equal to its ``id``; one review
file (``evidence/review.yaml``) that defines the source documents, the outcome codes and the
moderators, so that nothing in the engine is specific to one review.

Every number carries its provenance: objects that hold numbers (a cohort's ``n``, an outcome's
counts, a characteristic, a comparison, a patient table) have a ``provenance`` list of
:class:`Provenance` entries, each naming the source document, the location in it and a verbatim
quote. A number that does not stand in its quote must be declared in ``derived``.

Evidence v2 (``/work/notes/evidence_v2_contract.md``; documented in ``evidence/README.md``) adds:
``own_source`` (primary vs secondary numbers), ``external`` blocks for numbers and facts that do
not come from the source documents, outcome definition families (``family``, ``grading``,
``mrd_method``, ``mrd_threshold``, ``assessment``), ``flags``, survival rows (``percent`` at
``time_months``, ``median``), overlap ``shared_patients`` and a ``risk_of_bias`` block whose tool
is defined in the review file (:class:`RiskOfBiasTool`).
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
    "External",
    "PublicationExternal",
    "OutcomeFlag",
    "Grading",
    "MrdMethod",
    "Median",
    "RiskOfBiasTool",
    "RobJudgement",
    "RobItem",
    "RobResult",
    "RiskOfBias",
    "RobOverall",
    "SURVIVAL_CODES",
]

#: Shortest quote accepted (characters after whitespace normalisation).
MIN_QUOTE_CHARS = 8

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
    "all_treated", "overt_disease", "responders", "assessed", "evaluable", "relapsed",
    "safety_set", "other"
]
#: Outcome codes of survival rows (kind ``time_to_event`` in the review file).
SURVIVAL_CODES = ("os", "efs", "dfs", "rfs")
OutcomeFlag = Literal["lower_bound", "upper_bound", "unclear_denominator", "ambiguous", "treatment_related_only"]
Grading = Literal["ctcae_v4", "ctcae_v5", "lee2014", "astct", "unspecified"]
MrdMethod = Literal["flow", "pcr", "ngs", "mixed", "unspecified"]
RobOverall = Literal["low", "some_concerns", "high"]
#: Every judgement any tool allows; which ones a tool allows is in the review file.
RobJudgement = Literal[
    "low", "some_concerns", "high", "no_information", "yes", "no", "unclear", "not_applicable", 0, 1, 2
]
ModeratorValue = str | float | bool


class _Record(BaseModel):
    """Base of all records: immutable, unknown keys rejected, no NaN or infinity."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class Provenance(_Record):
    """Where a number comes from: a source document, a place in it and a verbatim quote."""

    source: Identifier = Field(description="Key of a source document defined in the review file.")
    location: ShortText = Field(
        description="Section, table or paragraph of the source, e.g. 'Results, 3.2' or 'Table 1'."
    )
    quote: Text = Field(
        description="Verbatim text from the source (whitespace may be normalised) that holds the number."
    )

    @field_validator("quote")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        # a one-character quote such as '3' "stands verbatim" in any document: a quote must carry
        # the number with some context ('17 of 30', 'Patient 1'), i.e. at least 8 characters
        if len(" ".join(value.split())) < MIN_QUOTE_CHARS:
            raise ValueError(f"a quote needs at least {MIN_QUOTE_CHARS} characters: the number with its context")
        return value


class Derivation(_Record):
    """A number that does not stand in its quote as such, and how it was derived."""

    fields: list[Identifier] = Field(
        min_length=1, description="Names of the fields that are derived, e.g. ['events']."
    )
    method: Text = Field(description="How, e.g. 'events = round(0.39 x 70) from the printed 39%'.")


class External(_Record):
    """Numbers of a record that come from outside the source documents, with their citation.

    Their quotes are not checked against the sources (their provenance may be omitted for those
    fields); a row that uses an external number is marked ``external`` in the tidy table and
    left out of analyses unless the model opts in (``include_external: true``).
    """

    fields: list[Identifier] = Field(
        min_length=1, description="Names of the fields that are external, e.g. ['n'] or ['events', 'total']."
    )
    citation: Text = Field(description="Where the numbers come from (required).")
    note: Text | None = None


class PublicationExternal(_Record):
    """Publication-level facts (title, journal, population, ...) that do not come from the sources."""

    fields: list[Identifier] = Field(min_length=1, description="E.g. ['title', 'journal'].")
    citation: Text = Field(description="Where the facts come from (required).")
    note: Text | None = None


class SourceDocument(_Record):
    """One source document of the review (a publication as converted to text)."""

    file: ShortText = Field(description="File name of the text in the sources folder.")
    citation: Text
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    kind: ShortText | None = None

    @field_validator("file")
    @classmethod
    def _inside_sources(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "~")) or ":" in parts[0] or ".." in parts:
            raise ValueError("must be a path inside the sources folder (no '..', no absolute path)")
        return value


class OutcomeDefinition(_Record):
    """An outcome code of the review."""

    label: ShortText
    description: Text
    kind: Literal["proportion", "time_to_event"] = "proportion"
    higher_is_better: bool = True
    families: dict[Identifier, ShortText] | None = Field(
        default=None,
        description="Definition families of this outcome (id -> label), e.g. icans vs all_neuro_ae; "
        "an outcome row's 'family' must be one of them.",
    )


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


class RiskOfBiasTool(_Record):
    """A risk-of-bias tool: its items, the judgements it allows and the rule to an overall judgement.

    The rule is applied in code by :func:`blinameta.evidence.rob.overall_from_items` for the
    tool keys ``rob2``, ``jbi_case_series`` and ``minors``; ``rule`` states it in words.
    """

    label: ShortText
    reference: Text = Field(description="Citation of the tool.")
    items: dict[Identifier, ShortText] = Field(min_length=1, description="Item id -> question.")
    judgements: list[RobJudgement] = Field(min_length=1, description="Judgements an item may take.")
    rule: Text = Field(description="How the items map onto low / some_concerns / high.")
    per_result: bool = Field(
        default=False, description="Judged per result (RoB 2): the block lists 'results'."
    )


class GradeFramework(_Record):
    """How the certainty of the evidence is rated (GRADE): framework, starting levels and why."""

    framework: ShortText
    start_randomized: Literal["high", "low"] = "high"
    start_single_arm: Literal["high", "low"] = Field(
        description="Starting level of single-arm rates: high (Iorio et al. 2015) or low.")
    justification: Text
    references: list[Text] = Field(default_factory=list)


class Review(_Record):
    """The review file: question, source documents, outcome codes and moderators."""

    id: Identifier
    title: ShortText
    question: Text
    sources: dict[Identifier, SourceDocument] = Field(default_factory=dict)
    outcomes: dict[Identifier, OutcomeDefinition] = Field(min_length=1)
    moderators: dict[Identifier, ModeratorDefinition] = Field(default_factory=dict)
    risk_of_bias_tools: dict[Identifier, RiskOfBiasTool] = Field(default_factory=dict)
    sources_dir: ShortText | None = Field(
        default=None, description="Folder of the source documents, relative to the evidence folder."
    )
    grade: GradeFramework | None = Field(
        default=None, description="GRADE framework and starting levels (blinameta.analysis.grade)."
    )


class Overlap(_Record):
    """Patients this publication shares with another one."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    with_: Identifier = Field(alias="with", description="Id of the other publication.")
    relation: Literal["same_patients", "subset", "superset", "partial"] = Field(
        description="This publication's patients relative to the other's: the same, a subset "
        "of them, a superset, or a partial overlap."
    )
    note: Text
    shared_patients: Count | None = Field(
        default=None, description="Number of shared patients where a source gives it (approximate where 'about')."
    )
    shared_note: Text | None = Field(default=None, description="What is known of the shared patients.")


class BlastBurden(_Record):
    """Marrow blast burden of a cohort, as far as the source reports it."""

    n_lt5: Count | None = Field(default=None, description="Patients with <5% marrow blasts.")
    n_ge5: Count | None = Field(default=None, description="Patients with >=5% marrow blasts.")
    n_ge25: Count | None = Field(default=None, description="Patients with >=25% marrow blasts.")
    n_ge50: Count | None = Field(default=None, description="Patients with >=50% marrow blasts.")
    pct_lt5: Percent | None = None
    pct_ge5: Percent | None = None
    pct_ge25: Percent | None = None
    pct_ge50: Percent | None = None
    median_pct: Percent | None = Field(default=None, description="Median marrow blast %.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None


class RelapseLines(_Record):
    """Disease status before blinatumomab: counts by relapse line."""

    refractory: Count | None = None
    first_relapse: Count | None = None
    second_or_later: Count | None = None
    post_hsct: Count | None = Field(default=None, description="Relapse after HSCT.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None


class PriorHsct(_Record):
    """Patients with an allogeneic HSCT before blinatumomab."""

    n: Count
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None


class Age(_Record):
    """Age at blinatumomab, in years."""

    median: float | None = Field(default=None, ge=0, le=30)
    mean: float | None = Field(default=None, ge=0, le=30)
    min: float | None = Field(default=None, ge=0, le=30)
    max: float | None = Field(default=None, ge=0, le=30)
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None


class Dose(_Record):
    """Dose and schedule as the source states them."""

    text: ShortText
    provenance: list[Provenance] = Field(min_length=1)
    external: External | None = None


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
    external: External | None = None

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

    events: Count | None = None
    total: PositiveCount | None = None
    percent: Percent | None = None
    reason: Text = Field(description="Why this reading differs from the primary one.")
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None

    @model_validator(mode="after")
    def _events_within_total(self) -> AlternativeReading:
        _check_counts(self.events, self.total, self.percent, None)
        return self


def _check_counts(events: int | None, total: int | None, percent: float | None, median: object) -> None:
    if (events is None) != (total is None):
        raise ValueError("'events' and 'total' go together: give both or neither")
    if events is None and percent is None and median is None:
        raise ValueError("give 'events' and 'total' (or, for a survival row, 'percent' or 'median')")
    if events is not None and total is not None and events > total:
        raise ValueError(f"events ({events}) exceed total ({total})")


class Median(_Record):
    """A median time (survival, follow-up) as the source prints it, in months."""

    months: float | None = Field(default=None, ge=0, le=1200, description="None when not reached.")
    ci_lb: float | None = Field(default=None, ge=0, le=1200)
    ci_ub: float | None = Field(default=None, ge=0, le=1200)
    range_lb: float | None = Field(default=None, ge=0, le=1200)
    range_ub: float | None = Field(default=None, ge=0, le=1200)
    reached: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Median:
        if self.reached and self.months is None:
            raise ValueError("a reached median needs 'months' (or set reached: false)")
        if self.ci_lb is not None and self.ci_ub is not None and self.ci_lb > self.ci_ub:
            raise ValueError(f"ci_lb ({self.ci_lb}) exceeds ci_ub ({self.ci_ub})")
        return self


class Outcome(_Record):
    """An outcome of one cohort: events out of total, or a survival estimate at a time point.

    Proportion outcomes need ``events`` and ``total``. Survival rows (codes of kind
    ``time_to_event`` in the review file: os, efs, dfs, rfs) give ``percent`` at ``time_months``
    (with ``ci_lb``/``ci_ub`` in percent and ``n_at_risk`` where printed) and/or a ``median``;
    counts only where the source prints them.
    """

    code: Identifier = Field(description="An outcome code defined in the review file.")
    cohort: Identifier = Field(description="Id of the cohort, subgroup or arm it belongs to.")
    events: Count | None = Field(default=None, description="Required for proportion outcomes.")
    total: PositiveCount | None = Field(default=None, description="Required for proportion outcomes.")
    percent: Percent | None = Field(
        default=None,
        description="The percentage the source printed; for a survival row the estimate at time_months.",
    )
    denominator: Denominator = Field(
        description="Who the total counts: all treated, overt disease only, responders only, ..."
    )
    timepoint: ShortText | None = Field(default=None, description="E.g. 'within two cycles'.")
    definition: Text | None = Field(default=None, description="The source's definition.")
    flags: list[OutcomeFlag] = Field(
        default_factory=list,
        description="lower_bound, upper_bound, unclear_denominator, ambiguous, treatment_related_only.",
    )
    family: Identifier | None = Field(
        default=None, description="Definition family, one of review.yaml outcomes.<code>.families."
    )
    grading: Grading | None = None
    mrd_method: MrdMethod | None = None
    mrd_threshold: float | None = Field(default=None, gt=0, le=1, description="E.g. 1.0e-4.")
    assessment: ShortText | None = Field(default=None, description="E.g. 'day 28 of cycle 1'.")
    time_months: float | None = Field(
        default=None, ge=0, le=1200, description="Survival rows: the time point of 'percent', in months."
    )
    ci_lb: Percent | None = Field(default=None, description="Survival rows: lower CI bound, percent.")
    ci_ub: Percent | None = Field(default=None, description="Survival rows: upper CI bound, percent.")
    n_at_risk: Count | None = None
    median: Median | None = None
    provenance: list[Provenance] = Field(min_length=1)
    derived: Derivation | None = None
    external: External | None = None
    alternatives: list[AlternativeReading] = Field(default_factory=list)
    primary_reason: Text | None = Field(
        default=None, description="With alternatives: why this reading is the primary one."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Outcome:
        _check_counts(self.events, self.total, self.percent, self.median)
        if self.alternatives and not self.primary_reason:
            raise ValueError("an outcome with 'alternatives' needs 'primary_reason'")
        if self.ci_lb is not None and self.ci_ub is not None and self.ci_lb > self.ci_ub:
            raise ValueError(f"ci_lb ({self.ci_lb}) exceeds ci_ub ({self.ci_ub})")
        if len(set(self.flags)) != len(self.flags):
            raise ValueError("a flag is listed twice")
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
    external: External | None = None

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


class RobItem(_Record):
    """One item of a risk-of-bias tool, judged with a reason."""

    item: Identifier = Field(description="Item id of the tool in review.yaml, e.g. q1, d2, m5.")
    judgement: RobJudgement
    reason: Text
    provenance: list[Provenance] = Field(default_factory=list)


class RobResult(_Record):
    """RoB 2: the judgement of one result (one or more outcome / endpoint codes)."""

    outcomes: list[Identifier] = Field(min_length=1, description="Outcome or endpoint codes it covers.")
    items: list[RobItem] = Field(min_length=1)
    overall: RobOverall
    overall_reason: Text


class RiskOfBias(_Record):
    """Risk of bias of a publication with a named tool (review.yaml ``risk_of_bias_tools``)."""

    tool: Identifier
    items: list[RobItem] = Field(
        default_factory=list, description="Every item of the tool, each once (RoB 2: see results)."
    )
    overall: RobOverall
    overall_reason: Text
    results: list[RobResult] = Field(default_factory=list, description="RoB 2 only: per result.")


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
    own_source: Identifier | None = Field(
        default=None,
        description="The source document that is this publication's own report (None if it is only "
        "quoted by other documents). A number is primary when every quote of its row is from it.",
    )
    external: list[PublicationExternal] = Field(
        default_factory=list, description="Publication-level facts from outside the sources."
    )
    overlaps: list[Overlap] = Field(default_factory=list)
    moderators: dict[Identifier, ModeratorValue] = Field(
        default_factory=dict, description="Publication-level moderators, inherited by cohorts."
    )
    cohorts: list[Cohort] = Field(min_length=1)
    outcomes: list[Outcome] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    patients: PatientTable | None = None
    risk_of_bias: RiskOfBias | None = None
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
