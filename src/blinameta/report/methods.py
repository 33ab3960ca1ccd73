"""The methods page, generated from the same review, rules and model specifications that drive
the fits (so it cannot drift from what was done)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from blinameta.report.labels import (
    MEASURE_LABELS,
    METHOD_LABELS,
    TEST_LABELS,
    Labels,
    prior_text,
    symbols,
)
from blinameta.report.sof import METHOD_LABELS as PRIMARY_LABELS
from blinameta.report.sof import certainty_of, primary_of

__all__ = ["methods_context", "readme_rules"]


def readme_rules(evidence_dir: Path) -> list[dict[str, str]]:
    """The extraction rules: the bullets of the "Rules" section of ``evidence/README.md``."""
    path = Path(evidence_dir) / "README.md"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^## Rules\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if not m:
        return []
    out = []
    for bullet in re.split(r"^- ", m.group(1), flags=re.M)[1:]:
        body = " ".join(bullet.split())
        head = re.match(r"\*\*(.+?)\*\*\s*(.*)", body)
        title, rest = (head.group(1), head.group(2)) if head else ("", body)
        out.append({"title": _code_spans(title), "text": _code_spans(rest).replace("**", "")})
    return out


def _code_spans(text: str) -> str:
    """Code spans of the README in words: YAML snippets dropped, field names spelled out."""
    def span(m: re.Match) -> str:
        code = m.group(1)
        if any(ch in code for ch in ":{}[]="):
            return ""
        return code.replace("_", " ").replace(".", " ")

    out = re.sub(r"`([^`]*)`", span, text)
    out = re.sub(r"\(\s*(,\s*)*\)", "", out)  # parentheses left empty
    out = re.sub(r"\s+([,.;])", r"\1", out)
    return re.sub(r"\s{2,}", " ", out).strip()


def methods_context(evidence: Any, specs: Any, summaries: list[dict[str, Any]], meta: dict[str, Any],
                    labels: Labels) -> dict[str, Any]:
    """Everything the methods page prints."""
    review = evidence.review
    by_id = {s["id"]: s for s in summaries}
    analyses = []
    for spec in specs:
        s = by_id.get(spec.id, {})
        p = primary_of(s) or {}
        f = spec.frequentist
        analyses.append({
            "id": spec.id, "title": symbols(spec.title),
            "population": "; ".join(f"{labels.moderator(k)}: {', '.join(labels.level(k, v) for v in vals)}"
                                    for k, vals in spec.filter.items()) or "all cohorts reporting the outcome",
            "measure": (MEASURE_LABELS.get(f.measure, f.measure) if spec.kind == "proportion" else
                        "log hazard ratio (standard error from the published 95% CI)" if spec.kind == "hazard_ratio"
                        else "log risk ratio"),
            "frequentist": f"{METHOD_LABELS.get(f.method, f.method)}; {TEST_LABELS.get(f.test, f.test)}; {f.level:g}% intervals",
            "bayes": (f"μ ~ {prior_text(spec.bayes.prior_mu)}; τ ~ {prior_text(spec.bayes.prior_tau)}"
                      if spec.bayes.enabled else "not fitted"),
            "primary": p.get("label") or PRIMARY_LABELS.get(p.get("method", ""), "—"),
            "subgroups": ", ".join(labels.moderator(m) for m in spec.subgroups) or "none",
            "moderators": ", ".join(labels.moderator(m) for m in spec.moderators) or "none",
            "prefer": ", ".join(spec.prefer) if spec.prefer else "the larger, then the more recent report",
            "certainty": certainty_of(s)["word"],
            "framework": (s.get("certainty") or {}).get("framework", ""),
        })
    sources = [{"key": k, "citation": " ".join(src.citation.split()), "kind": src.kind or "", "doi": src.doi or ""}
               for k, src in review.sources.items()]
    outcomes = [{"label": o.label, "description": symbols(" ".join(o.description.split())),
                 "families": dict(getattr(o, "families", None) or {})} for o in review.outcomes.values()]
    tools = []
    for key, tool in (getattr(review, "risk_of_bias_tools", None) or {}).items():
        tools.append({"key": key, "label": getattr(tool, "label", key), "reference": getattr(tool, "reference", ""),
                      "rule": getattr(tool, "rule", "")})
    return {
        "question": symbols(review.question), "sources": sources, "outcomes": outcomes, "analyses": analyses,
        "rules": readme_rules(evidence.directory), "versions": meta.get("versions", {}), "rob_tools": tools,
    }
