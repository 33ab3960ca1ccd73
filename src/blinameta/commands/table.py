"""``blinameta table``: print the tidy table of the evidence, or its risk-of-bias table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from blinameta.csvinput import neutralise_formulas
from blinameta.evidence.loader import load_evidence_or_fail
from blinameta.evidence.tidy import risk_of_bias_table, tidy

__all__ = ["table"]


@click.command()
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"),
              show_default=True, help="The evidence folder.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--readings", type=click.Choice(["primary", "alternative", "all"]), default="primary",
              show_default=True, help="Which readings of contradictory sources to list.")
@click.option("--risk-of-bias", "rob", is_flag=True,
              help="List each publication's risk of bias instead: tool, item judgements, overall "
              "(stated and by the tool's rule), one row per result for RoB 2.")
@click.option("--formula-escape/--no-formula-escape", default=True, show_default=True,
              help="CSV: prefix text cells that begin with = + - @ tab or CR with a single quote, so that a "
              "spreadsheet never runs them as formulas (numbers are written untouched).")
def table(evidence_dir: Path, fmt: str, readings: str, rob: bool, formula_escape: bool) -> None:
    """One row per publication x cohort x outcome (survival rows included), with the moderators as columns."""
    evidence = load_evidence_or_fail(evidence_dir)
    if rob:
        frame = risk_of_bias_table(evidence)
    else:
        frame = tidy(evidence, readings=readings, survival=True)  # type: ignore[arg-type]
    if fmt == "csv":
        (neutralise_formulas(frame) if formula_escape else frame).to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        click.echo(frame.to_json(orient="records", indent=1, force_ascii=False))
