"""Bayesian random-effects models: the description (:class:`ModelSpec`) and its PyMC form.

Two likelihoods, both with study effects ``theta_i = mu + x_i'beta + tau * z_i``,
``z_i ~ N(0, 1)`` (non-centred; Papaspiliopoulos, Roberts & Sköld 2007, *Stat. Sci.* 22:59):

``binomial_normal``
    ``events_i ~ Binomial(total_i, invlogit(theta_i))`` — the exact-likelihood random-effects
    model for proportions (Hamza et al. 2008, *J. Clin. Epidemiol.* 61:41; metafor's
    ``rma.glmm(measure="PLO")``).
``normal_normal``
    ``yi ~ N(theta_i, vi)`` with known sampling variances ``vi`` (e.g. log hazard ratios).

Moderators (meta-regression): continuous columns enter as they are (``mu`` is then the value at
0); categorical columns become treatment dummies with the first level in sorted order as the
reference, as R's ``factor``. Coefficients have independent normal priors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from blinameta.bayes.priors import (
    DEFAULT_PRIOR_COEF,
    DEFAULT_PRIOR_MU,
    DEFAULT_PRIOR_MU_GENERIC,
    DEFAULT_PRIOR_TAU,
    Prior,
    parse_prior,
)
from blinameta.errors import UserError

__all__ = [
    "KINDS",
    "PARAMETERIZATIONS",
    "ModelSpec",
    "binomial_normal",
    "build_model",
    "design_matrix",
    "normal_normal",
]

KINDS = ("binomial_normal", "normal_normal")
PARAMETERIZATIONS = ("non_centered", "centered")


@dataclass(frozen=True)
class ModelSpec:
    """Data and priors of one Bayesian random-effects analysis (no PyMC objects).

    Build it with :func:`binomial_normal` or :func:`normal_normal`, which validate the input.

    Attributes
    ----------
    kind : {"binomial_normal", "normal_normal"}
    study : tuple of str
        Study labels, used as the ``study`` coordinate.
    events, total : tuple of int, or None
        Counts of the binomial-normal model.
    yi, vi : tuple of float, or None
        Effects and known sampling variances of the normal-normal model.
    coef_names : tuple of str
        Names of the moderator coefficients (``beta``); empty without moderators.
    x : tuple of tuple of float
        Moderator design matrix without intercept, one row per study.
    prior_mu, prior_tau, prior_coef : Prior
    """

    kind: str
    study: tuple[str, ...]
    events: tuple[int, ...] | None = None
    total: tuple[int, ...] | None = None
    yi: tuple[float, ...] | None = None
    vi: tuple[float, ...] | None = None
    coef_names: tuple[str, ...] = ()
    x: tuple[tuple[float, ...], ...] = ()
    prior_mu: Prior = DEFAULT_PRIOR_MU
    prior_tau: Prior = DEFAULT_PRIOR_TAU
    prior_coef: Prior = DEFAULT_PRIOR_COEF
    mods: tuple[str, ...] = field(default=())

    @property
    def n_studies(self) -> int:
        return len(self.study)

    @property
    def has_mods(self) -> bool:
        return len(self.coef_names) > 0

    def design(self) -> np.ndarray:
        """The moderator design matrix, shape ``(n_studies, n_coef)``."""
        return np.asarray(self.x, dtype=float).reshape(self.n_studies, len(self.coef_names))

    def with_priors(
        self,
        *,
        prior_mu: Prior | str | None = None,
        prior_tau: Prior | str | None = None,
        prior_coef: Prior | str | None = None,
    ) -> ModelSpec:
        """A copy with some priors replaced (text priors are parsed)."""
        from dataclasses import replace

        return replace(
            self,
            prior_mu=self.prior_mu if prior_mu is None else parse_prior(prior_mu, what="prior of mu"),
            prior_tau=self.prior_tau
            if prior_tau is None
            else parse_prior(prior_tau, kind="scale", what="prior of tau"),
            prior_coef=self.prior_coef
            if prior_coef is None
            else parse_prior(prior_coef, what="prior of the coefficients"),
        )

    def to_dict(self) -> dict:
        """Plain-JSON form (also the data part of the cache key)."""
        return {
            "kind": self.kind,
            "study": list(self.study),
            "events": None if self.events is None else list(self.events),
            "total": None if self.total is None else list(self.total),
            "yi": None if self.yi is None else [float(v).hex() for v in self.yi],
            "vi": None if self.vi is None else [float(v).hex() for v in self.vi],
            "mods": list(self.mods),
            "coef_names": list(self.coef_names),
            "x": [[float(v).hex() for v in row] for row in self.x],
            "prior_mu": str(self.prior_mu),
            "prior_tau": str(self.prior_tau),
            "prior_coef": str(self.prior_coef),
        }

    def key_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _labels(study: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if study is None:
        return tuple(f"study {i + 1}" for i in range(k))
    labels = tuple(str(s) for s in study)
    if len(labels) != k:
        raise UserError(f"{len(labels)} study labels for {k} studies")
    if len(set(labels)) != k:
        raise UserError("study labels must be unique")
    return labels


def design_matrix(
    mods: Mapping[str, Sequence] | None, n_studies: int
) -> tuple[tuple[str, ...], np.ndarray]:
    """Moderator design matrix without intercept.

    Parameters
    ----------
    mods : mapping of str to sequence, or None
        Column name -> one value per study. A column whose values are all numbers (or numeric
        text) is continuous; any other column is categorical and becomes treatment dummies
        ``name[level]`` with the first level in sorted order as the reference.
    n_studies : int

    Returns
    -------
    names : tuple of str
    x : ndarray, shape (n_studies, len(names))

    Raises
    ------
    UserError
        For a column of the wrong length, a categorical column with one level, or a design
        that is not of full rank together with the intercept.
    """
    names: list[str] = []
    columns: list[np.ndarray] = []
    for name, values in (mods or {}).items():
        values = list(values)
        if len(values) != n_studies:
            raise UserError(f"moderator {name!r}: {len(values)} values for {n_studies} studies")
        numeric = _as_numeric(values)
        if numeric is not None:
            names.append(name)
            columns.append(numeric)
            continue
        levels = sorted({str(v) for v in values})
        if len(levels) < 2:
            raise UserError(f"moderator {name!r}: only one level ({levels[0]!r})")
        text = np.array([str(v) for v in values])
        for level in levels[1:]:
            names.append(f"{name}[{level}]")
            columns.append((text == level).astype(float))
    if not names:
        return (), np.zeros((n_studies, 0))
    x = np.column_stack(columns)
    full = np.column_stack([np.ones(n_studies), x])
    if np.linalg.matrix_rank(full) < full.shape[1]:
        raise UserError(
            "the moderators are collinear with each other or with the intercept "
            f"({', '.join(names)}; {n_studies} studies)"
        )
    return tuple(names), x


def _as_numeric(values: list) -> np.ndarray | None:
    out = np.empty(len(values))
    for i, value in enumerate(values):
        if isinstance(value, bool):
            return None
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(out[i]):
            return None
    return out


def _priors(prior_mu, prior_tau, prior_coef, default_mu: Prior) -> tuple[Prior, Prior, Prior]:
    return (
        parse_prior(default_mu if prior_mu is None else prior_mu, what="prior of mu"),
        parse_prior(
            DEFAULT_PRIOR_TAU if prior_tau is None else prior_tau, kind="scale", what="prior of tau"
        ),
        parse_prior(
            DEFAULT_PRIOR_COEF if prior_coef is None else prior_coef,
            what="prior of the coefficients",
        ),
    )


def binomial_normal(
    events: Sequence[int],
    total: Sequence[int],
    *,
    study: Sequence[str] | None = None,
    mods: Mapping[str, Sequence] | None = None,
    prior_mu: Prior | str | None = None,
    prior_tau: Prior | str | None = None,
    prior_coef: Prior | str | None = None,
) -> ModelSpec:
    """Describe a binomial-normal random-effects model of proportions (logit scale).

    ``events_i ~ Binomial(total_i, invlogit(theta_i))``,
    ``theta_i = mu + x_i'beta + tau z_i``, ``z_i ~ N(0, 1)``.

    Parameters
    ----------
    events, total : sequence of int
        Responders (or patients with the toxicity) and patients per study.
    study : sequence of str, optional
        Study labels (default ``"study 1"``, ...).
    mods : mapping, optional
        Moderators, see :func:`design_matrix`.
    prior_mu, prior_tau, prior_coef : Prior or str, optional
        Defaults ``normal:0:1.5``, ``half_normal:0.5``, ``normal:0:1``
        (see :mod:`blinameta.bayes.priors`).

    Raises
    ------
    UserError
        If counts are not non-negative integers with ``events <= total`` and ``total > 0``.
    """
    events_a = np.asarray(events, dtype=float).ravel()
    total_a = np.asarray(total, dtype=float).ravel()
    k = events_a.size
    if k == 0:
        raise UserError("no studies")
    if total_a.size != k:
        raise UserError(f"{k} event counts but {total_a.size} totals")
    labels = _labels(study, k)
    for i in range(k):
        e, n = events_a[i], total_a[i]
        where = f"study {labels[i]!r}"
        if not (math.isfinite(e) and math.isfinite(n)) or e != int(e) or n != int(n):
            raise UserError(f"{where}: events and total must be whole numbers")
        if e < 0 or n <= 0:
            raise UserError(f"{where}: events must be >= 0 and total > 0")
        if e > n:
            raise UserError(f"{where}: events ({int(e)}) greater than total ({int(n)})")
    names, x = design_matrix(mods, k)
    p_mu, p_tau, p_coef = _priors(prior_mu, prior_tau, prior_coef, DEFAULT_PRIOR_MU)
    return ModelSpec(
        kind="binomial_normal",
        study=labels,
        events=tuple(int(v) for v in events_a),
        total=tuple(int(v) for v in total_a),
        coef_names=names,
        x=tuple(tuple(float(v) for v in row) for row in x),
        prior_mu=p_mu,
        prior_tau=p_tau,
        prior_coef=p_coef,
        mods=tuple(mods or ()),
    )


def normal_normal(
    yi: Sequence[float],
    vi: Sequence[float],
    *,
    study: Sequence[str] | None = None,
    mods: Mapping[str, Sequence] | None = None,
    prior_mu: Prior | str | None = None,
    prior_tau: Prior | str | None = None,
    prior_coef: Prior | str | None = None,
) -> ModelSpec:
    """Describe a normal-normal random-effects model of a generic effect with known variances.

    ``yi ~ N(theta_i, vi)``, ``theta_i = mu + x_i'beta + tau z_i``, ``z_i ~ N(0, 1)``.

    Parameters
    ----------
    yi, vi : sequence of float
        Effects (e.g. log hazard ratios) and their sampling variances (``vi > 0``).
    study, mods, prior_tau, prior_coef
        As in :func:`binomial_normal`.
    prior_mu : Prior or str, optional
        Default ``normal:0:2``.
    """
    yi_a = np.asarray(yi, dtype=float).ravel()
    vi_a = np.asarray(vi, dtype=float).ravel()
    k = yi_a.size
    if k == 0:
        raise UserError("no studies")
    if vi_a.size != k:
        raise UserError(f"{k} effects but {vi_a.size} variances")
    labels = _labels(study, k)
    for i in range(k):
        if not (math.isfinite(yi_a[i]) and math.isfinite(vi_a[i])):
            raise UserError(f"study {labels[i]!r}: yi and vi must be finite numbers")
        if vi_a[i] <= 0:
            raise UserError(f"study {labels[i]!r}: vi must be greater than 0")
    names, x = design_matrix(mods, k)
    p_mu, p_tau, p_coef = _priors(prior_mu, prior_tau, prior_coef, DEFAULT_PRIOR_MU_GENERIC)
    return ModelSpec(
        kind="normal_normal",
        study=labels,
        yi=tuple(float(v) for v in yi_a),
        vi=tuple(float(v) for v in vi_a),
        coef_names=names,
        x=tuple(tuple(float(v) for v in row) for row in x),
        prior_mu=p_mu,
        prior_tau=p_tau,
        prior_coef=p_coef,
        mods=tuple(mods or ()),
    )


def build_model(spec: ModelSpec, *, parameterization: str = "non_centered"):
    """Build the PyMC model of ``spec``.

    Parameters
    ----------
    spec : ModelSpec
    parameterization : {"non_centered", "centered"}
        ``"centered"`` (``theta_i ~ N(mu + x_i'beta, tau)``) exists to exercise the
        diagnostics gate; analyses use the non-centred form.

    Returns
    -------
    pymc.Model
        Free variables ``mu``, ``tau``, ``z`` (dims ``study``; ``theta`` when centred) and
        ``beta`` (dims ``coef``) with moderators; deterministic ``theta`` (dims ``study``).
    """
    import pymc as pm

    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}")
    coords = {"study": list(spec.study)}
    if spec.has_mods:
        coords["coef"] = list(spec.coef_names)
    with pm.Model(coords=coords) as model:
        mu = spec.prior_mu.to_pymc("mu")
        tau = spec.prior_tau.to_pymc("tau")
        centre = mu
        if spec.has_mods:
            beta = spec.prior_coef.to_pymc("beta", dims="coef")
            x = pm.Data("x", spec.design(), dims=("study", "coef"))
            centre = mu + pm.math.dot(x, beta)
        if parameterization == "non_centered":
            z = pm.Normal("z", 0.0, 1.0, dims="study")
            theta = pm.Deterministic("theta", centre + tau * z, dims="study")
        else:
            theta = pm.Normal("theta", centre, tau, dims="study")
        if spec.kind == "binomial_normal":
            pm.Binomial(
                "events",
                n=np.asarray(spec.total),
                logit_p=theta,
                observed=np.asarray(spec.events),
                dims="study",
            )
        else:
            pm.Normal(
                "yi",
                mu=theta,
                sigma=np.sqrt(np.asarray(spec.vi)),
                observed=np.asarray(spec.yi),
                dims="study",
            )
    return model
