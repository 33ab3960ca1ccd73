"""Bounds and checks shared by the commands' options (refused with one line, exit status 2)."""

from __future__ import annotations

import math

import click

__all__ = ["level_option", "MAX_PERMUTATIONS", "MAX_DRAWS", "MAX_CHAINS", "MAX_TRIAL_SIZE"]

#: Largest ``--permutations``: beyond it the test takes hours and gains nothing.
MAX_PERMUTATIONS = 1_000_000
#: Largest ``--draws`` / ``--tune`` per chain and ``--chains`` of the sampler.
MAX_DRAWS = 1_000_000
MAX_CHAINS = 64
#: Largest planned trial (``query --n``).
MAX_TRIAL_SIZE = 100_000


def level_option(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A confidence level strictly between 0 and 100 (click's FloatRange lets NaN through)."""
    if value is not None and (math.isnan(value) or not 0 < value < 100):
        raise click.BadParameter(f"{value} is not a level strictly between 0 and 100", ctx=ctx, param=param)
    return value
