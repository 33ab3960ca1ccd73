"""Study characteristics, risk of bias (robvis figures) and the flow of studies (PRISMA 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blinameta.report.labels import DESIGN_LABELS, SETTING_LABELS, Labels, clean_quote

__all__ = ["studies_context", "flow_counts", "read_exclusions"]

_ROB_CATEGORY = {
    "rob2": {"low": "low", "some_concerns": "some_concerns", "high": "high", "no_information": "no_information"},
    "jbi_case_series": {"yes": "low", "no": "high", "unclear": "no_information", "not_applicable": "not_applicable"},
    "minors": {"2": "low", "1": "some_concerns", "0": "high", "no_information": "no_information"},
}
_OVERALL = {"low": "low", "some_concerns": "some_concerns", "high": "high"}
EXCLUSION_REASONS = {
    "adult_population": "adult population", "case_report": "case report", "car_t": "CAR-T, not blinatumomab",
    "no_extractable_numbers": "no extractable numbers", "duplicate_report": "duplicate report",
    "not_blinatumomab": "not blinatumomab", "review_article": "review article", "other": "other reason",
}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def read_exclusions(evidence: Any) -> list[dict[str, Any]]:
    """``evidence/exclusions.yaml`` (evidence v2), from the loader if it reads it, else from the file."""
    items = getattr(evidence, "exclusions", None)
    if items is None:
        path = Path(evidence.directory) / "exclusions.yaml"
        if not path.is_file():
            return []
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = data.get("excluded", []) if isinstance(data, dict) else []
    out = []
    for e in items or []:
        out.append({"id": str(_get(e, "id", "")), "citation": clean_quote(_get(e, "citation", "")),
                    "reason": str(_get(e, "reason", "other")), "note": clean_quote(_get(e, "note", "") or "")})
    return out


def _main_cohorts(pub: Any) -> list[Any]:
    top = [c for c in pub.cohorts if c.kind != "subgroup" and not c.parent]
    return top or list(pub.cohorts[:1])


def _characteristics(pub: Any, labels: Labels) -> dict[str, str]:
    cohorts = _main_cohorts(pub)
    n = sum(c.n for c in cohorts)
    age = blasts = lines = hsct = dose = ""
    for c in cohorts:
        ch = c.characteristics
        if ch is None:
            continue
        if ch.age is not None and not age:
            a = ch.age
            parts = [f"median {a.median:g}" if a.median is not None else f"mean {a.mean:g}" if a.mean is not None else ""]
            if a.min is not None and a.max is not None:
                parts.append(f"range {a.min:g}–{a.max:g}")
            age = ", ".join(p for p in parts if p) + " years"
        if ch.blast_burden is not None and not blasts:
            b = ch.blast_burden
            bits = [f"{k.replace('n_', '').replace('ge', '≥').replace('lt', '<')}%: {v}" for k, v in b.model_dump().items()
                    if k.startswith("n_") and v is not None]
            if b.median_pct is not None:
                bits.append(f"median {b.median_pct:g}% blasts")
            blasts = "; ".join(bits)
        if ch.relapse_lines is not None and not lines:
            r = ch.relapse_lines
            lines = "; ".join(f"{labels.level('relapse_line', k)}: {v}" for k, v in r.model_dump().items()
                              if k in ("refractory", "first_relapse", "second_or_later", "post_hsct") and v is not None)
        if ch.prior_hsct is not None and not hsct:
            hsct = f"{ch.prior_hsct.n}/{c.n}"
        if ch.dose is not None and not dose:
            dose = clean_quote(ch.dose.text)
    mods = pub.moderators or {}
    if not blasts and mods.get("blast_burden"):
        blasts = labels.level("blast_burden", mods.get("blast_burden"))
    if not lines and mods.get("relapse_line"):
        lines = labels.level("relapse_line", mods.get("relapse_line"))
    schedule = labels.level("schedule", mods["schedule"]) if mods.get("schedule") else ""
    grading = sorted({str(g) for o in pub.outcomes for g in [getattr(o, "grading", None)] if g})
    own = getattr(pub, "own_source", "unknown")
    return {
        "design": DESIGN_LABELS.get(pub.design, pub.design), "setting": SETTING_LABELS.get(pub.setting, pub.setting),
        "country": str(getattr(pub, "country", "") or ""), "n": str(n), "age": age, "blasts": blasts, "lines": lines,
        "hsct": hsct, "schedule": ", ".join(x for x in (schedule, dose) if x),
        "grading": ", ".join(g.replace("_", " ").upper() if g.startswith("ctcae") else g.replace("_", " ") for g in grading),
        "source": ("own report" if own else "quoted in another publication") if own != "unknown" else "",
    }


def _rob_figure_rows(pub: Any, labels: Labels) -> list[tuple[str, dict[str, Any]]]:
    """The rows of the risk-of-bias figures for one publication: one per judged result for a
    tool judged per result (RoB 2, Sterne et al. BMJ 2019;366:l4898: "the assessment is specific
    to a single result"; robvis draws one row per result), labelled "result n" (its outcomes are
    listed in the table under the figure); else one."""
    rob = getattr(pub, "risk_of_bias", None)
    if rob is None:
        return []
    results = list(_get(rob, "results", []) or [])
    if not results:
        return [("", _rob_rows(pub))]
    tool = str(_get(rob, "tool", ""))
    labelled = []
    for number, result in enumerate(results, start=1):
        row = _judged(tool, list(_get(result, "items", []) or []), result)
        row.update(result=number, outcomes=", ".join(labels.outcome(c) for c in _get(result, "outcomes", []) or []))
        labelled.append((f", result {number}", row))
    return labelled


def _judged(tool: str, items: list[Any], block: Any) -> dict[str, Any]:
    """Domains, judgements (as robvis categories, the overall last) and reasons of ``items``,
    with the overall judgement of ``block`` (a publication's assessment or one RoB 2 result)."""
    cats = _ROB_CATEGORY.get(tool, {})
    judg = [cats.get(str(_get(i, "judgement")), "no_information") for i in items]
    overall = _OVERALL.get(str(_get(block, "overall")), "no_information")
    return {"tool": tool, "domains": [str(_get(i, "item")) for i in items], "judgements": judg + [overall],
            "reasons": [clean_quote(_get(i, "reason", "")) for i in items], "overall": str(_get(block, "overall", "")),
            "overall_reason": clean_quote(_get(block, "overall_reason", ""))}


def _rob_rows(pub: Any) -> dict[str, Any] | None:
    rob = getattr(pub, "risk_of_bias", None)
    if rob is None:
        return None
    items = list(_get(rob, "items", []) or [])
    if not items and _get(rob, "results"):
        items = list(_get(_get(rob, "results")[0], "items", []) or [])
    return _judged(str(_get(rob, "tool", "")), items, rob)


def studies_context(evidence: Any, summaries: list[dict[str, Any]], labels: Labels, display: dict[str, str],
                    rob_figures: list[dict[str, str]]) -> dict[str, Any]:
    """Characteristics table rows, with the risk-of-bias figures drawn by :func:`draw_rob_figures`."""
    used: dict[str, list[str]] = {}
    for s in summaries:
        for sid in s.get("studies", []):
            used.setdefault(sid, []).append(s["id"])
    table = []
    for pub in sorted(evidence.publications, key=lambda p: (p.year, p.id)):
        row = {"id": pub.id, "label": display.get(pub.id, pub.id), "used": used.get(pub.id, []),
               **_characteristics(pub, labels)}
        row["rob"] = _rob_rows(pub)
        table.append(row)
    return {"characteristics": table, "rob_figures": rob_figures, "rob_missing": [r["label"] for r in table
                                                                                  if r["rob"] is None and r["used"]]}


def draw_rob_figures(evidence: Any, display: dict[str, str], out: Path) -> list[dict[str, str]]:
    """The risk-of-bias traffic-light and summary figures per tool (robvis layout), drawn into
    ``out`` as SVG; return their names and labels. Independent of the analyses' results, so the
    report draws them while the analyses are fitted."""
    from blinameta import plots

    labels = Labels(evidence.review)
    rob_by_tool: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for pub in sorted(evidence.publications, key=lambda p: (p.year, p.id)):
        for suffix, rob in _rob_figure_rows(pub, labels):
            rob_by_tool.setdefault(rob["tool"], []).append((display.get(pub.id, pub.id) + suffix, rob))
    tools = getattr(evidence.review, "risk_of_bias_tools", None) or {}
    figures = []
    for tool, entries in sorted(rob_by_tool.items()):
        domains = entries[0][1]["domains"]
        entries = [e for e in entries if e[1]["domains"] == domains]
        tdef = tools.get(tool) if isinstance(tools, dict) else None
        questions = _get(tdef, "items", {}) or {}
        names = [str(questions.get(d, d)) if isinstance(questions, dict) else d for d in domains]
        heads = [d.upper() for d in domains] + ["Overall"]
        with plots.file_formats("svg"):  # the report's figures are SVG (see plots.file_formats)
            plots.rob_traffic_light(out / f"rob_{tool}_traffic", [e[0] for e in entries], heads,
                                    [e[1]["judgements"] for e in entries], domain_names=names + ["Overall judgement"])
            plots.rob_summary(out / f"rob_{tool}_summary", names + ["Overall"], [e[1]["judgements"] for e in entries])
        figures.append({"tool": tool, "label": str(_get(tdef, "label", tool)), "reference": str(_get(tdef, "reference", "")),
                        "traffic": f"rob_{tool}_traffic", "summary": f"rob_{tool}_summary",
                        "unit": "result" if any("result" in e[1] for e in entries) else "study",
                        "results": [{"label": e[0], "outcomes": e[1]["outcomes"], "overall": e[1]["overall"],
                                     "reason": e[1]["overall_reason"]} for e in entries if "result" in e[1]]})
    return figures


def flow_counts(evidence: Any, summaries: list[dict[str, Any]], display: dict[str, str], out: Path | None = None) -> dict[str, Any]:
    """Counts of the PRISMA flow and, with ``out``, the diagram ``flow.svg``."""
    from blinameta import plots

    exclusions = read_exclusions(evidence)
    pubs = list(evidence.publications)
    with_data = [p for p in pubs if p.outcomes or p.comparisons]
    no_data = [p for p in pubs if not (p.outcomes or p.comparisons)]
    included = sorted({sid for s in summaries for sid in s.get("studies", [])})
    overlap_only = sorted(p.id for p in with_data if p.id not in included and any(
        e.get("id") == p.id and e.get("kind") == "overlap" for s in summaries for e in s.get("excluded", [])))
    other = sorted(p.id for p in with_data if p.id not in included and p.id not in overlap_only)
    by_reason: dict[str, int] = {}
    for e in exclusions:
        by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
    per_analysis = [{"id": s["id"], "title": s.get("title", ""), "k": s.get("k", 0), "patients": s.get("patients", 0)}
                    for s in summaries]
    n_sources = len(evidence.review.sources)
    stages = [
        {"phase": "Identification",
         "main": [f"Publications identified: {len(pubs) + len(exclusions)}",
                  f"read in {n_sources} source documents (original reports, a systematic review and a commentary)"],
         "side": ([f"Excluded before data extraction: {len(exclusions)}"]
                  + [f"{EXCLUSION_REASONS.get(k, k)}: {v}" for k, v in sorted(by_reason.items())]) if exclusions else None},
        {"phase": "Screening",
         "main": [f"Publications with an evidence file: {len(pubs)}"],
         "side": [f"No extractable outcome numbers: {len(no_data)}"] + [display.get(p.id, p.id) for p in no_data][:8]},
        {"phase": "Eligibility",
         "main": [f"Publications with outcome data: {len(with_data)}"],
         "side": [f"Overlapping reports, not counted twice: {len(overlap_only)}"]
                 + [display.get(i, i) for i in overlap_only][:8]
                 + ([f"Outside every analysis' population: {len(other)}"] if other else [])},
        {"phase": "Included",
         "main": [f"Publications in at least one analysis: {len(included)}"]
                 + [f"{a['title']}: {a['k']} stud{'y' if a['k'] == 1 else 'ies'}, {a['patients']} patients".replace(">=", "≥")
                    for a in per_analysis]},
    ]
    if out is not None:
        with plots.file_formats("svg"):
            plots.flow_diagram(Path(out) / "flow", stages)
    return {"stages": stages, "exclusions": exclusions, "n_publications": len(pubs), "included": included,
            "no_data": [display.get(p.id, p.id) for p in no_data], "overlap_only": overlap_only,
            "per_analysis": per_analysis, "figure": "flow" if out is not None else None}
