"""The public Python API: the functions ``import blinameta as bm`` exposes beside the engine.

The frequentist engine (``bm.escalc``, ``bm.rma``, ``bm.rma_glmm``, ``bm.predict``,
``bm.permutest``, ``bm.leave1out``, ...) is re-exported unchanged from
:mod:`blinameta.frequentist`; this module adds the entry points that work on whole reviews
(:func:`load_evidence`, :func:`load_models`, :func:`run_analysis`) and :func:`bayes_meta`, a
one-call Bayesian random-effects meta-analysis of a user's own data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from blinameta.analysis.run import AnalysisResult
    from blinameta.analysis.spec import AnalysisSpec
    from blinameta.bayes.results import BayesResult
    from blinameta.evidence.loader import Evidence

__all__ = ["load_evidence", "load_models", "run_analysis", "bayes_meta"]


def load_evidence(directory: str | Path = "evidence") -> Evidence:
    """Load and validate an evidence folder (``review.yaml`` and one YAML per publication).

    Returns
    -------
    Evidence
        The validated records; ``Evidence.table()`` style helpers live in
        :mod:`blinameta.evidence.tidy`.

    Raises
    ------
    blinameta.UserError
        If any file has an error (the message lists them with file, line and field).
    """
    from blinameta.evidence.loader import load_evidence_or_fail

    return load_evidence_or_fail(directory)


def load_models(directory: str | Path = "models", evidence: Evidence | None = None,
                ) -> dict[str, AnalysisSpec]:
    """Load the analysis specifications of ``models/``, checked against the evidence.

    Returns a dict ``{analysis id: AnalysisSpec}`` in report order.
    """
    from blinameta.analysis.spec import load_specs_or_fail

    if evidence is None:
        evidence = load_evidence(Path(directory).parent / "evidence")
    specs, _ = load_specs_or_fail(directory, evidence.review, {p.id for p in evidence.publications})
    return {spec.id: spec for spec in specs}


def run_analysis(analysis: str | AnalysisSpec, *, evidence: Evidence | str | Path = "evidence",
                 models: str | Path = "models") -> AnalysisResult:
    """Select the studies of one analysis and fit it (as ``blinameta report`` does).

    Parameters
    ----------
    analysis : the id of a specification in ``models`` (e.g. ``"cr_overt"``) or an ``AnalysisSpec``.
    evidence : a loaded :class:`Evidence` or the folder to load it from.
    models : the folder of the specifications (used when ``analysis`` is an id).
    """
    from blinameta.analysis.run import run_analysis as _run
    from blinameta.errors import UserError

    if not hasattr(evidence, "publications"):
        evidence = load_evidence(evidence)  # type: ignore[arg-type]
    if isinstance(analysis, str):
        specs = load_models(models, evidence)  # type: ignore[arg-type]
        if analysis not in specs:
            raise UserError(f"no analysis {analysis!r} in {models}; choose from: {', '.join(specs)}")
        analysis = specs[analysis]
    return _run(evidence, analysis)  # type: ignore[arg-type]


def bayes_meta(
    events: Sequence[int] | None = None,
    total: Sequence[int] | None = None,
    *,
    yi: Sequence[float] | None = None,
    vi: Sequence[float] | None = None,
    study: Sequence[str] | None = None,
    mods: Mapping[str, Sequence] | None = None,
    prior_mu: str | None = None,
    prior_tau: str | None = None,
    prior_coef: str | None = None,
    exact: bool = False,
    **fit_options: Any,
) -> BayesResult:
    """Bayesian random-effects meta-analysis of proportions or of generic effects.

    With ``events`` and ``total``: the binomial-normal model on the logit scale (exact binomial
    likelihood, no continuity correction). With ``yi`` and ``vi``: the normal-normal model.
    ``exact=True`` integrates the posterior by quadrature (no moderators); otherwise PyMC's NUTS
    samples it, the convergence gate checks R-hat, ESS and divergences, and the result keeps the
    ArviZ inference data in ``.idata``.

    Parameters
    ----------
    prior_mu, prior_tau, prior_coef : prior strings such as ``"normal:0:1.5"`` and
        ``"half_normal:0.5"`` (see :func:`blinameta.bayes.parse_prior`; defaults there).
    fit_options : passed to :func:`blinameta.bayes.fit` (draws, tune, chains, seed, ...) or to
        :func:`blinameta.bayes.fit_exact` (thresholds, grid sizes).

    Returns
    -------
    BayesResult
        ``summary_frame()`` gives the posterior summaries; ``to_dict()`` a JSON-ready form.
    """
    from blinameta.bayes import binomial_normal, fit, fit_exact, normal_normal
    from blinameta.errors import UserError

    if (events is None) != (total is None) or (yi is None) != (vi is None) or (
            (events is None) == (yi is None)):
        raise UserError("give either events and total, or yi and vi")
    if events is not None:
        spec = binomial_normal(events, total, study=study, mods=mods, prior_mu=prior_mu,
                               prior_tau=prior_tau, prior_coef=prior_coef)
    else:
        spec = normal_normal(yi, vi, study=study, mods=mods, prior_mu=prior_mu,
                             prior_tau=prior_tau, prior_coef=prior_coef)
    if exact:
        return fit_exact(spec, **fit_options)
    return fit(spec, **fit_options)
