"""``rma_batch`` (many intercept-only fits at once) against ``rma`` row by row and against
metafor 3.8 (``rma.uni`` and ``predict.rma`` on the intercept-only blocks of
tests/fixtures/frequentist/rma.json, written by ``Rscript tests/r/frequentist_fixtures.R``: one
batch per data set x estimator x test, its rows the five proportion measures).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blinameta.frequentist.predict import predict
from blinameta.frequentist.rma import METHODS, rma, rma_batch

FIXTURES = Path(__file__).parent / "fixtures" / "frequentist"
BLOCKS = json.loads((FIXTURES / "rma.json").read_text())["blocks"]
CONTROL = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 10000}
#: the same (rtol, atol) per kind of quantity as tests/test_rma_against_metafor.py
TOL = {
    "estimate": (1e-6, 1e-12),
    "se": (1e-6, 1e-12),
    "ci": (1e-6, 1e-12),
    "pval": (1e-6, 1e-14),
    "tau2": (1e-6, 1e-10),
    "q": (1e-6, 1e-10),
    "i2": (1e-6, 1e-8),
}
#: field of the batch result -> (key in the fixture's "fit", kind)
FIELDS = {
    "beta": "estimate", "se": "se", "zval": "estimate", "pval": "pval", "ci_lb": "ci",
    "ci_ub": "ci", "tau2": "tau2", "se_tau2": "tau2", "qe": "q", "qe_p": "pval", "i2": "i2",
    "h2": "i2", "vt": "tau2", "s2w": "se",
}  # fmt: skip


def _val(x) -> float:
    return np.nan if x is None or x == [] else float(x)


def _groups():
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for block in BLOCKS:
        if block.get("mods", "none") == "none" and block["data"] != "bcg":
            groups.setdefault((block["data"], block["method"], block["test"]), []).append(block)
    return groups


GROUPS = _groups()


@pytest.mark.parametrize("key", sorted(GROUPS), ids=lambda k: "-".join(k))
def test_rma_batch_against_metafor(key):
    blocks = GROUPS[key]
    _, method, test = key
    out = rma_batch([b["yi"] for b in blocks], [b["vi"] for b in blocks], method=method,
                    test=test, control=CONTROL)
    assert out.converged.all()
    for name, kind in FIELDS.items():
        theirs = np.array([_val(b["fit"][name]) for b in blocks])
        rtol, atol = TOL[kind]
        np.testing.assert_allclose(getattr(out, name), theirs, rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=f"{key} {name}")
    for name in ("pi_lb", "pi_ub"):
        theirs = np.array([_val(b["predict"][name]) for b in blocks])
        rtol, atol = TOL["ci"]
        np.testing.assert_allclose(getattr(out, name), theirs, rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=f"{key} {name}")


def _random_sets(seed: int, n: int, k: int):
    rng = np.random.default_rng(seed)
    V = rng.uniform(0.005, 0.5, (n, k)) * 10 ** rng.uniform(-2, 1, (n, 1))
    tau = rng.choice([0.0, 0.05, 0.5], size=(n, 1))
    Y = rng.normal(rng.normal(0, 2, (n, 1)), np.sqrt(V + tau**2))
    Y[0] = 0.3  # homogeneous: tau2 at the boundary
    return Y, V


@pytest.mark.parametrize("test", ["z", "knha"])
@pytest.mark.parametrize("method", [m for m in METHODS if m != "FE"])
@pytest.mark.parametrize("k", [1, 2, 7, 25])
def test_rma_batch_rows_equal_rma(method, test, k):
    Y, V = _random_sets(k * 31 + len(method), 40, k)
    out = rma_batch(Y, V, method=method, test=test, level=90)
    assert (out.k, out.n_fits, out.method, out.level) == (k, 40, method, 90.0)
    for b in range(Y.shape[0]):
        try:
            res = rma(Y[b], V[b], method=method, test=test, level=90)
        except ValueError:  # metafor's Fisher scoring can cycle; the batch flags the row
            assert not out.converged[b] and np.isnan(out.beta[b])
            continue
        assert out.converged[b]
        assert out.test == res.test
        pred = predict(res)
        ours = {name: getattr(out, name)[b] for name in out._COLUMNS[:-2]}
        theirs = {name: getattr(res, name) for name in FIELDS} | {
            "pi_lb": pred.pi_lb, "pi_ub": pred.pi_ub
        }
        for name, value in theirs.items():
            kind = FIELDS.get(name, "ci")
            rtol, atol = TOL[kind]
            np.testing.assert_allclose(ours[name], np.ravel(value)[0], rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=f"row {b} {name}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # rma: 1/0 weights, as before
def test_rma_batch_ee_with_a_zero_variance_row():
    Y = np.array([[0.1, 0.2, 0.4], [0.1, 0.2, 0.4]])
    V = np.array([[0.01, 0.02, 0.03], [0.01, 0.0, 0.03]])
    out = rma_batch(Y, V, method="EE")
    res = rma(Y[1], V[1], method="EE")
    assert np.isnan(out.qe[1]) and np.isnan(res.qe)
    np.testing.assert_allclose(out.beta[1], res.beta[0], rtol=1e-12)
    assert np.isfinite(out.qe[0])


def test_rma_batch_bad_input_names_the_row():
    Y = np.zeros((3, 4))
    V = np.full((3, 4), 0.1)
    V[2, 1] = -1.0
    with pytest.raises(ValueError, match="row 2"):
        rma_batch(Y, V)
    V[2, 1] = 0.0
    with pytest.raises(ValueError, match=r"REML estimator needs .* \(row 2\)"):
        rma_batch(Y, V)
    Y[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1"):
        rma_batch(Y, np.full((3, 4), 0.1))
    with pytest.raises(ValueError, match="does not fit"):
        rma_batch(np.zeros((3, 4)), np.full(5, 0.1))


def test_rma_batch_frame_has_one_row_per_data_set():
    Y, V = _random_sets(5, 6, 5)
    frame = rma_batch(Y, V).to_frame()
    assert len(frame) == 6 and {"beta", "tau2", "pi_lb", "converged"} <= set(frame.columns)
