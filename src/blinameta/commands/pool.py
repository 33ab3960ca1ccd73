"""``blinameta pool``: frequentist meta-analysis of a CSV file.

One of three inputs: events and totals (single proportions, ``--measure``), effect sizes with
their sampling variances (``--yi``/``--vi``), or hazard ratios with their confidence intervals
(``--hr``/``--ci-lb``/``--ci-ub``). Prints a summary like metafor's ``print.rma`` or, with
``--json``, one JSON object.

``--method GLMM`` fits metafor's ``rma.glmm(measure="PLO")`` (logistic-normal model). metafor has
no Knapp-Hartung adjustment for GLMMs, so ``--test knha`` is mapped to ``rma.glmm(test="t")``:
t tests (and an F test for moderators) on k - p df, the variances not rescaled.

Bad input (a missing column, a cell that is not a number, negative counts, events above the
total, a zero variance, too few studies for the model, an unknown ``--measure``/``--method``/
``--test``) is a one-line message naming the row and column where there is one; exit status 2.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click
import numpy as np
import pandas as pd

from blinameta.csvinput import CsvTable, read_csv
from blinameta.errors import UserError
from blinameta.frequentist._present import fmt_num, fmt_pval, format_rma

__all__ = ["pool"]

_METHODS = ["EE", "FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM", "GLMM"]
_MEASURES = ["PR", "PLN", "PLO", "PAS", "PFT"]
_TESTS = ["z", "knha"]


def _choice(option: str, value: str, choices: list[str]) -> str:
    """``value`` matched case-insensitively against ``choices`` (a one-line UserError if not).

    Checked here rather than by ``click.Choice``, whose error is a multi-line usage message.
    """
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise UserError(f"{option}: unknown value {value!r}; choose one of {', '.join(choices)}")


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, arrays to lists."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


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


_fmt = fmt_num
_fmt_p = fmt_pval


def _summary_text(res: Any, out: dict[str, Any], extra: list[str]) -> str:
    """metafor's ``print.rma`` text of the fit (on the result), then the back-transformed extras."""
    tau2_ci = None
    if out.get("tau2_ci_lb") is not None:
        tau2_ci = (out["tau2_ci_lb"], out["tau2_ci_ub"])
    text = format_rma(res, tau2_ci=tau2_ci)
    return text + ("\n\n" + "\n".join(extra) if extra else "")


@click.command("pool")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--events", "events_col", help="Column of event counts (with --total).")
@click.option("--total", "total_col", help="Column of group sizes (with --events).")
@click.option("--yi", "yi_col", help="Column of effect sizes (with --vi).")
@click.option("--vi", "vi_col", help="Column of sampling variances (with --yi).")
@click.option("--hr", "hr_col", help="Column of hazard ratios (with --ci-lb, --ci-ub).")
@click.option("--ci-lb", "hr_lb_col", help="Column of the lower 95% CI bounds of the HRs.")
@click.option("--ci-ub", "hr_ub_col", help="Column of the upper 95% CI bounds of the HRs.")
@click.option("--measure", default="PLO", show_default=True, metavar="[" + "|".join(_MEASURES) + "]",
              help="Effect size for proportions (metafor's escalc).")
@click.option("--method", default="REML", show_default=True,
              metavar="[" + "|".join(_METHODS) + "]", help="tau^2 estimator (GLMM: logistic-normal model, metafor's rma.glmm).")
@click.option("--test", default="z", show_default=True, metavar="[z|knha]",
              help="z tests, or Hartung-Knapp t tests (knha). With --method GLMM, knha means "
                   "metafor's rma.glmm(test='t'): t and F tests on k - p df, without the "
                   "Knapp-Hartung rescaling of the variances.")
@click.option("--mods", help="Comma-separated moderator columns (non-numeric ones are factors).")
@click.option("--newmods", "newmods_file", type=click.Path(), default=None,
              help="CSV of new moderator values (the --mods columns): predictions at each row, as metafor's "
                   "predict(newmods=).")
@click.option("--permutations", type=click.IntRange(min=2), default=None,
              help="Permutation test with N permutations (exact when fewer are possible).")
@click.option("--seed", type=int, default=None, help="Seed for random permutations.")
@click.option("--level", type=click.FloatRange(min=0, max=100, min_open=True, max_open=True),
              default=95.0, show_default=True, help="Confidence level in percent.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def pool(
    file: str,
    events_col: str | None,
    total_col: str | None,
    yi_col: str | None,
    vi_col: str | None,
    hr_col: str | None,
    hr_lb_col: str | None,
    hr_ub_col: str | None,
    measure: str,
    method: str,
    test: str,
    mods: str | None,
    newmods_file: str | None,
    permutations: int | None,
    seed: int | None,
    level: float,
    as_json: bool,
) -> None:
    """Pool studies in FILE.csv (a random-effects meta-analysis by default)."""
    from blinameta.frequentist.confint import confint_tau2
    from blinameta.frequentist.escalc import escalc_proportion, log_hr_from_ci, transf_proportion
    from blinameta.frequentist.permutest import permutest
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    measure = _choice("--measure", measure, _MEASURES)
    method = _choice("--method", method, _METHODS)
    test = _choice("--test", test, _TESTS)
    if method == "FE":
        method = "EE"
    modes = {
        "events": (events_col, total_col),
        "yi": (yi_col, vi_col),
        "hr": (hr_col, hr_lb_col, hr_ub_col),
    }
    given = [name for name, cols in modes.items() if any(cols)]
    if len(given) != 1:
        raise UserError(
            "give exactly one input: --events and --total, or --yi and --vi, "
            "or --hr, --ci-lb and --ci-ub"
        )
    mode = given[0]
    if not all(modes[mode]):
        need = {"events": "--events and --total", "yi": "--yi and --vi",
                "hr": "--hr, --ci-lb and --ci-ub"}[mode]
        raise UserError(f"{need} must be given together")
    if method == "GLMM" and mode != "events":
        raise UserError("--method GLMM needs --events and --total")

    table = read_csv(file)
    path = table.path
    k = len(table)
    mod_frame = _read_mods(table, mods)
    ni = None
    if mode == "events":
        events, total = _check_events(table, events_col, total_col)
        if method == "GLMM":
            measure = "PLO"
            yi = vi = None
        else:
            es = escalc_proportion(measure, events, total)
            yi, vi = es.yi, es.vi
        ni = total
    elif mode == "yi":
        yi = table.numeric(yi_col)
        vi = table.numeric(vi_col, positive=True)
    else:
        hr = table.numeric(hr_col, positive=True)
        lb = table.numeric(hr_lb_col, positive=True)
        ub = table.numeric(hr_ub_col, positive=True)
        for i in range(k):
            if not lb[i] < ub[i]:
                raise UserError(
                    f"{path}: row {table.row_of(i)}, column {hr_lb_col!r}: lower bound "
                    f"{lb[i]:g} is not below the upper bound {ub[i]:g} in {hr_ub_col!r}"
                )
            if not lb[i] <= hr[i] <= ub[i]:
                raise UserError(
                    f"{path}: row {table.row_of(i)}, column {hr_col!r}: {hr[i]:g} lies outside "
                    f"its confidence interval [{lb[i]:g}, {ub[i]:g}]"
                )
        es = log_hr_from_ci(hr, lb, ub, level=95.0)
        yi, vi = es.yi, es.vi

    p = 1
    if mod_frame is not None:
        from blinameta.frequentist.rma import model_matrix

        p = model_matrix(mod_frame, k).X.shape[1]
    need_k = 2 if method != "EE" else 1
    if k < need_k:
        raise UserError(
            f"{path}: --method {method} needs at least {need_k} studies; "
            f"the file has {k} data row(s)"
        )
    if method != "EE" and k <= p:
        raise UserError(
            f"{path}: {p} coefficients and tau^2 need at least {p + 1} studies; "
            f"the file has {k} data rows"
        )
    if method == "EE" and k < p:
        raise UserError(f"{path}: {p} coefficients need at least {p} studies; the file has {k}")

    extra: list[str] = []
    if method == "GLMM":
        from blinameta.frequentist.glmm import rma_glmm

        try:
            # metafor has no Knapp-Hartung adjustment for GLMMs: knha -> rma.glmm(test="t")
            glmm_test = "t" if test == "knha" else "z"
            res = rma_glmm(events, total, mods=mod_frame, level=level, test=glmm_test)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        pred_obj = res.predict()
    else:
        try:
            res = rma(yi, vi, mods=mod_frame, method=method, test=test, level=level)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        pred_obj = predict(res) if res.int_only else None

    beta = np.atleast_1d(np.asarray(res.beta, dtype=float)).ravel()
    se = np.atleast_1d(np.asarray(res.se, dtype=float)).ravel()
    pval = np.atleast_1d(np.asarray(res.pval, dtype=float)).ravel()
    ci_lb = np.atleast_1d(np.asarray(res.ci_lb, dtype=float)).ravel()
    ci_ub = np.atleast_1d(np.asarray(res.ci_ub, dtype=float)).ravel()
    shown_measure = {"events": measure, "hr": "logHR", "yi": "yi"}[mode]
    out: dict[str, Any] = {"k": k, "measure": shown_measure, "method": method, "test": test,
                           "level": level}
    has_mods = mod_frame is not None
    if not has_mods:
        out.update(estimate=beta[0], se=se[0], pval=pval[0], ci_lb=ci_lb[0], ci_ub=ci_ub[0])
        pi_lb = float(np.atleast_1d(getattr(pred_obj, "pi_lb", np.nan))[0])
        pi_ub = float(np.atleast_1d(getattr(pred_obj, "pi_ub", np.nan))[0])
        out.update(pi_lb=pi_lb, pi_ub=pi_ub)
    else:
        out.update(coef=beta, coef_names=list(getattr(res, "coef_names", [])), se=se, pval=pval,
                   ci_lb=ci_lb, ci_ub=ci_ub)
    if method == "GLMM":  # rma.glmm has a Wald and a likelihood-ratio test of heterogeneity
        qe = float(getattr(res, "qe", getattr(res, "qe_wld", math.nan)))
        qe_p = float(getattr(res, "qe_p", getattr(res, "qe_wld_p", math.nan)))
    else:
        qe, qe_p = float(res.qe), float(res.qe_p)
    out.update(tau2=float(res.tau2), tau2_ci_lb=None, tau2_ci_ub=None, i2=float(res.i2),
               h2=float(res.h2), qe=qe, qe_p=qe_p, qe_df=int(getattr(res, "qe_df", k - p)))
    if method == "GLMM" and hasattr(res, "qe_lrt"):
        out.update(qe_lrt=float(res.qe_lrt), qe_lrt_p=float(res.qe_lrt_p))
    if method not in ("EE", "GLMM"):
        try:
            ci = confint_tau2(res, level=level)
            out.update(tau2_ci_lb=ci.tau2_lb, tau2_ci_ub=ci.tau2_ub)
        except ValueError:
            pass
    if has_mods:
        # rma.glmm reports no pseudo-R^2 (metafor neither): None for GLMM fits
        out.update(qm=res.qm, qm_p=res.qm_p, qm_df=list(res.qm_df), r2=getattr(res, "r2", None))
    if permutations is not None:
        if method == "GLMM":
            raise UserError("--permutations is not available with --method GLMM")
        pt = permutest(res, n_perm=permutations, seed=seed)
        out.update(perm_p=pt.pval, perm_qm_p=pt.qm_p, perm_n=pt.n_perm, perm_exact=pt.exact)
        kind = "exact" if pt.exact else f"{pt.n_perm} random"
        extra.append(
            f"Permutation test ({kind} permutations): p = "
            + ", ".join(_fmt_p(x) for x in pt.pval)
            + (f"; QM p = {_fmt_p(pt.qm_p)}" if has_mods else "")
        )
    if not has_mods and mode == "events":
        def back(x: float) -> float:
            return float(transf_proportion(measure, np.array([x]), ni)[0])

        out.update(pred_prop=back(out["estimate"]), ci_lb_prop=back(out["ci_lb"]),
                   ci_ub_prop=back(out["ci_ub"]), pi_lb_prop=back(out["pi_lb"]),
                   pi_ub_prop=back(out["pi_ub"]))
        how = ""
        if measure == "PFT":
            how = " (inverse Freeman-Tukey at the harmonic mean of the totals)"
        pi_txt = (f"; {level:g}% PI [{_fmt(out['pi_lb_prop'])}, {_fmt(out['pi_ub_prop'])}]"
                  if math.isfinite(out["pi_lb_prop"]) else "")
        extra.insert(0, f"Pooled proportion{how}: {_fmt(out['pred_prop'])} "
                     f"[{level:g}% CI {_fmt(out['ci_lb_prop'])}, "
                     f"{_fmt(out['ci_ub_prop'])}]{pi_txt}")
    if not has_mods and mode == "hr":
        out.update(pred_hr=math.exp(out["estimate"]), ci_lb_hr=math.exp(out["ci_lb"]),
                   ci_ub_hr=math.exp(out["ci_ub"]))
        extra.insert(0, f"Pooled hazard ratio: {_fmt(out['pred_hr'])} "
                     f"[{level:g}% CI {_fmt(out['ci_lb_hr'])}, {_fmt(out['ci_ub_hr'])}]")

    if newmods_file is not None:
        if not has_mods:
            raise UserError("--newmods needs --mods")
        frame = _read_newmods(newmods_file, mod_frame)
        try:
            pr = res.predict(frame) if method == "GLMM" else predict(res, frame)
        except ValueError as exc:
            raise UserError(f"{newmods_file}: {exc}") from None
        rows = []
        for i in range(len(frame)):
            row = {col: (frame[col].iloc[i] if not isinstance(frame[col].dtype, pd.CategoricalDtype)
                         else str(frame[col].iloc[i])) for col in frame.columns}
            vals = {key: float(np.atleast_1d(getattr(pr, key))[i]) for key in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub")}
            row.update(vals)
            if mode == "events":
                for key in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                    row[f"{key}_prop"] = float(transf_proportion(measure, np.array([vals[key]]), ni)[0])
            elif mode == "hr":
                for key in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                    row[f"{key}_hr"] = math.exp(vals[key])
            rows.append(row)
        out["predictions"] = rows
        lines = [f"Predictions at {newmods_file} ({level:g}% CI and PI):"]
        for row in rows:
            at = ", ".join(f"{c}={row[c]}" for c in frame.columns)
            scale = "_prop" if mode == "events" else ("_hr" if mode == "hr" else "")
            lines.append(f"  {at}: {_fmt(row['pred' + scale])} [{_fmt(row['ci_lb' + scale])}, {_fmt(row['ci_ub' + scale])}]; "
                         f"PI [{_fmt(row['pi_lb' + scale])}, {_fmt(row['pi_ub' + scale])}]")
        extra.append("\n".join(lines))

    if as_json:
        click.echo(json.dumps(_clean(out), allow_nan=False))
    else:
        click.echo(_summary_text(res, _clean(out), extra))
