"""Presentation of fitted models: metafor-style printed summaries, tables and figures.

The fitted results (:class:`~blinameta.frequentist.rma.RmaResult`,
:class:`~blinameta.frequentist.glmm.GlmmResult`) carry these methods through
:class:`RmaPresentation`, so that a notebook user gets ``print(res)``, ``res.summary()``,
``res.to_frame()``, ``res.forest()`` and ``res.funnel()`` (statsmodels' ``Results.summary()`` and
metafor's ``print.rma``/``forest.rma``/``funnel.rma``), and the ``pool`` command prints the same text.
Nothing here refits a model.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["Summary", "RmaPresentation", "MhPresentation", "format_rma", "format_mh", "fmt_num", "fmt_pval", "signif_stars"]

SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def fmt_num(x: float | None, digits: int = 4) -> str:
    """A number with ``digits`` decimals, as metafor's ``fmtx``; ``NA`` for missing values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{digits}f}"


def fmt_pval(p: float | None, digits: int = 4) -> str:
    """A p-value as metafor prints it in tables: ``<.0001`` below 10^-digits."""
    if p is None or not math.isfinite(p):
        return "NA"
    if p < 10.0**-digits:
        return "<." + "0" * (digits - 1) + "1"
    return f"{p:.{digits}f}"


def _p_phrase(p: float | None, digits: int = 4) -> str:
    """``p-val < .0001`` or ``p-val = 0.0123`` (metafor's ``fmtp(..., equal=TRUE)``)."""
    text = fmt_pval(p, digits)
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"


def signif_stars(p: float | None) -> str:
    """R's significance stars."""
    if p is None or not math.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


@dataclass(frozen=True)
class Summary:
    """A printed summary: plain text (``as_text``) and HTML (``as_html``; notebooks)."""

    text: str
    table: Any  # pandas.DataFrame of the coefficients

    def as_text(self) -> str:
        return self.text

    def as_html(self) -> str:
        head = self.text.split("Model Results:")[0].rstrip()
        return (
            f"<pre>{html.escape(head)}</pre>\n"
            f"<p><strong>Model results</strong></p>\n{self.table.to_html(float_format=lambda v: f'{v:.4f}')}"
        )

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.as_html()


def _is_glmm(res: Any) -> bool:
    return hasattr(res, "qe_wld")


def format_rma(res: Any, *, digits: int = 4, tau2_ci: tuple[float, float] | None = None) -> str:
    """The text of metafor's ``print.rma.uni`` / ``print.rma.glmm`` for a fitted model.

    Parameters
    ----------
    res : RmaResult or GlmmResult
    digits : int
        Decimals (metafor's default 4).
    tau2_ci : (lower, upper), optional
        A confidence interval for tau² (e.g. the Q-profile interval of
        :func:`blinameta.frequentist.confint.confint_tau2`), printed under the heterogeneity block.
    """
    glmm = _is_glmm(res)
    method = "ML" if glmm else res.method
    has_mods = res.p > 1 or not getattr(res, "int_only", res.p == 1)
    k = res.k
    if method == "EE":
        head = f"Equal-Effects Model (k = {k})"
    else:
        kind = "Mixed-Effects Model" if has_mods else "Random-Effects Model"
        head = f"{kind} (k = {k}; tau^2 estimator: {method})"
    lines = [head, ""]
    which = "residual" if has_mods else "total"
    if method != "EE":
        se_tau2 = getattr(res, "se_tau2", math.nan)
        se_text = f" (SE = {fmt_num(se_tau2, digits)})" if se_tau2 is not None and math.isfinite(se_tau2) else ""
        label = "unaccounted variability" if has_mods else "total variability"
        what = "unaccounted" if has_mods else "total"
        block = [
            (f"tau^2 (estimated amount of {which} heterogeneity):", f"{fmt_num(res.tau2, digits)}{se_text}"),
            ("tau (square root of estimated tau^2 value):", fmt_num(math.sqrt(max(res.tau2, 0.0)), digits)),
            (f"I^2 ({which} heterogeneity / {label}):", f"{res.i2:.2f}%"),
            (f"H^2 ({what} variability / sampling variability):", f"{res.h2:.2f}"),
        ]
        r2 = getattr(res, "r2", None)
        if has_mods and r2 is not None and math.isfinite(r2):
            block.append(("R^2 (amount of heterogeneity accounted for):", f"{r2:.2f}%"))
        pad = max(len(a) for a, _ in block) + 1
        lines += [a.ljust(pad) + b for a, b in block]
        if tau2_ci is not None:
            lines.append(f"tau^2 {res.level:g}% CI (Q-profile): [{fmt_num(tau2_ci[0], digits)}, {fmt_num(tau2_ci[1], digits)}]")
        lines.append("")
    elif not has_mods:  # metafor prints I^2 and H^2 of an equal-effects model too
        pad = len("tau^2 (estimated amount of total heterogeneity):") + 1
        lines.append("I^2 (total heterogeneity / total variability):".ljust(pad) + f"{res.i2:.2f}%")
        lines.append("H^2 (total variability / sampling variability):".ljust(pad) + f"{res.h2:.2f}")
        lines.append("")
    lines.append("Tests for Residual Heterogeneity:" if (has_mods and glmm) else
                 "Test for Residual Heterogeneity:" if has_mods else
                 "Tests for Heterogeneity:" if glmm else "Test for Heterogeneity:")
    if glmm:
        lines.append(f"Wld(df = {res.qe_df}) = {fmt_num(res.qe_wld, digits)}, p-val {_p_phrase(res.qe_wld_p, digits)}")
        lines.append(f"LRT(df = {res.qe_df}) = {fmt_num(res.qe_lrt, digits)}, p-val {_p_phrase(res.qe_lrt_p, digits)}")
    else:
        lines.append(f"Q{'E' if has_mods else ''}(df = {res.qe_df}) = {fmt_num(res.qe, digits)}, "
                     f"p-val {_p_phrase(res.qe_p, digits)}")
    lines.append("")
    t_tests = res.test in ("knha", "t", "adhoc")
    if has_mods:
        m = len(res.btt)
        coefs = f"coefficient {res.btt[0] + 1}" if m == 1 else f"coefficients {res.btt[0] + 1}:{res.btt[-1] + 1}"
        if t_tests:
            lines.append(f"Test of Moderators ({coefs}):")
            lines.append(f"F(df1 = {m}, df2 = {res.qm_df[1]:g}) = {fmt_num(res.qm, digits)}, p-val {_p_phrase(res.qm_p, digits)}")
        else:
            lines.append(f"Test of Moderators ({coefs}):")
            lines.append(f"QM(df = {m}) = {fmt_num(res.qm, digits)}, p-val {_p_phrase(res.qm_p, digits)}")
        lines.append("")
    lines.append("Model Results:")
    lines.append("")
    frame = _coef_frame(res)
    names = list(frame.index)
    stat = "tval" if t_tests else "zval"
    width = max(len(n) for n in names) + 1 if has_mods else 0
    cols = ["estimate", "se", stat] + (["df"] if t_tests else []) + ["pval", "ci.lb", "ci.ub"]
    cells = []
    for name in names:
        row = frame.loc[name]
        values = [fmt_num(row["estimate"], digits), fmt_num(row["se"], digits),
                  fmt_num(row[stat], digits)]
        if t_tests:
            values.append(f"{row['df']:g}")
        values += [fmt_pval(row["pval"], digits), fmt_num(row["ci_lb"], digits),
                   fmt_num(row["ci_ub"], digits)]
        cells.append(values)
    widths = [max(len(c), *(len(r[j]) for r in cells)) for j, c in enumerate(cols)]
    lines.append(" " * width + "  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for name, values in zip(names, cells):
        star = signif_stars(float(frame.loc[name, "pval"]))
        lines.append((name.ljust(width) if has_mods else "") + "  ".join(v.rjust(w) for v, w in zip(values, widths))
                     + (f"  {star}" if star else ""))
    lines.append("")
    lines.append("---")
    lines.append(SIGNIF_LEGEND)
    return "\n".join(lines)


def _coef_frame(res: Any) -> pd.DataFrame:
    import pandas as pd

    t_tests = res.test in ("knha", "t", "adhoc")
    stat = "tval" if t_tests else "zval"
    names = list(res.coef_names) if len(res.coef_names) else ["intrcpt"]
    data = {
        "estimate": np.asarray(res.beta, dtype=float),
        "se": np.asarray(res.se, dtype=float),
        stat: np.asarray(res.zval, dtype=float),
    }
    if t_tests:
        df = getattr(res, "ddf", None)
        if df is None:
            df = res.k - res.p
        data["df"] = np.full(len(names), float(df))
    data.update({
        "pval": np.asarray(res.pval, dtype=float),
        "ci_lb": np.asarray(res.ci_lb, dtype=float),
        "ci_ub": np.asarray(res.ci_ub, dtype=float),
    })
    return pd.DataFrame(data, index=pd.Index(names, name="coef"))


class RmaPresentation:
    """Printing, tables and figures for a fitted model (mixed into the result dataclasses)."""

    def summary(self, *, digits: int = 4) -> Summary:
        """metafor's ``print.rma`` text and the coefficient table (``as_text``/``as_html``)."""
        return Summary(text=format_rma(self, digits=digits), table=self.to_frame())

    def to_frame(self) -> pd.DataFrame:
        """The model results as a DataFrame: one row per coefficient (metafor's ``coef(summary(res))``)."""
        return _coef_frame(self)

    def __str__(self) -> str:
        return format_rma(self)

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def _study_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if _is_glmm(self):
            x = np.asarray(self.events, dtype=float)
            n = np.asarray(self.total, dtype=float)
            # empirical logits with the usual 0.5 correction, for display only
            yi = np.log((x + 0.5) / (n - x + 0.5))
            vi = 1.0 / (x + 0.5) + 1.0 / (n - x + 0.5)
            return yi, vi
        return np.asarray(self.yi, dtype=float), np.asarray(self.vi, dtype=float)

    def forest(
        self,
        slab: Sequence[str] | None = None,
        *,
        transf: Callable[[np.ndarray], np.ndarray] | None = None,
        xlabel: str = "Estimate",
        scale: str | None = None,
        digits: int = 2,
        title: str | None = None,
    ) -> Figure:
        """Forest plot of the studies and the pooled estimate (metafor's ``forest.rma``).

        Study intervals are Wald intervals ``yi ± z sqrt(vi)`` at the model's level; the diamond is
        the model's estimate and CI; the prediction interval row is drawn when ``k >= 3`` for an
        intercept-only random-effects model. Returns a matplotlib Figure (nothing is written).

        Parameters
        ----------
        slab : study labels (default "Study 1", ...).
        transf : function applied to all estimates and bounds (e.g. ``numpy.exp`` for ratios,
            :func:`blinameta.frequentist.escalc.transf_ilogit` style callables for proportions).
        scale : ``"linear"``, ``"log"`` or ``"proportion"``; default ``"log"`` when ``transf`` is
            ``numpy.exp``, else ``"linear"``.
        """
        import pandas as pd

        from blinameta.frequentist.predict import predict
        from blinameta.frequentist.rma import _norm_isf
        from blinameta.plots.forest import forest_plot

        if self.p != 1:
            raise ValueError("forest(): only intercept-only models have a pooled diamond")
        yi, vi = self._study_arrays()
        k = yi.size
        labels = list(slab) if slab is not None else [f"Study {i + 1}" for i in range(k)]
        if len(labels) != k:
            raise ValueError(f"slab has {len(labels)} labels for {k} studies")
        f = transf if transf is not None else (lambda v: v)
        z = _norm_isf((1 - self.level / 100) / 2)
        se = np.sqrt(vi)
        if _is_glmm(self):
            weight = np.full(k, np.nan)
        else:
            w = 1.0 / (vi + max(self.tau2, 0.0))
            weight = 100.0 * w / w.sum()
        rows = pd.DataFrame({
            "label": labels,
            "detail": [""] * k,
            "estimate": f(yi),
            "ci_lb": f(yi - z * se),
            "ci_ub": f(yi + z * se),
            "weight": weight,
        })
        pooled: dict[str, Any] = {
            "label": "RE Model" if self.tau2 > 0 or getattr(self, "method", "ML") != "EE" else "EE Model",
            "estimate": float(f(np.asarray([self.beta[0]]))[0]),
            "ci_lb": float(f(np.asarray([self.ci_lb[0]]))[0]),
            "ci_ub": float(f(np.asarray([self.ci_ub[0]]))[0]),
        }
        if getattr(self, "method", "ML") == "EE":
            pooled["kind"] = "common"
        if k >= 3 and getattr(self, "method", "ML") != "EE":
            if _is_glmm(self):
                pr = self.predict()
            else:
                pr = predict(self)
            pooled["pi_lb"] = float(f(np.atleast_1d(pr.pi_lb))[0])
            pooled["pi_ub"] = float(f(np.atleast_1d(pr.pi_ub))[0])
        if scale is None:
            scale = "log" if transf is np.exp else "linear"
        return forest_plot(None, rows, pooled=pooled, xlabel=xlabel, scale=scale, digits=digits,
                           title=title, null_value=1.0 if scale == "log" else None,
                           detail_header="")

    def funnel(self, *, xlabel: str = "Observed outcome", title: str | None = None) -> Figure:
        """Funnel plot (metafor's ``funnel.rma``): observed outcomes against their standard errors
        around the pooled estimate. Returns a matplotlib Figure (nothing is written)."""
        from blinameta.plots.funnel import funnel_plot

        if self.p != 1:
            raise ValueError("funnel(): only intercept-only models are supported")
        yi, vi = self._study_arrays()
        return funnel_plot(None, yi, np.sqrt(vi), estimate=float(self.beta[0]), xlabel=xlabel,
                           title=title)


def _p_eq(p: float | None) -> str:
    """``p-val < 0.0001`` / ``p-val = 0.0123``: the test lines of ``print.rma.mh``."""
    if p is None or not math.isfinite(p):
        return "p-val = NA"
    return "p-val < 0.0001" if p < 1e-4 else f"p-val = {p:.4f}"


def format_mh(res: Any, *, digits: int = 4) -> str:
    """The text of metafor's ``print.rma.mh`` / ``print.rma.peto`` for a Mantel-Haenszel or Peto fit."""
    pad = len("H^2 (total variability / sampling variability):") + 1
    lines = [f"Equal-Effects Model (k = {res.k})", ""]
    if res.qe_df > 0:
        lines.append("I^2 (total heterogeneity / total variability):".ljust(pad) + f"{res.i2:.2f}%")
        lines.append("H^2 (total variability / sampling variability):".ljust(pad) + f"{res.h2:.2f}")
        lines += ["", "Test for Heterogeneity:",
                  f"Q(df = {res.qe_df}) = {fmt_num(res.qe, digits)}, p-val {_p_phrase(res.qe_p, digits)}", ""]
    ratio = res.measure in ("OR", "RR", "PETO")
    lines.append("Model Results (log scale):" if ratio else "Model Results:")
    lines.append("")
    head = ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"]
    vals = [fmt_num(res.beta, digits), fmt_num(res.se, digits), fmt_num(res.zval, digits),
            fmt_pval(res.pval, digits), fmt_num(res.ci_lb, digits), fmt_num(res.ci_ub, digits)]
    widths = [max(len(h), len(v)) for h, v in zip(head, vals)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    lines.append("  ".join(v.rjust(w) for v, w in zip(vals, widths)))
    if ratio:
        scale = "OR" if res.measure == "PETO" else res.measure
        head2 = ["estimate", "ci.lb", "ci.ub"]
        vals2 = [fmt_num(res.estimate, digits), fmt_num(res.estimate_lb, digits), fmt_num(res.estimate_ub, digits)]
        widths2 = [max(len(h), len(v)) for h, v in zip(head2, vals2)]
        lines += ["", f"Model Results ({scale} scale):", "",
                  "  ".join(h.rjust(w) for h, w in zip(head2, widths2)),
                  "  ".join(v.rjust(w) for v, w in zip(vals2, widths2))]
    if res.measure == "OR" and math.isfinite(res.cmh_exact_var):
        lines += ["", f"Cochran-Mantel-Haenszel Test:    CMH = {fmt_num(res.cmh_exact_var, digits)}, df = 1,  {_p_eq(res.cmh_exact_var_p)}"]
        if res.k_pos is not None and res.k_pos > 1 and math.isfinite(res.tarone):
            lines.append(f"Tarone's Test for Heterogeneity: X^2 = {fmt_num(res.tarone, digits)}, "
                         f"df = {res.k_pos - 1}, {_p_eq(res.tarone_p)}")
    return "\n".join(lines)


class MhPresentation:
    """Printing and tables for Mantel-Haenszel and Peto fits (metafor's ``print.rma.mh``)."""

    def summary(self, *, digits: int = 4) -> Summary:
        return Summary(text=format_mh(self, digits=digits), table=self.to_frame())

    def to_frame(self) -> pd.DataFrame:
        """One row: the pooled estimate on the analysis scale and on the reported scale."""
        import pandas as pd

        return pd.DataFrame([{
            "estimate": self.beta, "se": self.se, "zval": self.zval, "pval": self.pval,
            "ci_lb": self.ci_lb, "ci_ub": self.ci_ub, "exp_estimate": self.estimate,
            "exp_ci_lb": self.estimate_lb, "exp_ci_ub": self.estimate_ub,
        }], index=pd.Index([self.measure], name="measure"))

    def __str__(self) -> str:
        return format_mh(self)

    def _repr_html_(self) -> str:
        return self.summary().as_html()
