"""The GRADE summary-of-findings table of the index (GRADEpro / MAGICapp layout).

One row per analysis: population, studies and patients, pooled events/total, the primary
estimate with its interval (rates per 100 for single-arm outcomes; relative effect and absolute
effects per 1000 for randomized comparisons), the prediction interval, the certainty of the
evidence with a footnote per downgrade, and a plain-language statement in GRADE's standard
wording (Santesso N, Glenton C, Dahm P, et al. GRADE guidelines 26: informative statements to
communicate the findings of systematic reviews of interventions. J Clin Epidemiol
2020;119:126-135): high certainty states the effect, moderate says "probably", low says "may",
very low says "we are very uncertain".

The table reads each analysis' ``summary.json`` only. ``primary`` and ``certainty`` are the
methods contract's fields; where an older summary lacks them, :func:`primary_of` falls back to
the Bayesian random-effects result (or the single study) and the certainty is shown as not rated.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from blinameta.report.labels import Labels, humanize_text, pct, ratio, symbols

__all__ = ["primary_of", "certainty_of", "plain_language", "sof_rows", "sof_csv", "SYMBOLS", "LEVEL_WORDS"]

SYMBOLS = {"high": "⊕⊕⊕⊕", "moderate": "⊕⊕⊕◯", "low": "⊕⊕◯◯", "very_low": "⊕◯◯◯"}
LEVEL_WORDS = {"high": "High", "moderate": "Moderate", "low": "Low", "very_low": "Very low"}
DOMAIN_WORDS = {"risk_of_bias": "Risk of bias", "inconsistency": "Inconsistency", "indirectness": "Indirectness",
                "imprecision": "Imprecision", "publication_bias": "Publication bias"}
METHOD_LABELS = {
    "bayes_binomial_normal": "Bayesian binomial-normal random effects",
    "bayes_normal_normal": "Bayesian normal-normal random effects",
    "single_study": "single study (its own estimate)",
    "reml_hksj": "random effects (REML, Hartung-Knapp)",
    "common_effect": "common effect",
    "glmm": "binomial-normal GLMM",
}

#: What happens to a patient, per outcome code, for the plain-language statements.
OUTCOME_VERBS = {
    "cr": "reach complete remission",
    "mrd_neg": "become MRD-negative",
    "crs_any": "have cytokine release syndrome of any grade",
    "crs_grade3plus": "have cytokine release syndrome of grade 3 or higher",
    "neurotox_any": "have neurotoxicity of any grade",
    "neurotox_grade3plus": "have neurotoxicity of grade 3 or higher",
    "hsct": "proceed to HSCT",
    "relapse": "relapse",
    "death": "die during follow-up",
    "trm": "die of treatment-related causes",
    "ae_grade3plus": "have an adverse event of grade 3 or higher",
    "cd19neg_relapse": "have a CD19-negative relapse",
    "lineage_switch": "have a lineage switch",
}
#: Who, per filter value, for the plain-language statements.
POPULATION = {
    ("blast_burden", "ge5"): "children with ≥5% marrow blasts",
    ("blast_burden", "lt5"): "children with <5% marrow blasts",
    ("denominator", "responders"): "children in complete remission",
}
_VERB_BY_LEVEL = {"high": ("",), "moderate": ("probably ",), "low": ("may ",)}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _in_sentence(label: str) -> str:
    """A label inside a sentence: "Event-free survival" -> "event-free survival"; "MRD negativity" stays."""
    label = str(label)
    if len(label) > 1 and label[1].isupper():
        return label
    return label[:1].lower() + label[1:]


def primary_of(s: dict[str, Any]) -> dict[str, Any] | None:
    """The analysis' primary estimate (methods contract ``primary``), with a fallback for old summaries."""
    if s.get("primary"):
        return s["primary"]
    scale = "proportion" if s.get("kind") == "proportion" else "ratio"
    b = s.get("bayes") or {}
    k = s.get("k", 0)
    base = {"k": k, "patients": s.get("patients"), "events": s.get("events"), "scale": scale, "pooled": k >= 2}
    if k >= 2 and b.get("p_median"):
        m, n = b["p_median"], b.get("p_new") or {}
        return {**base, "method": "bayes_binomial_normal", "label": METHOD_LABELS["bayes_binomial_normal"],
                "estimate": m.get("mean"), "ci_lb": m.get("lb"), "ci_ub": m.get("ub"),
                "pi_lb": n.get("lb"), "pi_ub": n.get("ub"),
                "priors": s.get("priors"), "prob_exceeds": {str(e["threshold"]): e["p_median"]
                                                            for e in b.get("exceedance", [])}}
    if k >= 2 and b.get("ratio"):
        r, n = b["ratio"], b.get("ratio_new") or {}
        return {**base, "method": "bayes_normal_normal", "label": METHOD_LABELS["bayes_normal_normal"],
                "estimate": r.get("exp_mean_mu"), "ci_lb": r.get("lb"), "ci_ub": r.get("ub"),
                "pi_lb": n.get("lb"), "pi_ub": n.get("ub"), "priors": s.get("priors")}
    rows = s.get("rows") or []
    if k == 1 and rows:
        r = rows[0]
        return {**base, "method": "single_study", "label": METHOD_LABELS["single_study"], "pooled": False,
                "estimate": r.get("estimate"), "ci_lb": r.get("ci_lb"), "ci_ub": r.get("ci_ub"),
                "pi_lb": None, "pi_ub": None}
    return None


def certainty_of(s: dict[str, Any]) -> dict[str, Any]:
    """The certainty block (methods contract), or ``{"level": None}`` when not rated."""
    c = s.get("certainty") or {}
    level = c.get("level")
    if level not in SYMBOLS:
        return {"level": None, "symbols": "", "word": "Not rated", "downgrades": [], "upgrades": []}
    return {**c, "symbols": c.get("symbols") or SYMBOLS[level], "word": LEVEL_WORDS[level],
            "downgrades": list(c.get("downgrades") or []), "upgrades": list(c.get("upgrades") or [])}


def population_text(s: dict[str, Any], review_question_population: str = "children with relapsed or refractory B-ALL") -> str:
    """Who the statement is about, from the analysis' filter."""
    for key, values in (s.get("filter") or {}).items():
        if len(values) == 1 and (key, str(values[0])) in POPULATION:
            return POPULATION[(key, str(values[0]))]
    return review_question_population


def plain_language(s: dict[str, Any], primary: dict[str, Any] | None, certainty: dict[str, Any],
                   labels: Labels | None = None) -> str:
    """One sentence in GRADE's standard wording (Santesso et al. 2020)."""
    if primary is None or _num(primary.get("estimate")) is None:
        return "No estimate: no study reports this outcome."
    level = certainty.get("level")
    outcome = s.get("outcome", "")
    who = population_text(s)
    if s.get("kind") == "proportion":
        n = round(100 * primary["estimate"])
        verb = OUTCOME_VERBS.get(outcome) or f"have {_in_sentence(labels.outcome(outcome) if labels else outcome)}"
        if level == "very_low":
            return (f"We are very uncertain about the rate: about {n} in 100 {who} {verb} in the studies, "
                    f"but the true rate may be substantially different.")
        if level in _VERB_BY_LEVEL:
            adverb = _VERB_BY_LEVEL[level][0]
            return f"About {n} in 100 {who} {adverb}{verb} with blinatumomab."
        return f"About {n} in 100 {who} {verb} with blinatumomab (certainty not yet rated)."
    est, lb, ub = primary.get("estimate"), primary.get("ci_lb"), primary.get("ci_ub")
    what = _in_sentence(labels.outcome(outcome) if labels else outcome)
    if level == "very_low":
        return f"The evidence is very uncertain about the effect of blinatumomab on {what} compared with chemotherapy."
    tail = "" if level else " (certainty not yet rated)"
    if lb is not None and ub is not None and lb < 1 < ub:
        verb = {"high": "results", "moderate": "probably results"}.get(level or "", "may result")
        return f"Blinatumomab {verb} in little to no difference in {what} compared with chemotherapy{tail}."
    if s.get("kind") == "hazard_ratio":  # a hazard ratio below 1: fewer events, better survival
        third, base = ("improves", "improve") if est < 1 else ("worsens", "worsen")
    else:
        third, base = ("increases", "increase") if est > 1 else ("reduces", "reduce")
    verb = {"high": third, "moderate": f"probably {third}"}.get(level or "", f"may {base}")
    return f"Blinatumomab {verb} {what} compared with chemotherapy{tail}."


def _absolute_per_1000(s: dict[str, Any], primary: dict[str, Any]) -> dict[str, Any] | None:
    """Risk with chemotherapy and with blinatumomab per 1000 (risk ratios: control risk x RR).

    The methods layer's ``certainty.sof`` numbers are used where present (one computation)."""
    if s.get("kind") == "hazard_ratio":
        return _absolute_time_to_event(s, primary)
    if s.get("kind") != "risk_ratio":
        return None
    sof = (s.get("certainty") or {}).get("sof") or {}
    if sof.get("per") == 1000 and sof.get("control_risk") is not None and sof.get("difference_ci"):
        return {"control": round(sof["control_risk"]), "blina": round(sof["risk"]), "diff": round(sof["difference"]),
                "diff_lb": round(sof["difference_ci"][0]), "diff_ub": round(sof["difference_ci"][1]),
                "source": sof.get("control_risk_source", "")}
    rows = s.get("rows") or []
    ctl_e = sum(r.get("control_events") or 0 for r in rows)
    ctl_n = sum(r.get("control_total") or 0 for r in rows)
    if not ctl_n:
        return None
    base = ctl_e / ctl_n
    rr, lb, ub = (primary.get(k) for k in ("estimate", "ci_lb", "ci_ub"))
    if None in (rr, lb, ub):
        return None
    per = lambda v: round(1000 * min(1.0, v))  # noqa: E731
    diff = lambda v: round(1000 * (min(1.0, base * v) - base))  # noqa: E731
    return {"control": per(base), "blina": per(base * rr), "diff": diff(rr), "diff_lb": diff(lb), "diff_ub": diff(ub)}


def _absolute_time_to_event(s: dict[str, Any], primary: dict[str, Any]) -> dict[str, Any] | None:
    """Events per 1000 by a time point from the control arm's survival and the hazard ratio:
    risk with blinatumomab = 1 - S_control(t) ** HR (Skoetz N, Goldkuhle M, van Dalen EC, et al.
    GRADE guidance 27: how to calculate absolute effects for time-to-event outcomes in summary of
    findings tables and Evidence Profiles. J Clin Epidemiol 2020;118:124-131)."""
    base = s.get("control_survival") or {}
    surv = _num(base.get("pct"))
    hr, lb, ub = (_num(primary.get(k)) for k in ("estimate", "ci_lb", "ci_ub"))
    if surv is None or None in (hr, lb, ub) or not 0 < surv < 100:
        return None
    sc = surv / 100
    risk = lambda h: 1000 * (1 - sc ** h)  # noqa: E731
    control = 1000 * (1 - sc)
    return {"control": round(control), "blina": round(risk(hr)), "diff": round(risk(hr) - control),
            "diff_lb": round(risk(lb) - control), "diff_ub": round(risk(ub) - control),
            "source": f"events by {base.get('time_months', 0):g} months; control risk from {base.get('label', '')}",
            "anchor": base.get("anchor", "")}


def sof_rows(summaries: list[dict[str, Any]], labels: Labels | None = None) -> list[dict[str, Any]]:
    """The table's rows, in the analyses' order; footnotes numbered across the table."""
    out = []
    note_no = 0
    for s in summaries:
        primary = primary_of(s)
        cert = certainty_of(s)
        notes = []
        for d in cert["downgrades"]:
            note_no += 1
            lv = d.get("levels", 1)
            reason = humanize_text(d.get("reason", ""), labels) if labels is not None else symbols(d.get("reason", ""))
            notes.append({"n": note_no, "text": f"{DOMAIN_WORDS.get(d.get('domain'), str(d.get('domain', '')).replace('_', ' ').capitalize())}: "
                                                f"downgraded {'two levels' if lv == 2 else 'one level'}: {reason}."})
        for d in cert["upgrades"]:
            note_no += 1
            notes.append({"n": note_no, "text": f"Upgraded: {symbols(d.get('reason', d.get('domain', '')))}"})
        kind = s.get("kind")
        row: dict[str, Any] = {
            "id": s["id"], "title": symbols(s.get("title", "")), "kind": kind, "k": s.get("k", 0),
            "patients": s.get("patients", 0), "events": s.get("events"),
            "population": population_text(s), "primary": primary, "certainty": cert, "footnotes": notes,
            "method": (primary or {}).get("label") or METHOD_LABELS.get((primary or {}).get("method", ""), ""),
            # GRADE's standard wording (Santesso et al. 2020), from the certainty level and the estimate
            "plain": plain_language(s, primary, cert, labels),
            "absolute": _absolute_per_1000(s, primary) if primary else None,
            "primary_for_outcome": s.get("primary_for_outcome", True) is not False,
        }
        if primary and _num(primary.get("estimate")) is not None:
            fmt, head = (pct, None) if kind == "proportion" else (ratio, "HR" if kind == "hazard_ratio" else "RR")
            est = primary["estimate"]
            row["estimate_text"] = f"{100 * est:.0f} per 100" if head is None else f"{head} {ratio(est)}"
            row["estimate_pct"] = fmt(est)
            row["ci_text"] = f"{fmt(primary.get('ci_lb'))} to {fmt(primary.get('ci_ub'))}"
            row["pi_text"] = (f"{fmt(primary['pi_lb'])} to {fmt(primary['pi_ub'])}"
                              if _num(primary.get("pi_lb")) is not None else "not estimable")
        else:
            row.update(estimate_text="no estimate", estimate_pct="–", ci_text="", pi_text="")
        out.append(row)
    return out


def _csv_cell(value: Any) -> Any:
    """Neutralise CSV formula injection (OWASP): text starting with = + - @ tab or CR gets a leading '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV text (RFC 4180, CRLF line ends) with every text cell neutralised."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # CRLF: a CR or LF inside a cell is then quoted
    w.writerow([_csv_cell(h) for h in header])
    for r in rows:
        w.writerow([_csv_cell(v) if isinstance(v, str) else ("" if v is None else v) for v in r])
    return buf.getvalue()


def sof_csv(rows: list[dict[str, Any]]) -> str:
    """The summary-of-findings table as CSV (full-precision estimates, certainty, statement)."""
    header = ["analysis", "outcome", "population", "studies", "patients", "events", "primary_method",
              "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "certainty", "downgrades", "plain_language"]
    out = []
    for r in rows:
        p = r["primary"] or {}
        out.append([r["id"], r["title"], r["population"], r["k"], r["patients"], r["events"], r["method"],
                    p.get("estimate"), p.get("ci_lb"), p.get("ci_ub"), p.get("pi_lb"), p.get("pi_ub"),
                    r["certainty"]["word"], " | ".join(n["text"] for n in r["footnotes"]), r["plain"]])
    return write_csv(header, out)
