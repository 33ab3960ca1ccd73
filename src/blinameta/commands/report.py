"""``blinameta report``: regenerate reports/ from evidence/ and models/."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.option("--evidence", "evidence_dir", type=click.Path(path_type=Path), default=Path("evidence"), show_default=True)
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True)
@click.option("--force", is_flag=True, help="Refit every analysis, even unchanged ones.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def report(evidence_dir: Path, models_dir: Path, out_dir: Path, force: bool, quiet: bool) -> None:
    """Regenerate the forest-plot report (only analyses whose inputs changed are refitted)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from blinameta.report.build import build_report

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task("fitting", total=None)

        def progress(analysis_id: str, done: int, total: int) -> None:
            bar.update(task, description=f"fitting {analysis_id}" if analysis_id else "writing pages",
                       completed=done, total=total)

        summary = build_report(evidence_dir, models_dir, out_dir, force=force, progress=progress)
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    if summary.unchanged:
        click.echo(f"{out_dir}/index.html is up to date ({len(summary.analyses)} analyses unchanged; "
                   f"{summary.seconds:.1f} s)")
    else:
        click.echo(f"wrote {out_dir}/index.html: {len(summary.rebuilt)} analyses refitted "
                   f"({', '.join(summary.rebuilt) or 'none'}), {len(summary.reused)} unchanged; {summary.seconds:.1f} s")
