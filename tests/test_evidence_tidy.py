"""The tidy table's evidence-v2 columns on constructed publications: moderator shares,
primary/secondary source, external numbers, survival rows; and the risk-of-bias table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blinameta.cli import main
from blinameta.evidence.loader import Evidence, load_evidence
from blinameta.evidence.schema import Publication
from blinameta.evidence.tidy import SHARE_COLUMNS, risk_of_bias_table, tidy

CASES = Path(__file__).parent / "evidence_cases"
QUOTE = [{"source": "testdoc", "location": "Results", "quote": "in total 40 patients"}]


@pytest.fixture(scope="module")
def review():
    return load_evidence(CASES, []).review


def _cohort(cid="all", n=40, **extra):
    return {"id": cid, "label": f"Cohort {cid}", "n": n, "provenance": QUOTE, **extra}


def _row(cohort="all", events=10, total=40, **extra):
    return {"code": "cr", "cohort": cohort, "events": events, "total": total, "denominator": "all_treated",
            "provenance": QUOTE, **extra}


def _evidence(review, cohorts, outcomes, **pub) -> Evidence:
    publication = Publication.model_validate({
        "id": "built", "first_author": "Roe R", "year": 2020, "title": "T", "design": "case_series",
        "setting": "real_world", "population": "Children.", "reported_in": ["testdoc"],
        "cohorts": cohorts, "outcomes": outcomes, **pub,
    })
    return Evidence(directory=CASES, review=review, publications=(publication,))


def _shares(review, cohort, **pub) -> dict:
    frame = tidy(_evidence(review, [cohort], [_row(cohort["id"], total=cohort["n"])], **pub))
    return {k: (None if frame[k].isna().item() else round(float(frame[k].item()), 6)) for k in SHARE_COLUMNS}


def test_relapse_line_shares_from_counts(review):
    lines = {"refractory": 5, "first_relapse": 25, "second_or_later": 10, "post_hsct": 8, "provenance": QUOTE}
    shares = _shares(review, _cohort(characteristics={"relapse_lines": lines}))
    assert shares == {"share_refractory": 0.125, "share_first_relapse": 0.625, "share_second_or_later": 0.25,
                      "share_post_hsct": 0.2, "share_ge5": None, "share_ge25": None}


def test_relapse_line_counts_that_add_up_to_n_imply_zero_for_the_rest(review):
    lines = {"first_relapse": 30, "second_or_later": 10, "provenance": QUOTE}
    shares = _shares(review, _cohort(characteristics={"relapse_lines": lines}))
    assert (shares["share_refractory"], shares["share_first_relapse"], shares["share_second_or_later"]) == (0.0, 0.75, 0.25)
    assert shares["share_post_hsct"] is None


def test_pure_moderators_imply_shares(review):
    shares = _shares(review, _cohort(moderators={"relapse_line": "first_relapse", "blast_burden": "lt5"}))
    assert shares == {"share_refractory": 0.0, "share_first_relapse": 1.0, "share_second_or_later": 0.0,
                      "share_post_hsct": None, "share_ge5": 0.0, "share_ge25": 0.0}
    shares = _shares(review, _cohort(moderators={"blast_burden": "ge5"}))
    assert shares["share_ge5"] == 1.0 and shares["share_ge25"] is None


def test_blast_shares_from_counts_or_percentages(review):
    shares = _shares(review, _cohort(characteristics={"blast_burden": {"n_lt5": 10, "pct_ge25": 71, "provenance": QUOTE}},
                                     moderators={"blast_burden": "mixed"}))
    assert (shares["share_ge5"], shares["share_ge25"]) == (0.75, 0.71)
    shares = _shares(review, _cohort(characteristics={"blast_burden": {"n_ge5": 30, "n_ge25": 12, "provenance": QUOTE}}))
    assert (shares["share_ge5"], shares["share_ge25"]) == (0.75, 0.3)


def test_source_type_is_primary_only_when_every_quote_is_the_own_report(review):
    other = [{"source": "otherdoc", "location": "Discussion", "quote": "in total 40 patients"}]
    outcomes = [_row(), _row(code="mrd_neg", provenance=QUOTE + other)]
    frame = tidy(_evidence(review, [_cohort()], outcomes, own_source="testdoc")).set_index("outcome")
    assert (frame.loc["cr", "source_type"], frame.loc["mrd_neg", "source_type"]) == ("primary", "secondary")
    frame = tidy(_evidence(review, [_cohort()], [_row()]))
    assert frame.source_type.item() == "secondary"  # no own report among the sources


def test_external_rows_carry_the_citation(review):
    cohorts = [_cohort(n=40), _cohort("arm", n=20, kind="arm", treatment="blinatumomab", parent="all",
                                       external={"fields": ["n"], "citation": "JAMA 2021, Table 2"})]
    outcomes = [_row("arm", events=5, total=20), _row("arm", events=4, total=18, code="mrd_neg"),
                _row("all", events=9, total=40, external={"fields": ["events"], "citation": "Blood 2020"})]
    frame = tidy(_evidence(review, cohorts, outcomes)).set_index(["cohort_id", "outcome"])
    assert frame.loc[("arm", "cr"), "external"] and frame.loc[("arm", "cr"), "external_citation"] == "JAMA 2021, Table 2"
    assert not frame.loc[("arm", "mrd_neg"), "external"]  # its total is not the external arm size
    assert frame.loc[("all", "cr"), "external_citation"] == "Blood 2020"
    assert frame.loc[("arm", "cr"), "arm"] == "Cohort arm" and frame.loc[("arm", "cr"), "stratum"] is None


def test_survival_rows_only_on_request(review):
    outcomes = [_row(), {"code": "efs", "cohort": "all", "percent": 55, "time_months": 24, "ci_lb": 40,
                         "ci_ub": 68, "n_at_risk": 14, "denominator": "all_treated", "provenance": QUOTE},
                {"code": "os", "cohort": "all", "median": {"months": 20.5}, "denominator": "all_treated",
                 "provenance": QUOTE},
                {"code": "rfs", "cohort": "all", "median": {"reached": False}, "denominator": "all_treated",
                 "provenance": QUOTE}]
    evidence = _evidence(review, [_cohort()], outcomes)
    assert list(tidy(evidence).outcome) == ["cr"]
    frame = tidy(evidence, survival=True).set_index("outcome")
    efs = frame.loc["efs"]
    assert (efs.time_months, efs.estimate_pct, efs.ci_lb_pct, efs.ci_ub_pct, efs.n_at_risk) == (24, 55, 40, 68, 14)
    assert frame.loc["os", "median_months"] == 20.5 and frame["events"].isna().sum() == 3
    assert frame.loc["os", "median_reached"] and frame.loc["rfs", "median_reached"] is False
    assert str(frame["events"].dtype) == "Int64" and frame.loc["cr", "events"] == 10


def test_flags_and_definition_family_columns(review):
    row = _row(flags=["lower_bound", "ambiguous"], family="within_2_cycles", assessment="day 29")
    mrd = _row(code="mrd_neg", mrd_method="flow", mrd_threshold=1e-4)
    frame = tidy(_evidence(review, [_cohort()], [row, mrd])).set_index("outcome")
    assert frame.loc["cr", "flags"] == "lower_bound; ambiguous" and frame.loc["cr", "family"] == "within_2_cycles"
    assert (frame.loc["mrd_neg", "mrd_method"], frame.loc["mrd_neg", "mrd_threshold"]) == ("flow", 1e-4)


def test_risk_of_bias_table_lists_tools_results_and_the_rule(tmp_path, capsys):
    evidence = load_evidence(CASES, [CASES / "pass" / n for n in ("full.yaml", "minimal.yaml", "v2.yaml")])
    frame = risk_of_bias_table(evidence)
    assert list(frame.study_id) == ["full", "full", "full", "v2"]
    assert list(frame.scope) == ["publication", "result", "result", "publication"]
    assert list(frame.rule_overall) == ["some_concerns", "some_concerns", "low", "low"]
    assert frame["items"].iloc[3].startswith("q1: yes; q2: yes")
    for name in ("review.yaml", "pass/full.yaml", "pass/minimal.yaml", "pass/v2.yaml"):
        shutil.copy(CASES / name, tmp_path / Path(name).name)
    assert main(["table", "--evidence", str(tmp_path), "--risk-of-bias", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["tool"] for r in rows] == ["rob2", "rob2", "rob2", "jbi_case_series"]
    assert main(["table", "--evidence", str(tmp_path), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert {"efs", "os"} <= {r["outcome"] for r in table}  # survival rows are in the table
