"""Analysis specifications: one YAML file per analysis in ``models/``.

A specification says what to pool (an outcome, or a randomized comparison), which rows of the
tidy table qualify (a filter on moderators and other columns), which publication to prefer
where two report the same patients, the subgroups and moderators to examine, and the settings
of the frequentist and Bayesian fits. It is read with the same safe YAML reader as the
evidence and validated against the review (outcome codes and moderator levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from blinameta.errors import UserError
from blinameta.evidence.loader import Problem, format_path, misnamed_yaml_files
from blinameta.evidence.schema import ID_PATTERN, Denominator, Design, Review, Setting
from blinameta.evidence.yamlsafe import ParsedYaml, parse_yaml

__all__ = [
    "FrequentistSettings",
    "BayesSettings",
    "SensitivitySettings",
    "Exclusion",
    "DecisionThreshold",
    "GradeDomainOverride",
    "GradeSettings",
    "GRADE_DOMAINS",
    "SHARE_MODERATORS",
    "AnalysisSpec",
    "primary_spec",
    "methods_rules",
    "FILTER_COLUMNS",
    "load_specs",
    "load_specs_or_fail",
    "check_spec",
]

#: Columns of the tidy table a filter may use besides the review's moderators.
FILTER_COLUMNS = ("design", "setting", "denominator", "cohort_kind", "treatment", "timepoint", "study_id")

#: Values of the filter columns that the schema fixes (read from the schema, so they cannot drift).
_FIXED_VALUES = {
    "design": get_args(Design),
    "setting": get_args(Setting),
    "denominator": get_args(Denominator),
    "cohort_kind": ("cohort", "subgroup", "arm"),
}


class _Spec(BaseModel):
    # strict: no YAML 1.1 or string surprises (``enabled: off``, ``level: '90'``, ``permutations: 1e3``);
    # an integer is still accepted where a float is expected
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class FrequentistSettings(_Spec):
    """Settings of the frequentist fit (metafor's names)."""

    measure: Literal["PR", "PLN", "PLO", "PAS", "PFT"] = Field(
        default="PLO", description="Effect-size scale for proportions (ignored for comparisons)."
    )
    method: Literal["EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"] = "REML"
    test: Literal["z", "knha"] = "knha"
    level: float = Field(default=95.0, gt=50.0, lt=100.0)
    glmm: bool = Field(default=True, description="Also fit the binomial-normal GLMM (proportions).")
    permutations: int = Field(default=1000, ge=0, le=100_000,
                              description="Permutations for the meta-regression permutation test.")


class BayesSettings(_Spec):
    """Priors of the Bayesian hierarchical model (text form, see blinameta.bayes.priors)."""

    enabled: bool = True
    prior_mu: str = "normal:0:1.5"
    prior_tau: str = "half_normal:0.5"
    thresholds: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.3, 0.5], description="Report P(rate > x) for these x (fractions, 0 < x < 1).")

    @field_validator("prior_mu", "prior_tau")
    @classmethod
    def _known_prior(cls, value: str, info) -> str:
        """Priors are checked when the model is read, not when a fit happens to run."""
        from blinameta.bayes.priors import parse_prior
        from blinameta.errors import UserError

        try:
            parse_prior(value, kind="location" if info.field_name == "prior_mu" else "scale", what=info.field_name)
        except UserError as exc:
            raise ValueError(str(exc).removeprefix(f"{info.field_name}: ")) from None
        return value


class SensitivitySettings(_Spec):
    """Which sensitivity analyses to run."""

    alternatives: bool = Field(default=True, description="Re-fit with the alternative readings of contradictory sources.")
    exclude_derived: bool = Field(default=True, description="Re-fit without counts derived from percentages.")
    leave_one_out: bool = True


class DecisionThreshold(_Spec):
    """The value that separates a worthwhile result from one that is not, for this outcome.

    A fraction for proportions, a ratio for hazard or risk ratios. ``direction`` says on which
    side the desirable results lie: ``above`` (e.g. complete remission) or ``below`` (toxicity,
    a hazard ratio of death). It is the review team's judgement, stated with its reason in
    ``text``; GRADE rates imprecision and inconsistency against it (Schünemann et al.,
    GRADE Handbook 5.2; Guyatt et al. 2011, J Clin Epidemiol 64:1283), the sensitivity strip
    flags rows that cross it, and the design tools take it as the default p0.
    """

    value: float = Field(gt=0.0, description="Fraction (proportions) or ratio (HR, RR).")
    direction: Literal["above", "below"] = Field(
        description="Where the desirable results lie: above or below the value.")
    text: str = Field(min_length=10, max_length=1000,
                      description="Why this value: the clinical justification, in one or two sentences.")

    def favourable(self, value: float) -> bool:
        """Whether ``value`` lies on the desirable side of the threshold."""
        return value > self.value if self.direction == "above" else value < self.value


#: GRADE domains that can lower the certainty of a body of evidence (GRADE Handbook 5.1).
GRADE_DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")

#: Continuous moderators (cohort-level shares, 0..1) of the tidy table (evidence v2).
SHARE_MODERATORS = ("share_refractory", "share_first_relapse", "share_second_or_later", "share_post_hsct",
                    "share_ge5", "share_ge25")


class GradeDomainOverride(_Spec):
    """The review team's judgement for one GRADE domain, replacing the computed one."""

    levels: int = Field(ge=0, le=2, description="Levels to rate down in this domain (0, 1 or 2).")
    reason: str = Field(min_length=10, max_length=1000, description="Why the computed judgement is overridden.")


class GradeSettings(_Spec):
    """Overrides of the computed GRADE judgements, each with its reason."""

    override: dict[Literal["risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias"],
                   GradeDomainOverride] = Field(default_factory=dict)


class Exclusion(_Spec):
    """A publication excluded by hand, with the reason."""

    id: str = Field(pattern=ID_PATTERN)
    reason: str = Field(min_length=1)


class AnalysisSpec(_Spec):
    """One analysis."""

    id: str = Field(pattern=ID_PATTERN, max_length=64, description="Equal to the file name.")
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=5000)
    kind: Literal["proportion", "hazard_ratio", "risk_ratio"] = "proportion"
    outcome: str = Field(description="Outcome code (proportion, risk_ratio) of the review.")
    endpoints: list[str] = Field(
        default_factory=list,
        description="For hazard_ratio: the comparison endpoints pooled together, e.g. [efs, dfs].",
    )
    filter: dict[str, list[str | float | bool]] = Field(
        default_factory=dict,
        description="Column -> accepted values; a row must match every listed column.",
    )
    treatment: str = Field(
        default="blinatumomab",
        description="For proportions: randomized arms count only if they received this.",
    )
    control: str = Field(default="chemotherapy", description="For risk ratios: the control arm's treatment.")
    subgroups: list[str] = Field(default_factory=list, description="Moderators for subgroup analyses.")
    moderators: list[str] = Field(default_factory=list, description="Moderators for meta-regression.")
    prefer: list[str] = Field(default_factory=list,
                              description="Publications preferred, in order, where two overlap.")
    exclude: list[Exclusion] = Field(default_factory=list)
    frequentist: FrequentistSettings = Field(default_factory=FrequentistSettings)
    bayes: BayesSettings = Field(default_factory=BayesSettings)
    sensitivity: SensitivitySettings = Field(default_factory=SensitivitySettings)
    order: int = Field(default=100, description="Position in the report's summary table.")
    primary_for_outcome: bool = Field(
        default=False,
        description="This is the outcome's primary analysis (summary of findings, query --outcome); "
        "exactly one per outcome code.")
    headline: Literal["bayes_binomial_normal", "bayes_normal_normal"] | None = Field(
        default=None,
        description="The headline method: the Bayesian binomial-normal model for proportions, "
        "the normal-normal model on the log scale for ratios (filled in from kind when omitted).")
    decision_threshold: DecisionThreshold | None = None
    sensitivity_margin: float | None = Field(
        default=None, gt=0.0, lt=1.0,
        description="A sensitivity row 'moves the estimate' when it differs by more than this: absolute "
        "for proportions (default 0.05), relative for ratios (default 0.10).")
    include_external: bool = Field(
        default=False, description="Pool numbers from outside the source documents (evidence v2 'external').")
    exploratory_moderators: list[str] = Field(
        default_factory=list,
        description="Continuous cohort-level shares (share_ge5, share_first_relapse, ...) for exploratory "
        "Bayesian and GLMM meta-regressions, one at a time.")
    grade: GradeSettings = Field(default_factory=GradeSettings)

    @model_validator(mode="before")
    @classmethod
    def _default_headline(cls, data):
        if isinstance(data, dict) and data.get("headline") is None:
            kind = data.get("kind", "proportion")
            data = {**data, "headline": "bayes_binomial_normal" if kind == "proportion" else "bayes_normal_normal"}
        return data

    @property
    def margin(self) -> float:
        """The sensitivity margin with its default (0.05 absolute, or 10% relative for ratios)."""
        if self.sensitivity_margin is not None:
            return self.sensitivity_margin
        return 0.05 if self.kind == "proportion" else 0.10

    @field_validator("filter")
    @classmethod
    def _non_empty_lists(cls, value: dict) -> dict:
        for key, accepted in value.items():
            if not accepted:
                raise ValueError(f"filter {key!r} lists no values")
        return value


@dataclass(frozen=True)
class _Loaded:
    specs: tuple[AnalysisSpec, ...]
    files: dict[str, Path]
    problems: tuple[Problem, ...]


def check_spec(spec: AnalysisSpec, review: Review, publication_ids: set[str]) -> list[tuple[tuple, str]]:
    """Problems of a specification against the review: (field path, message) pairs."""
    problems: list[tuple[tuple, str]] = []
    outcome_kind = review.outcomes[spec.outcome].kind if spec.outcome in review.outcomes else None
    if spec.outcome not in review.outcomes:
        problems.append((("outcome",), f"unknown outcome {spec.outcome!r}; known: {', '.join(review.outcomes)}"))
    elif spec.kind == "hazard_ratio" and outcome_kind != "time_to_event":
        problems.append((("outcome",), f"a hazard_ratio analysis needs a time-to-event outcome, not {spec.outcome!r}"))
    elif spec.kind != "hazard_ratio" and outcome_kind != "proportion":
        problems.append((("outcome",), f"{spec.outcome!r} is a time-to-event outcome; use kind: hazard_ratio"))
    if spec.endpoints and spec.kind != "hazard_ratio":
        problems.append((("endpoints",), f"endpoints apply to hazard_ratio analyses only; a {spec.kind} analysis "
                         "pools its outcome code (remove endpoints)"))
    for i, endpoint in enumerate(spec.endpoints):
        if endpoint not in review.outcomes:
            problems.append((("endpoints", i), f"unknown endpoint {endpoint!r}"))
        elif review.outcomes[endpoint].kind != "time_to_event":
            problems.append((("endpoints", i), f"{endpoint!r} is not a time-to-event outcome"))
    for key, accepted in spec.filter.items():
        if key in review.moderators:
            definition = review.moderators[key]
            if definition.type == "categorical":
                for j, value in enumerate(accepted):
                    if value not in (definition.levels or {}):
                        problems.append((("filter", key, j),
                                         f"{value!r} is not a level of {key}; levels: {', '.join(definition.levels or {})}"))
        elif key in _FIXED_VALUES:
            for j, value in enumerate(accepted):
                if value not in _FIXED_VALUES[key]:
                    problems.append((("filter", key, j),
                                     f"{value!r} is not a value of {key}; values: {', '.join(_FIXED_VALUES[key])}"))
        elif key == "study_id":
            for j, value in enumerate(accepted):
                if value not in publication_ids:
                    problems.append((("filter", key, j), f"no publication {value!r} in the evidence; "
                                     f"publications: {', '.join(sorted(publication_ids))}"))
        elif key not in FILTER_COLUMNS:
            known = ", ".join(list(review.moderators) + list(FILTER_COLUMNS))
            problems.append((("filter", key), f"unknown filter column {key!r}; known: {known}"))
    for name in ("subgroups", "moderators"):
        for i, moderator in enumerate(getattr(spec, name)):
            if moderator not in review.moderators and moderator not in ("design", "setting", "prior_hsct_pct"):
                problems.append(((name, i), f"unknown moderator {moderator!r}; known: {', '.join(review.moderators)}, design, setting, prior_hsct_pct"))
    for i, pid in enumerate(spec.prefer):
        if pid not in publication_ids:
            problems.append((("prefer", i), f"no publication {pid!r} in the evidence"))
    for i, exclusion in enumerate(spec.exclude):
        if exclusion.id not in publication_ids:
            problems.append((("exclude", i, "id"), f"no publication {exclusion.id!r} in the evidence"))
    expected = "bayes_binomial_normal" if spec.kind == "proportion" else "bayes_normal_normal"
    if spec.headline != expected:
        problems.append((("headline",), f"a {spec.kind} analysis is headlined by {expected}, not {spec.headline}"))
    threshold = spec.decision_threshold
    if threshold is not None and spec.kind == "proportion" and not threshold.value < 1.0:
        problems.append((("decision_threshold", "value"),
                         f"a proportion's decision threshold is a fraction between 0 and 1, not {threshold.value:g}"))
    for i, moderator in enumerate(spec.exploratory_moderators):
        if spec.kind != "proportion":
            problems.append((("exploratory_moderators", i), "exploratory moderators apply to proportions only"))
        elif moderator not in SHARE_MODERATORS:
            problems.append((("exploratory_moderators", i),
                             f"unknown share {moderator!r}; known: {', '.join(SHARE_MODERATORS)}"))
    return problems


def _primary_problems(specs: list[AnalysisSpec], files: dict[str, Path], lines: dict[str, ParsedYaml]) -> list[Problem]:
    """Exactly one primary analysis per outcome code (one model alone is its outcome's primary)."""
    problems: list[Problem] = []
    by_outcome: dict[str, list[AnalysisSpec]] = {}
    for spec in specs:
        by_outcome.setdefault(spec.outcome, []).append(spec)
    for outcome, group in sorted(by_outcome.items()):
        primary = [s for s in group if s.primary_for_outcome]
        if len(primary) > 1:
            names = ", ".join(files[s.id].name for s in primary)
            for s in primary:
                problems.append(Problem(files[s.id], lines[s.id].line_of(("primary_for_outcome",)), "primary_for_outcome",
                                        f"{len(primary)} models are the primary analysis of outcome {outcome!r} "
                                        f"({names}); mark exactly one"))
        elif not primary and len(group) > 1:
            names = ", ".join(files[s.id].name for s in group)
            for s in group:
                problems.append(Problem(files[s.id], lines[s.id].line_of(()), "primary_for_outcome",
                                        f"none of the models of outcome {outcome!r} ({names}) is its primary analysis; "
                                        "set primary_for_outcome: true in exactly one"))
    return problems


def primary_spec(specs, outcome: str) -> AnalysisSpec | None:
    """The primary analysis of ``outcome``: the model flagged ``primary_for_outcome``, or the only one.

    Parameters
    ----------
    specs : iterable of AnalysisSpec
    outcome : str
        Outcome code of the review.

    Returns
    -------
    AnalysisSpec or None
        ``None`` when no model analyses ``outcome``.

    Raises
    ------
    UserError
        When several models analyse ``outcome`` and not exactly one is flagged (the loader
        reports this too, with file and line).
    """
    group = [s for s in specs if s.outcome == outcome]
    flagged = [s for s in group if s.primary_for_outcome]
    if len(flagged) == 1:
        return flagged[0]
    if not flagged and len(group) == 1:
        return group[0]
    if not group:
        return None
    raise UserError(f"outcome {outcome!r}: {len(flagged)} of its {len(group)} models are flagged "
                    f"primary_for_outcome ({', '.join(s.id for s in group)}); flag exactly one")


def load_specs(directory: str | Path, review: Review, publication_ids: set[str]) -> _Loaded:
    """Read and check every ``*.yaml`` in ``directory``; collect all problems."""
    directory = Path(directory)
    specs: list[AnalysisSpec] = []
    files: dict[str, Path] = {}
    lines: dict[str, ParsedYaml] = {}
    problems: list[Problem] = []
    problems.extend(misnamed_yaml_files(directory))
    for path in sorted(directory.glob("*.yaml")):
        parsed, yaml_problems = parse_yaml(path, root=directory)
        if parsed is None:
            problems.extend(Problem(path, p.line, "", p.message) for p in yaml_problems)
            continue
        if not isinstance(parsed.value, dict):
            problems.append(Problem(path, 1, "", "the file must hold a mapping of fields"))
            continue
        try:
            spec = AnalysisSpec.model_validate(parsed.value)
        except ValidationError as exc:
            for item in exc.errors(include_url=False):
                loc = tuple(item["loc"])
                message = {"missing": "required field is missing", "extra_forbidden": "unknown field"}.get(
                    item["type"], item["msg"].removeprefix("Value error, "))
                if item["type"] not in ("missing", "extra_forbidden") and isinstance(item.get("input"), (str, int, float)):
                    message += f" (got {item['input']!r})"
                problems.append(Problem(path, parsed.line_of(loc), format_path(loc), message))
            continue
        if spec.id != path.stem:
            problems.append(Problem(path, parsed.line_of(("id",)), "id", f"id {spec.id!r} must equal the file name {path.stem!r}"))
            continue
        for loc, message in check_spec(spec, review, publication_ids):
            problems.append(Problem(path, parsed.line_of(loc), format_path(loc), message))
        specs.append(spec)
        files[spec.id] = path
        lines[spec.id] = parsed
    problems.extend(_primary_problems(specs, files, lines))
    return _Loaded(tuple(sorted(specs, key=lambda s: (s.order, s.id))), files, tuple(problems))


def load_specs_or_fail(directory: str | Path, review: Review, publication_ids: set[str]) -> tuple[tuple[AnalysisSpec, ...], dict[str, Path]]:
    """Load the specifications; any problem becomes one :class:`UserError` listing them all."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such folder of analysis specifications")
    loaded = load_specs(directory, review, publication_ids)
    if loaded.problems:
        raise UserError(
            f"{len(loaded.problems)} problem(s) in the analysis specifications:\n"
            + "\n".join(p.format() for p in loaded.problems)
        )
    if not loaded.specs:
        raise UserError(f"{directory}: no analysis specifications (*.yaml)")
    return loaded.specs, loaded.files


def methods_rules() -> tuple[dict, ...]:
    """Every statistical rule of the analyses as data, for the report's methods page.

    Each item has ``id``, ``title``, ``text`` (plain language) and ``references``; the GRADE
    framework item also has ``start_randomized``, ``start_single_arm`` and ``justification``.
    The code that applies each rule lives next to its text (primary, sensitivity, grade,
    moderators, run), so the page and the computation cannot drift apart.
    """
    from blinameta.analysis.grade import GRADE_FRAMEWORK, GRADE_RULES
    from blinameta.analysis.moderators import MODERATOR_RULES
    from blinameta.analysis.primary import PRIMARY_RULES
    from blinameta.analysis.run import SUBGROUP_RULES
    from blinameta.analysis.sensitivity import SENSITIVITY_RULES

    framework = {"id": "grade_framework", "title": "Certainty of the evidence (GRADE)",
                 "text": GRADE_FRAMEWORK["justification"], **GRADE_FRAMEWORK}
    return (*PRIMARY_RULES, DECISION_RULE, *SENSITIVITY_RULES, *SUBGROUP_RULES, *MODERATOR_RULES, framework,
            *GRADE_RULES)


#: How the primary analysis and the decision thresholds are chosen (methods page).
DECISION_RULE = {
    "id": "decision_thresholds",
    "title": "One primary analysis per outcome, and decision thresholds",
    "text": "Each outcome has exactly one primary analysis, named in its model file; other analyses of the same "
            "outcome (other denominators or populations) are secondary. Each model states a decision threshold "
            "with its clinical reason, for example a complete-remission rate of 30% as the minimum worth pursuing, "
            "or an upper limit of 10% for grade 3 or higher cytokine release syndrome. The thresholds are the "
            "review team's assumptions, not established minimal important differences; for randomized hazard and "
            "risk ratios the threshold is the null effect. They are used to rate imprecision and inconsistency, to "
            "flag sensitivity analyses that change the conclusion (together with a margin: 5 percentage points for "
            "rates, 10% relative for ratios, unless the model states another), and as the default response rate "
            "to beat in the trial-design tools.",
    "references": ["Zeng L, Brignardello-Petersen R, Hultcrantz M, et al. GRADE guidelines 32: GRADE offers guidance "
                   "on choosing targets of GRADE certainty of evidence ratings. J Clin Epidemiol 2021;137:163-75",
                   "Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, chapter 10"],
}
