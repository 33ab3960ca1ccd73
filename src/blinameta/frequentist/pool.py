"""A complete frequentist meta-analysis of a user's own data in one call (``blinameta pool``).

:func:`pool` takes the columns of a data set (proportions, 2x2 tables, generic ``yi``/``vi`` or
hazard ratios with confidence intervals), fits the model metafor would fit
(``rma``/``rma.glmm``/``rma.mh``/``rma.peto``), and adds what a user asks for: the Q-profile
interval of tau², the prediction interval, back-transformed estimates, a permutation test,
predictions at new moderator values and the case diagnostics (``leave1out``, ``influence``,
``regtest``, ``trimfill``). The :class:`PoolResult` prints as metafor does, gives a JSON-ready
``to_dict()`` and draws forest, funnel and Baujat plots as matplotlib Figures. The command only
reads the CSV, calls :func:`pool` and prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from blinameta.errors import UserError
from blinameta.frequentist._present import Summary, fmt_num, fmt_pval, format_mh, format_rma
from blinameta.io import json_safe

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["pool", "PoolResult", "PROPORTION_MEASURES", "TABLE_MEASURES", "METHODS", "DIAGNOSTICS"]

PROPORTION_MEASURES = ("PR", "PLN", "PLO", "PAS", "PFT")
TABLE_MEASURES = ("RR", "OR", "RD")
METHODS = ("EE", "FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM", "GLMM", "MH", "PETO")
TESTS = ("z", "knha", "adhoc", "t")
DIAGNOSTICS = ("leave1out", "influence", "regtest", "trimfill")


@dataclass(frozen=True)
class PoolResult:
    """A fitted meta-analysis with everything ``blinameta pool`` reports.

    Attributes
    ----------
    mode : {"events", "table", "yi", "hr"}
        The kind of input: proportions, 2x2 tables, generic effects, hazard ratios.
    measure : str
        ``PLO``, ``RR``, ..., ``logHR`` or ``yi``.
    fit : RmaResult, GlmmResult or MhResult
        The model; every number below is derived from it without refitting.
    tau2_ci : ConfintTau2 or None
        Q-profile confidence interval of tau² (intercept-only ``rma`` fits).
    prediction : Prediction or GlmmPrediction or None
        Pooled estimate with confidence and prediction interval (intercept-only models).
    permutation : PermutestResult or None
    predictions : list of dict
        Predictions at new moderator values (``newmods``).
    diagnostics : dict
        ``leave1out``, ``influence``, ``regtest``, ``trimfill`` results, as asked for.
    slab : tuple of str
        Study labels.
    """

    mode: str
    measure: str
    method: str
    test: str
    level: float
    fit: Any
    yi: np.ndarray | None
    vi: np.ndarray | None
    ni: np.ndarray | None
    tau2_ci: Any = None
    prediction: Any = None
    permutation: Any = None
    predictions: tuple[dict[str, Any], ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)
    slab: tuple[str, ...] = ()
    newmods_label: str = "newmods"

    # ------------------------------------------------------------------ numbers
    @property
    def k(self) -> int:
        return int(self.fit.k)

    @property
    def has_mods(self) -> bool:
        return self.mode != "table_mh" and getattr(self.fit, "p", 1) > 1

    def back(self, values: Any) -> np.ndarray:
        """Values on the analysis scale back on the reported scale (proportion or ratio)."""
        from blinameta.frequentist.escalc import transf_proportion

        values = np.asarray(values, dtype=float)
        if self.mode == "events":
            return transf_proportion(self.measure, values, self.ni)
        if self.mode == "hr" or (self.mode == "table" and self.measure in ("RR", "OR")):
            return np.exp(values)
        return values

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (the ``--json`` output of ``blinameta pool``)."""
        res = self.fit
        out: dict[str, Any] = {"k": self.k, "measure": self.measure, "method": self.method,
                               "test": self.test, "level": self.level}
        if self.method in ("MH", "PETO"):
            out.update(estimate=res.beta, se=res.se, pval=res.pval, ci_lb=res.ci_lb, ci_ub=res.ci_ub,
                       qe=res.qe, qe_p=res.qe_p, qe_df=res.qe_df, i2=res.i2, h2=res.h2, tau2=0.0,
                       pred_ratio=res.estimate, ci_lb_ratio=res.estimate_lb, ci_ub_ratio=res.estimate_ub)
            if self.method == "MH" and self.measure == "RD":
                out.update(pred_ratio=None, ci_lb_ratio=None, ci_ub_ratio=None)
            if math.isfinite(res.cmh_exact_var):
                out.update(cmh=res.cmh_exact_var, cmh_p=res.cmh_exact_var_p, tarone=res.tarone,
                           tarone_p=res.tarone_p)
            return json_safe(out)
        beta = np.atleast_1d(np.asarray(res.beta, dtype=float)).ravel()
        se = np.atleast_1d(np.asarray(res.se, dtype=float)).ravel()
        pval = np.atleast_1d(np.asarray(res.pval, dtype=float)).ravel()
        ci_lb = np.atleast_1d(np.asarray(res.ci_lb, dtype=float)).ravel()
        ci_ub = np.atleast_1d(np.asarray(res.ci_ub, dtype=float)).ravel()
        if not self.has_mods:
            out.update(estimate=beta[0], se=se[0], pval=pval[0], ci_lb=ci_lb[0], ci_ub=ci_ub[0])
            pr = self.prediction
            out.update(pi_lb=float(np.atleast_1d(getattr(pr, "pi_lb", np.nan))[0]),
                       pi_ub=float(np.atleast_1d(getattr(pr, "pi_ub", np.nan))[0]))
        else:
            out.update(coef=beta, coef_names=list(getattr(res, "coef_names", [])), se=se, pval=pval,
                       ci_lb=ci_lb, ci_ub=ci_ub)
        if self.method == "GLMM":  # rma.glmm: Wald and likelihood-ratio tests of heterogeneity
            out.update(qe=res.qe_wld, qe_p=res.qe_wld_p, qe_lrt=res.qe_lrt, qe_lrt_p=res.qe_lrt_p)
        else:
            out.update(qe=res.qe, qe_p=res.qe_p)
        out.update(tau2=float(res.tau2), tau2_ci_lb=None, tau2_ci_ub=None, i2=float(res.i2),
                   h2=float(res.h2), qe_df=int(res.qe_df))
        if self.tau2_ci is not None:
            out.update(tau2_ci_lb=self.tau2_ci.tau2_lb, tau2_ci_ub=self.tau2_ci.tau2_ub)
        if self.has_mods:
            out.update(qm=res.qm, qm_p=res.qm_p, qm_df=list(res.qm_df), r2=getattr(res, "r2", None))
        if self.permutation is not None:
            pt = self.permutation
            out.update(perm_p=pt.pval, perm_qm_p=pt.qm_p, perm_n=pt.n_perm, perm_exact=pt.exact)
        if not self.has_mods and self.mode in ("events", "hr", "table"):
            suffix = {"events": "prop", "hr": "hr", "table": "ratio"}[self.mode]
            if self.mode != "table" or self.measure != "RD":
                keys = ("estimate", "ci_lb", "ci_ub") + (("pi_lb", "pi_ub") if self.mode != "hr" else ())
                for key in keys:
                    name = "pred" if key == "estimate" else key
                    out[f"{name}_{suffix}"] = float(self.back([out[key]])[0])
        if self.predictions:
            out["predictions"] = list(self.predictions)
        for name, value in self.diagnostics.items():
            out[name] = value.to_dict()
        return json_safe(out)

    # ------------------------------------------------------------------ text
    def summary(self) -> Summary:
        """metafor's printed summary of the fit, then the back-transformed estimates, the
        permutation test, predictions and diagnostics."""
        res = self.fit
        if self.method in ("MH", "PETO"):
            text = format_mh(res)
            table = res.to_frame()
        else:
            ci = None if self.tau2_ci is None else (self.tau2_ci.tau2_lb, self.tau2_ci.tau2_ub)
            text = format_rma(res, tau2_ci=ci)
            table = res.to_frame()
        extra = self._extra_lines()
        return Summary(text=text + ("\n\n" + "\n\n".join(extra) if extra else ""), table=table)

    def __str__(self) -> str:
        return self.summary().as_text()

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def _extra_lines(self) -> list[str]:
        d = self.to_dict()
        lvl = f"{self.level:g}%"
        extra: list[str] = []
        if not self.has_mods and self.method not in ("MH", "PETO"):
            if self.mode == "events":
                how = " (inverse Freeman-Tukey at the harmonic mean of the totals)" if self.measure == "PFT" else ""
                pi = (f"; {lvl} PI [{fmt_num(d['pi_lb_prop'])}, {fmt_num(d['pi_ub_prop'])}]"
                      if d.get("pi_lb_prop") is not None else "")
                extra.append(f"Pooled proportion{how}: {fmt_num(d['pred_prop'])} "
                             f"[{lvl} CI {fmt_num(d['ci_lb_prop'])}, {fmt_num(d['ci_ub_prop'])}]{pi}")
            elif self.mode == "hr":
                extra.append(f"Pooled hazard ratio: {fmt_num(d['pred_hr'])} "
                             f"[{lvl} CI {fmt_num(d['ci_lb_hr'])}, {fmt_num(d['ci_ub_hr'])}]")
            elif self.mode == "table" and self.measure != "RD":
                pi = (f"; {lvl} PI [{fmt_num(d['pi_lb_ratio'])}, {fmt_num(d['pi_ub_ratio'])}]"
                      if d.get("pi_lb_ratio") is not None else "")
                extra.append(f"Pooled {self.measure}: {fmt_num(d['pred_ratio'])} "
                             f"[{lvl} CI {fmt_num(d['ci_lb_ratio'])}, {fmt_num(d['ci_ub_ratio'])}]{pi}")
        if self.permutation is not None:
            pt = self.permutation
            kind = "exact" if pt.exact else f"{pt.n_perm} random"
            extra.append(f"Permutation test ({kind} permutations): p = "
                         + ", ".join(fmt_pval(x) for x in np.atleast_1d(pt.pval))
                         + (f"; QM p = {fmt_pval(pt.qm_p)}" if self.has_mods else ""))
        if self.predictions:
            scale = {"events": "_prop", "hr": "_hr"}.get(self.mode, "")
            lines = [f"Predictions at {self.newmods_label} ({lvl} CI and PI):"]
            for row in self.predictions:
                at = ", ".join(f"{c}={row[c]}" for c in row if c not in _PRED_KEYS)
                lines.append(f"  {at}: {fmt_num(row['pred' + scale])} [{fmt_num(row['ci_lb' + scale])}, "
                             f"{fmt_num(row['ci_ub' + scale])}]; PI [{fmt_num(row['pi_lb' + scale])}, "
                             f"{fmt_num(row['pi_ub' + scale])}]")
            extra.append("\n".join(lines))
        for name, value in self.diagnostics.items():
            extra.append(_format_diagnostic(name, value, self.slab))
        return extra

    # ------------------------------------------------------------------ figures
    def plot(self, kind: str, *, title: str | None = None) -> Figure:
        """``"forest"``, ``"funnel"`` or ``"baujat"``; returns a matplotlib Figure."""
        kind = kind.lower()
        if kind == "forest":
            return self.forest(title=title)
        if kind == "funnel":
            if self.method in ("MH", "PETO") or self.has_mods:
                raise UserError("--plot funnel needs an intercept-only rma or GLMM fit")
            return self.fit.funnel(title=title, xlabel=self._xlabel(analysis_scale=True))
        if kind == "baujat":
            from blinameta.frequentist.diagnostics import baujat
            from blinameta.plots.baujat import baujat_plot

            if self.method in ("MH", "PETO", "GLMM"):
                raise UserError("--plot baujat needs an rma fit (not GLMM, MH or PETO)")
            b = baujat(self.fit)
            return baujat_plot(None, b.x, b.y, list(self.slab), title=title)
        raise UserError(f"unknown plot {kind!r}; choose forest, funnel or baujat")

    def _xlabel(self, *, analysis_scale: bool = False) -> str:
        if analysis_scale:
            return {"events": f"{self.measure} (analysis scale)", "hr": "log hazard ratio",
                    "table": ("risk difference" if self.measure == "RD" else f"log {self.measure}")
                    }.get(self.mode, "Observed outcome")
        return {"events": "Proportion", "hr": "Hazard ratio", "table": {
            "RR": "Risk ratio", "OR": "Odds ratio", "RD": "Risk difference"}.get(self.measure, self.measure)
        }.get(self.mode, "Estimate")

    def forest(self, *, title: str | None = None) -> Figure:
        """Forest plot of the studies and the pooled estimate on the reported scale."""
        ratio = self.mode == "hr" or (self.mode == "table" and self.measure in ("RR", "OR"))
        scale = "log" if ratio else ("proportion" if self.mode == "events" else "linear")
        if self.method in ("MH", "PETO"):
            return self._mh_forest(title, scale)
        if self.has_mods:
            raise UserError("--plot forest needs a model without moderators")
        return self.fit.forest(list(self.slab), transf=self.back, xlabel=self._xlabel(), scale=scale,
                               title=title)

    def _mh_forest(self, title: str | None, scale: str) -> Figure:
        import pandas as pd

        from blinameta.frequentist.rma import _norm_isf
        from blinameta.plots.forest import forest_plot

        res = self.fit
        z = _norm_isf((1 - self.level / 100) / 2)
        yi, vi = np.asarray(res.yi, float), np.asarray(res.vi, float)
        keep = [i for i in range(res.k_all) if i not in set(res.dropped00)]
        labels = [self.slab[i] for i in keep][: yi.size]
        rows = pd.DataFrame({"label": labels, "detail": [""] * yi.size, "estimate": self.back(yi),
                             "ci_lb": self.back(yi - z * np.sqrt(vi)), "ci_ub": self.back(yi + z * np.sqrt(vi)),
                             "weight": np.full(yi.size, np.nan)})
        name = "Peto" if self.method == "PETO" else "Mantel-Haenszel"
        pooled = {"label": f"{name} (common effect)", "kind": "common",
                  "estimate": float(self.back([res.beta])[0]), "ci_lb": float(self.back([res.ci_lb])[0]),
                  "ci_ub": float(self.back([res.ci_ub])[0])}
        return forest_plot(None, rows, pooled=pooled, xlabel=self._xlabel(), scale=scale, title=title,
                           null_value=1.0 if scale == "log" else 0.0, detail_header="")


_PRED_KEYS = {"pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "pred_prop", "ci_lb_prop", "ci_ub_prop",
              "pi_lb_prop", "pi_ub_prop", "pred_hr", "ci_lb_hr", "ci_ub_hr", "pi_lb_hr", "pi_ub_hr"}


def _format_diagnostic(name: str, value: Any, slab: Sequence[str]) -> str:
    """The printed form of a diagnostic, as metafor prints it (``print.list.rma``, ...)."""
    import pandas as pd

    if name == "regtest":
        pred = {"sei": "standard error", "vi": "sampling variance", "ninv": "inverse of the sample size",
                "sqrtninv": "inverse of the square root of the sample size"}.get(value.predictor, value.predictor)
        model = "weighted regression with multiplicative dispersion" if value.model == "lm" else "meta-regression model"
        stat = "t" if math.isfinite(value.ddf) else "z"
        df = f", df = {value.ddf:g}" if math.isfinite(value.ddf) else ""
        lines = ["Regression Test for Funnel Plot Asymmetry", "", f"Model:     {model}",
                 f"Predictor: {pred}", "",
                 f"Test for Funnel Plot Asymmetry: {stat} = {fmt_num(value.zval)}{df}, p = {fmt_pval(value.pval)}"]
        if math.isfinite(value.est):
            lines.append(f"Limit Estimate (as {value.predictor} -> 0):   b = {fmt_num(value.est)} "
                         f"(CI: {fmt_num(value.ci_lb)}, {fmt_num(value.ci_ub)})")
        return "\n".join(lines)
    if name == "trimfill":
        lines = [f"Estimated number of missing studies on the {value.side} side: {value.k0} "
                 f"(SE = {fmt_num(value.se_k0)})"]
        if math.isfinite(value.p_k0):
            lines.append(f"Test of H0: no missing studies on the {value.side} side: p-val = {fmt_pval(value.p_k0)}")
        lines += ["", format_rma(value.fit)]
        return "\n".join(lines)
    if name == "leave1out":
        frame = pd.DataFrame({"estimate": value.estimate, "se": value.se, "zval": value.zval,
                              "pval": value.pval, "ci.lb": value.ci_lb, "ci.ub": value.ci_ub,
                              "Q": value.q, "Qp": value.qp, "tau2": value.tau2, "I2": value.i2,
                              "H2": value.h2}, index=[f"-{s}" for s in slab])
        return "Leave-one-out (each row: the model without that study)\n" + frame.to_string(float_format=lambda v: f"{v:.4f}")
    if name == "influence":
        frame = pd.DataFrame({"rstudent": value.rstudent, "dffits": value.dffits, "cook.d": value.cook_d,
                              "cov.r": value.cov_r, "tau2.del": value.tau2_del, "QE.del": value.qe_del,
                              "hat": value.hat, "weight": value.weight,
                              "inf": ["*" if f else "" for f in value.is_infl]}, index=list(slab))
        return "Influence diagnostics (metafor's influence(); * = influential)\n" + frame.to_string(float_format=lambda v: f"{v:.4f}")
    raise ValueError(name)


def _need(name: str, *values: Any) -> None:
    if any(v is None for v in values):
        raise UserError(f"{name} must be given together")


def pool(
    *,
    events: Any = None,
    total: Any = None,
    ai: Any = None,
    n1i: Any = None,
    ci: Any = None,
    n2i: Any = None,
    yi: Any = None,
    vi: Any = None,
    hr: Any = None,
    hr_lb: Any = None,
    hr_ub: Any = None,
    measure: str | None = None,
    method: str = "REML",
    test: str = "z",
    mods: pd.DataFrame | None = None,
    newmods: pd.DataFrame | None = None,
    newmods_label: str = "newmods",
    level: float = 95.0,
    control: dict[str, Any] | None = None,
    permutations: int | None = None,
    seed: int | None = None,
    diagnostics: Sequence[str] = (),
    slab: Sequence[str] | None = None,
) -> PoolResult:
    """Meta-analysis of one data set, as metafor would run it.

    Give exactly one kind of input: ``events``/``total`` (single proportions, ``measure`` PR, PLN,
    PLO (default), PAS or PFT), ``ai``/``n1i``/``ci``/``n2i`` (2x2 tables, ``measure`` RR, OR
    (default, as ``rma.mh``) or RD), ``yi``/``vi`` (generic effects) or ``hr``/``hr_lb``/``hr_ub``
    (hazard ratios with 95% confidence intervals, pooled on the log scale).

    Parameters
    ----------
    method : tau² estimator of ``rma`` (EE, DL, HE, HS, SJ, ML, REML, EB, PM), ``"GLMM"``
        (binomial-normal, proportions only), ``"MH"`` (Mantel-Haenszel) or ``"PETO"`` (2x2 only).
    test : ``"z"``, ``"knha"`` (Hartung-Knapp), ``"adhoc"`` (Hartung-Knapp with max(1, q)) or
        ``"t"``; with GLMM, ``"knha"`` means ``rma.glmm(test="t")``.
    mods, newmods : moderators (DataFrame; non-numeric columns are factors) and new values for
        predictions.
    control : convergence settings (:data:`blinameta.frequentist.rma.METAFOR_CONTROL` for metafor's
        defaults).
    diagnostics : any of ``"leave1out"``, ``"influence"``, ``"regtest"``, ``"trimfill"``.
    slab : study labels.
    """
    from blinameta.frequentist.confint import confint_tau2
    from blinameta.frequentist.escalc import escalc_2x2, escalc_proportion, log_hr_from_ci
    from blinameta.frequentist.predict import predict
    from blinameta.frequentist.rma import rma

    method = method.upper()
    if method == "FE":
        method = "EE"
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if test not in TESTS:
        raise UserError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    given = {"events": events is not None or total is not None,
             "table": any(v is not None for v in (ai, n1i, ci, n2i)),
             "yi": yi is not None or vi is not None,
             "hr": any(v is not None for v in (hr, hr_lb, hr_ub))}
    modes = [m for m, g in given.items() if g]
    if len(modes) != 1:
        raise UserError("give exactly one input: events and totals; a 2x2 table (ai, n1i, ci, n2i); "
                        "yi and vi; or hazard ratios with their confidence bounds")
    mode = modes[0]
    if method == "GLMM" and mode != "events":
        raise UserError("--method GLMM needs events and totals (single proportions)")
    if method in ("MH", "PETO") and mode != "table":
        raise UserError(f"--method {method} needs a 2x2 table (ai, n1i, ci, n2i)")
    if method in ("MH", "PETO") and mods is not None:
        raise UserError(f"--method {method} is a common-effect model without moderators")
    ni = None
    if mode == "events":
        _need("events and totals", events, total)
        measure = (measure or "PLO").upper()
        if measure not in PROPORTION_MEASURES:
            raise UserError(f"measure {measure!r} is not one for proportions; choose one of "
                            f"{', '.join(PROPORTION_MEASURES)}")
        events, total = np.asarray(events, float), np.asarray(total, float)
        ni = total
        if method == "GLMM":
            yi = vi = None
            measure = "PLO"
        else:
            es = escalc_proportion(measure, events, total)
            yi, vi = es.yi, es.vi
    elif mode == "table":
        _need("ai, n1i, ci and n2i", ai, n1i, ci, n2i)
        measure = (measure or "OR").upper()
        if method == "PETO":
            measure = "OR"
        if measure not in TABLE_MEASURES:
            raise UserError(f"measure {measure!r} is not one for 2x2 tables; choose one of "
                            f"{', '.join(TABLE_MEASURES)}")
        if method not in ("MH", "PETO"):
            es = escalc_2x2(measure, ai, n1i, ci, n2i)
            yi, vi = es.yi, es.vi
    elif mode == "yi":
        _need("yi and vi", yi, vi)
        measure = "yi"
    else:
        _need("hazard ratios and both confidence bounds", hr, hr_lb, hr_ub)
        es = log_hr_from_ci(hr, hr_lb, hr_ub, level=95.0)
        yi, vi = es.yi, es.vi
        measure = "logHR"
    k = len(events) if mode == "events" else len(ai) if mode == "table" else len(yi)
    labels = tuple(slab) if slab is not None else tuple(f"Study {i + 1}" for i in range(k))
    _check_k(method, k, mods)

    try:
        if method == "GLMM":
            from blinameta.frequentist.glmm import rma_glmm

            fit = rma_glmm(events, total, mods=mods, level=level, test="t" if test in ("knha", "t") else "z")
        elif method == "MH":
            from blinameta.frequentist.mh import rma_mh

            fit = rma_mh(ai, n1i, ci, n2i, measure=measure, level=level)
        elif method == "PETO":
            from blinameta.frequentist.peto import rma_peto

            fit = rma_peto(ai, n1i, ci, n2i, level=level)
        else:
            fit = rma(yi, vi, mods=mods, method=method, test=test, level=level, control=control)
    except ValueError as exc:
        raise UserError(str(exc)) from None

    tau2_ci = prediction = permutation = None
    predictions: list[dict[str, Any]] = []
    int_only = getattr(fit, "p", 1) == 1
    if method == "GLMM":
        prediction = fit.predict() if int_only else None
    elif method not in ("MH", "PETO"):
        prediction = predict(fit) if int_only else None
        if method != "EE" and int_only:
            try:
                tau2_ci = confint_tau2(fit, level=level)
            except ValueError:
                tau2_ci = None
    if permutations is not None:
        if method in ("GLMM", "MH", "PETO"):
            raise UserError(f"--permutations is not available with --method {method}")
        from blinameta.frequentist.permutest import permutest

        permutation = permutest(fit, n_perm=permutations, seed=seed)
    result = PoolResult(mode=mode, measure=measure, method=method, test=test, level=level, fit=fit,
                        yi=None if yi is None else np.asarray(yi, float),
                        vi=None if vi is None else np.asarray(vi, float), ni=ni, tau2_ci=tau2_ci,
                        prediction=prediction, permutation=permutation, slab=labels,
                        newmods_label=newmods_label)
    if newmods is not None:
        if mods is None:
            raise UserError("--newmods needs --mods")
        predictions = _predict_new(result, newmods)
    diags = _diagnostics(result, diagnostics)
    return PoolResult(**{**result.__dict__, "predictions": tuple(predictions), "diagnostics": diags})


def _check_k(method: str, k: int, mods: pd.DataFrame | None) -> None:
    """Enough studies for the model: tau² needs k >= 2 and k > p; EE needs k >= p."""
    p = 1
    if mods is not None:
        from blinameta.frequentist.rma import model_matrix

        p = model_matrix(mods, k).X.shape[1]
    need = 1 if method in ("EE", "MH", "PETO") else 2
    if k < need:
        raise UserError(f"--method {method} needs at least {need} studies; there are {k} data row(s)")
    if method not in ("EE", "MH", "PETO") and k <= p:
        raise UserError(f"{p} coefficients and tau^2 need at least {p + 1} studies; there are {k} data row(s)")
    if method == "EE" and k < p:
        raise UserError(f"{p} coefficients need at least {p} studies; there are {k} data row(s)")


def _predict_new(result: PoolResult, frame: pd.DataFrame) -> list[dict[str, Any]]:
    import pandas as pd

    from blinameta.frequentist.predict import predict

    try:
        pr = result.fit.predict(frame) if result.method == "GLMM" else predict(result.fit, frame)
    except ValueError as exc:
        raise UserError(f"{result.newmods_label}: {exc}") from None
    rows = []
    for i in range(len(frame)):
        row: dict[str, Any] = {col: (frame[col].iloc[i] if not isinstance(frame[col].dtype, pd.CategoricalDtype)
                                     else str(frame[col].iloc[i])) for col in frame.columns}
        vals = {key: float(np.atleast_1d(getattr(pr, key))[i]) for key in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub")}
        row.update(vals)
        if result.mode in ("events", "hr"):
            suffix = "_prop" if result.mode == "events" else "_hr"
            for key in ("pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
                row[key + suffix] = float(result.back([vals[key]])[0])
        rows.append(row)
    return rows


def _diagnostics(result: PoolResult, names: Sequence[str]) -> dict[str, Any]:
    from blinameta.frequentist import diagnostics as dg

    out: dict[str, Any] = {}
    for name in names:
        if name not in DIAGNOSTICS:
            raise UserError(f"unknown diagnostic {name!r}; choose from {', '.join(DIAGNOSTICS)}")
        if result.method in ("GLMM", "MH", "PETO"):
            raise UserError(f"--{name} needs an rma fit (not --method {result.method})")
        try:
            if name == "leave1out":
                out[name] = dg.leave1out(result.fit)
            elif name == "influence":
                out[name] = dg.influence(result.fit)
            elif name == "regtest":
                out[name] = dg.regtest(result.fit)
            else:
                out[name] = dg.trimfill(result.fit)
        except ValueError as exc:
            raise UserError(f"--{name}: {exc}") from None
    return out
