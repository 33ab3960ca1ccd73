"""Study selection and analysis fitting on the real evidence and on edited copies."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from blinameta.analysis import AnalysisSpec, load_specs, run_analysis, select
from blinameta.analysis.select import SENSITIVITY_FLAGS, overlap_closure, study_label
from blinameta.design import simon_two_stage
from blinameta.frequentist.escalc import escalc_proportion
from blinameta.errors import UserError
from blinameta.evidence.loader import load_evidence
from blinameta.analysis.query import query
from blinameta.report.build import analysis_fingerprint
from blinameta.frequentist.rma import rma

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(ROOT / "evidence")


@pytest.fixture(scope="module")
def specs(evidence):
    loaded = load_specs(ROOT / "models", evidence.review, {p.id for p in evidence.publications})
    assert loaded.problems == ()
    return {s.id: s for s in loaded.specs}


def test_study_labels():
    assert study_label("von Stackelberg A", 2016) == "von Stackelberg 2016"
    assert study_label("Locatelli F", 2020) == "Locatelli 2020"
    assert study_label("De Matteo A.", 2022) == "De Matteo 2022"


def test_main_model_equals_a_direct_fit(evidence, specs):
    result = run_analysis(evidence, specs["cr_overt"])
    rows = result.selection.rows
    es = escalc_proportion("PLO", rows.events.to_numpy(int), rows.total.to_numpy(int))
    direct = rma(es.yi, es.vi, method="REML", test="knha")
    assert result.main.beta[0] == pytest.approx(direct.beta[0], rel=1e-12)
    assert result.main.tau2 == pytest.approx(direct.tau2, rel=1e-12)


def test_one_row_per_study_and_no_overlapping_pair(evidence, specs):
    closure = overlap_closure(evidence)
    overlaps = {p.id: {o.with_ for o in p.overlaps} | set(closure[p.id]) for p in evidence.publications}
    for spec in specs.values():
        selection = select(evidence, spec)
        ids = selection.study_ids
        assert len(ids) == len(set(ids)), spec.id
        for a in ids:
            assert not overlaps.get(a, set()) & set(ids), (spec.id, a)


def test_overlap_preference_is_honoured(evidence):
    base = AnalysisSpec(id="t", title="t", outcome="cr", filter={"blast_burden": ["ge5"]})
    # von Stackelberg 2016 overlaps its follow-ups; the preferred one of an overlapping pair is kept
    chosen = select(evidence, base.model_copy(update={"prefer": ["vonstackelberg2016"]}))
    assert "vonstackelberg2016" in chosen.study_ids


def test_manual_exclusion_is_listed(evidence):
    spec = AnalysisSpec(id="t", title="t", outcome="cr", filter={"blast_burden": ["ge5"]},
                        exclude=[{"id": "xie2023", "reason": "short-course schedule"}])
    selection = select(evidence, spec)
    assert "xie2023" not in selection.study_ids
    assert any(e.study_id == "xie2023" and "short-course" in e.reason for e in selection.excluded)


def test_risk_ratio_pairs_arms_at_the_same_time_point(tmp_path, evidence):
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    path = tmp_path / "evidence" / "locatelli2021.yaml"
    text = path.read_text()
    first_outcome = text.index("\noutcomes:\n") + len("\noutcomes:\n")
    blin_arm = next(c.id for c in evidence.publication("locatelli2021").cohorts if c.treatment == "blinatumomab")
    extra = f"""  - code: mrd_neg
    cohort: {blin_arm}
    events: 30
    total: 50
    denominator: evaluable
    timepoint: an earlier day
    provenance: [{{source: queudeville2021, location: x, quote: "They observed a response with morphological CR in 6/9 patients"}}]
    derived: {{fields: [events, total], method: synthetic test row}}
"""
    path.write_text(text[:first_outcome] + extra + text[first_outcome:])
    edited = load_evidence(tmp_path / "evidence")
    assert [p for p in edited.problems if p.severity == "error"] == []
    spec = AnalysisSpec(id="t", title="t", kind="risk_ratio", outcome="mrd_neg")
    rows = select(edited, spec).rows
    trial = rows[rows.study_id == "locatelli2021"].iloc[0]
    assert (trial.ai, trial.n1i) != (30, 50)


def test_query_answers_for_the_primary_analysis_not_a_mix_of_denominators(evidence):
    result = query("mrd_neg", evidence=evidence)  # the primary analysis (mrd_neg_cr) counts responders
    assert result.analysis == "mrd_neg_cr" and set(result.selection["denominators"]) == {"responders"}
    assert result.k >= 2


def test_simon_with_p1_close_to_p0_fails_fast():
    start = time.perf_counter()
    with pytest.raises(UserError, match="too small"):
        simon_two_stage(0.5, 0.538, 0.05, 0.2)
    assert time.perf_counter() - start < 60  # a clear message, not an hour-long search


def test_fingerprint_follows_line_numbers(tmp_path, evidence, specs):
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    before = analysis_fingerprint(load_evidence(tmp_path / "evidence"), specs["cr_overt"])
    path = tmp_path / "evidence" / "xie2023.yaml"
    path.write_text("# a comment\n# another\n" + path.read_text())
    after = analysis_fingerprint(load_evidence(tmp_path / "evidence"), specs["cr_overt"])
    assert before != after
    untouched = analysis_fingerprint(load_evidence(tmp_path / "evidence"), specs["hr_os"])
    assert untouched == analysis_fingerprint(evidence, specs["hr_os"])


def test_analysis_with_no_study_and_with_one(evidence):
    none = run_analysis(evidence, AnalysisSpec(id="t", title="t", outcome="cr", filter={"study_id": ["nosuch"]}))
    assert none.k == 0 and none.main is None
    one = run_analysis(evidence, AnalysisSpec(id="t", title="t", outcome="cr", filter={"study_id": ["xie2023"], "blast_burden": ["ge5"]}))
    assert one.k == 1 and one.main is None and any("one study" in n for n in one.notes)


@pytest.mark.parametrize("measure", ["PR", "PLN", "PLO", "PAS", "PFT"])
def test_every_measure_runs_and_back_transforms_into_0_1(evidence, measure):
    spec = AnalysisSpec(id="t", title="t", outcome="crs_grade3plus", frequentist={"measure": measure, "glmm": False},
                        bayes={"enabled": False})
    result = run_analysis(evidence, spec)
    est = result.to_display([result.main.beta[0]])[0]
    raw = result.selection.rows
    assert 0 <= est <= max(0.2, float((raw.events / raw.total).max()))
    assert np.isfinite(est)


# --- evidence v2 selection rules, on constructed evidence folders --------------------------------

CASES = Path(__file__).parent / "evidence_cases"
_QUOTE = '[{source: testdoc, location: Results, quote: "in total 40 patients"}]'


def _pub(pid: str, total: int, *, year: int = 2020, overlaps: str = "", row: str = "") -> str:
    return f"""id: {pid}
first_author: Roe R
year: {year}
title: T
design: case_series
setting: real_world
population: Children.
reported_in: [testdoc]
{overlaps}cohorts:
  - {{id: all, label: All, n: {total}, provenance: {_QUOTE}}}
outcomes:
  - code: cr
    cohort: all
    events: 5
    total: {total}
    denominator: all_treated
    provenance: {_QUOTE}
{row}risk_of_bias:
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
"""


def _folder(tmp_path: Path, pubs: dict[str, str]):
    shutil.copy(CASES / "review.yaml", tmp_path / "review.yaml")
    for pid, body in pubs.items():
        (tmp_path / f"{pid}.yaml").write_text(body, encoding="utf-8")
    evidence = load_evidence(tmp_path)
    assert [p.format() for p in evidence.problems if p.severity == "error"] == []
    return evidence


def _ov(*entries: tuple[str, str]) -> str:
    return "overlaps:\n" + "".join(f"  - {{with: {w}, relation: {r}, note: x}}\n" for w, r in entries)


SPEC = AnalysisSpec(id="t", title="t", outcome="cr")


def test_overlaps_are_followed_through_containment(tmp_path):
    # big ⊃ sub; other partially overlaps big only: other and sub may share patients
    evidence = _folder(tmp_path, {
        "big": _pub("big", 30, overlaps=_ov(("sub", "superset"), ("other", "partial"))),
        "sub": _pub("sub", 20, overlaps=_ov(("big", "subset"))),
        "other": _pub("other", 25, overlaps=_ov(("big", "partial"))),
        "apart": _pub("apart", 10),
    })
    closure = overlap_closure(evidence)
    assert closure["sub"] == {"big": "contained", "other": "partial"}
    assert closure["apart"] == {}
    # without big (excluded by hand), the direct links alone would keep both sub and other
    selection = select(evidence, AnalysisSpec(id="t", title="t", outcome="cr", exclude=[{"id": "big", "reason": "test"}]))
    assert sorted(selection.study_ids) == ["apart", "other"]
    assert selection.partial_overlap_dropped == ("sub",)


def test_partial_chains_do_not_propagate(tmp_path):
    evidence = _folder(tmp_path, {
        "a": _pub("a", 30, overlaps=_ov(("b", "partial"))),
        "b": _pub("b", 20, overlaps=_ov(("a", "partial"), ("c", "partial"))),
        "c": _pub("c", 25, overlaps=_ov(("b", "partial"))),
    })
    assert "c" not in overlap_closure(evidence)["a"]
    assert sorted(select(evidence, SPEC).study_ids) == ["a", "c"]


def test_partial_overlap_drop_is_recorded_and_can_be_undone(tmp_path):
    evidence = _folder(tmp_path, {
        "large": _pub("large", 40, overlaps=_ov(("small", "partial"), ("copy", "same_patients"))),
        "small": _pub("small", 20, overlaps=_ov(("large", "partial"))),
        "copy": _pub("copy", 39, overlaps=_ov(("large", "same_patients"))),
    })
    selection = select(evidence, SPEC)
    assert selection.study_ids == ["large"]
    assert selection.partial_overlap_dropped == ("small",)  # 'copy' is the same patients: not a partial drop
    assert list(selection.partial_overlap_rows.study_id) == ["small"]
    reasons = {e.study_id: e.reason for e in selection.excluded}
    assert "partial overlap" in reasons["small"] and "same patients" in reasons["copy"]
    sensitivity = select(evidence, SPEC, include_partial_overlaps=True)
    assert sorted(sensitivity.study_ids) == ["large", "small"]


def test_external_rows_are_left_out_unless_the_model_opts_in(tmp_path):
    external = "    external: {fields: [events], citation: J Ex 2020 Table 2}\n"
    evidence = _folder(tmp_path, {"ext": _pub("ext", 30, row=external), "own": _pub("own", 20)})
    selection = select(evidence, SPEC)
    assert selection.study_ids == ["own"]
    (why,) = [e for e in selection.excluded if e.study_id == "ext"]
    assert why.kind == "external" and "J Ex 2020 Table 2" in why.reason
    opted = select(evidence, SPEC.model_copy(update={"include_external": True}))
    assert sorted(opted.study_ids) == ["ext", "own"] and opted.external_ids == ["ext"]
    assert any("outside the sources" in n and "ext (J Ex 2020 Table 2)" in n for n in opted.notes)


def test_real_external_rows_stay_out_by_default(evidence, specs):
    for spec in specs.values():
        selection = select(evidence, spec)
        if not spec.include_external:
            assert selection.external_ids == [], spec.id


def test_flagged_rows_stay_in_the_primary_and_are_exposed(tmp_path):
    evidence = _folder(tmp_path, {"low": _pub("low", 30, row="    flags: [lower_bound]\n"),
                                  "unclear": _pub("unclear", 25, row="    flags: [unclear_denominator]\n"),
                                  "plain": _pub("plain", 20, row="    flags: [ambiguous]\n")})
    selection = select(evidence, SPEC)
    assert sorted(selection.study_ids) == ["low", "plain", "unclear"]
    assert sorted(selection.flagged_for_sensitivity) == ["low", "unclear"]
    assert select(evidence, SPEC, exclude_flags=SENSITIVITY_FLAGS).study_ids == ["plain"]


def test_survival_rows_never_enter_proportion_analyses(tmp_path):
    survival = """  - {code: efs, cohort: all, percent: 55, time_months: 24, denominator: all_treated, provenance: %s}
""" % _QUOTE
    evidence = _folder(tmp_path, {"s": _pub("s", 30, row=survival)})
    selection = select(evidence, SPEC.model_copy(update={"outcome": "efs"}))
    assert selection.k == 0
    assert select(evidence, SPEC).k == 1
