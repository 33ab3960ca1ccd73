"""Load the evidence folder into validated, frozen records.

Only this module (through :mod:`blinameta.evidence.yamlsafe`) reads YAML. Everything after it
passes typed records (:class:`~blinameta.evidence.schema.Publication`) or tidy tables.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ValidationError

from blinameta.errors import UserError
from blinameta.evidence.schema import ID_PATTERN, Publication, Review
from blinameta.evidence.yamlsafe import ParsedYaml, parse_yaml
from blinameta.text import printable

__all__ = [
    "Problem",
    "Evidence",
    "REVIEW_FILE",
    "load_evidence",
    "load_evidence_or_fail",
    "evidence_files",
    "format_path",
    "misnamed_yaml_files",
]

#: Name of the review file in the evidence folder.
REVIEW_FILE = "review.yaml"

Severity = Literal["error", "discrepancy", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem in one file: where it is and what is wrong.

    ``severity`` is ``"error"`` (the file is not valid), ``"discrepancy"`` (the source
    contradicts itself or a printed percentage does not match its count: kept, flagged) or
    ``"warning"``.
    """

    file: Path
    line: int | None
    field: str
    message: str
    severity: Severity = "error"

    def format(self) -> str:
        """``file:line: severity: field: message`` on one line."""
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {self.severity}: {what}{self.message}"


@dataclass(frozen=True)
class Evidence:
    """The validated evidence base: the review and its publications, with their files."""

    directory: Path
    review: Review
    publications: tuple[Publication, ...]
    files: dict[str, Path] = field(default_factory=dict)
    lines: dict[str, ParsedYaml] = field(default_factory=dict, repr=False, compare=False)
    problems: tuple[Problem, ...] = ()
    #: Values derived from this (immutable) evidence, computed once: see :meth:`memo`.
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed once per evidence object and ``key`` (e.g. the tidy table,
        which every analysis of a report selects from). Callers must not modify the value."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def publication(self, publication_id: str) -> Publication:
        """The publication with this id."""
        for publication in self.publications:
            if publication.id == publication_id:
                return publication
        raise KeyError(publication_id)

    @property
    def discrepancies(self) -> tuple[Problem, ...]:
        """Flagged discrepancies (not errors)."""
        return tuple(p for p in self.problems if p.severity == "discrepancy")


def format_path(loc: tuple[Any, ...]) -> str:
    """``("outcomes", 2, "events")`` -> ``outcomes[2].events``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def evidence_files(directory: Path) -> list[Path]:
    """Publication files of an evidence folder: every ``*.yaml`` but the review and exclusions files."""
    return sorted(
        p for p in directory.glob("*.yaml")
        if p.name not in (REVIEW_FILE, "exclusions.yaml") and not p.name.startswith(".")
    )


def misnamed_yaml_files(directory: Path) -> list[Problem]:
    """Problems for YAML files that blinameta would not read (``*.yml``, ``*.YAML``): never skipped silently."""
    problems = []
    for path in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else []:
        if path.suffix.lower() in (".yaml", ".yml") and path.suffix != ".yaml" and not path.name.startswith("."):
            problems.append(Problem(path, None, "", f"only *.yaml files are read; rename it to {path.stem}.yaml"))
    return problems


def _schema_problems(path: Path, parsed: ParsedYaml, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        value = item.get("input")
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        elif isinstance(value, (str, int, float, bool)) and len(repr(value)) < 80:
            message = f"{message} (got {value!r})"
        problems.append(Problem(path, parsed.line_of(loc), format_path(loc), message))
    return problems


def _load_one(
    path: Path, model: type[BaseModel], root: Path | None = None
) -> tuple[BaseModel | None, ParsedYaml | None, list[Problem]]:
    parsed, yaml_problems = parse_yaml(path, root=root)
    if parsed is None:
        return None, None, [Problem(path, p.line, "", p.message) for p in yaml_problems]
    if not isinstance(parsed.value, dict):
        return None, parsed, [Problem(path, 1, "", "the file must hold a mapping of fields")]
    try:
        record = model.model_validate(parsed.value)
    except ValidationError as exc:
        return None, parsed, _schema_problems(path, parsed, exc)
    return record, parsed, []


def load_evidence(directory: str | Path, files: list[Path] | None = None) -> Evidence | None:
    """Load and check an evidence folder; return ``None`` only if the review file is unusable.

    Every problem of every file is collected; see :attr:`Evidence.problems`. ``files``
    restricts the publications checked (the review file is always read).
    """
    from blinameta.evidence.checks import check_evidence

    directory = Path(directory)
    review_path = directory / REVIEW_FILE
    if not os.path.lexists(review_path):
        raise UserError(f"{review_path}: no review file; every evidence folder needs one")
    review, review_parsed, problems = _load_one(review_path, Review, directory)
    if review is None:
        raise UserError("\n".join(p.format() for p in problems))
    publications: list[Publication] = []
    paths: dict[str, Path] = {}
    lines: dict[str, ParsedYaml] = {}
    all_problems: list[Problem] = [] if files is not None else misnamed_yaml_files(directory)
    for path in files if files is not None else evidence_files(directory):
        if not re.fullmatch(ID_PATTERN, path.stem):
            all_problems.append(
                Problem(path, None, "", f"file name {printable(path.stem)} is not a valid id ({ID_PATTERN})")
            )
            continue
        record, parsed, file_problems = _load_one(path, Publication, directory)
        all_problems.extend(file_problems)
        if record is None:
            continue
        assert isinstance(record, Publication)
        assert parsed is not None
        if record.id in paths:
            all_problems.append(
                Problem(path, parsed.line_of(("id",)), "id",
                        f"duplicate id {record.id!r}, also in {paths[record.id]}")
            )
            continue
        publications.append(record)
        paths[record.id] = path
        lines[record.id] = parsed
    assert isinstance(review, Review) and review_parsed is not None
    evidence = Evidence(
        directory=directory,
        review=review,
        publications=tuple(publications),
        files=paths,
        lines=lines,
    )
    all_problems.extend(check_evidence(evidence))
    return Evidence(
        directory=directory,
        review=review,
        publications=evidence.publications,
        files=paths,
        lines=lines,
        problems=tuple(all_problems),
    )


def load_evidence_or_fail(directory: str | Path) -> Evidence:
    """Load an evidence folder for analysis; any error becomes one :class:`UserError`."""
    evidence = load_evidence(directory)
    assert evidence is not None
    errors = [p for p in evidence.problems if p.severity == "error"]
    if errors:
        listed = "\n".join(p.format() for p in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise UserError(
            f"the evidence in {directory} has {len(errors)} error(s); "
            f"run 'blinameta validate' for all of them:\n{listed}{more}"
        )
    return evidence
