"""``blinameta query``: agreement with the report's analysis, regression fallback, bad filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from blinameta.analysis import load_specs, primary_spec, run_analysis, select
from blinameta.cli import main
from blinameta.frequentist.escalc import escalc_proportion
from blinameta.errors import UserError
from blinameta.evidence.loader import load_evidence
from blinameta.frequentist.predict import predict
from blinameta.analysis.query import query
from blinameta.report.summary import summarise
from blinameta.frequentist.rma import rma

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(ROOT / "evidence")


def test_query_cr_equals_the_report_primary_estimate(evidence):
    """No filter: the outcome's primary analysis (cr_overt), as the report fits it (full run_analysis)."""
    specs = load_specs(ROOT / "models", evidence.review, {p.id for p in evidence.publications}).specs
    spec = primary_spec(specs, "cr")
    report = run_analysis(evidence, spec)
    result = query("cr", evidence=evidence, models=ROOT / "models")
    assert result.analysis == spec.id == "cr_overt"
    assert list(result.studies) == list(report.selection.study_ids)
    for key in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        assert result.primary[key] == pytest.approx(getattr(report.primary, key), rel=1e-12)
    assert result.primary["method"] == "bayes_binomial_normal"
    # --where with the primary's own filter is the same population
    same = query("cr", ["blast_burden=ge5"], evidence=evidence, models=ROOT / "models")
    assert same.primary["estimate"] == pytest.approx(report.primary.estimate, rel=1e-12)
    # the frequentist line is the analysis' main model (REML, Hartung-Knapp, logit)
    summary = summarise(report)
    for key in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        assert result.frequentist[key] == pytest.approx(summary["random"][key], rel=1e-10)


def test_where_narrows_or_replaces_the_primary_filter_and_says_so(evidence):
    result = query("cr", ["blast_burden=lt5"], evidence=evidence, models=ROOT / "models")
    assert result.filter["blast_burden"] == ["lt5"]
    assert any("the primary analysis cr_overt uses ge5" in w for w in result.warnings)


def test_mixed_denominators_are_pooled_as_the_analysis_does_and_listed(evidence):
    """The selection is the analysis layer's; rows with different denominators are listed, not refused."""
    from blinameta.analysis.spec import AnalysisSpec

    result = query("relapse", evidence=evidence, models=ROOT / "models")
    reference = select(evidence, AnalysisSpec(id="relapse", title="relapse", kind="proportion", outcome="relapse"))
    assert list(result.studies) == reference.study_ids
    rows = result.selection["rows"]
    assert [(r["events"], r["total"], r["denominator"]) for r in rows] == list(
        zip(reference.rows["events"], reference.rows["total"], reference.rows["denominator"]))
    denominators = reference.rows["denominator"].value_counts().to_dict()
    assert result.selection["denominators"] == denominators
    assert (len(denominators) > 1) == any("different denominators" in w for w in result.warnings)
    narrowed = query("relapse", ["denominator=responders"], evidence=evidence, models=ROOT / "models")
    assert set(narrowed.selection["denominators"]) == {"responders"}


def _cli(capsys, *args):
    status = main(["query", *args, "--evidence", str(ROOT / "evidence"), "--models", str(ROOT / "models")])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_query_json_keys_and_design_helpers(capsys):
    status, out, err = _cli(capsys, "--outcome", "cr", "--n", "30", "--responses", "15", "--p0", "0.3",
                            "--assurance", "0.8", "--simon", "0.3,0.05,0.2,0.5", "--json")
    assert status == 0, err
    out = json.loads(out)
    assert {"outcome", "analysis", "filter", "method", "level", "priors", "selection", "k", "studies", "excluded",
            "primary", "frequentist", "bayes", "assurance", "assurance_test", "sample_size", "simon"} <= set(out)
    assert out["level"] == 95.0 and out["priors"]["tau"] == out["bayes"]["priors"]["tau"]
    assert out["method"] == "pooled" and out["headline_method"] == "bayes_binomial_normal"
    assert out["frequentist"]["estimator"] == "REML" and out["frequentist"]["test"] == "knha" and out["frequentist"]["se"] > 0
    assert set(out["assurance"]) >= {"n", "responses", "probability"}
    test = out["assurance_test"]
    assert set(test) >= {"probability", "n", "p0", "alpha", "critical_responses"}
    assert (test["n"], test["p0"], test["alpha"], test["critical_responses"]) == (30, 0.3, 0.05, 14)  # P(X>=14|30,.3)=.040
    assert 0 < test["probability"] < test["limit"] < 1
    simon = out["simon"]
    assert simon["p1"] == 0.5 and simon["p1_source"] == "given" and simon["optimal_certified"]
    assert (simon["optimal"]["r1"], simon["optimal"]["n1"], simon["optimal"]["r"], simon["optimal"]["n"]) == (5, 15, 18, 46)
    assert 0 < simon["optimal"]["assurance"] < 1
    assert out["sample_size"]["stable"]["n"] >= out["sample_size"]["first"]["n"]


def test_simon_p1_defaults_to_the_pooled_estimate_with_a_warning(capsys):
    status, out, err = _cli(capsys, "--outcome", "cr", "--simon", "0.3,0.05,0.2", "--json")
    assert status == 0, err
    out = json.loads(out)
    assert out["simon"]["p1"] == pytest.approx(out["primary"]["estimate"]) and out["simon"]["p1_source"] == "pooled estimate"
    assert any("clinically meaningful target" in w for w in out["warnings"])
    status, _, err = _cli(capsys, "--outcome", "cr", "--simon", "0.5,0.05,0.2")
    assert status == 2 and "give a clinically meaningful target explicitly" in err


@pytest.mark.parametrize("args, message", [
    (["--n", "-3"], "-3 is not in the range 1<=x<=100000"),
    (["--n", "30", "--p0", "1.5"], "--p0 must be in (0, 1) (got 1.5)"),
    (["--n", "30", "--p0", "0.3", "--alpha", "0.6"], "--alpha must be in (0, 0.5) (got 0.6)"),
    (["--assurance", "0.8", "--rate", "0.4"], "--rate is retired"),
    (["--simon", "0.3,0.05"], "expected P0,ALPHA,BETA[,P1]"),
    (["--safety", "crs_grade3plus,0.15"], "--safety needs the trial size"),
    (["--monitor"], "--monitor needs --simon"),
    (["--n", "30", "--outcome", "crs_grade3plus"], "is an upper limit"),
    (["--assurance", "0.8", "--p0", "0.3", "--n-max", "100000000000"], "not in the range 1<=x<=5000"),
    (["--counts", "100000000000"], "not in the range 1<=x<=100000"),
    (["--simon", "0.3,0.05,0.2,0.5", "--monitor", "--nmax", "99999999"], "not in the range 1<=x<=1000"),
])
def test_bad_values_exit_2_with_the_valid_range(capsys, args, message):
    status, _, err = _cli(capsys, "--outcome", "cr", *args)
    assert status == 2
    assert message in err and "Traceback" not in err


def test_unreachable_assurance_names_the_search_limit_and_the_limit(capsys):
    status, out, err = _cli(capsys, "--outcome", "cr", "--assurance", "0.97", "--p0", "0.3", "--n-max", "300")
    assert status == 0, err
    assert "no trial of up to 300 patients reaches an assurance of 0.97" in out
    assert "up to 1000" not in out


def test_monitoring_safety_and_counts_from_the_cli(capsys):
    status, out, err = _cli(capsys, "--outcome", "cr", "--simon", "0.3,0.05,0.2,0.5", "--monitor",
                            "--safety", "crs_grade3plus,0.15", "--counts", "30", "--json")
    assert status == 0, err
    out = json.loads(out)
    m = out["monitoring"]
    assert m["n_max"] == out["simon"]["optimal"]["n"] and m["prior_a"] + m["prior_b"] == pytest.approx(2.0)
    assert m["prior_mean"] == pytest.approx(out["primary"]["estimate"])
    (rule,) = out["safety"]
    assert rule["limit"] == 0.15 and rule["threshold"] == 0.9 and rule["prior_ess"] == 10.0
    assert rule["n_max"] == m["n_max"]
    names = [row["outcome"] for row in out["counts"]["outcomes"]]
    assert names[0] == "Complete remission" and "Cytokine release syndrome, grade 3 or higher" in names


def test_assurance_increases_with_fewer_required_responses(evidence):
    a = query("cr", evidence=evidence, n=30, responses=18).assurance["probability"]
    b = query("cr", evidence=evidence, n=30, responses=12).assurance["probability"]
    assert b > a


@pytest.mark.parametrize("where, message", [
    (["blast=ge5"], "unknown moderator; valid: blast_burden"),
    (["blast_burden=high"], "is not a level of blast_burden; valid: lt5, ge5, mixed"),
    (["blast_burden"], "expected KEY=VALUE"),
])
def test_bad_filters_list_the_valid_choices(evidence, where, message):
    with pytest.raises(UserError, match=message):
        query("cr", where, evidence=evidence)


def test_outcome_without_data_lists_outcomes(evidence, capsys, tmp_path):
    # every outcome of the review has data (evidence v2): add one that no study reports
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    review = tmp_path / "evidence" / "review.yaml"
    review.write_text(review.read_text(encoding="utf-8").replace(
        "\noutcomes:\n", "\noutcomes:\n  pfs: {label: Progression-free survival, description: None.}\n", 1), encoding="utf-8")
    assert main(["query", "--outcome", "pfs", "--evidence", str(tmp_path / "evidence")]) == 2
    err = capsys.readouterr().err
    assert "no study reports 'pfs'; outcomes with data:" in err and " cr, " in err


def test_unknown_outcome_lists_outcomes(evidence, capsys):
    assert main(["query", "--outcome", "remission", "--evidence", str(ROOT / "evidence")]) == 2
    err = capsys.readouterr().err
    assert "unknown outcome 'remission'; outcomes with data: " in err and " cr, " in err


def _regression_folder(tmp_path: Path) -> Path:
    """Four mixed cohorts with reported first-relapse counts and none in first relapse only."""
    shutil.copy(ROOT / "evidence" / "review.yaml", tmp_path / "review.yaml")
    data = [("alpha2020", 40, 10, 24), ("beta2021", 30, 20, 12), ("gamma2022", 50, 10, 35), ("delta2023", 25, 5, 11)]
    quote_src = "They observed a response with morphological CR in 6/9 patients (66.7%) after one cycle of blinatumomab."
    for pid, n, first, events in data:
        (tmp_path / f"{pid}.yaml").write_text(f"""id: {pid}
first_author: Test T
year: 2020
title: Synthetic cohort
design: retrospective_cohort
setting: real_world
population: Children.
reported_in: [queudeville2021]
cohorts:
  - id: all
    label: All
    n: {n}
    moderators: {{relapse_line: mixed, blast_burden: ge5}}
    characteristics:
      relapse_lines:
        first_relapse: {first}
        provenance: [{{source: queudeville2021, location: x, quote: "{quote_src}"}}]
        derived: {{fields: [first_relapse], method: synthetic}}
    provenance: [{{source: queudeville2021, location: x, quote: "{quote_src}"}}]
    derived: {{fields: [n], method: synthetic}}
outcomes:
  - code: cr
    cohort: all
    events: {events}
    total: {n}
    denominator: overt_disease
    provenance: [{{source: queudeville2021, location: x, quote: "{quote_src}"}}]
    derived: {{fields: [events, total], method: synthetic}}
risk_of_bias:
  tool: jbi_case_series
  items:
    - {{item: q1, judgement: unclear, reason: constructed test cohort}}
    - {{item: q2, judgement: unclear, reason: constructed test cohort}}
    - {{item: q3, judgement: unclear, reason: constructed test cohort}}
    - {{item: q4, judgement: unclear, reason: constructed test cohort}}
    - {{item: q5, judgement: unclear, reason: constructed test cohort}}
    - {{item: q6, judgement: unclear, reason: constructed test cohort}}
    - {{item: q7, judgement: unclear, reason: constructed test cohort}}
    - {{item: q8, judgement: unclear, reason: constructed test cohort}}
    - {{item: q9, judgement: unclear, reason: constructed test cohort}}
    - {{item: q10, judgement: unclear, reason: constructed test cohort}}
  overall: high
  overall_reason: constructed test cohort
""")
    return tmp_path


def test_no_exact_match_predicts_from_meta_regression(tmp_path):
    folder = _regression_folder(tmp_path)
    evidence = load_evidence(folder)
    assert [p for p in evidence.problems if p.severity == "error"] == []
    result = query("cr", ["relapse_line=first_relapse"], evidence=evidence, models=None, n=20, responses=10)
    assert result.method == "meta-regression"
    assert any("meta-regression" in w for w in result.warnings)
    # the same prediction computed directly: logit CR on the share in first relapse, predicted at 1
    n = np.array([40, 30, 50, 25]); x = np.array([24, 12, 35, 11]); share = np.array([10 / 40, 20 / 30, 10 / 50, 5 / 25])
    es = escalc_proportion("PLO", x, n)
    fit = rma(es.yi, es.vi, mods=share[:, None], method="REML", test="knha")
    pr = predict(fit, np.array([[1.0]]))
    expected = 1 / (1 + np.exp(-pr.pred[0]))
    assert result.frequentist["estimate"] == pytest.approx(expected, rel=1e-9)
    assert result.k == 4 and 0 < result.assurance["probability"] < 1
    # the Bayesian meta-regression (NUTS, passed its diagnostics gate) predicts at the same point
    b = result.bayes
    assert b["method"] == "nuts" and b["diagnostics"]["divergences"] == 0 and b["diagnostics"]["rhat_max"] <= 1.01
    assert b["p_median"]["lb"] < expected < b["p_median"]["ub"]
    assert b["p_new"]["lb"] <= b["p_median"]["lb"] and b["p_new"]["ub"] >= b["p_median"]["ub"]
