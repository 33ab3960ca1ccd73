"""GRADE rules on constructed cases (issue 11, item 5): one case per domain, each able to fail."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blinameta.analysis.grade import (
    GradeInputs,
    StudyRob,
    certainty,
    imprecision,
    inconsistency,
    indirectness,
    optimal_information_size,
    publication_bias,
    risk_of_bias,
)

BASE = GradeInputs(design="single_arm", scale="proportion", k=4, patients=400, estimate=0.55, ci_lb=0.45,
                   ci_ub=0.65, pi_lb=0.40, pi_ub=0.70, threshold=(0.3, "above"), i2=10.0, tau=0.1,
                   study_estimates=(0.5, 0.55, 0.6, 0.52),
                   rob=tuple(StudyRob(s, "low", 25.0) for s in "abcd"), start="high", outcome_label="Remission")


def test_risk_of_bias_is_weighted_by_the_study_weights():
    two = (StudyRob("a", "high", 60.0), StudyRob("b", "low", 40.0))
    one = (StudyRob("a", "high", 40.0), StudyRob("b", "some_concerns", 20.0), StudyRob("c", "low", 40.0))
    light = (StudyRob("a", "high", 10.0), StudyRob("b", "low", 90.0))  # many studies would not matter: weight does
    assert risk_of_bias(two).levels == 2
    assert risk_of_bias(one).levels == 1
    assert risk_of_bias(light).levels == 0
    unassessed = risk_of_bias((StudyRob("a", None, 50.0), StudyRob("b", None, 50.0)))
    assert unassessed.levels == 0 and "provisional" in unassessed.reason
    # a study not assessed counts as some concerns when others are assessed
    assert risk_of_bias((StudyRob("a", None, 60.0), StudyRob("b", "low", 40.0))).levels == 1


def test_inconsistency_uses_i2_and_the_threshold():
    assert inconsistency(BASE).levels == 0
    spread = replace(BASE, i2=80.0, study_estimates=(0.2, 0.6, 0.7, 0.25))
    assert inconsistency(spread).levels == 2
    pi_only = replace(BASE, i2=60.0, pi_lb=0.2, pi_ub=0.8)
    assert inconsistency(pi_only).levels == 1
    one_side = replace(BASE, i2=60.0, pi_lb=0.35, pi_ub=0.8)  # heterogeneous but all above the threshold
    assert inconsistency(one_side).levels == 0
    assert inconsistency(replace(BASE, k=1, i2=None)).levels == 0


def test_indirectness_counts_differences_with_enough_weight():
    assert indirectness(BASE).levels == 0
    assert indirectness(replace(BASE, indirect=(("definitions differ", 0.1),))).levels == 0
    assert indirectness(replace(BASE, indirect=(("definitions differ", 0.4),))).levels == 1
    both = replace(BASE, indirect=(("definitions differ", 0.6), ("denominators differ", 0.7)))
    assert indirectness(both).levels == 2


def test_imprecision_against_the_threshold_and_the_optimal_information_size():
    # OIS of a rate of 50% estimated to +-10 points: 1.96^2 * 0.25 / 0.01
    assert optimal_information_size(replace(BASE, estimate=0.5)) == pytest.approx(96.04, rel=1e-3)
    assert imprecision(BASE).levels == 0
    assert imprecision(replace(BASE, ci_lb=0.25)).levels == 1  # interval reaches 30%
    small = replace(BASE, patients=50, ci_lb=0.25)
    assert imprecision(small).levels == 2  # and the OIS is not met
    rare = replace(BASE, estimate=0.02, ci_lb=0.01, ci_ub=0.05, threshold=(0.1, "below"), patients=300)
    assert imprecision(rare).levels == 1  # excludes 10% but 300 < OIS for a 2% rate (+-1 point)
    ratio = replace(BASE, scale="ratio", estimate=0.9, ci_lb=0.6, ci_ub=1.4, threshold=(1.0, "below"))
    assert imprecision(ratio).levels == 2  # appreciable benefit and harm


def test_publication_bias_only_with_ten_studies():
    assert publication_bias(replace(BASE, k=9, small_study_p=0.01)).levels == 0
    assert publication_bias(replace(BASE, k=12, small_study_p=0.05, small_study_test="Peters' test")).levels == 1
    assert publication_bias(replace(BASE, k=12, small_study_p=0.5)).levels == 0


def test_levels_add_up_from_the_starting_level_and_overrides_replace_a_domain():
    clean = certainty(BASE)
    assert (clean.level, clean.symbols) == ("high", "⊕⊕⊕⊕")
    assert certainty(replace(BASE, notes=("secondary reports",))).notes == ("secondary reports",)
    worse = replace(BASE, i2=80.0, study_estimates=(0.2, 0.6, 0.7, 0.25), ci_lb=0.25)
    rated = certainty(worse)
    assert rated.level == "very_low"  # 4 - 2 (inconsistency) - 1 (imprecision)
    assert {d["domain"] for d in rated.to_dict()["downgrades"]} == {"inconsistency", "imprecision"}
    overridden = certainty(worse, {"inconsistency": (1, "the outlying cohort is a different schedule")})
    assert overridden.level == "low"
    assert any(d.overridden and "review team's judgement" in d.reason for d in overridden.downgrades)
    assert certainty(replace(BASE, start="low")).level == "low"
    assert certainty(replace(worse, start="low")).level == "very_low"  # floored


def test_summary_of_findings_numbers():
    rate = certainty(BASE).sof
    assert (rate["per"], rate["risk"], rate["ci"]) == (100, pytest.approx(55.0), [pytest.approx(45.0), pytest.approx(65.0)])
    rr = replace(BASE, scale="ratio", measure="RR", estimate=1.5, ci_lb=1.2, ci_ub=1.9, control_risk=0.3,
                 threshold=(1.0, "above"), patients=1000)
    sof = certainty(rr).sof
    assert sof["per"] == 1000 and sof["risk"] == pytest.approx(450.0) and sof["difference"] == pytest.approx(150.0)
    assert sof["difference_ci"] == [pytest.approx(60.0), pytest.approx(270.0)]
    assert "probably" in certainty(replace(BASE, ci_lb=0.25)).plain_language
    capped = certainty(replace(rr, control_risk=0.6)).sof  # 0.6 * 1.9 > 1
    assert capped["ci"][1] == 1000.0 and capped["difference_ci"][1] == pytest.approx(400.0) and "capped" in capped["note"]
