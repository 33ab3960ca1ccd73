"""Risk-of-bias rules (blinameta.evidence.rob) against the tools' published rules, and the
validator's comparison of a stated overall judgement with the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from blinameta.evidence.loader import load_evidence
from blinameta.evidence.rob import overall_from_items, worst

CASES = Path(__file__).parent / "evidence_cases"


# RoB 2 (Sterne et al. BMJ 2019, Table 3): low only if all five domains are low; high if any
# domain is high; otherwise some concerns. The review counts "no information" as some concerns.
@pytest.mark.parametrize("domains, expected", [
    (["low"] * 5, "low"),
    (["low", "low", "some_concerns", "low", "low"], "some_concerns"),
    (["low", "no_information", "low", "low", "low"], "some_concerns"),
    (["some_concerns"] * 4 + ["high"], "high"),
    (["high"] + ["low"] * 4, "high"),
])
def test_rob2_rule(domains, expected):
    assert overall_from_items("rob2", domains) == expected


# JBI case series (Munn et al. 2020), the review's cut-offs: count of "no"/"unclear" among
# applicable items, 0-2 low, 3-4 some concerns, >=5 high; not_applicable is not counted.
@pytest.mark.parametrize("n_failing, expected", [(0, "low"), (2, "low"), (3, "some_concerns"),
                                                 (4, "some_concerns"), (5, "high"), (10, "high")])
def test_jbi_rule(n_failing, expected):
    judgements = ["no", "unclear"] * 5
    judgements = judgements[:n_failing] + ["yes"] * (10 - n_failing)
    assert overall_from_items("jbi_case_series", judgements) == expected


def test_jbi_not_applicable_is_not_counted():
    assert overall_from_items("jbi_case_series", ["not_applicable"] * 8 + ["no", "no"]) == "low"


# MINORS (Slim et al. 2003), non-comparative items scored 0/1/2 (max 16); the review's cut-offs:
# >=13 low, 9-12 some concerns, <=8 high; no_information scores 0.
@pytest.mark.parametrize("scores, expected", [
    ([2] * 8, "low"), ([2] * 6 + [1, 0], "low"), ([2] * 6 + [0, 0], "some_concerns"),
    ([2] + [1] * 7, "some_concerns"), ([1] * 8, "high"), ([2] * 4 + ["no_information"] * 4, "high"),
])
def test_minors_rule(scores, expected):
    assert overall_from_items("minors", scores[:8]) == expected


def test_unknown_tool_has_no_rule_and_worst_orders_the_scale():
    assert overall_from_items("nos", ["yes"]) is None
    assert worst(["low", "high", "some_concerns"]) == "high"
    assert worst([]) is None


def _with_rob(tmp_path: Path, overall: str, reason: str) -> list:
    (tmp_path / "review.yaml").write_text((CASES / "review.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    body = (CASES / "pass" / "v2.yaml").read_text(encoding="utf-8")
    body = body.replace("  overall: low\n  overall_reason: 2 of 9", f"  overall: {overall}\n  overall_reason: {reason} 2 of 9")
    (tmp_path / "v2.yaml").write_text(body, encoding="utf-8")
    evidence = load_evidence(tmp_path)
    return [p for p in evidence.problems if "risk_of_bias" in p.field]


def test_stated_overall_against_the_rule_is_a_warning_unless_override(tmp_path: Path):
    (problem,) = _with_rob(tmp_path, "high", "Judged high.")
    assert problem.severity == "warning" and "the jbi_case_series rule gives 'low'" in problem.message
    assert _with_rob(tmp_path, "high", "'override: the missing inclusion data matter most.'") == []


def test_rob2_publication_overall_is_the_worst_result():
    evidence = load_evidence(CASES, [CASES / "pass" / "full.yaml", CASES / "pass" / "minimal.yaml"])
    assert [p for p in evidence.problems if "risk_of_bias" in p.field] == []
    full = evidence.publication("full")
    assert full.risk_of_bias is not None
    assert [r.overall for r in full.risk_of_bias.results] == ["some_concerns", "low"]
