"""The sensitivity strip (issue 11, item 2): rows, their references and the conclusion flags."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from blinameta.analysis import AnalysisSpec, load_specs, run_analysis
from blinameta.analysis.primary import Primary
from blinameta.analysis.sensitivity import SensitivityRow, _two_by_two_rows, flag
from blinameta.evidence.loader import load_evidence
from blinameta.frequentist.rma import rma

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def results():
    evidence = load_evidence(ROOT / "evidence")
    loaded = load_specs(ROOT / "models", evidence.review, {p.id for p in evidence.publications})
    wanted = ("crs_grade3plus", "hr_efs", "cr_overt")
    return {s.id: run_analysis(evidence, s) for s in loaded.specs if s.id in wanted}


def _primary(estimate, lb, ub, scale="proportion"):
    return Primary(method="bayes_binomial_normal", label="", scale=scale, estimate=estimate, ci_lb=lb, ci_ub=ub,
                   pi_lb=None, pi_ub=None, k=4, patients=100, events=50, priors=None, pooled=True,
                   interval="", prediction=None)


def _row(estimate, lb, ub):
    return SensitivityRow("x", "x", 4, estimate, lb, ub)


CR = AnalysisSpec(id="t", title="t", outcome="cr", sensitivity_margin=0.05,
                  decision_threshold={"value": 0.3, "direction": "above", "text": "a constructed threshold"})
HR = AnalysisSpec(id="t", title="t", outcome="efs", kind="hazard_ratio",
                  decision_threshold={"value": 1.0, "direction": "below", "text": "a constructed threshold"})


def test_a_row_on_the_other_side_of_the_threshold_changes_the_conclusion():
    flagged = flag(CR, _primary(0.40, 0.32, 0.50), _row(0.28, 0.20, 0.37))
    assert flagged.changes_conclusion and "crosses the decision threshold 30%" in flagged.flag_reason


def test_an_interval_that_reaches_the_threshold_changes_the_conclusion():
    flagged = flag(CR, _primary(0.40, 0.32, 0.50), _row(0.41, 0.25, 0.60))
    assert flagged.changes_conclusion and flagged.flag_reason == "its interval reaches the decision threshold 30%"


def test_the_margin_is_absolute_for_proportions_and_relative_for_ratios():
    assert not flag(CR, _primary(0.40, 0.32, 0.50), _row(0.449, 0.35, 0.55)).changes_conclusion
    moved = flag(CR, _primary(0.40, 0.32, 0.50), _row(0.451, 0.35, 0.55))
    assert moved.flag_reason == "moves the estimate by 5.1 percentage points (margin 5)"
    head = _primary(0.50, 0.30, 0.90, scale="ratio")
    assert not flag(HR, head, _row(0.545, 0.3, 0.9)).changes_conclusion  # 9% relative
    assert flag(HR, head, _row(0.556, 0.3, 0.9)).flag_reason == "moves the ratio by 11% (margin 10%)"


def test_every_analysis_has_the_method_rows(results):
    ids = [r.id for r in results["cr_overt"].sensitivity]
    for wanted in ("common_effect", "reml_hksj", "reml_hksj_adhoc", "glmm", "bayes_tau_hn05", "bayes_tau_hc05",
                   "leave_one_out"):
        assert wanted in ids
    assert "bayes_tau_hn1" not in ids  # the headline's own prior is not repeated


def test_continuity_corrected_row_is_the_hand_computed_fit(results):
    result = results["crs_grade3plus"]
    row = next(r for r in result.sensitivity if r.id == "iv_logit_cc")
    x = result.selection.rows.events.to_numpy(float)
    n = result.selection.rows.total.to_numpy(float)
    yi = np.log((x + 0.5) / (n - x + 0.5))
    vi = 1 / (x + 0.5) + 1 / (n - x + 0.5)
    fit = rma(yi, vi, method="REML", test="z")
    assert row.estimate == pytest.approx(1 / (1 + math.exp(-fit.beta[0])), rel=1e-10)
    # the exact-likelihood headline is lower than the corrected fit (the audit's rare-event bias)
    assert result.primary.estimate < row.estimate


def test_hartung_knapp_on_one_df_is_only_a_sensitivity_row(results):
    result = results["hr_efs"]
    row = next(r for r in result.sensitivity if r.id == "reml_hksj")
    assert "1 degree of freedom" in row.note and row.pi_lb is None
    assert result.primary.method == "bayes_normal_normal"
    assert result.primary.ci_ub / result.primary.ci_lb < (row.ci_ub / row.ci_lb) / 100


def test_leave_one_out_range_spans_the_refits(results):
    result = results["cr_overt"]
    row = next(r for r in result.sensitivity if r.id == "leave_one_out")
    assert row.range[0] <= row.estimate <= row.range[1]
    assert row.k == result.k - 1


def test_peto_is_refused_with_common_events_and_given_with_rare_balanced_ones():
    spec = AnalysisSpec(id="t", title="t", kind="risk_ratio", outcome="mrd_neg")
    common = pd.DataFrame({"study_id": ["a", "b"], "ai": [40, 30], "n1i": [100, 80], "ci": [20, 15],
                           "n2i": [100, 80]})
    rows = {r.id: r for r in _two_by_two_rows(spec, common)}
    assert not rows["peto"].available and "events are not rare" in rows["peto"].note
    # Mantel-Haenszel risk ratio by hand (Greenland-Robins)
    a, n1, c, n2 = (common[k].to_numpy(float) for k in ("ai", "n1i", "ci", "n2i"))
    n = n1 + n2
    assert rows["mh"].estimate == pytest.approx((a * n2 / n).sum() / (c * n1 / n).sum(), rel=1e-10)
    rare = pd.DataFrame({"study_id": ["a", "b"], "ai": [1, 2], "n1i": [400, 500], "ci": [3, 4], "n2i": [410, 480]})
    peto = {r.id: r for r in _two_by_two_rows(spec, rare)}["peto"]
    assert peto.available
    # Peto's one-step odds ratio by hand: exp(sum(O - E) / sum(V))
    a, n1, c, n2 = (rare[k].to_numpy(float) for k in ("ai", "n1i", "ci", "n2i"))
    n, m = n1 + n2, a + c
    e = n1 * m / n
    v = n1 * n2 * m * (n - m) / (n**2 * (n - 1))
    assert peto.estimate == pytest.approx(math.exp((a - e).sum() / v.sum()), rel=1e-10)
    z = stats.norm.ppf(0.975)
    assert peto.ci_ub == pytest.approx(math.exp((a - e).sum() / v.sum() + z / math.sqrt(v.sum())), rel=1e-8)
