"""Check provenance against the source documents.

Two rules, both reported as errors:

1. every quote stands verbatim in its source document, after whitespace normalisation (every
   run of white space becomes one space; nothing else is changed);
2. every number of a record with provenance (a cohort's ``n``, an outcome's ``events``,
   ``total`` and ``percent``, a survival row's ``time_months``, interval, ``n_at_risk`` and
   ``median`` numbers, a characteristic's counts, a comparison's estimate and interval, a
   patient table's cells) occurs as a number in that record's quotes, or is listed in the
   record's ``derived.fields`` or ``external.fields`` (numbers from outside the sources, whose
   citation is given instead). Times in months (``time_months``, ``median.*``) also match when
   the quote gives them in years (24 months as "2-year"). The quotes of risk-of-bias items are
   checked verbatim (their judgements are not numbers to quote); ``mrd_threshold`` is a
   definition, not a count, and is not looked up.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from blinameta.evidence.checks import iter_provenanced
from blinameta.evidence.exclusions import EXCLUSIONS_FILE, load_exclusions
from blinameta.evidence.loader import Evidence, Problem, format_path
from blinameta.evidence.schema import AlternativeReading, PatientTable

__all__ = ["normalise_whitespace", "numbers_in", "check_sources", "record_numbers"]

_WS = re.compile(r"\s+")
# digits with an optional decimal part (point, comma or middle dot), or a leading-point decimal
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:[.·,]\d+)?|[.·]\d+)")
_SKIP_FIELDS = {"provenance", "derived", "external", "alternatives", "primary_reason", "moderators",
                "judgement", "mrd_threshold"}
#: Fields in months that may be quoted in years.
_MONTH_FIELDS = {"time_months", "median.months", "median.ci_lb", "median.ci_ub", "median.range_lb",
                 "median.range_ub"}


def normalise_whitespace(text: str) -> str:
    """Collapse every run of white space (including non-breaking spaces) to one space."""
    return _WS.sub(" ", text.replace("\u00a0", " ")).strip()


def numbers_in(text: str) -> set[float]:
    """The numbers written in ``text`` (``59.1``, ``0·33``, ``.33``, ``1,5`` as 1.5 and 15)."""
    found: set[float] = set()
    for token in _NUMBER.findall(text):
        token = token.replace("·", ".")
        if "," in token:
            whole, frac = token.split(",")
            found.add(float(f"{whole}.{frac}"))
            if len(frac) == 3:  # thousands separator
                found.add(float(whole + frac))
            found.update((float(whole), float(frac)))
            continue
        found.add(float(token if not token.startswith(".") else "0" + token))
    return found


def record_numbers(record: BaseModel) -> dict[str, float]:
    """The numeric fields of one record that need a quote.

    Sub-records without a provenance of their own (a survival row's ``median``) are included
    with dotted names (``median.months``); sub-records with provenance are records of their own.
    """
    numbers: dict[str, float] = {}
    for name in type(record).model_fields:
        if name in _SKIP_FIELDS:
            continue
        value = getattr(record, name)
        if isinstance(value, BaseModel) and "provenance" not in type(value).model_fields:
            numbers.update({f"{name}.{k}": v for k, v in record_numbers(value).items()})
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name == "level" and value == 95.0:
            continue
        numbers[name] = float(value)
    return numbers


@lru_cache(maxsize=32)
def _document(path: Path) -> str:
    return normalise_whitespace(path.read_text(encoding="utf-8", errors="replace"))


def _matches(value: float, numbers: set[float]) -> bool:
    return any(abs(value - n) <= 1e-9 * max(1.0, abs(value)) for n in numbers)


def _quotes(evidence: Evidence, sources_dir: Path, provenance, loc: tuple[Any, ...], report) -> list[str]:
    """The normalised quotes of a provenance list; a quote not in its document is reported."""
    quotes = []
    for j, prov in enumerate(provenance):
        source = evidence.review.sources.get(prov.source)
        if source is None:
            continue  # reported by the semantic checks
        document = sources_dir / source.file
        if not document.is_file():
            report(loc + ("provenance", j, "source"), f"source document {document} not found")
            continue
        quote = normalise_whitespace(prov.quote)
        quotes.append(quote)
        if quote not in _document(document):
            report(loc + ("provenance", j, "quote"),
                   f"quote not found verbatim in {source.file}: {quote[:80]!r}")
    return quotes


def check_sources(evidence: Evidence, sources_dir: str | Path) -> list[Problem]:
    """Errors for quotes not found in their documents and numbers not found in their quotes.

    The quotes of the folder's exclusions file (where it was read) are checked too.
    """
    sources_dir = Path(sources_dir)
    problems: list[Problem] = []
    exclusions, parsed_exclusions, _ = load_exclusions(evidence.directory)
    if exclusions is not None and parsed_exclusions is not None:
        path = evidence.directory / EXCLUSIONS_FILE

        def report_exclusion(loc: tuple[Any, ...], message: str) -> None:
            problems.append(Problem(path, parsed_exclusions.line_of(loc), format_path(loc), message))

        for i, study in enumerate(exclusions.excluded):
            _quotes(evidence, sources_dir, study.provenance, ("excluded", i), report_exclusion)
    for publication in evidence.publications:
        path = evidence.files[publication.id]
        parsed = evidence.lines[publication.id]

        def report(loc: tuple[Any, ...], message: str) -> None:
            problems.append(Problem(path, parsed.line_of(loc), format_path(loc), message))

        records = list(iter_provenanced(publication))
        for loc, record in records:
            quotes = _quotes(evidence, sources_dir, record.provenance, loc, report)  # type: ignore[attr-defined]
            found: set[float] = set()
            for quote in quotes:
                found |= numbers_in(quote)
            derived = set(getattr(record, "derived", None).fields) if getattr(record, "derived", None) else set()
            external = getattr(record, "external", None)
            if external is not None and not isinstance(external, list):
                derived |= set(external.fields)
            if isinstance(record, PatientTable):
                for i, row in enumerate(record.rows):
                    for name, value in row.items():
                        if isinstance(value, bool) or not isinstance(value, (int, float)):
                            continue
                        if name not in derived and not _matches(float(value), found):
                            report(loc + ("rows", i, name), f"{value:g} does not occur in the table's quotes")
                continue
            if not quotes:
                continue
            for name, value in record_numbers(record).items():
                if name in derived or name.split(".")[0] in derived:
                    continue
                if name in _MONTH_FIELDS and _matches(value / 12.0, found):
                    continue
                if not _matches(value, found):
                    kind = "alternative reading" if isinstance(record, AlternativeReading) else "record"
                    report(loc + tuple(name.split(".")),
                           f"{value:g} does not occur in the {kind}'s quotes; quote it or list "
                           f"{name!r} in derived.fields with the method")
    return problems
