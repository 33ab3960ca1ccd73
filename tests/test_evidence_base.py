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


# --- evidence v2: the quote and number checks cover the new fields ----------------------------

def _replace(evidence, pid, update):
    import dataclasses

    pubs = tuple(update(p) if p.id == pid else p for p in evidence.publications)
    return dataclasses.replace(evidence, publications=pubs)


def _first(evidence, predicate):
    for pub in evidence.publications:
        for i, outcome in enumerate(pub.outcomes):
            if predicate(outcome):
                return pub, i
    pytest.fail("the evidence has no such row")


def _with_outcome(pub, i, **update):
    outcomes = list(pub.outcomes)
    outcomes[i] = outcomes[i].model_copy(update=update)
    return pub.model_copy(update={"outcomes": outcomes})


def _errors_at(evidence, field):
    return [p for p in check_sources(evidence, SEEDS) if p.field == field]


@pytest.fixture()
def seeds():
    if not SEEDS.is_dir():
        pytest.skip(f"source documents not found at {SEEDS} (set BLINAMETA_SOURCES)")
    return SEEDS


def test_survival_percent_is_checked_against_its_quote(evidence, seeds):
    pub, i = _first(evidence, lambda o: o.time_months is not None and o.percent is not None
                    and not (o.derived and "percent" in o.derived.fields))
    tampered = _replace(evidence, pub.id, lambda p: _with_outcome(p, i, percent=pub.outcomes[i].percent + 1.3))
    assert _errors_at(tampered, f"outcomes[{i}].percent")


def test_survival_time_point_is_checked_in_months_or_years(evidence, seeds):
    pub, i = _first(evidence, lambda o: o.time_months is not None
                    and not (o.derived and "time_months" in o.derived.fields))
    assert not _errors_at(evidence, f"outcomes[{i}].time_months")
    tampered = _replace(evidence, pub.id, lambda p: _with_outcome(p, i, time_months=pub.outcomes[i].time_months + 7))
    assert _errors_at(tampered, f"outcomes[{i}].time_months")


def test_median_is_checked_against_its_quote(evidence, seeds):
    pub, i = _first(evidence, lambda o: o.median is not None and o.median.months is not None
                    and not (o.derived and "median" in o.derived.fields))
    median = pub.outcomes[i].median.model_copy(update={"months": pub.outcomes[i].median.months + 0.7})
    tampered = _replace(evidence, pub.id, lambda p: _with_outcome(p, i, median=median))
    assert _errors_at(tampered, f"outcomes[{i}].median.months")


def test_risk_of_bias_quotes_are_checked(evidence, seeds):
    for pub in evidence.publications:
        rob = pub.risk_of_bias
        items = [] if rob is None else list(rob.items) + [it for r in rob.results for it in r.items]
        for item in items:
            if item.provenance:
                break
        else:
            continue
        break
    else:
        pytest.fail("no risk-of-bias item with a quote in the evidence")
    assert rob is not None
    where = "items" if item in rob.items else None
    prov = item.provenance[0].model_copy(update={"quote": item.provenance[0].quote + " (tampered)"})
    new_item = item.model_copy(update={"provenance": [prov, *item.provenance[1:]]})
    if where == "items":
        j = list(rob.items).index(item)
        new_rob = rob.model_copy(update={"items": [*rob.items[:j], new_item, *rob.items[j + 1:]]})
        field = f"risk_of_bias.items[{j}].provenance[0].quote"
    else:
        k = next(k for k, r in enumerate(rob.results) if item in r.items)
        j = list(rob.results[k].items).index(item)
        result = rob.results[k].model_copy(update={"items": [*rob.results[k].items[:j], new_item, *rob.results[k].items[j + 1:]]})
        new_rob = rob.model_copy(update={"results": [*rob.results[:k], result, *rob.results[k + 1:]]})
        field = f"risk_of_bias.results[{k}].items[{j}].provenance[0].quote"
    tampered = _replace(evidence, pub.id, lambda p: p.model_copy(update={"risk_of_bias": new_rob}))
    assert _errors_at(tampered, field)


def test_exclusions_file_is_valid_and_its_quotes_are_checked(evidence, seeds, tmp_path):
    import shutil

    from blinameta.evidence.exclusions import load_exclusions

    exclusions, _, problems = load_exclusions(ROOT / "evidence")
    assert problems == [] and exclusions is not None
    assert "blast_mt103_203" in {s.id for s in exclusions.excluded}
    assert not [p for p in check_sources(evidence, SEEDS) if p.file.name == "exclusions.yaml"]
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    path = tmp_path / "evidence" / "exclusions.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("78% of children", "87% of children"), encoding="utf-8")
    copied = load_evidence(tmp_path / "evidence")
    errors = [p for p in check_sources(copied, SEEDS) if p.file.name == "exclusions.yaml"]
    assert errors and "quote not found verbatim" in errors[0].message and errors[0].line
