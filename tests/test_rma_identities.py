"""Identities and input checks for ``rma`` that need no reference software."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blinameta.frequentist.escalc import escalc_proportion
from blinameta.frequentist.predict import predict
from blinameta.frequentist.rma import METHODS, rma

EVENTS = np.array([12, 30, 27, 19, 41, 8, 22, 15])
TOTAL = np.array([20, 70, 39, 33, 110, 15, 45, 40])
ES = escalc_proportion("PLO", EVENTS, TOTAL)
HOMOG = escalc_proportion("PLO", [10, 11, 10, 12, 10], [50, 50, 49, 52, 51])


@pytest.mark.parametrize("method", ["DL", "HE", "HS", "ML", "REML", "PM", "EB"])
def test_random_effects_with_tau2_zero_equals_common_effect(method):
    re = rma(HOMOG.yi, HOMOG.vi, method=method)
    ee = rma(HOMOG.yi, HOMOG.vi, method="EE")
    assert re.tau2 == 0.0
    np.testing.assert_allclose(re.beta, ee.beta, rtol=1e-14)
    np.testing.assert_allclose(re.se, ee.se, rtol=1e-14)
    np.testing.assert_allclose(re.qe, ee.qe, rtol=1e-14)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "FE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_order_of_studies_does_not_matter(method, test):
    rng = np.random.default_rng(3)
    perm = rng.permutation(EVENTS.size)
    mods = pd.DataFrame({"dose": [5, 15, 9, 28, 15, 5, 9, 28]})
    a = rma(ES.yi, ES.vi, mods=mods, method=method, test=test)
    b = rma(ES.yi[perm], ES.vi[perm], mods=mods.iloc[perm], method=method, test=test)
    for key in ("beta", "se", "pval", "ci_lb", "ci_ub"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-9)
    for key in ("tau2", "qe", "qm", "i2", "h2"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-9, atol=1e-14)


def test_fe_is_an_alias_of_ee():
    assert rma(ES.yi, ES.vi, method="FE").method == "EE"


def test_knha_does_not_truncate_s2w_below_one():
    res = rma(HOMOG.yi, HOMOG.vi, method="REML", test="knha")
    z = rma(HOMOG.yi, HOMOG.vi, method="REML")
    assert res.s2w < 1
    np.testing.assert_allclose(res.se, z.se * np.sqrt(res.s2w), rtol=1e-14)


def test_prediction_interval_uses_tau2():
    res = rma(ES.yi, ES.vi)
    pr = predict(res)
    half = 1.959963984540054 * np.sqrt(res.se**2 + res.tau2)
    np.testing.assert_allclose(pr.pi_ub - pr.pred, half)


def test_predict_with_array_or_frame_newmods_agree():
    dose = np.array([5, 15, 9, 28, 15, 5, 9, 28], dtype=float)
    res = rma(ES.yi, ES.vi, mods=pd.DataFrame({"dose": dose}))
    a = predict(res, newmods=[10.0, 20.0])
    b = predict(res, newmods=pd.DataFrame({"dose": [10.0, 20.0]}))
    np.testing.assert_allclose(a.pred, b.pred)
    np.testing.assert_allclose(a.pred, res.beta[0] + res.beta[1] * np.array([10.0, 20.0]))


def test_result_is_frozen_and_serialisable():
    res = rma(ES.yi, ES.vi)
    with pytest.raises(AttributeError):
        res.tau2 = 0.0  # type: ignore[misc]
    d = res.to_dict()
    assert d["method"] == "REML" and isinstance(d["beta"], list) and d["i2"] == res.i2


def test_dummy_coding_uses_first_level_as_reference():
    mods = pd.DataFrame({"arm": ["b", "a", "c", "a", "b", "c", "a", "b"]})
    res = rma(ES.yi, ES.vi, mods=mods)
    assert res.coef_names == ("intrcpt", "armb", "armc")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"yi": [0.1], "vi": [0.1, 0.2]}, "values"),
        ({"yi": [0.1, 0.2], "vi": [0.1, 0.0]}, "> 0"),
        ({"yi": [0.1, 0.2], "vi": [0.1, 0.2], "mods": [1.0, 2.0]}, "at least 3"),
        ({"yi": [0.1, 0.2, 0.3], "vi": [0.1, 0.2, 0.1], "method": "XX"}, "unknown method"),
        ({"yi": [0.1, 0.2, 0.3], "vi": [0.1, 0.2, 0.1], "mods": [[1, 2], [2, 4], [3, 6]],
          "method": "EE"}, "full rank"),
    ],
)
def test_bad_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rma(**kwargs)
