"""Analyses: specifications (models/*.yaml), study selection and fitting."""

from __future__ import annotations

from blinameta.analysis.run import AnalysisResult, run_analysis
from blinameta.analysis.select import Excluded, Selection, select
from blinameta.analysis.spec import AnalysisSpec, load_specs, load_specs_or_fail, methods_rules, primary_spec

__all__ = [
    "AnalysisResult",
    "AnalysisSpec",
    "Excluded",
    "Selection",
    "load_specs",
    "load_specs_or_fail",
    "methods_rules",
    "primary_spec",
    "run_analysis",
    "select",
]
