"""Mantel-Haenszel and Peto pooling against metafor 3.8 ``rma.mh`` / ``rma.peto``.

Golden values: tests/fixtures/engine/mh_peto.json, written by ``Rscript tests/r/engine_fixtures.R``
(each block quotes its R call). Five 2x2 data sets (dat.bcg; zero cells with a double-zero table;
k = 2; rare events with two double-zero tables; a table with every patient an event in both arms)
x OR/RR/RD/Peto x seven add/to/drop00/correct settings. These are closed-form estimators, so the
tolerance is 1e-12 relative.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from blinameta.frequentist.mh import rma_mh
from blinameta.frequentist.peto import rma_peto

FIXTURE = Path(__file__).parent / "fixtures" / "engine" / "mh_peto.json"
BLOCKS = json.loads(FIXTURE.read_text())["blocks"]
RTOL, ATOL = 1e-12, 1e-13


def _arr(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(float).ravel()
    if not isinstance(values, list):
        values = [values]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _pair(value):
    return tuple(value) if isinstance(value, list) else value


def _fit(block):
    kw = dict(add=_pair(block["add"]), to=_pair(block["to"]), drop00=_pair(block["drop00"]))
    data = (block["ai"], block["n1i"], block["ci"], block["n2i"])
    if block["fun"] == "rma.peto":
        return rma_peto(*data, **kw)
    return rma_mh(*data, measure=block["measure"], correct=block["correct"], **kw)


def _close(ours, theirs, what):
    np.testing.assert_allclose(_arr(ours), _arr(theirs), rtol=RTOL, atol=ATOL, equal_nan=True,
                               err_msg=what)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b['data']}-{b['call']}")
def test_against_metafor(block):
    assert "error" not in block, block.get("error")
    res = _fit(block)
    r = block["result"]
    for ours, theirs in (("beta", "beta"), ("se", "se"), ("zval", "zval"), ("pval", "pval"),
                         ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("qe", "qe"), ("qe_p", "qe_p"),
                         ("i2", "i2"), ("h2", "h2"), ("yi", "yi"), ("vi", "vi")):
        _close(getattr(res, ours), r[theirs], ours)
    assert res.k == r["k"]
    assert res.k_yi == r["k_yi"]
    if block["measure"] == "OR":
        for ours, theirs in (("cmh", "cmh"), ("cmh_p", "cmh_p"), ("cmh_exact_var", "mh"),
                             ("cmh_exact_var_p", "mh_p"), ("bd", "bd"), ("bd_p", "bd_p"),
                             ("tarone", "ta"), ("tarone_p", "ta_p")):
            _close(getattr(res, ours), r[theirs], ours)
        assert res.k_pos == r["k_pos"]
    if block["fun"] == "rma.peto":
        assert res.k_pos == r["k_pos"]


def test_ratio_scale_and_dict():
    res = rma_mh([12, 5], [40, 30], [6, 9], [38, 31], measure="RR")
    assert math.isclose(res.estimate, math.exp(res.beta))
    assert math.isclose(res.estimate_lb, math.exp(res.ci_lb))
    d = res.to_dict()
    assert d["measure"] == "RR" and d["qe_df"] == 1 and d["k"] == 2
    json.dumps(d)
    rd = rma_mh([12, 5], [40, 30], [6, 9], [38, 31], measure="RD")
    assert rd.estimate == rd.beta


def test_double_zero_tables_reported():
    res = rma_mh([1, 0, 2, 0], [100, 150, 120, 90], [0, 1, 0, 0], [98, 149, 121, 92])
    assert res.dropped00 == (3,)
    assert res.k_yi == 3 and res.k == 4


def test_errors():
    with pytest.raises(ValueError, match="measure"):
        rma_mh([1], [2], [1], [2], measure="HR")
    with pytest.raises(ValueError, match="never occurred"):
        rma_peto([0, 0], [10, 10], [0, 0], [10, 12], drop00=(False, False))
    with pytest.raises(ValueError, match="larger than group size"):
        rma_mh([11], [10], [1], [10])
    with pytest.raises(ValueError, match="'to'"):
        rma_mh([1, 2], [10, 10], [1, 2], [10, 12], to="some")
