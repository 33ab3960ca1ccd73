"""The primary analysis of each outcome and its headline estimate (issue 11, item 1).

Reference values come from independent computations: scipy's beta quantiles for the
Clopper-Pearson interval, and a direct 1-D integration over tau (mu is conjugate given tau) for
the normal-normal posterior of the hazard-ratio analyses.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from blinameta.analysis import AnalysisSpec, load_specs, run_analysis
from blinameta.analysis.spec import primary_spec
from blinameta.evidence.loader import load_evidence

ROOT = Path(__file__).parent.parent


def _load(folder, evidence):
    return load_specs(folder, evidence.review, {p.id for p in evidence.publications})


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(ROOT / "evidence")


@pytest.fixture(scope="module")
def specs(evidence):
    loaded = _load(ROOT / "models", evidence)
    assert not loaded.problems
    return loaded.specs


def test_every_outcome_has_exactly_one_primary_and_every_model_a_threshold(specs):
    outcomes = {s.outcome for s in specs}
    for outcome in outcomes:
        chosen = primary_spec(specs, outcome)
        assert chosen is not None and chosen.outcome == outcome
        assert sum(s.primary_for_outcome for s in specs if s.outcome == outcome) == 1
    for spec in specs:
        assert spec.decision_threshold is not None and "assumption" in spec.decision_threshold.text
        assert spec.headline == ("bayes_binomial_normal" if spec.kind == "proportion" else "bayes_normal_normal")
    assert primary_spec(specs, "no_such_outcome") is None


def test_two_primaries_for_one_outcome_name_both_files(tmp_path, evidence):
    shutil.copy(ROOT / "models" / "mrd_neg_cr.yaml", tmp_path)
    text = (ROOT / "models" / "mrd_neg_all.yaml").read_text().replace("primary_for_outcome: false",
                                                                      "primary_for_outcome: true")
    (tmp_path / "mrd_neg_all.yaml").write_text(text)
    loaded = _load(tmp_path, evidence)
    messages = [p.format() for p in loaded.problems]
    assert len(messages) == 2
    line = text.splitlines().index("primary_for_outcome: true") + 1
    assert any(m.startswith(f"{tmp_path / 'mrd_neg_all.yaml'}:{line}: error: primary_for_outcome:") for m in messages)
    assert all("mrd_neg_all.yaml, mrd_neg_cr.yaml" in m for m in messages)


def test_no_primary_among_several_models_is_an_error_but_a_lone_model_is_its_own_primary(tmp_path, evidence):
    for name in ("mrd_neg_all", "mrd_neg_lt5", "cr_overt"):
        text = (ROOT / "models" / f"{name}.yaml").read_text()
        (tmp_path / f"{name}.yaml").write_text(text.replace("primary_for_outcome: true", "primary_for_outcome: false"))
    loaded = _load(tmp_path, evidence)
    assert len(loaded.problems) == 2 and all("none of the models of outcome 'mrd_neg'" in p.message for p in loaded.problems)
    assert primary_spec(loaded.specs, "cr").id == "cr_overt"


def test_a_proportion_threshold_above_one_is_a_located_error(tmp_path, evidence):
    text = (ROOT / "models" / "cr_overt.yaml").read_text().replace("value: 0.3", "value: 30")
    (tmp_path / "cr_overt.yaml").write_text(text)
    loaded = _load(tmp_path, evidence)
    line = text.splitlines().index("  value: 30") + 1
    assert [p.format() for p in loaded.problems] == [
        f"{tmp_path / 'cr_overt.yaml'}:{line}: error: decision_threshold.value: a proportion's decision threshold "
        "is a fraction between 0 and 1, not 30"]


def test_single_study_headline_is_its_own_clopper_pearson_estimate(evidence):
    spec = AnalysisSpec(id="t", title="t", outcome="cr", filter={"study_id": ["xie2023"], "blast_burden": ["ge5"]})
    result = run_analysis(evidence, spec)
    p = result.primary
    x, n = int(result.selection.rows.events[0]), int(result.selection.rows.total[0])
    assert (p.method, p.pooled, p.k, p.pi_lb) == ("single_study", False, 1, None)
    assert p.estimate == pytest.approx(x / n, rel=1e-12)
    assert p.ci_lb == pytest.approx(stats.beta.ppf(0.025, x, n - x + 1), rel=1e-9)
    assert p.ci_ub == pytest.approx(stats.beta.ppf(0.975, x + 1, n - x), rel=1e-9)
    assert "not pooled" in p.label


def _normal_normal_reference(yi, vi, m0, s0, tau_scale):
    """Posterior of mu by integrating over tau: mu | tau, y is normal (conjugate normal prior)."""
    yi, vi = np.asarray(yi), np.asarray(vi)

    def conditional(tau):
        w = 1.0 / (vi + tau**2)
        prec = w.sum() + 1.0 / s0**2
        mean = ((w * yi).sum() + m0 / s0**2) / prec
        # marginal likelihood of y given tau (mu integrated out), up to a constant
        cov = np.diag(vi + tau**2) + s0**2
        logml = stats.multivariate_normal(np.full(len(yi), m0), cov).logpdf(yi)
        return mean, 1.0 / math.sqrt(prec), math.exp(logml) * 2 * stats.norm.pdf(tau, 0, tau_scale)

    norm = integrate.quad(lambda t: conditional(t)[2], 0, 20 * tau_scale, epsabs=0, epsrel=1e-11)[0]

    def cdf(x):
        f = lambda t: (lambda m, s, d: d * stats.norm.cdf((x - m) / s))(*conditional(t))  # noqa: E731
        return integrate.quad(f, 0, 20 * tau_scale, epsabs=0, epsrel=1e-11)[0] / norm

    median = optimize.brentq(lambda x: cdf(x) - 0.5, -5, 5, xtol=1e-12)
    return cdf, median


@pytest.mark.parametrize("analysis", ["hr_efs", "hr_os"])
def test_ratio_headline_matches_direct_integration(evidence, specs, analysis):
    spec = next(s for s in specs if s.id == analysis)
    result = run_analysis(evidence, spec)
    p = result.primary
    assert p.method == "bayes_normal_normal" and p.pooled and p.scale == "ratio"
    cdf, median = _normal_normal_reference(result.yi, result.vi, 0.0, 1.0, 0.5)
    assert p.estimate == pytest.approx(math.exp(median), abs=2e-4)
    assert p.prob_decision["probability"] == pytest.approx(cdf(0.0), abs=2e-4)
    assert p.prob_decision["text"] == "P(HR < 1)"
    assert p.ci_lb == pytest.approx(math.exp(optimize.brentq(lambda x: cdf(x) - 0.025, -5, 5)), rel=2e-3)
    assert p.ci_ub == pytest.approx(math.exp(optimize.brentq(lambda x: cdf(x) - 0.975, -5, 5)), rel=2e-3)


def test_proportion_headline_is_the_posterior_median_and_never_continuity_corrected(evidence, specs):
    spec = next(s for s in specs if s.id == "crs_grade3plus")
    result = run_analysis(evidence, spec)
    p = result.primary
    assert p.method == "bayes_binomial_normal" and p.k == result.k and p.events == int(result.selection.rows.events.sum())
    from scipy.special import logit

    from blinameta.analysis.primary import posterior_mu_cdf

    # the headline is the median: half the posterior mass of mu lies below logit(estimate)
    assert posterior_mu_cdf(result.bayes.spec, [logit(p.estimate)])[0] == pytest.approx(0.5, abs=2e-3)
    # exact likelihood: the raw zero-event counts enter the model, not corrected ones
    assert 0 in result.bayes.spec.events
    assert p.prob_decision["probability"] == pytest.approx(
        posterior_mu_cdf(result.bayes.spec, [logit(0.1)])[0], abs=1e-6)


def test_methods_rules_are_data_with_references_and_the_grade_start_comes_from_the_review(evidence):
    from blinameta.analysis import methods_rules
    from blinameta.analysis.run import grade_framework

    rules = methods_rules()
    assert len({r["id"] for r in rules}) == len(rules)
    assert all(r["title"] and r["text"] and r["references"] for r in rules)
    framework = grade_framework(evidence)
    assert framework["start_single_arm"] == evidence.review.grade.start_single_arm
    assert "Iorio" in framework["framework"]


def test_summary_json_carries_the_methods_objects(evidence, specs):
    import json

    from blinameta.report.summary import summarise

    spec = next(s for s in specs if s.id == "hr_os")
    summary = json.loads(json.dumps(summarise(run_analysis(evidence, spec)), allow_nan=False))
    assert summary["primary"]["method"] == "bayes_normal_normal" and summary["primary_for_outcome"]
    assert {"id", "label", "estimate", "ci_lb", "ci_ub", "k", "changes_conclusion", "flag_reason", "available"} <= set(
        summary["sensitivity"][0])
    assert summary["certainty"]["level"] in ("high", "moderate", "low", "very_low")
    assert len(summary["certainty"]["judgements"]) == 5
    assert summary["diagnostics"]["small_study"] is None
    assert summary["decision_threshold"]["value"] == 1.0


def test_two_primaries_stop_the_report_with_a_located_message(tmp_path, capsys):
    from blinameta.cli import main

    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / "mrd_neg_cr.yaml", tmp_path / "models")
    text = (ROOT / "models" / "mrd_neg_lt5.yaml").read_text().replace("primary_for_outcome: false",
                                                                      "primary_for_outcome: true")
    (tmp_path / "models" / "mrd_neg_lt5.yaml").write_text(text)
    status = main(["report", "--evidence", str(tmp_path / "evidence"), "--models", str(tmp_path / "models"),
                   "--out", str(tmp_path / "reports"), "-q"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    line = text.splitlines().index("primary_for_outcome: true") + 1
    assert f"mrd_neg_lt5.yaml:{line}: error: primary_for_outcome: 2 models are the primary analysis" in err


def test_one_study_has_no_bayesian_random_effects_model(evidence, specs):
    """With one study nothing is pooled: no random-effects posterior (it would be the study's
    estimate widened by the heterogeneity prior), and the headline is the study's own estimate."""
    from blinameta.analysis.run import run_analysis

    spec = next(s for s in specs if s.id == "rr_mrd_response")
    result = run_analysis(evidence, spec)
    assert result.k == 1 and result.bayes is None
    assert any("no Bayesian random-effects model" in n for n in result.notes)
    assert result.primary.method == "single_study" and result.primary.pooled is False
