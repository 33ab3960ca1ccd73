"""Designing the next single-arm trial from the evidence.

One concept per module: the predictive distribution of a new cohort's rate
(:class:`Predictive`), assurance of the planned exact test and sample size
(:mod:`~blinameta.design.assurance`), Simon's two-stage designs (:mod:`~blinameta.design.simon`),
Lee & Liu's predictive-probability monitoring (:mod:`~blinameta.design.monitoring`), Bayesian
toxicity stopping boundaries (:mod:`~blinameta.design.safety`) and predicted counts
(:mod:`~blinameta.design.counts`). Every result is a frozen dataclass with ``to_dict()`` and
``to_text()`` (Markdown tables to paste into a protocol).
"""

from blinameta.design._predictive import Predictive, as_predictive
from blinameta.design.assurance import (
    DEFAULT_N_MAX,
    AssuranceTest,
    SampleSize,
    assurance,
    assurance_test,
    critical_responses,
    sample_size_for_assurance,
)
from blinameta.design.counts import CountPrediction, PredictedCounts, predicted_counts
from blinameta.design.monitoring import MonitoringDesign, predictive_monitoring, predictive_probability
from blinameta.design.safety import SafetyBoundaries, safety_boundaries
from blinameta.design.simon import SimonDesign, SimonResult, simon_two_stage, single_stage_n

__all__ = [
    "Predictive", "as_predictive",
    "DEFAULT_N_MAX", "AssuranceTest", "SampleSize", "assurance", "assurance_test", "critical_responses",
    "sample_size_for_assurance",
    "SimonDesign", "SimonResult", "simon_two_stage", "single_stage_n",
    "MonitoringDesign", "predictive_monitoring", "predictive_probability",
    "SafetyBoundaries", "safety_boundaries",
    "CountPrediction", "PredictedCounts", "predicted_counts",
]
