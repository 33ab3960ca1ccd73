"""``blinameta init``: start a new review in an empty folder."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import click

from blinameta.errors import UserError
from blinameta.io import atomic_write_text

__all__ = ["init", "scaffold"]

_TEMPLATES = "templates/init"


def _template(name: str) -> str:
    return files("blinameta").joinpath(f"{_TEMPLATES}/{name}").read_text(encoding="utf-8")


def _rob_tools() -> str:
    return files("blinameta").joinpath("templates/risk_of_bias_tools.yaml").read_text(encoding="utf-8")


def _yaml_text(value: str) -> str:
    """A one-line text safe inside a YAML folded scalar or plain value (no control characters)."""
    if any(ord(c) < 32 for c in value):
        raise UserError("titles and questions must be one line of text without control characters")
    return value.strip()


def scaffold(directory: Path, *, title: str, question: str) -> list[Path]:
    """Create the folders and files of a new review in ``directory``; return what was written.

    ``directory`` must not exist or be empty: nothing a user has is ever overwritten.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserError(f"{directory}: exists and is not an empty folder; choose a new one")
    review_id = re.sub(r"[^a-z0-9_]+", "_", directory.resolve().name.lower()).strip("_")
    if not review_id or not review_id[0].isalpha():
        review_id = f"review_{review_id}".rstrip("_")
    title, question = _yaml_text(title), _yaml_text(question)
    for sub in ("evidence", "sources", "models", "reports"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    review = _template("review.yaml").format(id=review_id, title=title, question=question)
    written = {
        directory / "evidence" / "review.yaml": review.rstrip("\n") + "\n\n" + _rob_tools(),
        directory / "models" / "response.yaml": _template("model.yaml").format(),
        directory / "README.md": _template("README.md").format(title=title),
    }
    for path, text in written.items():
        atomic_write_text(path, text, exclusive=True)
    return list(written)


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--title", default="A living systematic review", show_default=True,
              help="Title of the review (one line).")
@click.option("--question", default="What proportion of patients respond, and how often do serious "
              "adverse events occur?", show_default=True, help="The review question (one line).")
def init(directory: Path, title: str, question: str) -> None:
    """Start a new review in DIRECTORY (new or empty): evidence/, sources/, models/, reports/."""
    written = scaffold(directory, title=title, question=question)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: add a source document to {directory / 'sources'}, register it in "
               f"{directory / 'evidence' / 'review.yaml'}, then 'blinameta new ID --evidence "
               f"{directory / 'evidence'}'")
