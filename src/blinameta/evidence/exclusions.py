"""Studies that were read and excluded: ``evidence/exclusions.yaml``.

One file per evidence folder lists every study the curators read in the sources and did not
give a publication file (the adult BLAST trial, case reports, CAR-T studies, ...), each with
its citation, a reason from a fixed list, and the provenance where it was read, so that the
report can draw the flow of studies (PRISMA 2020: Page MJ et al. BMJ 2021;372:n71, item 16b,
"cite studies that might appear to meet the inclusion criteria, but which were excluded, and
explain why they were excluded").

The file is read with the evidence loader's safe YAML reader and validated by ``blinameta
validate`` (through :func:`blinameta.evidence.checks.check_evidence`); its quotes are checked
against the source documents like every other quote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from blinameta.evidence.loader import Problem, _load_one, format_path
from blinameta.evidence.schema import ID_PATTERN, Provenance, Text, _Record
from blinameta.evidence.yamlsafe import ParsedYaml

__all__ = ["EXCLUSIONS_FILE", "ExclusionReason", "ExcludedStudy", "Exclusions", "load_exclusions",
           "check_exclusions"]

#: Name of the exclusions file in the evidence folder.
EXCLUSIONS_FILE = "exclusions.yaml"

ExclusionReason = Literal[
    "adult_population", "case_report", "car_t", "no_extractable_numbers", "duplicate_report",
    "not_blinatumomab", "review_article", "other",
]


class ExcludedStudy(_Record):
    """A study read in the sources and excluded, with the reason."""

    id: str = Field(pattern=ID_PATTERN, max_length=64, description="An id like a publication's.")
    citation: Text = Field(description="The study as the sources cite it.")
    reason: ExclusionReason
    note: Text | None = Field(default=None, description="Details; required when the reason is 'other'.")
    provenance: list[Provenance] = Field(min_length=1, description="Where it was read in the sources.")


class Exclusions(_Record):
    """The exclusions file: the studies read and excluded."""

    excluded: list[ExcludedStudy] = Field(default_factory=list)


def load_exclusions(directory: str | Path) -> tuple[Exclusions | None, ParsedYaml | None, list[Problem]]:
    """Read and validate ``exclusions.yaml`` of an evidence folder.

    Returns the record (``None`` if the file is absent or invalid), the parsed file (for line
    numbers) and the schema problems. A missing file is no problem: the folder then excludes
    nothing.
    """
    path = Path(directory) / EXCLUSIONS_FILE
    if not path.is_file():
        return None, None, []
    record, parsed, problems = _load_one(path, Exclusions)
    return record, parsed, problems  # type: ignore[return-value]


def check_exclusions(directory: str | Path, publication_ids: set[str], source_ids: set[str]) -> list[Problem]:
    """Schema and semantic problems of the exclusions file (none if there is no file).

    Errors: an id listed twice, an id that is also a publication of the folder, an unknown
    source in a provenance entry, reason 'other' without a note.
    """
    record, parsed, problems = load_exclusions(directory)
    if record is None or parsed is None:
        return problems
    path = Path(directory) / EXCLUSIONS_FILE

    def report(loc: tuple, message: str) -> None:
        problems.append(Problem(path, parsed.line_of(loc), format_path(loc), message))

    seen: set[str] = set()
    for i, study in enumerate(record.excluded):
        loc = ("excluded", i)
        if study.id in seen:
            report(loc + ("id",), f"{study.id!r} is listed twice")
        seen.add(study.id)
        if study.id in publication_ids:
            report(loc + ("id",), f"{study.id!r} is a publication of this folder; it cannot also be excluded")
        if study.reason == "other" and not study.note:
            report(loc + ("note",), "reason 'other' needs a note saying why")
        for j, prov in enumerate(study.provenance):
            if prov.source not in source_ids:
                report(loc + ("provenance", j, "source"),
                       f"unknown source {prov.source!r}; known: {', '.join(sorted(source_ids))}")
    return problems
