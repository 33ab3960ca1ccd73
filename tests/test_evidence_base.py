"""The curated evidence base: valid, quote-backed, and as large as the review needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blinameta.evidence.loader import load_evidence
from blinameta.evidence.sources import check_sources, normalise_whitespace, numbers_in
from blinameta.evidence.tidy import tidy

ROOT = Path(__file__).parent.parent
SEEDS = Path(os.environ.get("BLINAMETA_SOURCES", ROOT.parent / "shared" / "seeds"))


@pytest.fixture(scope="module")
def evidence():
    return load_evidence(ROOT / "evidence")


def test_evidence_has_no_errors(evidence):
    assert [p.format() for p in evidence.problems if p.severity == "error"] == []


def test_evidence_is_large_enough(evidence):
    table = tidy(evidence)
    assert len(evidence.publications) >= 15
    assert len(table) >= 60
    required = {"cr", "mrd_neg", "crs_any", "crs_grade3plus", "neurotox_any", "neurotox_grade3plus"}
    assert required <= set(table.outcome)


def test_every_quote_is_verbatim_and_every_number_is_quoted_or_derived(evidence):
    if not SEEDS.is_dir():
        pytest.skip(f"source documents not found at {SEEDS} (set BLINAMETA_SOURCES)")
    problems = check_sources(evidence, SEEDS)
    assert [p.format() for p in problems] == []


def test_quote_checker_catches_a_changed_quote(evidence):
    """The check above can fail: a quote with one digit changed is not in its document."""
    if not SEEDS.is_dir():
        pytest.skip(f"source documents not found at {SEEDS} (set BLINAMETA_SOURCES)")
    pub = evidence.publication("locatelli2020_rialto")
    prov = pub.outcomes[0].provenance[0]
    document = normalise_whitespace((SEEDS / evidence.review.sources[prov.source].file).read_text())
    assert normalise_whitespace(prov.quote) in document
    tampered = normalise_whitespace(prov.quote).replace(str(pub.outcomes[0].events), str(pub.outcomes[0].events + 1))
    assert tampered not in document


def test_numbers_in_reads_decimal_marks():
    assert numbers_in("CR 59.1% (65/110), HR 0·33, p = .02") >= {59.1, 65.0, 110.0, 0.33, 0.02}


def test_discrepancies_are_flagged_not_errors(evidence):
    flagged = [p for p in evidence.problems if p.severity == "discrepancy"]
    assert flagged, "the sources contradict themselves in places; those must be flagged"
    assert all(p.line for p in flagged)


def test_overlaps_are_declared_both_ways(evidence):
    ids = {p.id for p in evidence.publications}
    for pub in evidence.publications:
        for overlap in pub.overlaps:
            assert overlap.with_ in ids
            other = evidence.publication(overlap.with_)
            assert pub.id in {o.with_ for o in other.overlaps}, f"{pub.id} -> {other.id} not declared back"
            back = {o.with_: o.relation for o in other.overlaps}[pub.id]
            inverse = {"subset": "superset", "superset": "subset"}.get(overlap.relation, overlap.relation)
            assert back == inverse, f"{pub.id} is {overlap.relation} of {other.id}, which says {back}"


def test_overlaps_are_transitively_declared(evidence):
    """If A overlaps B and C is within B (same patients or a subset), A declares C too."""
    declared = {p.id: {o.with_: o.relation for o in p.overlaps} for p in evidence.publications}
    for a, partners in declared.items():
        for b in partners:
            for c, relation in declared[b].items():
                if relation in ("superset", "same_patients") and c != a:
                    assert c in partners, f"{a} overlaps {b}, which contains {c}; {a} must declare {c}"


def test_tuebingen_overlaps_the_whole_phase_1_2_and_rialto_families(evidence):
    # evidence audit, section 4, problem 1
    tuebingen = {o.with_ for o in evidence.publication("queudeville2021").overlaps}
    assert {"vonstackelberg2016", "gore2018", "locatelli2020_historical", "brown2019_day15mrd",
            "mejstrikova2017", "locatelli2020_rialto", "locatelli2022_rialto", "handgretinger2011",
            "schlegel2014"} <= tuebingen


def test_short_course_patient_table(evidence):
    xie = evidence.publication("xie2023")
    assert xie.patients is not None and len(xie.patients.rows) == 33
