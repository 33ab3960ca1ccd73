"""Render the report's pages (Jinja2, autoescaped: every string from YAML is HTML-escaped)."""

from __future__ import annotations

import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

import numpy as np
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

from blinameta.analysis.run import AnalysisResult, back_transform, run_analysis
from blinameta.analysis.select import study_label
from blinameta.analysis.spec import AnalysisSpec
from blinameta.evidence.checks import iter_provenanced
from blinameta.evidence.loader import Evidence, format_path
from blinameta.evidence.tidy import tidy
from blinameta.io import atomic_write_text
from blinameta.report.summary import summarise

__all__ = ["render_site", "environment"]


def environment() -> Environment:
    """The Jinja2 environment of the report (autoescape on for every template)."""
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


def _analysis_context(result: AnalysisResult, summary: dict[str, Any], spec_file: str) -> dict[str, Any]:
    spec = result.spec
    rows = result.selection.rows
    kind = spec.kind
    f = lambda v: _fmt(kind, v)  # noqa: E731
    moderators = [m for m in ("blast_burden", "relapse_line", "schedule", "line_of_use", "setting") if m in rows]
    weights = result.main.weights if result.main is not None else [math.nan] * len(rows)
    included = []
    for i, (_, r) in enumerate(rows.iterrows()):
        if kind == "proportion":
            data = f"{int(r.events)}/{int(r.total)}"
        elif kind == "risk_ratio":
            data = f"{int(r.ai)}/{int(r.n1i)} vs {int(r.ci)}/{int(r.n2i)}"
        else:
            data = f"HR {r.hr:.2f} [{r.ci_lb:.2f}, {r.ci_ub:.2f}] ({str(r.outcome).upper()})"
        flag = []
        if bool(r.get("derived", False)):
            flag.append("derived from a printed percentage or another count")
        if bool(r.get("flagged", False)):
            flag.append("the source contradicts itself; see the sensitivity analyses")
        included.append({
            "label": r.label, "cohort": r.get("cohort_label", ""), "data": data,
            "anchor": _anchor(r.study_id, r.cohort_id, r.outcome) if kind != "hazard_ratio" else r.study_id,
            "tooltip": f"{r.get('location', '')} ({r.get('source', '')}): “{r.get('quote', '')}”",
            "flag": "; ".join(flag), "denominator": _blank(r.get("denominator")),
            "timepoint": _blank(r.get("timepoint")),
            "moderators": ", ".join(f"{m}={r[m]}" for m in moderators if isinstance(r[m], str)),
            "weight": f"{weights[i]:.1f}%" if np.isfinite(weights[i]) else "",
            "file": f"{r.file}:{int(r.line)}" if isinstance(r.get("file"), str) and r.get("line") == r.get("line") and r.get("line") is not None else r.study_id,
        })
    ni = rows["total"].to_numpy(float) if result.k else None
    subgroups = []
    for sg in result.subgroups:
        res = sg.result
        groups = []
        for g, kk, est, lb, ub, t2 in zip(res.groups, res.k, res.estimate, res.ci_lb, res.ci_ub, res.tau2):
            mask = np.array([lab == g for lab in sg.labels])
            e, l, u = back_transform(result, [est, lb, ub], ni[mask] if mask.any() else ni)
            groups.append({"name": g, "k": int(kk), "estimate": e, "ci_lb": l, "ci_ub": u, "tau2": float(t2)})
        subgroups.append({"moderator": sg.moderator, "groups": groups, "qb": res.qb, "df": int(res.qb_df[0]), "p": res.qb_p,
                          "label": sg.test_label})
    metaregs = []
    for mr in result.metaregressions:
        fit = mr.result
        perm = mr.permutation
        coefs = [{"name": name, "beta": float(fit.beta[j]), "se": float(fit.se[j]), "ci_lb": float(fit.ci_lb[j]),
                  "ci_ub": float(fit.ci_ub[j]), "p": float(fit.pval[j]),
                  "perm_p": (f"{perm.pval[j]:.4f}" + (" (exact)" if perm.exact else "")) if perm is not None else "–"}
                 for j, name in enumerate(fit.coef_names)]
        metaregs.append({"moderator": mr.moderator, "coefs": coefs, "k": fit.k, "tau2": fit.tau2, "qm": fit.qm,
                         "qm_p": fit.qm_p, "r2": fit.r2})
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
    if result.egger is not None:
        e = result.egger
        bias.append(f"Egger's regression test (standard error as predictor): "
                    f"{'t' if np.isfinite(e.ddf) else 'z'} = {e.zval:.3f}, p = {e.pval:.4f}; limit estimate {f(back_transform(result, [e.est], ni)[0])}.")
    if result.begg is not None:
        bias.append(f"Begg's rank correlation: Kendall's τ = {result.begg.tau:.3f}, p = {result.begg.pval:.4f}.")
    if result.trimfill is not None:
        t = result.trimfill
        est = back_transform(result, [t.fit.beta[0], t.fit.ci_lb[0], t.fit.ci_ub[0]], ni)
        bias.append(f"Trim-and-fill ({t.estimator}): {t.k0} stud{'y' if t.k0 == 1 else 'ies'} imputed on the {t.side} side; "
                    f"adjusted estimate {f(est[0])} ({f(est[1])} to {f(est[2])}).")
    if result.k and result.k < 10 and bias:
        bias.append("With fewer than 10 studies these tests have little power; read them with caution.")
    return {
        "spec": spec, "s": summary, "f": f, "included": included,
        "excluded": summary["excluded"], "subgroups": subgroups, "metaregs": metaregs,
        "sensitivity": summary["sensitivity"], "loo": loo, "bias": bias, "spec_file": spec_file, "id": spec.id,
    }


def _evidence_context(evidence: Evidence) -> dict[str, Any]:
    table = tidy(evidence, readings="primary")
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
                quote = " / ".join(f"{p.location}: “{p.quote}”" for p in record.provenance)
                break
            path = path.rsplit(".", 1)[0] if "." in path else (path.rsplit("[", 1)[0] if "[" in path else "")
        discrepancies.append({"where": f"{problem.file}:{problem.line} {problem.field}", "message": problem.message,
                              "quote": quote})
    derived = []
    for pub in evidence.publications:
        for loc, record in iter_provenanced(pub):
            d = getattr(record, "derived", None)
            if d is not None:
                line = evidence.lines[pub.id].line_of(loc)
                derived.append({"where": f"{evidence.files[pub.id]}:{line} {format_path(loc)}",
                                "fields": ", ".join(d.fields), "method": d.method})
    publications = []
    for pub in sorted(evidence.publications, key=lambda p: (p.year, p.id)):
        sub = table[table.study_id == pub.id]
        publications.append({
            "id": pub.id, "label": study_label(pub.first_author, pub.year), "title": pub.title, "doi": pub.doi,
            "design": pub.design, "setting": pub.setting, "overlaps": ", ".join(o.with_ for o in pub.overlaps),
            "rows": [{"anchor": _anchor(r.study_id, r.cohort_id, r.outcome), "cohort": r.cohort_label, "outcome": r.outcome,
                      "events": int(r.events), "total": int(r.total), "derived": bool(r.derived),
                      "percent": "" if r.percent_printed != r.percent_printed or r.percent_printed is None else f"{r.percent_printed:g}%",
                      "denominator": r.denominator, "quote": r.quote, "location": r.location, "source": r.source,
                      "file": f"{r.file}:{int(r.line)}"} for _, r in sub.iterrows()],
        })
    return {"discrepancies": discrepancies, "derived": derived, "publications": publications,
            "n_rows": len(table)}


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
) -> list[str]:
    """Write every page into ``out``; analyses in ``reuse`` are already there. Return rebuilt ids."""
    from blinameta.report.figures import draw_figures

    env = environment()
    atomic_write_text(out / "style.css", files("blinameta").joinpath("templates/report/style.css").read_text(encoding="utf-8"))
    summaries = []
    rebuilt = []
    todo = [s for s in specs if s.id not in reuse]
    for spec in specs:
        folder = out / "analyses" / spec.id
        if spec.id in reuse:
            summaries.append(json.loads((folder / "summary.json").read_text(encoding="utf-8")))
            continue
        if progress is not None:
            progress(spec.id, len(rebuilt), len(todo))
        result = run_analysis(evidence, spec)
        summary = summarise(result)
        level_labels = {code: dict(m.levels or {}) for code, m in evidence.review.moderators.items()}
        level_labels.update(setting={"clinical_trial": "clinical trial", "real_world": "real world"})
        figures = draw_figures(result, folder, level_labels)
        context = _analysis_context(result, summary, str(spec_files.get(spec.id, "")))
        html = env.get_template("analysis.html").render(
            page_title=spec.title, root="../", meta=meta, figures=figures, level=spec.frequentist.level,
            content_hash=fingerprints[spec.id], hash_label="analysis fingerprint (its inputs and settings)", **context)
        atomic_write_text(out / "analyses" / f"{spec.id}.html", html)
        summary["fingerprint"] = fingerprints[spec.id]
        atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1, sort_keys=True, allow_nan=False) + "\n")
        summaries.append(summary)
        rebuilt.append(spec.id)
    if progress is not None:
        progress("", len(rebuilt), len(todo))
    ev = _evidence_context(evidence)
    index = env.get_template("index.html").render(
        page_title=evidence.review.title, root="", meta=meta, review=evidence.review, summaries=summaries,
        n_publications=len(evidence.publications), n_rows=ev["n_rows"], n_discrepancies=len(ev["discrepancies"]),
        fmt_est=lambda s, v: _fmt(s["kind"], v), content_hash=meta["evidence_hash"],
        hash_label="SHA-256 of evidence/*.yaml and models/*.yaml",
        settings_text="; ".join(sorted({f"{sp.frequentist.method} τ², {'Hartung-Knapp-Sidik-Jonkman' if sp.frequentist.test == 'knha' else 'Wald z'} "
                                        f"{sp.frequentist.level:g}% intervals" for sp in specs})),
    )
    atomic_write_text(out / "index.html", index)
    page = env.get_template("evidence.html").render(page_title="Evidence and discrepancies", root="", meta=meta,
                                                    review=evidence.review, content_hash=meta["evidence_hash"],
                                                    hash_label="SHA-256 of evidence/*.yaml and models/*.yaml", **ev)
    atomic_write_text(out / "evidence.html", page)
    return rebuilt
