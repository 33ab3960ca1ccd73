"""``blinameta query``: agreement with the report's analysis, regression fallback, bad filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from blinameta.analysis import load_specs, run_analysis
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


def test_query_cr_overt_equals_the_report_analysis(evidence):
    specs = load_specs(ROOT / "models", evidence.review, {p.id for p in evidence.publications}).specs
    spec = next(s for s in specs if s.id == "cr_overt")
    summary = summarise(run_analysis(evidence, spec))
    result = query("cr", ["blast_burden=ge5"], evidence=evidence, models=ROOT / "models")
    assert list(result.studies) == summary["studies"]
    f = result.frequentist
    for key, ref in (("estimate", "estimate"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("pi_lb", "pi_lb"), ("pi_ub", "pi_ub")):
        assert f[key] == pytest.approx(summary["random"][ref], rel=1e-10)
    assert f["i2"] == pytest.approx(summary["heterogeneity"]["i2"], rel=1e-10)
    for name in ("p_median", "p_new"):
        for key in ("mean", "lb", "ub"):
            assert result.bayes[name][key] == pytest.approx(summary["bayes"][name][key], rel=1e-10)


def test_query_json_keys_and_design_helpers(capsys):
    status = main(["query", "--outcome", "cr", "--where", "blast_burden=ge5", "--n", "30", "--responses", "15",
                   "--assurance", "0.8", "--rate", "0.4", "--simon", "0.3,0.05,0.2", "--json",
                   "--evidence", str(ROOT / "evidence"), "--models", str(ROOT / "models")])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert {"outcome", "filter", "k", "studies", "excluded", "frequentist", "bayes", "assurance", "n_required", "simon"} <= set(out)
    assert set(out["frequentist"]) >= {"estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "i2", "tau2"}
    assert set(out["bayes"]["p_new"]) == {"mean", "lb", "ub"}
    assert all(set(e) >= {"id", "reason"} for e in out["excluded"])
    assert 0 < out["assurance"]["probability"] < 1
    simon = out["simon"]
    assert simon["p1"] == pytest.approx(out["frequentist"]["estimate"])
    assert set(simon["optimal"]) >= {"n1", "r1", "n", "r", "en0", "pet0"}
    assert simon["minimax"]["n"] <= simon["optimal"]["n"]


def test_assurance_increases_with_fewer_required_responses(evidence):
    a = query("cr", ["blast_burden=ge5"], evidence=evidence, n=30, responses=18).assurance["probability"]
    b = query("cr", ["blast_burden=ge5"], evidence=evidence, n=30, responses=12).assurance["probability"]
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
