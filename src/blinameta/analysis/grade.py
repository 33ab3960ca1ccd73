"""GRADE certainty of the evidence for one outcome: pure functions on typed inputs.

The rating starts at the level of the body of evidence (randomized trials: high; single-arm
rates: see :data:`GRADE_FRAMEWORK`) and is lowered in five domains, each by 0, 1 or 2 levels
with a one-line reason (GRADE Handbook, Schünemann et al. 2013, section 5; Guyatt et al. 2011,
J Clin Epidemiol 64:380-2 and the series that follows):

* **risk of bias** (Guyatt et al. 2011, GRADE 4, J Clin Epidemiol 64:407): the evidence files'
  overall judgements, weighted by each study's random-effects inverse-variance weight;
* **inconsistency** (GRADE 7, 64:1294): I², tau, and whether the prediction interval or the study
  estimates lie on both sides of the decision threshold;
* **indirectness** (GRADE 8, 64:1303): populations, denominators and outcome definitions that
  differ from the question;
* **imprecision** (GRADE 6, 64:1283): the credible interval against the decision threshold and the
  optimal information size (OIS);
* **publication bias** (GRADE 5, 64:1277): rated from a small-study test only with ten or more
  studies (Cochrane Handbook 13.3.5.4); otherwise not rated down for want of a test.

Every judgement can be overridden in ``models/`` with a reason (``grade.override``).
The methods page renders :data:`GRADE_RULES` and :data:`GRADE_FRAMEWORK`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "GRADE_FRAMEWORK",
    "GRADE_RULES",
    "LEVELS",
    "Certainty",
    "Downgrade",
    "GradeInputs",
    "StudyRob",
    "certainty",
    "imprecision",
    "inconsistency",
    "indirectness",
    "optimal_information_size",
    "publication_bias",
    "risk_of_bias",
]

LEVELS = ("very_low", "low", "moderate", "high")
SYMBOLS = {"high": "⊕⊕⊕⊕", "moderate": "⊕⊕⊕◯", "low": "⊕⊕◯◯", "very_low": "⊕◯◯◯"}

#: The framework and starting levels (review.yaml ``grade:`` overrides them when present).
GRADE_FRAMEWORK = {
    "framework": "GRADE (Grading of Recommendations Assessment, Development and Evaluation); single-arm rates "
                 "rated as evidence on the overall outcome rate under treatment (Iorio et al. 2015)",
    "start_randomized": "high",
    "start_single_arm": "high",
    "justification": "Randomized comparisons start at high certainty. The single-arm analyses answer a "
                     "non-comparative question (what proportion of children treated with blinatumomab reach "
                     "remission, or have a toxicity), not how much better blinatumomab is than an alternative. "
                     "GRADE's guidance for such evidence on outcome rates (Iorio et al. 2015) starts cohort "
                     "studies at high certainty and lets the risk-of-bias tools for case series (JBI, MINORS) "
                     "carry the weaknesses of uncontrolled designs; starting them at low as well would count "
                     "those weaknesses twice and leave every single-arm outcome at very low, which would not "
                     "separate well-supported rates from poorly supported ones. The rates say nothing about "
                     "effects relative to chemotherapy: any such comparison would start at low.",
    "references": [
        "Schünemann H, Brożek J, Guyatt G, Oxman A, eds. GRADE Handbook. Updated October 2013. "
        "https://gdt.gradepro.org/app/handbook/handbook.html",
        "Guyatt GH, Oxman AD, Akl EA, et al. GRADE guidelines: 1. Introduction - GRADE evidence profiles and "
        "summary of findings tables. J Clin Epidemiol 2011;64:383-94",
        "Iorio A, Spencer FA, Falavigna M, et al. Use of GRADE for assessment of evidence about prognosis: rating "
        "confidence in estimates of event rates in broad categories of patients. BMJ 2015;350:h870",
    ],
}

GRADE_RULES = (
    {"id": "risk_of_bias", "title": "Risk of bias",
     "text": "Each study's overall risk-of-bias judgement (RoB 2 per result for randomized trials, MINORS for "
             "single-arm trials, JBI for case series) is weighted by its random-effects inverse-variance weight. "
             "Rated down two levels when studies at high risk carry at least half of the weight, one level when "
             "studies at high risk or with some concerns do. Studies not assessed count as some concerns; if no "
             "study is assessed the domain is not rated down and the rating is marked provisional.",
     "references": ["Guyatt GH, Oxman AD, Vist G, et al. GRADE guidelines: 4. Rating the quality of evidence - "
                    "study limitations (risk of bias). J Clin Epidemiol 2011;64:407-15"]},
    {"id": "inconsistency", "title": "Inconsistency",
     "text": "Rated down one level when I² is at least 50% and the 95% prediction interval, or the studies' own "
             "estimates, lie on both sides of the decision threshold; two levels when I² is at least 75% and "
             "studies' estimates lie on both sides. Not assessable with one study.",
     "references": ["Guyatt GH, Oxman AD, Kunz R, et al. GRADE guidelines: 7. Rating the quality of evidence - "
                    "inconsistency. J Clin Epidemiol 2011;64:1294-302"]},
    {"id": "indirectness", "title": "Indirectness",
     "text": "Rated down one level when the pooled studies differ from the question in population (for example "
             "mixed blast burden, or adults), in the denominator of the rate, or in the definition of the "
             "outcome (several definition families), provided the studies that differ carry at least a quarter of "
             "the weight; two levels when studies differing in two or more of these respects each carry most of "
             "the weight.",
     "references": ["Guyatt GH, Oxman AD, Kunz R, et al. GRADE guidelines: 8. Rating the quality of evidence - "
                    "indirectness. J Clin Epidemiol 2011;64:1303-10"]},
    {"id": "imprecision", "title": "Imprecision",
     "text": "Rated against the decision threshold stated in each model: one level when the 95% credible interval "
             "includes the threshold or the optimal information size (OIS) is not met; two levels when both "
             "hold, or when a ratio's interval includes both an appreciable benefit (0.75) and an appreciable "
             "harm (1.25). The OIS of a single rate is the number of patients that estimates it to within "
             "10 percentage points, or half the rate if smaller (95% confidence); for a randomized comparison it "
             "is the size of one trial that detects a 25% relative change from the control risk (alpha 0.05, "
             "power 80%).",
     "references": ["Guyatt GH, Oxman AD, Kunz R, et al. GRADE guidelines 6. Rating the quality of evidence - "
                    "imprecision. J Clin Epidemiol 2011;64:1283-93",
                    "Zeng L, Brignardello-Petersen R, Hultcrantz M, et al. GRADE guidelines 32: GRADE offers "
                    "guidance on choosing targets of GRADE certainty of evidence ratings. J Clin Epidemiol "
                    "2021;137:163-75"]},
    {"id": "publication_bias", "title": "Publication bias",
     "text": "Rated down one level when a small-study test (Peters' test for rates, Egger's test for ratios) "
             "gives p < 0.10 with at least ten studies; with fewer studies the tests have too little power and "
             "the domain is not rated down (stated as not assessable).",
     "references": ["Guyatt GH, Oxman AD, Montori V, et al. GRADE guidelines: 5. Rating the quality of evidence - "
                    "publication bias. J Clin Epidemiol 2011;64:1277-82",
                    "Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L. Comparison of two methods to detect "
                    "publication bias in meta-analysis. JAMA 2006;295:676-80"]},
    {"id": "sof", "title": "Summary of findings",
     "text": "Single-arm rates are given per 100 patients with their credible interval. Randomized risk ratios "
             "are given with the absolute effect per 1000 patients at the stated control risk (the pooled risk "
             "of the control arms); hazard ratios are given as relative effects only, as the sources give no "
             "common control risk at a fixed time.",
     "references": ["Guyatt GH, Oxman AD, Santesso N, et al. GRADE guidelines: 12. Preparing summary of findings "
                    "tables - binary outcomes. J Clin Epidemiol 2013;66:158-72",
                    "Santesso N, Glenton C, Dahm P, et al. GRADE guidelines 26: informative statements to "
                    "communicate the findings of systematic reviews of interventions. J Clin Epidemiol "
                    "2020;119:126-35"]},
)

Domain = Literal["risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias"]


@dataclass(frozen=True)
class StudyRob:
    """A study's overall risk-of-bias judgement (``None``: not assessed) and its weight."""

    study: str
    overall: Literal["low", "some_concerns", "high"] | None
    weight: float


@dataclass(frozen=True)
class Downgrade:
    """Levels lowered in one domain (0 when only a note), with a one-line reason."""

    domain: str
    levels: int
    reason: str
    overridden: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GradeInputs:
    """Everything the rating uses, on the reported scale (fraction or ratio).

    ``threshold`` is ``(value, direction)`` with direction ``"above"`` or ``"below"``;
    ``study_estimates`` are the studies' own estimates (observed rates or ratios);
    ``indirect`` lists the ways the studies differ from the question, each with the share of
    the weight it concerns; ``small_study_p`` is the small-study test's p value (``None`` when
    k < 10); ``control_risk`` is the control arms' risk (risk ratios).
    """

    design: Literal["randomized", "single_arm"]
    scale: Literal["proportion", "ratio"]
    k: int
    patients: int
    estimate: float
    ci_lb: float
    ci_ub: float
    pi_lb: float | None = None
    pi_ub: float | None = None
    threshold: tuple[float, str] | None = None
    i2: float | None = None
    tau: float | None = None
    study_estimates: tuple[float, ...] = ()
    rob: tuple[StudyRob, ...] = ()
    indirect: tuple[tuple[str, float], ...] = ()
    small_study_p: float | None = None
    small_study_test: str = ""
    events: int | None = None
    control_risk: float | None = None
    measure: str = ""
    start: Literal["high", "low"] = "high"
    outcome_label: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Certainty:
    """The GRADE rating of one outcome."""

    level: str
    symbols: str
    start: str
    framework: str
    downgrades: tuple[Downgrade, ...]
    upgrades: tuple[Downgrade, ...] = ()
    notes: tuple[str, ...] = ()
    sof: dict[str, Any] = field(default_factory=dict)
    plain_language: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level, "symbols": self.symbols, "start": self.start, "framework": self.framework,
            "downgrades": [d.to_dict() for d in self.downgrades if d.levels > 0],
            "judgements": [d.to_dict() for d in self.downgrades],
            "upgrades": [u.to_dict() for u in self.upgrades], "notes": list(self.notes),
            "sof": dict(self.sof), "plain_language": self.plain_language,
        }


def _fmt(value: float, scale: str) -> str:
    return f"{100 * value:.0f}%" if scale == "proportion" else f"{value:.2f}"


def risk_of_bias(rob: tuple[StudyRob, ...]) -> Downgrade:
    """Weighted overall judgements (see :data:`GRADE_RULES`)."""
    total = sum(r.weight for r in rob)
    if not rob or total <= 0:
        return Downgrade("risk_of_bias", 0, "no study weights: not assessable")
    if all(r.overall is None for r in rob):
        return Downgrade("risk_of_bias", 0, "risk of bias not assessed in the evidence files: not rated down "
                                            "(provisional)")
    high = sum(r.weight for r in rob if r.overall == "high") / total
    concerns = sum(r.weight for r in rob if r.overall in ("some_concerns", None)) / total
    unassessed = [r.study for r in rob if r.overall is None]
    tail = f"; not assessed (counted as some concerns): {', '.join(unassessed)}" if unassessed else ""
    if high >= 0.5:
        return Downgrade("risk_of_bias", 2, f"studies at high risk of bias carry {high:.0%} of the weight{tail}")
    if high + concerns >= 0.5:
        return Downgrade("risk_of_bias", 1, f"studies at high risk or with some concerns carry {high + concerns:.0%} "
                                            f"of the weight{tail}")
    return Downgrade("risk_of_bias", 0, f"studies at low risk of bias carry {1 - high - concerns:.0%} of the "
                                        f"weight{tail}")


def _both_sides(values, threshold: tuple[float, str]) -> bool:
    value = threshold[0]
    return any(v > value for v in values) and any(v < value for v in values)


def inconsistency(inputs: GradeInputs) -> Downgrade:
    """I², tau and the prediction interval against the decision threshold."""
    if inputs.k < 2:
        return Downgrade("inconsistency", 0, "one study: not assessable")
    i2 = inputs.i2 if inputs.i2 is not None else 0.0
    t = inputs.threshold
    tau = f", tau {inputs.tau:.2f}" if inputs.tau is not None else ""
    studies_split = t is not None and _both_sides(inputs.study_estimates, t)
    pi_split = (t is not None and inputs.pi_lb is not None and inputs.pi_ub is not None
                and inputs.pi_lb < t[0] < inputs.pi_ub)
    where = _fmt(t[0], inputs.scale) if t is not None else ""
    if i2 >= 75 and studies_split:
        return Downgrade("inconsistency", 2, f"I² {i2:.0f}%{tau}; study estimates lie on both sides of {where}")
    if i2 >= 50 and (studies_split or pi_split):
        what = "study estimates" if studies_split else "the prediction interval"
        return Downgrade("inconsistency", 1, f"I² {i2:.0f}%{tau}; {what} on both sides of {where}")
    if i2 >= 50:
        return Downgrade("inconsistency", 0, f"I² {i2:.0f}%{tau}, but every study and the prediction interval lie "
                                             f"on one side of the decision threshold")
    return Downgrade("inconsistency", 0, f"I² {i2:.0f}%{tau}: little heterogeneity")


#: A difference from the question counts when the studies concerned carry at least this share of the weight.
INDIRECT_MIN_SHARE = 0.25


def indirectness(inputs: GradeInputs) -> Downgrade:
    """Differences between the studies and the question (population, denominator, definition)."""
    if not inputs.indirect:
        return Downgrade("indirectness", 0, "populations, denominators and definitions match the question")
    reasons = "; ".join(f"{text} ({share:.0%} of the weight)" for text, share in inputs.indirect)
    counted = [s for _, s in inputs.indirect if s >= INDIRECT_MIN_SHARE]
    if not counted:
        return Downgrade("indirectness", 0, f"{reasons}: too little weight to matter")
    major = [s for s in counted if s >= 0.5]
    return Downgrade("indirectness", 2 if len(major) >= 2 else 1, reasons)


def optimal_information_size(inputs: GradeInputs) -> float | None:
    """Patients needed (see :data:`GRADE_RULES`); ``None`` when it cannot be computed (hazard ratios)."""
    z = 1.959963984540054
    if inputs.scale == "proportion":
        p = min(max(inputs.estimate, 1e-6), 1 - 1e-6)
        half_width = min(0.10, p / 2, (1 - p) / 2)
        return z**2 * p * (1 - p) / half_width**2
    if inputs.control_risk is None or not 0 < inputs.control_risk < 1:
        return None
    zb = 0.8416212335729143
    p2 = inputs.control_risk
    p1 = p2 * (1.25 if inputs.threshold and inputs.threshold[1] == "above" else 0.75)
    p1 = min(p1, 0.999)
    per_arm = (z + zb) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2
    return 2 * per_arm


def imprecision(inputs: GradeInputs) -> Downgrade:
    """The interval against the decision threshold, and the optimal information size."""
    t = inputs.threshold
    ois = optimal_information_size(inputs)
    short = ois is not None and inputs.patients < ois
    ois_text = (f"{inputs.patients} patients, fewer than the optimal information size of {math.ceil(ois)}" if short
                else f"{inputs.patients} patients meet the optimal information size of {math.ceil(ois)}"
                if ois is not None else "optimal information size not computable (no control risk)")
    interval = f"{_fmt(inputs.ci_lb, inputs.scale)} to {_fmt(inputs.ci_ub, inputs.scale)}"
    if t is None:
        return Downgrade("imprecision", 1 if short else 0, f"no decision threshold stated; {ois_text}")
    crosses = inputs.ci_lb < t[0] < inputs.ci_ub
    wide = (inputs.scale == "ratio" and t[0] == 1.0 and inputs.ci_lb < 0.75 and inputs.ci_ub > 1.25)
    where = _fmt(t[0], inputs.scale)
    if crosses and (short or wide):
        extra = "and appreciable benefit and harm" if wide else ""
        return Downgrade("imprecision", 2, f"the interval {interval} includes the threshold {where} {extra}".strip()
                         + f"; {ois_text}")
    if crosses:
        return Downgrade("imprecision", 1, f"the interval {interval} includes the threshold {where}; {ois_text}")
    if short:
        return Downgrade("imprecision", 1, f"the interval {interval} excludes {where}, but {ois_text}")
    return Downgrade("imprecision", 0, f"the interval {interval} excludes {where}; {ois_text}")


def publication_bias(inputs: GradeInputs) -> Downgrade:
    """A small-study test with k >= 10 only."""
    if inputs.k < 10 or inputs.small_study_p is None:
        return Downgrade("publication_bias", 0, f"{inputs.k} stud{'y' if inputs.k == 1 else 'ies'}: too few for a "
                                                f"small-study test (needs 10); not rated down")
    test = inputs.small_study_test or "small-study test"
    if inputs.small_study_p < 0.10:
        return Downgrade("publication_bias", 1, f"{test} p = {inputs.small_study_p:.3f}")
    return Downgrade("publication_bias", 0, f"{test} p = {inputs.small_study_p:.2f}: no sign of small-study effects")


def _sof(inputs: GradeInputs) -> dict[str, Any]:
    if inputs.scale == "proportion":
        return {"per": 100, "risk": 100 * inputs.estimate, "ci": [100 * inputs.ci_lb, 100 * inputs.ci_ub],
                "k": inputs.k, "patients": inputs.patients}
    out: dict[str, Any] = {"relative": {"measure": inputs.measure, "estimate": inputs.estimate,
                                        "ci": [inputs.ci_lb, inputs.ci_ub]}, "k": inputs.k, "patients": inputs.patients}
    if inputs.control_risk is not None and inputs.measure == "RR":
        c = inputs.control_risk
        risk = [min(1000.0, 1000 * c * r) for r in (inputs.estimate, inputs.ci_lb, inputs.ci_ub)]
        out.update(per=1000, control_risk=1000 * c, risk=risk[0], ci=risk[1:],
                   difference=risk[0] - 1000 * c, difference_ci=[r - 1000 * c for r in risk[1:]],
                   control_risk_source="pooled risk of the control arms")
        if 1000 * c * inputs.ci_ub > 1000:
            out["note"] = ("risks capped at 1000 per 1000: a risk ratio applied to a high control risk can exceed "
                           "certainty")
    else:
        out.update(per=None, note="absolute effect not given: no control risk at a fixed time in the sources")
    return out


_PHRASES = {"high": "{x}", "moderate": "probably {x}", "low": "may be {x}", "very_low": "very uncertain: {x}"}


def _plain(inputs: GradeInputs, level: str) -> str:
    label = inputs.outcome_label or "The outcome"
    if inputs.scale == "proportion":
        x = (f"about {100 * inputs.estimate:.0f} in 100 patients "
             f"({100 * inputs.ci_lb:.0f} to {100 * inputs.ci_ub:.0f})")
    else:
        x = f"{inputs.measure or 'ratio'} {inputs.estimate:.2f} ({inputs.ci_lb:.2f} to {inputs.ci_ub:.2f})"
    if level == "very_low":
        return f"{label}: we are very uncertain about the estimate, {x}."
    verb = {"high": "is", "moderate": "is probably", "low": "may be"}[level]
    return f"{label} {verb} {x}."


def certainty(inputs: GradeInputs, overrides: dict[str, tuple[int, str]] | None = None,
              framework: dict[str, Any] | None = None) -> Certainty:
    """Rate the certainty of one outcome's evidence.

    Parameters
    ----------
    inputs : GradeInputs
    overrides : dict, optional
        Domain -> ``(levels, reason)``: the review team's judgement replaces the computed one.
    framework : dict, optional
        :data:`GRADE_FRAMEWORK` or review.yaml's ``grade`` section (its framework name).

    Returns
    -------
    Certainty
        Level, symbols, starting level, each domain's judgement, SoF numbers and a plain-language
        statement (Santesso et al. 2020 wording: "probably", "may be", "very uncertain").
    """
    framework = framework or GRADE_FRAMEWORK
    judgements = [risk_of_bias(inputs.rob), inconsistency(inputs), indirectness(inputs), imprecision(inputs),
                  publication_bias(inputs)]
    overrides = overrides or {}
    final = []
    for d in judgements:
        if d.domain in overrides:
            levels, reason = overrides[d.domain]
            final.append(Downgrade(d.domain, int(levels), f"review team's judgement: {reason} "
                                                          f"(computed: {d.levels}; {d.reason})", overridden=True))
        else:
            final.append(d)
    start = inputs.start
    score = (4 if start == "high" else 2) - sum(d.levels for d in final)
    level = LEVELS[max(score, 1) - 1]
    notes = list(inputs.notes)
    if any("provisional" in d.reason for d in final):
        notes.append("risk of bias not assessed: the rating is provisional")
    return Certainty(level=level, symbols=SYMBOLS[level], start=start, framework=str(framework.get("framework", "")),
                     downgrades=tuple(final), notes=tuple(notes), sof=_sof(inputs),
                     plain_language=_plain(inputs, level))
