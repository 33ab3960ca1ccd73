"""The ``blinameta`` command line.

Each command lives in its own module under :mod:`blinameta.commands` and is loaded only when it
is called, so that ``blinameta validate`` does not pay for importing PyMC. A :class:`UserError`
raised anywhere below a command is printed as one line on standard error with exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from blinameta.errors import EXIT_USER_ERROR, UserError
from blinameta.text import terminal_safe

__all__ = ["main", "cli"]

#: command name -> "module:attribute" of a :class:`click.Command`.
COMMANDS: dict[str, str] = {
    "validate": "blinameta.commands.validate:validate",
    "table": "blinameta.commands.table:table",
    "schema": "blinameta.commands.schema:schema",
    "new": "blinameta.commands.new:new",
    "init": "blinameta.commands.init:init",
    "pool": "blinameta.commands.pool:pool",
    "bayes": "blinameta.commands.bayes:bayes",
    "report": "blinameta.commands.report:report",
    "query": "blinameta.commands.query:query",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _available(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _available(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


def _available(target: str) -> bool:
    module_name = target.split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="blinameta")
def cli() -> None:
    """blinameta: evidence synthesis for blinatumomab in pediatric R/R B-ALL."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed check, 2 user error)."""
    try:
        result = cli.main(args=argv, prog_name="blinameta", standalone_mode=False)
    except UserError as exc:
        click.echo(terminal_safe(f"error: {exc}"), err=True)
        return EXIT_USER_ERROR
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        # one line, like every other user error (click's usage block is left to --help)
        where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) is not None else ""
        click.echo(terminal_safe(f"error: {where}{exc.format_message()}"), err=True)
        return EXIT_USER_ERROR
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except BrokenPipeError:
        return 0
    # click returns the exit code of a click.exceptions.Exit raised inside a command
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
