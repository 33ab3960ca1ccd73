"""Risk of bias: the rule that maps a tool's item judgements onto one common scale.

Three tools are supported, each defined (items, judgements, the rule in words) in the review
file's ``risk_of_bias_tools``; this module applies the rules in code so that the validator can
compare them with the overall judgement a curator states:

- ``rob2``: the Cochrane risk-of-bias tool for randomized trials, judged per result
  (Sterne et al. 2019);
- ``jbi_case_series``: the JBI critical appraisal checklist for case series (Munn et al. 2020);
- ``minors``: the non-comparative items of MINORS (Slim et al. 2003).

The common scale is ``low`` / ``some_concerns`` / ``high``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

__all__ = ["Overall", "RULES", "overall_from_items", "rob2_overall", "jbi_overall", "minors_overall",
           "worst"]

Overall = Literal["low", "some_concerns", "high"]
_ORDER = {"low": 0, "some_concerns": 1, "high": 2}


def rob2_overall(judgements: Iterable[str]) -> Overall:
    """Overall RoB 2 judgement of one result from its five domain judgements.

    Low if every domain is low; high if any domain is high; otherwise some concerns.
    ``no_information`` counts as some concerns. The guidance also allows "high" when several
    domains have some concerns that substantially lower confidence; that is a judgement, not a
    rule, and is stated by the curator as an override.

    References
    ----------
    Sterne JAC, Savovic J, Page MJ, et al. RoB 2: a revised tool for assessing risk of bias in
    randomised trials. BMJ 2019;366:l4898 (Table 3, "Approach to reaching an overall risk of
    bias judgement").
    """
    values = [str(j) for j in judgements]
    if any(v == "high" for v in values):
        return "high"
    if values and all(v == "low" for v in values):
        return "low"
    return "some_concerns"


def jbi_overall(judgements: Iterable[str]) -> Overall:
    """Overall judgement from the ten JBI case-series items.

    The items judged "no" or "unclear" among the applicable ones (``not_applicable`` is not
    counted) are counted: 0-2 low, 3-4 some concerns, 5 or more high. The JBI tool itself gives
    no score; this cut-off is the review's rule, written in ``review.yaml``.

    References
    ----------
    Munn Z, Barker TH, Moola S, et al. Methodological quality of case series studies: an
    introduction to the JBI critical appraisal tool. JBI Evid Synth 2020;18:2127-33.
    """
    failing = sum(1 for j in judgements if str(j) in ("no", "unclear"))
    if failing <= 2:
        return "low"
    if failing <= 4:
        return "some_concerns"
    return "high"


def minors_overall(judgements: Iterable[int | str]) -> Overall:
    """Overall judgement from the eight non-comparative MINORS items, scored 0, 1 or 2.

    ``no_information`` scores 0. The total (of 16): 13 or more low, 9-12 some concerns, 8 or
    less high.

    References
    ----------
    Slim K, Nini E, Forestier D, et al. Methodological index for non-randomized studies
    (MINORS): development and validation of a new instrument. ANZ J Surg 2003;73:712-6.
    """
    total = sum(j for j in judgements if isinstance(j, int) and not isinstance(j, bool))
    if total >= 13:
        return "low"
    if total >= 9:
        return "some_concerns"
    return "high"


#: Tool key of the review file -> the rule.
RULES = {"rob2": rob2_overall, "jbi_case_series": jbi_overall, "minors": minors_overall}


def overall_from_items(tool: str, judgements: Iterable[int | str]) -> Overall | None:
    """The overall judgement the tool's rule gives for these item judgements.

    Parameters
    ----------
    tool
        A key of :data:`RULES` (``rob2``, ``jbi_case_series``, ``minors``).
    judgements
        The judgement of every item (for RoB 2: the five domains of one result).

    Returns
    -------
    ``"low"``, ``"some_concerns"`` or ``"high"``; ``None`` for a tool without a coded rule.
    """
    rule = RULES.get(tool)
    return None if rule is None else rule(list(judgements))


def worst(overalls: Iterable[str]) -> Overall | None:
    """The worst of several overall judgements (RoB 2: a publication's results)."""
    values = [o for o in overalls if o in _ORDER]
    return max(values, key=_ORDER.__getitem__) if values else None  # type: ignore[return-value]
