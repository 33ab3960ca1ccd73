"""Human wording for the report: one label per code, quotes cleaned for reading, numbers.

Codes (outcome, moderator and level codes, model settings) never reach a page: every code is
replaced by the label ``review.yaml`` defines for it, or by the fixed wording below for the few
codes that belong to the software rather than to the review. Quotes from the converted sources
keep their verbatim text in ``evidence/``; for display only, LaTeX-like fragments of the PDF
conversion (``$\\geq 5\\%$``) are rendered as the characters they stand for (``≥5%``).
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "humanize_text",
    "clean_quote", "symbols", "prior_text", "study_display_label", "trial_name", "Labels",
    "pct", "ratio", "pvalue", "prob", "MEASURE_LABELS", "DESIGN_LABELS", "SETTING_LABELS",
]

MEASURE_LABELS = {
    "PLO": "logit-transformed proportion", "PR": "raw proportion", "PLN": "log proportion",
    "PAS": "arcsine-transformed proportion", "PFT": "Freeman-Tukey double-arcsine proportion",
}
METHOD_LABELS = {
    "REML": "restricted maximum likelihood (REML)", "DL": "DerSimonian-Laird", "ML": "maximum likelihood",
    "PM": "Paule-Mandel", "EB": "empirical Bayes", "HE": "Hedges", "SJ": "Sidik-Jonkman",
    "HS": "Hunter-Schmidt", "EE": "common effect (inverse variance)", "FE": "common effect (inverse variance)",
}
TEST_LABELS = {"knha": "Hartung-Knapp-Sidik-Jonkman t test", "z": "Wald z test", "t": "t test"}
DESIGN_LABELS = {
    "randomized": "randomized trial", "single_arm_trial": "single-arm trial", "expanded_access": "expanded-access study",
    "retrospective_cohort": "retrospective cohort", "prospective_cohort": "prospective cohort",
    "case_series": "case series", "case_report": "case report", "systematic_review": "systematic review",
}
SETTING_LABELS = {"clinical_trial": "clinical trial", "real_world": "real world", "compassionate_use": "compassionate use"}
DENOMINATOR_LABELS = {
    "all_treated": "all treated", "responders": "patients in remission", "assessed": "patients assessed",
    "overt_disease": "patients with ≥5% blasts", "mrd_only": "patients with <5% blasts",
    "relapsed": "patients who relapsed", "safety_set": "safety set",
}

# LaTeX fragments of the converted PDFs -> characters
_LATEX = [
    (r"\\geqslant", "≥"), (r"\\leqslant", "≤"), (r"\\geq", "≥"), (r"\\leq", "≤"), (r"\\ge", "≥"), (r"\\le", "≤"),
    (r"\\times", "×"), (r"\\pm", "±"), (r"\\%", "%"), (r"\\mu", "µ"), (r"\\alpha", "α"), (r"\\beta", "β"),
    (r"\\gamma", "γ"), (r"\\chi", "χ"), (r"\\tau", "τ"), (r"\\sim", "~"), (r"\\approx", "≈"), (r"\\cdot", "·"),
    (r"\\rightarrow", "→"), (r"\\to", "→"), (r"\\neq", "≠"), (r"\\,", " "), (r"\\;", " "), (r"\\ ", " "),
    (r"\\mathrm", ""), (r"\\text", ""), (r"\\left", ""), (r"\\right", ""),
]
_SUP = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")


def _math(fragment: str) -> str:
    s = fragment
    s = re.sub(r"\^\{([^}]*)\}", lambda m: m.group(1).translate(_SUP), s)
    s = re.sub(r"\^(-?\d)", lambda m: m.group(1).translate(_SUP), s)
    for pat, rep in _LATEX:
        s = re.sub(pat + r"(?![A-Za-z])", rep, s)
    s = s.replace("{", "").replace("}", "").replace("_", "")
    s = re.sub(r"\s*([≥≤<>=±×])\s*", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


def clean_quote(text: Any) -> str:
    """A quote as a reader should see it: ``$\\geq 5\\%$`` -> ``≥5%``; the YAML keeps the original."""
    if text is None:
        return ""
    s = str(text)
    # only $...$ that holds math (a command, a script, a relation) is math; "$5 and $6" stays as it is
    s = re.sub(r"\$([^$]{1,80})\$", lambda m: _math(m.group(1)) if re.search(r"[\\^_<>=]", m.group(1))
               else m.group(0), s)
    if "\\" in s:
        s = _math_inline(s)
    return symbols(s)


def _math_inline(s: str) -> str:
    for pat, rep in _LATEX:
        s = re.sub(pat + r"(?![A-Za-z])", rep, s)
    return s


def symbols(text: Any) -> str:
    """``>=`` -> ``≥``, ``<=`` -> ``≤`` (plain-text spellings of the review's codes)."""
    if text is None:
        return ""
    return str(text).replace(">=", "≥").replace("<=", "≤")


def prior_text(spec_text: Any) -> str:
    """``normal:0:1.5`` -> ``normal(mean 0, SD 1.5)``; ``half_normal:0.5`` -> ``half-normal(SD 0.5)``."""
    if spec_text is None:
        return ""
    s = str(spec_text)
    parts = s.split(":")
    name = parts[0].replace("_", "-")
    args = parts[1:]
    if name == "normal" and len(args) == 2:
        return f"normal(mean {args[0]}, SD {args[1]})"
    if name in ("half-normal", "half-cauchy", "half-t") and len(args) >= 1:
        return f"{name}(scale {args[-1]})"
    if args:
        return f"{name}({', '.join(args)})"
    return s


_NOT_TRIAL = {"ALL", "MRD", "HSCT", "BCP", "CD19", "CAR", "CRS", "AIEOP", "B-ALL", "USA", "FDA", "II", "III", "IV",
              "PH", "ICANS", "NCI", "COG"}


def trial_name(pub: Any) -> str:
    """The trial's name: a ``trial`` field if the publication has one, else an acronym in its title.

    An acronym is a word of at least four capitals or capitals and digits (RIALTO, AALL1331) that is
    not a disease or method abbreviation.
    """
    name = getattr(pub, "trial", None) or getattr(pub, "trial_name", None)
    if name:
        return str(name)
    for word in re.findall(r"\b[A-Z][A-Z0-9]{3,}\b", str(getattr(pub, "title", "") or "")):
        if word not in _NOT_TRIAL:
            return word
    return ""


def study_display_label(pub: Any, base: str | None = None) -> str:
    """``Author Year (trial name)`` as RevMan and JAMA label studies."""
    from blinameta.analysis.select import study_label

    label = base or study_label(pub.first_author, pub.year)
    name = trial_name(pub)
    return f"{label} ({name})" if name and name not in label else label


class Labels:
    """Code -> label lookups from the review (outcomes, moderators and their levels)."""

    def __init__(self, review: Any) -> None:
        self.outcomes = {code: o.label for code, o in review.outcomes.items()}
        self.moderators = {code: m.label for code, m in review.moderators.items()}
        self.levels = {code: {k: symbols(v) for k, v in (m.levels or {}).items()} for code, m in review.moderators.items()}
        self.moderators.setdefault("setting", "Setting")
        self.moderators.setdefault("design", "Design")
        self.levels.setdefault("setting", dict(SETTING_LABELS))
        self.levels.setdefault("design", dict(DESIGN_LABELS))
        fam = {}
        for code, o in review.outcomes.items():
            for fid, flabel in (getattr(o, "families", None) or {}).items():
                fam[fid] = flabel
        self.families = fam

    def outcome(self, code: Any) -> str:
        return self.outcomes.get(str(code), str(code).replace("_", " "))

    def moderator(self, code: Any) -> str:
        code = str(code)
        if code in self.moderators:
            return self.moderators[code]
        return {"prior_hsct_pct": "Share with prior HSCT (%)", "share_ge5": "Share with ≥5% blasts",
                "share_first_relapse": "Share in first relapse", "share_post_hsct": "Share relapsed after HSCT",
                "share_refractory": "Share refractory", "share_second_or_later": "Share in second or later relapse",
                "share_ge25": "Share with ≥25% blasts"}.get(code, code.replace("_", " "))

    def level(self, moderator: Any, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "not reported"
        return self.levels.get(str(moderator), {}).get(str(value), symbols(str(value).replace("_", " ")))

    def coefficient(self, name: str) -> str:
        """A meta-regression coefficient (``intrcpt``, ``settingreal_world``) in words."""
        if name in ("intrcpt", "intercept"):
            return "Intercept (reference level)"
        for mod in sorted(self.levels, key=len, reverse=True):
            if name.startswith(mod):
                rest = name[len(mod):]
                if rest in self.levels[mod]:
                    return f"{self.moderator(mod)}: {self.level(mod, rest)} vs reference"
                if not rest:
                    return self.moderator(mod)
        return self.moderator(name)


_FIELD_WORDS = [
    (re.compile(r"\bn_ge(\d+)\b"), r"n(≥\1%)"), (re.compile(r"\bn_lt(\d+)\b"), r"n(<\1%)"),
    (re.compile(r"\bpct_ge(\d+)\b"), r"%(≥\1%)"), (re.compile(r"\bpct_lt(\d+)\b"), r"%(<\1%)"),
    (re.compile(r"\bge(\d+)\b"), r"≥\1%"), (re.compile(r"\blt(\d+)\b"), r"<\1%"),
    (re.compile(r"\bmedian_pct\b"), "median blast %"), (re.compile(r"\bprior_hsct\b"), "prior HSCT"),
]


def humanize_text(text: Any, labels: "Labels | None" = None, cohorts: dict[str, str] | None = None) -> str:
    """Free text of the validator or a curator, with field and outcome codes in words.

    ``n_ge5`` -> ``n(≥5%)``; ``mrd_neg in lt5`` -> ``MRD negativity in <cohort label>``.
    """
    s = clean_quote(text)
    if labels is not None:
        def outcome_in(m: re.Match) -> str:
            cohort = (cohorts or {}).get(m.group(2), m.group(2).replace("_", " "))
            return f"{labels.outcome(m.group(1))} in {symbols(cohort)}"

        codes = "|".join(sorted(map(re.escape, labels.outcomes), key=len, reverse=True))
        if codes:
            s = re.sub(rf"\b({codes}) in ([A-Za-z0-9_]+)", outcome_in, s)
        fams = {k: v for k, v in labels.families.items() if k not in ("mixed",)}
        if fams:  # definition families: "cycle_1 (2)" -> "CR after the first cycle (2)"
            names = "|".join(sorted(map(re.escape, fams), key=len, reverse=True))
            s = re.sub(rf"\b({names})\b(?= \()", lambda m: fams[m.group(1)], s)
        for code in sorted(labels.levels, key=len, reverse=True):  # moderator codes and their levels
            s = re.sub(rf"\b{code}\b", labels.moderator(code).lower(), s)
        for mod, levels in labels.levels.items():
            for value, text in levels.items():
                if "_" in value or re.fullmatch(r"(ge|lt)\d+", value):
                    s = re.sub(rf"\b{re.escape(value)}\b", text, s)
    for pattern, repl in _FIELD_WORDS:
        s = pattern.sub(repl, s)
    return s


# --------------------------------------------------------------------------- numbers


def _ok(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def pct(v: Any, digits: int = 1) -> str:
    """A fraction as a percentage with one decimal (``0.538`` -> ``53.8%``)."""
    return f"{100 * v:.{digits}f}%" if _ok(v) else "–"


def ratio(v: Any) -> str:
    """A ratio with two decimals, or 3 significant digits far from 1."""
    if not _ok(v):
        return "–"
    return f"{v:.2f}" if 0.1 <= abs(v) < 10 else f"{v:.3g}"


def pvalue(p: Any) -> str:
    """``p = 0.013``; ``p < 0.001``."""
    if not _ok(p):
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def prob(p: Any) -> str:
    """A posterior probability: ``<0.001``, ``>0.999`` or three decimals."""
    if not _ok(p):
        return "–"
    if p < 0.001:
        return "<0.001"
    if p > 0.999:
        return ">0.999"
    return f"{p:.3f}"
