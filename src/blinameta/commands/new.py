"""``blinameta new``: write a commented template for a new publication."""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

import click

from blinameta.errors import UserError
from blinameta.evidence.schema import ID_PATTERN
from blinameta.io import atomic_write_text
from blinameta.text import printable

__all__ = ["new", "template_text"]


def template_text(publication_id: str, *, source: str = "replace_me", outcome: str = "cr") -> str:
    """The commented template for a publication with this id.

    ``source`` and ``outcome`` are the keys written into the example: by default the first source
    document and the first outcome code of the review the file is created for.
    """
    text = files("blinameta").joinpath("templates/publication.yaml").read_text(encoding="utf-8")
    pad = " " * max(1, 24 - len(outcome))
    return text.format(id=publication_id, source=source, outcome=outcome, pad=pad)


def _review_keys(evidence_dir: Path) -> tuple[str, str]:
    """First source key and first outcome code of the review file, read leniently."""
    from blinameta.evidence.yamlsafe import parse_yaml

    source, outcome = "replace_me", "cr"
    review = evidence_dir / "review.yaml"
    if review.is_file():
        parsed, _ = parse_yaml(review, root=evidence_dir)
        value = parsed.value if parsed is not None and isinstance(parsed.value, dict) else {}
        sources = value.get("sources")
        outcomes = value.get("outcomes")
        if isinstance(sources, dict) and sources:
            source = str(next(iter(sources)))
        if isinstance(outcomes, dict) and outcomes:
            outcome = str(next(iter(outcomes)))
    return source, outcome


@click.command()
@click.argument("publication_id")
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="The evidence folder.")
def new(publication_id: str, evidence_dir: Path) -> None:
    """Write a template for PUBLICATION_ID into the evidence folder (never overwrites)."""
    # fullmatch: "$" in ID_PATTERN would also match before a trailing newline
    if not re.fullmatch(ID_PATTERN, publication_id) or len(publication_id) > 64:
        raise UserError(
            f"{printable(publication_id)} is not a valid publication id: lower-case letters, digits and "
            "underscores, starting with a letter (e.g. smith2024)"
        )
    if not evidence_dir.is_dir():
        raise UserError(f"{evidence_dir}: no such folder")
    target = evidence_dir / f"{publication_id}.yaml"
    if os.path.lexists(target):  # also a dangling symbolic link
        raise UserError(f"{target}: already exists; not overwritten")
    source, outcome = _review_keys(evidence_dir)
    try:
        atomic_write_text(target, template_text(publication_id, source=source, outcome=outcome),
                          exclusive=True)
    except FileExistsError:
        raise UserError(f"{target}: already exists; not overwritten") from None
    except OSError as exc:
        raise UserError(f"{target}: cannot write the file ({exc.strerror or exc})") from None
    click.echo(f"wrote {target}; fill it in, then run: blinameta validate {target}")
