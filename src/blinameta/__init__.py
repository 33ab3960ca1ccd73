"""blinameta: evidence synthesis with metafor's numbers, Bayesian models in PyMC and a living report.

Use it from Python as a meta-analysis library::

    import blinameta as bm
    es = bm.escalc("PLO", xi=[27, 58, 6, 18], ni=[70, 98, 13, 25])
    res = bm.rma(es.yi, es.vi, method="REML", test="knha")
    print(res)              # metafor's print.rma
    res.to_frame()          # the model results as a DataFrame
    fig = res.forest()      # a matplotlib Figure

Names follow metafor's (``escalc``, ``rma``, ``rma_glmm`` for ``rma.glmm``, ``predict``,
``permutest``, ``leave1out``, ``influence``, ``regtest``, ``ranktest``, ``trimfill``). Everything
is imported on first use, so ``import blinameta`` is fast and PyMC loads only for Bayesian fits.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from blinameta.errors import UserError

try:
    __version__ = version("blinameta")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

#: public name -> module that defines it (imported lazily, PEP 562).
_EXPORTS: dict[str, str] = {
    # frequentist engine (metafor)
    "escalc": "blinameta.frequentist.escalc",
    "transf_proportion": "blinameta.frequentist.escalc",
    "rma": "blinameta.frequentist.rma",
    "rma_batch": "blinameta.frequentist.rma",
    "RmaResult": "blinameta.frequentist.rma",
    "METAFOR_CONTROL": "blinameta.frequentist.rma",
    "rma_glmm": "blinameta.frequentist.glmm",
    "GlmmResult": "blinameta.frequentist.glmm",
    "rma_mh": "blinameta.frequentist.mh",
    "rma_peto": "blinameta.frequentist.peto",
    "MhResult": "blinameta.frequentist.mh",
    "peters_test": "blinameta.frequentist.diagnostics",
    "predict": "blinameta.frequentist.predict",
    "confint_tau2": "blinameta.frequentist.confint",
    "permutest": "blinameta.frequentist.permutest",
    "subgroup": "blinameta.frequentist.subgroup",
    "leave1out": "blinameta.frequentist.diagnostics",
    "influence": "blinameta.frequentist.diagnostics",
    "cumul": "blinameta.frequentist.diagnostics",
    "baujat": "blinameta.frequentist.diagnostics",
    "regtest": "blinameta.frequentist.diagnostics",
    "ranktest": "blinameta.frequentist.diagnostics",
    "trimfill": "blinameta.frequentist.diagnostics",
    # Bayesian
    "bayes_meta": "blinameta.api",
    # reviews
    "load_evidence": "blinameta.api",
    "load_models": "blinameta.api",
    "run_analysis": "blinameta.api",
    "query": "blinameta.analysis.query",
    # trial designs
    "assurance": "blinameta.design",
    "assurance_test": "blinameta.design",
    "sample_size_for_assurance": "blinameta.design",
    "simon_two_stage": "blinameta.design",
    "predictive_monitoring": "blinameta.design",
    "safety_boundaries": "blinameta.design",
    "predicted_counts": "blinameta.design",
}

__all__ = ["UserError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'blinameta' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
