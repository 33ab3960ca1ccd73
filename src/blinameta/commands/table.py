"""``blinameta table``: print the tidy table of the evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from blinameta.evidence.loader import load_evidence_or_fail
from blinameta.evidence.tidy import tidy

__all__ = ["table"]


@click.command()
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="The evidence folder.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--readings", type=click.Choice(["primary", "alternative", "all"]), default="primary",
              show_default=True, help="Which readings of contradictory sources to list.")
def table(evidence_dir: Path, fmt: str, readings: str) -> None:
    """One row per publication x cohort x outcome, with the moderators as columns."""
    frame = tidy(load_evidence_or_fail(evidence_dir), readings=readings)  # type: ignore[arg-type]
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        click.echo(frame.to_json(orient="records", indent=1, force_ascii=False))
