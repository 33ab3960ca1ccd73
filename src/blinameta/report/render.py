"""Render the report's pages (Jinja2, autoescaped: every string from YAML is HTML-escaped)."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import math
import os
import re
from concurrent.futures.process import BrokenProcessPool
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

from blinameta.analysis.run import AnalysisResult, back_transform, run_analysis
from blinameta.analysis.select import select
from blinameta.analysis.spec import AnalysisSpec
from blinameta.evidence.checks import iter_provenanced
from blinameta.evidence.loader import Evidence, format_path
from blinameta.evidence.tidy import tidy
from blinameta.io import atomic_write_text
from blinameta.report.labels import (
    DESIGN_LABELS,
    SETTING_LABELS,
    study_display_label,
    DENOMINATOR_LABELS,
    MEASURE_LABELS,
    METHOD_LABELS,
    TEST_LABELS,
    Labels,
    clean_quote,
    humanize_text,
    prob,
    pvalue,
    prior_text,
    symbols,
)
from blinameta.report.sof import primary_of, sof_rows
from blinameta.report.studies import draw_rob_figures
from blinameta.report.summary import row_anchor, study_rows, summarise

__all__ = ["render_site", "environment"]


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment of the report (autoescape on for every template).

    One per process: Jinja2 caches each compiled template on its environment, and the worker
    processes forked by :func:`render_site` inherit the parent's compiled templates.
    """
    return Environment(
        loader=PackageLoader("blinameta", "templates/report"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _fmt(kind: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    if kind == "proportion":
        return f"{100 * value:.1f}%"
    return f"{value:.2f}" if 0.1 <= abs(value) < 10 else f"{value:.3g}"


def _blank(value: Any) -> str:
    """Text of a cell; empty for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _anchor(study_id: str, cohort_id: str, outcome: str) -> str:
    return f"{study_id}-{cohort_id}-{outcome}"


def _analysis_context(result: AnalysisResult, summary: dict[str, Any], spec_file: str,
                      labels: Labels | None = None, display: dict[str, str] | None = None) -> dict[str, Any]:
    spec = result.spec
    rows = result.selection.rows
    kind = spec.kind
    labels = labels or _NullLabels()
    display = display or {}
    f = lambda v: _fmt(kind, v)  # noqa: E731
    moderators = [m for m in ("blast_burden", "relapse_line", "schedule", "line_of_use", "setting") if m in rows]
    included = []
    for i, d in enumerate(summary.get("rows", [])):
        r = rows.iloc[i]
        if kind == "proportion":
            cells = [{"text": f"{d['events']}", "anchor": d["anchor"]}, {"text": f"{d['total']}", "anchor": d["anchor"]}]
        elif kind == "risk_ratio":
            cells = [{"text": f"{d['events']}", "anchor": d["anchor"]}, {"text": f"{d['total']}", "anchor": d["anchor"]},
                     {"text": f"{d['control_events']}", "anchor": d["control_anchor"]},
                     {"text": f"{d['control_total']}", "anchor": d["control_anchor"]}]
        else:
            cells = [{"text": f"{d['n_experimental'] if d['n_experimental'] is not None else '–'}", "anchor": d["anchor"]},
                     {"text": f"{d['n_control'] if d['n_control'] is not None else '–'}", "anchor": d["anchor"]}]
        flag = []
        if d["derived"]:
            flag.append("derived from a printed percentage or another count")
        if d["flagged"]:
            flag.append("the source contradicts itself; see the sensitivity analyses")
        base = str(d["label"])
        included.append({
            "label": display.get(d["study_id"], base) if base[-1:].isdigit() else base,
            "cohort": symbols(d["cohort"]), "cells": cells, "anchor": d["anchor"],
            "estimate": f(d["estimate"]), "ci": f"{f(d['ci_lb'])} to {f(d['ci_ub'])}",
            "quote": clean_quote(d["quote"]), "location": symbols(f"{d['location']} ({d['source']})" if d["source"] else d["location"]),
            "source_type": d.get("source_type", ""),
            "flag": "; ".join(flag), "denominator": DENOMINATOR_LABELS.get(d["denominator"], d["denominator"].replace("_", " ")),
            "timepoint": symbols(d["timepoint"]),
            "moderators": "; ".join(f"{labels.moderator(m)}: {labels.level(m, r[m])}" for m in moderators if isinstance(r[m], str)),
            "weight": f"{d['weight_random']:.1f}%" if d["weight_random"] is not None else "",
            "weight_common": f"{d['weight_common']:.1f}%" if d["weight_common"] is not None else "",
        })
    ni = rows["total"].to_numpy(float) if result.k else None
    subgroups = []
    for sg in result.subgroups:
        res = sg.result
        groups = []
        order = {g: i for i, g in enumerate(dict.fromkeys(sg.labels))}
        for g, kk, est, lb, ub, t2 in sorted(zip(res.groups, res.k, res.estimate, res.ci_lb, res.ci_ub, res.tau2),
                                              key=lambda t: order.get(t[0], len(order))):
            mask = np.array([lab == g for lab in sg.labels])
            e, l, u = back_transform(result, [est, lb, ub], ni[mask] if mask.any() else ni)
            groups.append({"name": labels.level(sg.moderator, g), "k": int(kk), "estimate": e, "ci_lb": l, "ci_ub": u,
                           "tau2": float(t2)})
        missing = sum(1 for lab in sg.labels if lab == "not reported")
        subgroups.append({"moderator": sg.moderator, "name": labels.moderator(sg.moderator), "groups": groups,
                          "qb": res.qb, "df": int(res.qb_df[0]), "p": res.qb_p, "missing": missing,
                          "label": humanize_text(getattr(sg, "test_label", None) or "", labels)})
    metaregs = []
    for mr in result.metaregressions:
        fit = mr.result
        perm = mr.permutation
        coefs = [{"name": labels.coefficient(name), "beta": float(fit.beta[j]), "se": float(fit.se[j]), "ci_lb": float(fit.ci_lb[j]),
                  "ci_ub": float(fit.ci_ub[j]), "p": float(fit.pval[j]),
                  "perm_p": (f"{perm.pval[j]:.4f}" + (" (exact)" if perm.exact else "")) if perm is not None else "–"}
                 for j, name in enumerate(fit.coef_names)]
        metaregs.append({"moderator": mr.moderator, "name": labels.moderator(mr.moderator), "coefs": coefs, "k": fit.k,
                         "tau2": fit.tau2, "qm": fit.qm, "qm_p": fit.qm_p, "r2": fit.r2})
    loo = []
    if result.leave1out is not None:
        l1 = result.leave1out
        est = back_transform(result, l1.estimate, ni)
        lb = back_transform(result, l1.ci_lb, ni)
        ub = back_transform(result, l1.ci_ub, ni)
        infl = result.influence
        for i, label in enumerate(rows["label"]):
            loo.append({"label": label, "estimate": est[i], "ci_lb": lb[i], "ci_ub": ub[i], "tau2": float(l1.tau2[i]),
                        "i2": float(l1.i2[i]),
                        "rstudent": f"{infl.rstudent[i]:.2f}" if infl is not None else "–",
                        "cook": f"{infl.cook_d[i]:.3f}" if infl is not None else "–",
                        "hat": f"{infl.hat[i]:.3f}" if infl is not None else "–"})
    bias = []
    if result.small_study is not None:
        name, e = result.small_study
        what = ("Egger's regression test (standard error as predictor)" if e is result.egger
                else f"{name} (inverse sample size as predictor)")
        limit = f"; limit estimate {f(back_transform(result, [e.est], ni)[0])}" if e is result.egger else ""
        bias.append(f"{what}: {'t' if np.isfinite(e.ddf) else 'z'} = {e.zval:.3f}, p = {e.pval:.4f}{limit}.")
    if result.begg is not None:
        bias.append(f"Begg's rank correlation: Kendall's τ = {result.begg.tau:.3f}, p = {result.begg.pval:.4f}.")
    if result.trimfill is not None:
        t = result.trimfill
        est = back_transform(result, [t.fit.beta[0], t.fit.ci_lb[0], t.fit.ci_ub[0]], ni)
        bias.append(f"Trim-and-fill ({t.estimator}): {t.k0} stud{'y' if t.k0 == 1 else 'ies'} imputed on the {t.side} side; "
                    f"adjusted estimate {f(est[0])} ({f(est[1])} to {f(est[2])}).")
    if result.k and result.k < 10 and bias:
        bias.insert(0, "With fewer than 10 studies these tests have little power (Cochrane Handbook 10.4.3.1): "
                       "they are shown for completeness, not for judgement.")
    settings = {
        "measure": MEASURE_LABELS.get(spec.frequentist.measure, "log hazard ratio") if kind == "proportion" else
        ("log hazard ratio" if kind == "hazard_ratio" else "log risk ratio"),
        "method": METHOD_LABELS.get(spec.frequentist.method, spec.frequentist.method),
        "test": TEST_LABELS.get(spec.frequentist.test, spec.frequentist.test),
        "prior_mu": prior_text(spec.bayes.prior_mu), "prior_tau": prior_text(spec.bayes.prior_tau),
    }
    filt = "; ".join(f"{labels.moderator(k)}: {', '.join(labels.level(k, v) for v in vals)}" for k, vals in spec.filter.items())
    return {
        "spec": spec, "s": summary, "f": f, "included": included, "title": symbols(spec.title),
        "description": symbols(spec.description), "filter_text": filt, "settings": settings,
        "outcome_label": labels.outcome(spec.outcome),
        "excluded": [dict(e, label=display.get(e["id"], e["id"]), reason=humanize_reason(e["reason"], labels, display))
                     for e in summary["excluded"]],
        "prob": prob, "pv": pvalue, "subgroups": subgroups, "metaregs": metaregs,
        "sensitivity": summary["sensitivity"], "loo": loo, "bias": bias, "spec_file": _short(spec_file), "id": spec.id,
        "data_headers": (["Events", "Total"] if kind == "proportion" else
                         ["Blinatumomab events", "Blinatumomab total", "Chemotherapy events", "Chemotherapy total"]
                         if kind == "risk_ratio" else ["N blinatumomab", "N chemotherapy"]),
    }


def _short(path: Any) -> str:
    """``/any/where/evidence/x.yaml`` -> ``evidence/x.yaml``: pages do not depend on where the project lives."""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def humanize_reason(reason: str, labels: Any, display: dict[str, str]) -> str:
    """A selection reason in words: moderator codes and values by their labels, ids by study labels."""
    text = str(reason)
    for code in sorted(getattr(labels, "levels", {}), key=len, reverse=True):
        text = re.sub(rf"\b{code} = ([A-Za-z0-9_]+)", lambda m, c=code: f"{labels.moderator(c).lower()} {labels.level(c, m.group(1))}", text)
        text = re.sub(rf"\b{code} not reported", lambda m, c=code: f"{labels.moderator(c).lower()} not reported", text)
    for pid in sorted(display, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(pid)}\b", display[pid], text)
    text = text.replace("outside the filter:", "outside this analysis' population:")
    return symbols(text.replace("_", " "))


class _NullLabels:
    def moderator(self, code: Any) -> str:
        return str(code).replace("_", " ")

    def level(self, moderator: Any, value: Any) -> str:
        return symbols(str(value).replace("_", " "))

    def coefficient(self, name: str) -> str:
        return name

    def outcome(self, code: Any) -> str:
        return str(code)


def duplicated_rows(evidence: Evidence) -> frozenset[tuple[str, str, str]]:
    """(study, cohort, outcome) reported more than once: their evidence ids carry the line."""
    table = _tidy_all(evidence)
    if table.empty:
        return frozenset()
    counts = table.groupby(["study_id", "cohort_id", "outcome"]).size()
    return frozenset(tuple(k) for k, n in counts.items() if n > 1)


def _tidy_all(evidence: Evidence):
    """The primary readings, survival rows included (every number a page may show)."""
    try:
        return tidy(evidence, readings="primary", survival=True)
    except TypeError:  # an older tidy without survival rows
        return tidy(evidence, readings="primary")


def _has(value: Any) -> bool:
    """A value is there (not None, NaN or pandas' NA)."""
    try:
        return value is not None and not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _row_data(r: Any) -> str:
    """What an evidence row says: events/total, or a survival estimate or median."""
    if _has(r.get("events")) and _has(r.get("total")):
        return f"{int(r.events)}/{int(r.total)}"
    est, t = r.get("estimate_pct"), r.get("time_months")
    if _has(est):
        return f"{float(est):g}% at {float(t):g} months" if _has(t) else f"{float(est):g}%"
    if _has(r.get("median_months")):
        return f"median {float(r.median_months):g} months"
    if _has(r.get("median_reached")) and str(r.get("median_reached")) in ("False", "false", "0"):
        return "median not reached"
    return "see quote"


def _evidence_context(evidence: Evidence, labels: Labels, display: dict[str, str],
                      used_by: dict[str, list[dict[str, str]]], dup: frozenset) -> dict[str, Any]:
    table = _tidy_all(evidence)
    records = {}
    for pub in evidence.publications:
        for loc, record in iter_provenanced(pub):
            records[(pub.id, format_path(loc))] = record
    by_file = {str(path): pid for pid, path in evidence.files.items()}
    discrepancies = []
    for problem in evidence.discrepancies:
        pid = by_file.get(str(problem.file))
        quote = ""
        path = problem.field
        while path:
            record = records.get((pid, path))
            if record is not None:
                quote = " / ".join(f"{symbols(p.location)}: “{clean_quote(p.quote)}”" for p in record.provenance)
                break
            path = path.rsplit(".", 1)[0] if "." in path else (path.rsplit("[", 1)[0] if "[" in path else "")
        cohorts = {c.id: c.label for c in evidence.publication(pid).cohorts} if pid else {}
        discrepancies.append({"study": display.get(pid, pid or ""), "pid": pid,
                              "message": humanize_text(problem.message, labels, cohorts),
                              "quote": quote, "where": f"{problem.file}:{problem.line} {problem.field}"})
    derived = []
    for pub in evidence.publications:
        for loc, record in iter_provenanced(pub):
            d = getattr(record, "derived", None)
            if d is not None:
                line = evidence.lines[pub.id].line_of(loc)
                derived.append({"study": display.get(pub.id, pub.id), "pid": pub.id,
                                "where": f"{evidence.files[pub.id]}:{line} {format_path(loc)}",
                                "fields": humanize_text(", ".join(d.fields)), "method": humanize_text(d.method, labels)})
    publications = []
    seen: set[str] = set()
    for pub in sorted(evidence.publications, key=lambda p: (p.year, p.id)):
        sub = table[table.study_id == pub.id]
        rows = []
        for _, r in sub.iterrows():
            anchor = row_anchor(r.study_id, r.cohort_id, r.outcome, r.get("line"), (r.study_id, r.cohort_id, r.outcome) in dup)
            while anchor in seen:  # never two equal ids on the page
                anchor += "-x"
            seen.add(anchor)
            rows.append({"anchor": anchor, "cohort": symbols(r.cohort_label), "outcome": labels.outcome(r.outcome),
                         "data": _row_data(r), "derived": _has(r.get("derived")) and bool(r.derived),
                         "percent": f"{float(r.percent_printed):g}%" if _has(r.get("percent_printed")) else "",
                         "denominator": (DENOMINATOR_LABELS.get(str(r.denominator), str(r.denominator).replace("_", " "))
                                         if _has(r.get("denominator")) else ""),
                         "quote": clean_quote(r.quote), "location": symbols(r.location), "source": r.source,
                         "source_type": str(r.get("source_type", "") or ""),
                         "file": f"{_short(r.file)}:{int(r.line)}", "used_by": used_by.get(anchor, [])})
        for c in pub.comparisons:
            anchor = f"{pub.id}-{c.id}"
            while anchor in seen:
                anchor += "-x"
            seen.add(anchor)
            prov = c.provenance[0]
            name = {"hr": "HR", "rr": "RR", "or": "OR", "rd": "RD"}[c.measure]
            rows.append({"anchor": anchor, "cohort": "blinatumomab vs chemotherapy", "outcome": labels.outcome(c.endpoint),
                         "data": f"{name} {c.estimate:g} ({c.level:g}% CI {c.ci_lb:g} to {c.ci_ub:g})", "derived": c.derived is not None,
                         "percent": "", "denominator": "", "quote": clean_quote(prov.quote), "location": symbols(prov.location),
                         "source": prov.source, "source_type": "", "file": _short(evidence.files[pub.id]),
                         "used_by": used_by.get(anchor, [])})
        publications.append({
            "id": pub.id, "label": display.get(pub.id, pub.id), "title": pub.title, "doi": pub.doi,
            "design": DESIGN_LABELS.get(pub.design, pub.design), "setting": SETTING_LABELS.get(pub.setting, pub.setting),
            "overlaps": ", ".join(display.get(o.with_, o.with_) for o in pub.overlaps),
            "rows": rows, "notes": clean_quote(pub.notes) if pub.notes else "",
        })
    return {"discrepancies": discrepancies, "derived": derived, "publications": publications,
            "n_rows": len(table)}


def _fit_and_draw(evidence: Evidence, spec: AnalysisSpec, spec_file: str, out: Path, meta: dict[str, Any],
                  fingerprint: str, dup: frozenset) -> dict[str, Any]:
    """Fit one analysis, draw its figures, write its page, CSV and summary; return the summary."""
    from blinameta.report.cumulative import cumulative
    from blinameta.report.downloads import analysis_csv
    from blinameta.report.figures import draw_figures

    env = environment()
    labels = Labels(evidence.review)
    display = display_labels(evidence)
    folder = out / "analyses" / spec.id
    result = run_analysis(evidence, spec)
    summary = summarise(result)
    summary["rows"] = study_rows(result, dup)
    summary["cumulative"] = cumulative(result, summary["rows"])
    if spec.kind == "hazard_ratio":
        summary["control_survival"] = control_survival(evidence, spec, summary, dup)
    primary = primary_of(summary)
    figures = draw_figures(result, folder, labels=labels, display=display,
                           primary_method=(primary or {}).get("method"))
    context = _analysis_context(result, summary, spec_file, labels, display)
    sof = sof_rows([summary], labels)[0]
    html = env.get_template("analysis.html").render(
        page_title=symbols(spec.title), root="../", meta=meta, figures=figures, level=spec.frequentist.level,
        content_hash=fingerprint, hash_label="analysis fingerprint (its inputs and settings)", sof=sof, **context)
    atomic_write_text(out / "analyses" / f"{spec.id}.html", html)
    summary["fingerprint"] = fingerprint
    atomic_write_text(folder / f"{spec.id}_studies.csv", analysis_csv(summary))
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return summary


def control_survival(evidence: Evidence, spec: AnalysisSpec, summary: dict[str, Any], dup: frozenset) -> dict[str, Any] | None:
    """The control arm's survival at a time point in the largest included trial (for absolute
    effects per 1000), with its evidence anchor; None when no included trial reports one."""
    table = _tidy_all(evidence)
    if table.empty or "estimate_pct" not in table:
        return None
    endpoints = list(spec.endpoints or [spec.outcome])
    sizes = {r["study_id"]: (r.get("n_experimental") or 0) + (r.get("n_control") or 0) for r in summary.get("rows", [])}
    rows = table[table.study_id.isin(list(sizes)) & table.outcome.isin(endpoints) & (table.cohort_kind == "arm")
                 & table.estimate_pct.notna() & table.time_months.notna()
                 & (table.treatment.astype(str) != str(getattr(spec, "treatment", "blinatumomab") or "blinatumomab"))]
    if rows.empty:
        return None
    rows = rows.assign(_n=rows.study_id.map(sizes), _rank=rows.outcome.map(endpoints.index))
    r = rows.sort_values(["_rank", "_n"], ascending=[True, False], kind="stable").iloc[0]
    label = display_labels(evidence).get(r.study_id, r.study_id)
    return {"study_id": r.study_id, "label": f"{label}, {str(r.get('cohort_label', '')).lower()}",
            "endpoint": r.outcome, "time_months": float(r.time_months), "pct": float(r.estimate_pct),
            "anchor": row_anchor(r.study_id, r.cohort_id, r.outcome, r.get("line"), (r.study_id, r.cohort_id, r.outcome) in dup)}


#: The evidence of the running report, read by the forked workers from their copy of the
#: parent's memory (it is not pickled per job).
_FORKED_EVIDENCE: list[Evidence] = []
#: The key of the job that draws the risk-of-bias figures (the others are analysis ids).
_ROB_JOB = "\0risk-of-bias figures"
#: What every job imports (fitting, drawing, pages): the workers import it while the report
#: process computes the analyses' fingerprints.
_WORKER_MODULES = ("blinameta.plots", "blinameta.report.figures", "blinameta.report.cumulative",
                   "blinameta.report.downloads", "blinameta.analysis.sensitivity", "blinameta.analysis.moderators",
                   "blinameta.bayes.exact", "blinameta.frequentist.glmm", "blinameta.frequentist.diagnostics",
                   "matplotlib.backends.backend_svg")


def _init_worker(parent: int) -> None:
    """Worker initializer.

    - On Linux, ask the kernel to kill this worker when the report process dies
      (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): a report killed with ``kill -9`` then leaves no
      orphaned workers behind, which would hold its output lock and block the next run, or write
      into a staging folder that the next run removes.
    - Ignore SIGINT: Ctrl-C in a terminal reaches every process of the group; the report process
      handles it (the previous report is kept) and its workers finish their job and exit.
    - Import the modules every job needs and compile the analysis page's template.
    """
    import ctypes
    import importlib
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    for name in _WORKER_MODULES:
        importlib.import_module(name)
    environment().get_template("analysis.html")


def _worker(fn: Callable[..., Any], args: tuple) -> Any:
    # One job makes many short-lived objects (matplotlib artists, pandas frames) and few
    # cycles: collect once after it rather than hundreds of times during it. The objects
    # inherited from the parent are frozen, so the collection walks only the job's own.
    gc.freeze()
    gc.disable()
    try:
        return fn(_FORKED_EVIDENCE[0], *args)
    finally:
        gc.enable()
        gc.collect()


class WorkerPool:
    """The report's worker processes (``BLINAMETA_JOBS``, default 2), forked as soon as the
    evidence is loaded, so that they import the fitting and drawing libraries while the report
    process checks the models and computes fingerprints.

    Fork, not spawn: the workers inherit the evidence and the imported libraries, and a script
    that calls :func:`~blinameta.report.build_report` needs no ``if __name__ == "__main__"``
    guard. The workers only compute and write their own files. Use as a context manager; on an
    error or an interrupt the pool waits for the running jobs (never more than one analysis per
    worker) and cancels the others, so no worker writes after the caller cleans up.
    """

    def __init__(self, evidence: Evidence, workers: int) -> None:
        import multiprocessing as mp
        import warnings
        from concurrent.futures import ProcessPoolExecutor

        _FORKED_EVIDENCE[:] = [evidence]
        self.evidence = evidence
        with warnings.catch_warnings():
            # Python 3.12 warns about fork in a process with threads (BLAS pools, a progress bar);
            # the workers never touch the objects those threads guard.
            warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks.*",
                                    category=DeprecationWarning)
            self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"),
                                                initializer=_init_worker, initargs=(os.getpid(),))
            self.executor.submit(int)  # fork the workers now

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        _FORKED_EVIDENCE.clear()

    def run(self, jobs: list[tuple[str, Callable[..., Any], tuple]],
            progress: Callable[[str, int, int], None] | None, total: int) -> dict[str, Any]:
        """Run ``(key, function, args)`` jobs (``function(evidence, *args)``); key -> result."""
        from concurrent.futures import as_completed, wait

        done: dict[str, Any] = {}
        futures = {self.executor.submit(_worker, fn, args): key for key, fn, args in jobs}
        try:
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                if progress is not None and futures[fut] != _ROB_JOB:
                    progress(futures[fut], sum(k != _ROB_JOB for k in done), total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            wait(futures)  # the running jobs end before the caller removes their folder
            raise
        return done


def _run_jobs(evidence: Evidence, jobs: list[tuple[str, Callable[..., Any], tuple]],
              progress: Callable[[str, int, int], None] | None, total: int,
              pool: WorkerPool | None = None) -> dict[str, Any]:
    """Run ``(key, function, args)`` jobs, ``function(evidence, *args)``, in the worker pool
    (else here, and here too if a worker died, e.g. killed for memory); return key -> result.
    ``progress`` hears of the analyses, not of other jobs."""
    done: dict[str, Any] = {}
    if pool is not None and pool.evidence is evidence:
        try:
            done.update(pool.run(jobs, progress, total))
        except BrokenProcessPool:
            done.clear()
    for key, fn, args in jobs:
        if key in done:
            continue
        if progress is not None and key != _ROB_JOB:
            progress(key, sum(k != _ROB_JOB for k in done), total)
        done[key] = fn(evidence, *args)
    return done


def display_labels(evidence: Evidence) -> dict[str, str]:
    """Study id -> "Author Year (trial name)"."""
    return {p.id: study_display_label(p) for p in evidence.publications}


def worker_pool(evidence: Evidence) -> WorkerPool | contextlib.nullcontext:
    """A :class:`WorkerPool` of ``BLINAMETA_JOBS`` (default 2, at most the CPUs) processes, or,
    with one, a context that yields ``None`` (everything runs in this process)."""
    workers = _pool_size()
    return WorkerPool(evidence, workers) if workers > 1 else contextlib.nullcontext()


def _pool_size() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, int(os.environ.get("BLINAMETA_JOBS", "2"))))


def render_site(
    evidence: Evidence,
    specs: tuple[AnalysisSpec, ...],
    spec_files: dict[str, Path],
    out: Path,
    *,
    meta: dict[str, Any],
    fingerprints: dict[str, str],
    reuse: set[str],
    progress: Callable[[str, int, int], None] | None = None,
    history: dict[str, Any] | None = None,
    pool: WorkerPool | None = None,
    sizes: dict[str, int] | None = None,
) -> list[str]:
    """Write every page into ``out``; analyses in ``reuse`` are already there. Return rebuilt ids.

    Analyses are fitted and drawn in ``pool``'s worker processes (see :func:`worker_pool`), or
    here without one.
    """
    from blinameta.report import history as hist

    env = environment()
    labels = Labels(evidence.review)
    display = display_labels(evidence)
    dup = duplicated_rows(evidence)
    old_history = history or {"versions": []}
    version = hist.version_of(meta["evidence_hash"], hist.code_hash())
    recorded, previous = hist.previous_version(old_history, version)
    # a version carries its own date: rebuilding the same version gives the same pages
    meta = {**meta, "generated": recorded["date"] if recorded else meta["generated"], "version": version}
    atomic_write_text(out / "style.css", files("blinameta").joinpath("templates/report/style.css").read_text(encoding="utf-8"))
    todo = [s for s in specs if s.id not in reuse]
    # largest analyses first, so that no worker is left with a long one at the end
    todo.sort(key=lambda s: -(sizes[s.id] if sizes and s.id in sizes else select(evidence, s).k))
    jobs = [(s.id, _fit_and_draw, (s, str(spec_files.get(s.id, "")), out, meta, fingerprints[s.id], dup))
            for s in todo]
    jobs.insert(min(1, len(jobs)), (_ROB_JOB, draw_rob_figures, (display, out)))
    done = _run_jobs(evidence, jobs, progress, len(todo), pool)
    rob_figures = done.pop(_ROB_JOB)
    summaries = []
    for spec in specs:
        if spec.id in done:
            summaries.append(done[spec.id])
        else:
            summaries.append(json.loads((out / "analyses" / spec.id / "summary.json").read_text(encoding="utf-8")))
    if progress is not None:
        progress("", len(done), len(todo))
    entry = recorded or hist.new_entry(version, evidence, summaries, meta["generated"])
    atomic_write_text(out / hist.HISTORY, json.dumps(hist.next_history(old_history, entry), indent=1, sort_keys=True,
                                                     ensure_ascii=False, allow_nan=False) + "\n")
    write_site_pages(evidence, specs, summaries, out, meta=meta, labels=labels, display=display, dup=dup,
                     history={"version": version, "changes": hist.changes(previous, entry)}, env=env,
                     rob_figures=rob_figures)
    return [s.id for s in specs if s.id in done]


def write_site_pages(evidence: Evidence, specs, summaries: list[dict[str, Any]], out: Path, *, meta: dict[str, Any],
                     labels: Labels, display: dict[str, str], dup: frozenset, history: dict[str, Any] | None,
                     env: Environment, rob_figures: list[dict[str, str]] | None = None) -> None:
    """The pages that span analyses: index (summary of findings), evidence, methods, studies, flow."""
    from blinameta.report.downloads import write_downloads
    from blinameta.report.methods import methods_context
    from blinameta.report.studies import draw_rob_figures, flow_counts, studies_context

    used_by: dict[str, list[dict[str, str]]] = {}
    for s in summaries:
        for r in s.get("rows", []) + ([s["control_survival"]] if s.get("control_survival") else []):
            for key in ("anchor", "control_anchor"):
                if r.get(key):
                    used_by.setdefault(r[key], []).append({"id": s["id"], "title": symbols(s["title"])})
    # each outcome's primary analysis first (footnotes are numbered down the table), then the others
    sof = sof_rows(sorted(summaries, key=lambda s: s.get("primary_for_outcome") is False), labels)
    write_downloads(out, sof)
    changes = (history or {}).get("changes")
    common = {"meta": meta, "content_hash": meta["evidence_hash"], "hash_label": "SHA-256 of evidence/*.yaml and models/*.yaml",
              "version": (history or {}).get("version")}
    ev = _evidence_context(evidence, labels, display, used_by, dup)
    index = env.get_template("index.html").render(
        page_title=evidence.review.title, root="", review=evidence.review, sof=sof, changes=changes,
        n_publications=len(evidence.publications), n_rows=ev["n_rows"], n_discrepancies=len(ev["discrepancies"]),
        question=symbols(evidence.review.question), **common)
    atomic_write_text(out / "index.html", index)
    atomic_write_text(out / "evidence.html", env.get_template("evidence.html").render(
        page_title="Evidence: every number and its quote", root="", review=evidence.review, **common, **ev))
    atomic_write_text(out / "methods.html", env.get_template("methods.html").render(
        page_title="Methods", root="", **common, **methods_context(evidence, specs, summaries, meta, labels)))
    if rob_figures is None:
        rob_figures = draw_rob_figures(evidence, display, out)
    st = studies_context(evidence, summaries, labels, display, rob_figures)
    atomic_write_text(out / "studies.html", env.get_template("studies.html").render(
        page_title="Studies: characteristics, risk of bias and flow", root="", **common, **st,
        flow=flow_counts(evidence, summaries, display, out)))
