"""``blinameta pool``: frequentist meta-analysis of a CSV file.

One of four inputs: events and totals (single proportions, ``--measure`` PR, PLN, PLO, PAS, PFT),
2x2 tables (``--ai``/``--n1i``/``--ci``/``--n2i``, ``--measure`` RR, OR, RD; ``--method MH`` or
``PETO`` for metafor's ``rma.mh``/``rma.peto``), effect sizes with their sampling variances
(``--yi``/``--vi``), or hazard ratios with their confidence intervals (``--hr``/``--ci-lb``/
``--ci-ub``). The command reads the CSV, calls :func:`blinameta.frequentist.pool.pool` and prints
the result (metafor's ``print.rma`` layout, or one JSON object with ``--json``); ``--plot`` writes
forest, funnel or Baujat plots.

``--method GLMM`` fits metafor's ``rma.glmm(measure="PLO")`` (logistic-normal model). metafor has
no Knapp-Hartung adjustment for GLMMs, so ``--test knha`` is mapped to ``rma.glmm(test="t")``:
t tests (and an F test for moderators) on k - p df, the variances not rescaled.

Bad input (a missing column, a cell that is not a number, negative counts, events above the
total, a zero variance, too few studies for the model, an unknown ``--measure``/``--method``/
``--test``) is a one-line message naming the row and column where there is one; exit status 2.
"""

from __future__ import annotations

import json

import click
import numpy as np
import pandas as pd

from blinameta.commands._options import MAX_PERMUTATIONS, level_option
from blinameta.csvinput import CsvTable, check_effect_sizes, read_csv
from blinameta.errors import UserError

__all__ = ["pool"]

_METHODS = ["EE", "FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM", "GLMM", "MH", "PETO"]
_MEASURES = ["PR", "PLN", "PLO", "PAS", "PFT", "RR", "OR", "RD"]
_TESTS = ["z", "knha", "adhoc", "t"]


def _choice(option: str, value: str, choices: list[str]) -> str:
    """``value`` matched case-insensitively against ``choices`` (a one-line UserError if not).

    Checked here rather than by ``click.Choice``, whose error is a multi-line usage message.
    """
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise UserError(f"{option}: unknown value {value!r}; choose one of {', '.join(choices)}")


def _read_mods(table: CsvTable, spec: str | None) -> pd.DataFrame | None:
    """Moderator columns: numeric where every cell is a number, else a factor."""
    if not spec:
        return None
    columns = [c.strip() for c in spec.split(",") if c.strip()]
    if not columns:
        raise UserError(f"{table.path}: --mods names no column")
    frame = {}
    for col in columns:
        texts = table.text(col)  # names the row of an empty cell / a missing column
        try:
            frame[col] = table.numeric(col)
        except UserError:
            frame[col] = pd.Categorical(texts, categories=sorted(set(texts)))
    return pd.DataFrame(frame)


#: Largest k of a meta-regression (the general fit forms k x k projections: 5,000 -> 200 MB each).
MAX_K_MODERATORS = 5_000


def _check_moderators(table: CsvTable, mod_frame: pd.DataFrame) -> int:
    """Refuse a constant or collinear moderator (naming it); return the number of coefficients.

    A constant moderator is the intercept again: metafor drops it and would print the
    intercept's test as the "test of moderators"; a moderator that is a linear combination of
    the others cannot be estimated at all.
    """
    from blinameta.frequentist.rma import model_matrix

    for col in mod_frame.columns:
        values = mod_frame[col]
        distinct = values.cat.categories[values.cat.codes].unique() if isinstance(values.dtype, pd.CategoricalDtype) \
            else pd.unique(values)
        if len(distinct) < 2:
            raise UserError(f"{table.path}: --mods {col}: the moderator is constant ({distinct[0]} in every row); "
                            "it is the intercept again and has no test: drop it")
    rank = 1
    for j, col in enumerate(mod_frame.columns):
        X = model_matrix(mod_frame[list(mod_frame.columns[: j + 1])], len(mod_frame)).X
        new_rank = int(np.linalg.matrix_rank(X))
        if new_rank < X.shape[1]:
            raise UserError(f"{table.path}: --mods {col}: the moderator is collinear with "
                            f"{', '.join(['the intercept', *mod_frame.columns[:j]])} (redundant); drop it")
        rank = new_rank
    return rank


def _read_newmods(path: str, mod_frame: pd.DataFrame) -> pd.DataFrame:
    """New moderator values, laid out like the model's moderators (factors keep their levels)."""
    table = read_csv(path)
    frame = {}
    for col in mod_frame.columns:
        if isinstance(mod_frame[col].dtype, pd.CategoricalDtype):
            levels = list(mod_frame[col].cat.categories)
            texts = table.text(col)
            for i, value in enumerate(texts):
                if value not in levels:
                    raise UserError(f"{table.path}: row {table.row_of(i)}, column {col!r}: {value!r} is not a level "
                                    f"of the moderator; levels: {', '.join(map(str, levels))}")
            frame[col] = pd.Categorical(texts, categories=levels)
        else:
            frame[col] = table.numeric(col)
    return pd.DataFrame(frame)


def _check_events(table: CsvTable, events_col: str, total_col: str):
    events = table.numeric(events_col, integer=True, nonnegative=True)
    total = table.numeric(total_col, integer=True, positive=True)
    bad = np.flatnonzero(events > total)
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{table.path}: row {table.row_of(i)}, column {events_col!r}: "
            f"{events[i]:g} events but {total_col!r} is {total[i]:g}"
        )
    return events, total


def _check_table(table: CsvTable, cols: dict[str, str]) -> tuple[np.ndarray, ...]:
    """2x2 cells: events ``ai``/``ci`` within the group sizes ``n1i``/``n2i``."""
    ai = table.numeric(cols["ai"], integer=True, nonnegative=True)
    n1i = table.numeric(cols["n1i"], integer=True, positive=True)
    ci = table.numeric(cols["ci"], integer=True, nonnegative=True)
    n2i = table.numeric(cols["n2i"], integer=True, positive=True)
    for events, size, e_col, n_col in ((ai, n1i, "ai", "n1i"), (ci, n2i, "ci", "n2i")):
        bad = np.flatnonzero(events > size)
        if bad.size:
            i = int(bad[0])
            raise UserError(f"{table.path}: row {table.row_of(i)}, column {cols[e_col]!r}: {events[i]:g} events "
                            f"but {cols[n_col]!r} is {size[i]:g}")
    return ai, n1i, ci, n2i


def _check_hr(table: CsvTable, hr_col: str, lb_col: str, ub_col: str) -> tuple[np.ndarray, ...]:
    hr = table.numeric(hr_col, positive=True)
    lb = table.numeric(lb_col, positive=True)
    ub = table.numeric(ub_col, positive=True)
    for i in range(len(table)):
        if not lb[i] < ub[i]:
            raise UserError(f"{table.path}: row {table.row_of(i)}, column {lb_col!r}: lower bound "
                            f"{lb[i]:g} is not below the upper bound {ub[i]:g} in {ub_col!r}")
        if not lb[i] <= hr[i] <= ub[i]:
            raise UserError(f"{table.path}: row {table.row_of(i)}, column {hr_col!r}: {hr[i]:g} lies outside "
                            f"its confidence interval [{lb[i]:g}, {ub[i]:g}]")
    # the sampling variance implied by the 95% interval must be one a fit can weigh
    vi = ((np.log(ub) - np.log(lb)) / (2 * 1.959963984540054)) ** 2
    check_effect_sizes(table, hr_col, lb_col, np.log(hr), vi)
    return hr, lb, ub


@click.command("pool")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--events", "events_col", help="Column of event counts (with --total).")
@click.option("--total", "total_col", help="Column of group sizes (with --events).")
@click.option("--ai", "ai_col", help="2x2 tables: column of events in the first (experimental) group.")
@click.option("--n1i", "n1i_col", help="2x2 tables: column of the first group's sizes.")
@click.option("--ci", "ci_col", help="2x2 tables: column of events in the second (control) group.")
@click.option("--n2i", "n2i_col", help="2x2 tables: column of the second group's sizes.")
@click.option("--yi", "yi_col", help="Column of effect sizes (with --vi).")
@click.option("--vi", "vi_col", help="Column of sampling variances (with --yi).")
@click.option("--hr", "hr_col", help="Column of hazard ratios (with --ci-lb, --ci-ub).")
@click.option("--ci-lb", "hr_lb_col", help="Column of the lower 95% CI bounds of the HRs.")
@click.option("--ci-ub", "hr_ub_col", help="Column of the upper 95% CI bounds of the HRs.")
@click.option("--slab", "slab_col", help="Column of study labels (for plots and diagnostics).")
@click.option("--measure", default=None, metavar="[" + "|".join(_MEASURES) + "]",
              help="Effect size (metafor's escalc): PLO by default for proportions, OR for 2x2 tables.")
@click.option("--method", default="REML", show_default=True, metavar="[" + "|".join(_METHODS) + "]",
              help="tau^2 estimator; GLMM: binomial-normal model (rma.glmm); MH, PETO: Mantel-Haenszel and "
                   "Peto common-effect models for 2x2 tables (rma.mh, rma.peto).")
@click.option("--test", default="z", show_default=True, metavar="[z|knha|adhoc|t]",
              help="z tests; Hartung-Knapp t tests (knha); Hartung-Knapp with max(1, q) (adhoc); t tests "
                   "without rescaling (t). With --method GLMM, knha means metafor's rma.glmm(test='t').")
@click.option("--control", "control_name", default="tight", show_default=True, metavar="[tight|metafor]",
              help="Convergence settings: tight (agrees with metafor run with threshold=1e-12) or metafor "
                   "(metafor's defaults: a default rma() call's numbers to print precision).")
@click.option("--mods", help="Comma-separated moderator columns (non-numeric ones are factors).")
@click.option("--newmods", "newmods_file", type=click.Path(), default=None,
              help="CSV of new moderator values (the --mods columns): predictions at each row, as metafor's "
                   "predict(newmods=).")
@click.option("--permutations", type=click.IntRange(min=2, max=MAX_PERMUTATIONS), default=None,
              help=f"Permutation test with N permutations (exact when fewer are possible; at most {MAX_PERMUTATIONS:,}).")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=None, help="Seed for random permutations.")
@click.option("--leave1out", "do_leave1out", is_flag=True, help="Leave-one-out analysis (metafor's leave1out).")
@click.option("--influence", "do_influence", is_flag=True, help="Influence diagnostics (metafor's influence).")
@click.option("--regtest", "do_regtest", is_flag=True, help="Egger's regression test (metafor's regtest).")
@click.option("--trimfill", "do_trimfill", is_flag=True, help="Trim-and-fill (metafor's trimfill).")
@click.option("--plot", "plots", type=(str, click.Path(dir_okay=False)), multiple=True, metavar="KIND OUT",
              help="Write a forest, funnel or baujat plot to OUT (.svg or .png); may be repeated.")
@click.option("--level", type=click.FloatRange(min=0, max=100, min_open=True, max_open=True), callback=level_option,
              default=95.0, show_default=True, help="Confidence level in percent, strictly between 0 and 100.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def pool(file: str, events_col, total_col, ai_col, n1i_col, ci_col, n2i_col, yi_col, vi_col, hr_col,
         hr_lb_col, hr_ub_col, slab_col, measure, method, test, control_name, mods, newmods_file,
         permutations, seed, do_leave1out, do_influence, do_regtest, do_trimfill, plots, level,
         as_json) -> None:
    """Pool studies in FILE.csv (a random-effects meta-analysis by default)."""
    from blinameta.frequentist.pool import pool as run_pool
    from blinameta.frequentist.rma import METAFOR_CONTROL

    if measure is not None:
        measure = _choice("--measure", measure, _MEASURES)
    method = _choice("--method", method, _METHODS)
    test = _choice("--test", test, _TESTS)
    control_name = _choice("--control", control_name, ["tight", "metafor"])
    for kind, out in plots:
        _choice("--plot", kind, ["forest", "funnel", "baujat"])
        if not out.lower().endswith((".svg", ".png")):
            raise UserError(f"--plot {kind} {out}: the file name must end in .svg or .png")
    inputs = {"--events/--total": (events_col, total_col),
              "--ai/--n1i/--ci/--n2i": (ai_col, n1i_col, ci_col, n2i_col),
              "--yi/--vi": (yi_col, vi_col), "--hr/--ci-lb/--ci-ub": (hr_col, hr_lb_col, hr_ub_col)}
    given = [name for name, cols in inputs.items() if any(cols)]
    if len(given) != 1:
        raise UserError("give exactly one input: --events and --total; --ai, --n1i, --ci and --n2i; "
                        "--yi and --vi; or --hr, --ci-lb and --ci-ub")
    if not all(inputs[given[0]]):
        names = given[0].split("/")
        raise UserError(f"{', '.join(names[:-1])} and {names[-1]} must be given together")
    if measure is not None:
        allowed = ["RR", "OR", "RD"] if ai_col else ["PR", "PLN", "PLO", "PAS", "PFT"] if events_col else [measure]
        if measure not in allowed:
            kind = "2x2 tables" if ai_col else "proportions"
            raise UserError(f"--measure {measure!r} is not a measure for {kind}; choose one of {', '.join(allowed)}")

    table = read_csv(file)
    data: dict[str, object] = {}
    if events_col:
        data["events"], data["total"] = _check_events(table, events_col, total_col)
    elif ai_col:
        data["ai"], data["n1i"], data["ci"], data["n2i"] = _check_table(
            table, {"ai": ai_col, "n1i": n1i_col, "ci": ci_col, "n2i": n2i_col})
    elif yi_col:
        data["yi"] = table.numeric(yi_col)
        data["vi"] = table.numeric(vi_col, positive=True)
        check_effect_sizes(table, yi_col, vi_col, data["yi"], data["vi"])
    else:
        data["hr"], data["hr_lb"], data["hr_ub"] = _check_hr(table, hr_col, hr_lb_col, hr_ub_col)
    mod_frame = _read_mods(table, mods)
    if mod_frame is not None:
        _check_moderators(table, mod_frame)
        if len(table) > MAX_K_MODERATORS:
            raise UserError(f"{table.path}: {len(table):,} studies; a meta-regression (--mods) handles at most "
                            f"{MAX_K_MODERATORS:,} (its projections are k x k); pool without --mods, or split the file")
    newmods = _read_newmods(newmods_file, mod_frame) if newmods_file is not None and mod_frame is not None else None
    if newmods_file is not None and mod_frame is None:
        raise UserError("--newmods needs --mods")
    diagnostics = [name for name, on in (("leave1out", do_leave1out), ("influence", do_influence),
                                         ("regtest", do_regtest), ("trimfill", do_trimfill)) if on]
    slab = table.text(slab_col) if slab_col else None
    try:
        result = run_pool(**data, measure=measure, method=method, test=test, mods=mod_frame, newmods=newmods,
                          newmods_label=str(newmods_file), level=level,
                          control=dict(METAFOR_CONTROL) if control_name == "metafor" else None,
                          permutations=permutations, seed=seed, diagnostics=diagnostics, slab=slab)
    except UserError as exc:
        raise UserError(f"{table.path}: {exc}") from None
    for kind, out in plots:
        from blinameta.plots._common import save_figure

        save_figure(result.plot(kind), out)
    if as_json:
        click.echo(json.dumps(result.to_dict(), allow_nan=False))
    else:
        click.echo(result.summary().as_text())
