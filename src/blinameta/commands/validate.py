"""``blinameta validate``: check evidence files and report every problem, one line each."""

from __future__ import annotations

import os
from pathlib import Path

import click

from blinameta.errors import EXIT_USER_ERROR, UserError
from blinameta.text import terminal_safe
from blinameta.evidence.loader import REVIEW_FILE, Problem, evidence_files, load_evidence

__all__ = ["validate", "default_sources_dir"]


def default_sources_dir(evidence_dir: Path) -> Path | None:
    """Where the source documents are, in this order: ``$BLINAMETA_SOURCES``; the review file's
    ``sources_dir`` (relative to the evidence folder); ``../shared/seeds`` beside the project, if
    it exists."""
    env = os.environ.get("BLINAMETA_SOURCES")
    if env:
        return Path(env)
    configured = _configured_sources_dir(evidence_dir)
    if configured is not None:
        return configured
    candidate = evidence_dir.resolve().parent.parent / "shared" / "seeds"
    return candidate if candidate.is_dir() else None


def _configured_sources_dir(evidence_dir: Path) -> Path | None:
    """The review file's ``sources_dir`` setting, resolved against the evidence folder."""
    from blinameta.evidence.yamlsafe import parse_yaml

    review = evidence_dir / REVIEW_FILE
    if not review.is_file():
        return None
    parsed, _ = parse_yaml(review)
    value = parsed.value.get("sources_dir") if parsed is not None and isinstance(parsed.value, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return (evidence_dir / value).resolve()


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--sources", "sources_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the source documents; quotes are checked against them. "
              "Default: $BLINAMETA_SOURCES, else sources_dir in review.yaml, else ../shared/seeds "
              "beside the project, if present.")
@click.option("--no-sources", is_flag=True, help="Do not check quotes against the sources.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only, not flagged discrepancies.")
def validate(paths: tuple[Path, ...], sources_dir: Path | None, no_sources: bool, quiet: bool) -> None:
    """Check evidence files or folders (default: evidence/).

    Prints one line per problem, 'file:line: severity: field: message'. Errors make the exit
    status 2; flagged discrepancies (a source that contradicts itself, a printed percentage that
    does not match its count) are listed but do not fail.
    """
    from blinameta.evidence.sources import check_sources

    groups: dict[Path, list[Path] | None] = {}
    for path in paths or (Path("evidence"),):
        if path.is_dir():
            groups[path] = None
        elif path.is_file():
            folder = path.parent
            if path.name in (REVIEW_FILE, "exclusions.yaml"):  # folder-level files: check the folder
                groups.setdefault(folder, None)
            elif groups.get(folder, []) is not None:
                groups.setdefault(folder, []).append(path)  # type: ignore[union-attr]
        else:
            raise UserError(f"{path}: no such file or folder")
    problems: list[Problem] = []
    n_files = 0
    for folder, files in groups.items():
        evidence = load_evidence(folder, files)
        assert evidence is not None
        n_files += len(files) if files is not None else len(evidence_files(folder))
        problems.extend(evidence.problems)
        source_dir = None if no_sources else (sources_dir or default_sources_dir(folder))
        if source_dir is not None:
            if not source_dir.is_dir():
                raise UserError(f"{source_dir}: no such folder of source documents")
            problems.extend(check_sources(evidence, source_dir))
        click.echo(f"checked {folder}: quotes " + (f"checked against {source_dir}" if source_dir
                   else "not checked (no sources folder; see --sources)"), err=True)
    problems.sort(key=lambda p: (str(p.file), p.line or 0, p.severity))
    errors = [p for p in problems if p.severity == "error"]
    flagged = [p for p in problems if p.severity != "error"]
    for problem in problems:
        if quiet and problem.severity != "error":
            continue
        click.echo(terminal_safe(problem.format()))
    click.echo(
        f"{n_files} publication file(s): {len(errors)} error(s), "
        f"{len(flagged)} flagged discrepancy(ies)",
        err=True,
    )
    if errors:
        raise click.exceptions.Exit(EXIT_USER_ERROR)
