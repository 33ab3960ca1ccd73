"""Units of the report's presentation layer on constructed inputs: quote cleaning, GRADE
wording, CSV neutralisation and the changelog."""

from __future__ import annotations

import csv
import io

import pytest

from blinameta.report.history import changes
from blinameta.report.labels import clean_quote, prior_text, pvalue, prob, symbols
from blinameta.report.sof import plain_language, primary_of, write_csv


@pytest.mark.parametrize("raw, shown", [
    (r"13 patients had overt disease with $\geq 5\%$ BM blasts.", "13 patients had overt disease with ≥5% BM blasts."),
    (r"had $<5\%$ blasts", "had <5% blasts"),
    (r"($7 \leq$ grade 2)", "(7≤ grade 2)"),
    (r"$p = 0.03$", "p=0.03"),
    (r"MRD $<1 \times 10^{-4}$", "MRD <1×10⁻⁴"),
    ("CR >= 5%", "CR ≥ 5%"),
    ("costs $5 and $6", "costs $5 and $6"),
])
def test_clean_quote(raw, shown):
    assert clean_quote(raw) == shown


def test_prior_and_number_wording():
    assert prior_text("normal:0:1.5") == "normal(mean 0, SD 1.5)"
    assert prior_text("half_normal:0.5") == "half-normal(scale 0.5)"
    assert symbols("<=5% and >=5%") == "≤5% and ≥5%"
    assert prob(0.0) == "<0.001" and prob(1.0) == ">0.999" and prob(0.5) == "0.500"
    assert pvalue(0.0004) == "p < 0.001" and pvalue(0.013) == "p = 0.013"


def _summary(kind="proportion", outcome="cr", est=0.54, lb=0.38, ub=0.69):
    return {"id": "x", "title": "X", "kind": kind, "outcome": outcome, "k": 4, "patients": 206,
            "filter": {"blast_burden": ["ge5"]} if kind == "proportion" else {},
            "primary": {"method": "bayes_binomial_normal", "estimate": est, "ci_lb": lb, "ci_ub": ub}}


@pytest.mark.parametrize("level, phrase", [
    ("high", "About 54 in 100 children with ≥5% marrow blasts reach complete remission"),
    ("moderate", "About 54 in 100 children with ≥5% marrow blasts probably reach complete remission"),
    ("low", "About 54 in 100 children with ≥5% marrow blasts may reach complete remission"),
    ("very_low", "We are very uncertain"),
])
def test_grade_standard_wording_for_rates(level, phrase):
    """Santesso et al. 2020: high states, moderate 'probably', low 'may', very low 'very uncertain'."""
    s = _summary()
    assert phrase in plain_language(s, primary_of(s), {"level": level})


@pytest.mark.parametrize("level, est, lb, ub, phrase", [
    ("moderate", 0.5, 0.3, 0.8, "Blinatumomab probably improves event-free survival"),
    ("low", 0.5, 0.3, 0.8, "Blinatumomab may improve event-free survival"),
    ("high", 0.5, 0.3, 0.8, "Blinatumomab improves event-free survival"),
    ("low", 0.6, 0.3, 1.2, "may result in little to no difference"),
    ("very_low", 0.5, 0.3, 0.8, "The evidence is very uncertain"),
])
def test_grade_standard_wording_for_ratios(level, est, lb, ub, phrase):
    class L:
        def outcome(self, code):
            return "Event-free survival"

    s = _summary("hazard_ratio", "efs", est, lb, ub)
    assert phrase in plain_language(s, primary_of(s), {"level": level}, L())


def test_csv_cells_are_neutralised_against_formula_injection():
    text = write_csv(["a", "=b"], [["=cmd|' /C calc'!A0", "+1", "-2", "@x", "\tt", "\rr", "ok", -3, 1.5, None]])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["a", "'=b"]
    assert rows[1][:7] == ["'=cmd|' /C calc'!A0", "'+1", "'-2", "'@x", "'\tt", "'\rr", "ok"]
    assert rows[1][7:] == ["-3", "1.5", ""]  # numbers stay numbers


def test_changelog_lists_added_removed_changed_and_moved_estimates():
    old = {"version": "a", "date": "d1", "publications": {"p1": {"hash": "1", "label": "P 2020"},
                                                         "p2": {"hash": "2", "label": "Q 2021"}},
           "analyses": {"cr": {"title": "CR", "kind": "proportion", "k": 2, "estimate": 0.5, "ci_lb": 0.4,
                               "ci_ub": 0.6, "certainty": "low"}}}
    new = {"version": "b", "date": "d2", "publications": {"p1": {"hash": "9", "label": "P 2020"},
                                                         "p3": {"hash": "3", "label": "R 2024"}},
           "analyses": {"cr": {"title": "CR", "kind": "proportion", "k": 3, "estimate": 0.55, "ci_lb": 0.45,
                               "ci_ub": 0.65, "certainty": "moderate"}}}
    c = changes(old, new)
    assert c["added"] == ["R 2024"] and c["removed"] == ["Q 2021"] and c["changed"] == ["P 2020"]
    (o,) = c["outcomes"]
    assert o["changed"] and o["old"].startswith("50.0%") and o["new"].startswith("55.0%")
    assert (o["old_certainty"], o["new_certainty"]) == ("low", "moderate")
    assert changes(None, new) is None


def test_rob2_figures_have_one_row_per_judged_result():
    """RoB 2 judges a result, not a trial (Sterne et al. BMJ 2019): the traffic light has a row
    per result, labelled with its outcomes, each with that result's own judgements."""
    from pathlib import Path

    from blinameta.evidence.loader import load_evidence
    from blinameta.report.labels import Labels
    from blinameta.report.studies import _rob_figure_rows

    evidence = load_evidence(Path(__file__).parent.parent / "evidence")
    pub = evidence.publication("locatelli2021")
    rows = _rob_figure_rows(pub, Labels(evidence.review))
    results = pub.risk_of_bias.results
    assert len(rows) == len(results) >= 2
    for number, ((suffix, row), result) in enumerate(zip(rows, results), start=1):
        assert suffix == f", result {number}"
        assert row["outcomes"] == ", ".join(Labels(evidence.review).outcome(code) for code in result.outcomes)
        assert row["judgements"][-1] == result.overall
        assert row["judgements"][:-1] == [i.judgement for i in result.items]  # RoB 2 judgements are the categories
    # a tool judged per study keeps one row
    single = next(p for p in evidence.publications if p.risk_of_bias is not None and not p.risk_of_bias.results)
    assert len(_rob_figure_rows(single, Labels(evidence.review))) == 1
