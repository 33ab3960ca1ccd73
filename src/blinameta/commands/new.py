"""``blinameta new``: write a commented template for a new publication."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import click

from blinameta.errors import UserError
from blinameta.evidence.schema import ID_PATTERN
from blinameta.io import atomic_write_text

__all__ = ["new", "template_text"]


def template_text(publication_id: str) -> str:
    """The commented template for a publication with this id."""
    text = files("blinameta").joinpath("templates/publication.yaml").read_text(encoding="utf-8")
    return text.format(id=publication_id)


@click.command()
@click.argument("publication_id")
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="The evidence folder.")
def new(publication_id: str, evidence_dir: Path) -> None:
    """Write a template for PUBLICATION_ID into the evidence folder (never overwrites)."""
    if not re.match(ID_PATTERN, publication_id) or len(publication_id) > 64:
        raise UserError(
            f"{publication_id!r} is not a valid publication id: lower-case letters, digits and "
            "underscores, starting with a letter (e.g. smith2024)"
        )
    if not evidence_dir.is_dir():
        raise UserError(f"{evidence_dir}: no such folder")
    target = evidence_dir / f"{publication_id}.yaml"
    if target.exists():
        raise UserError(f"{target}: already exists; not overwritten")
    atomic_write_text(target, template_text(publication_id), exclusive=True)
    click.echo(f"wrote {target}; fill it in, then run: blinameta validate {target}")
