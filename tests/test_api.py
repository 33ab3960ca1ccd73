"""The public Python API (``import blinameta as bm``) against metafor.

Fixtures: tests/fixtures/api/print.json, written by tests/r/api_fixtures.R (metafor's print.rma
output for each model, with tight and with default convergence control).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import blinameta as bm

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "api" / "print.json").read_text())
CASES = {b["id"]: b for b in FIXTURE["blocks"]}
TIGHT = {"threshold": 1e-12, "tol": 1e-12, "maxiter": 10000}
from blinameta.frequentist.rma import METAFOR_CONTROL as METAFOR_DEFAULT  # noqa: E402


def _fit(case: dict, control: dict):
    call = case["call"]
    method = "DL" if "'DL'" in call else "EE" if "'EE'" in call else "PM" if "'PM'" in call else "REML"
    test = "knha" if "knha" in call else "z"
    if "xi" in case:
        es = bm.escalc("PLO", xi=case["xi"], ni=case["ni"])
        yi, vi = es.yi, es.vi
    else:
        yi, vi = np.asarray(case["yi"]), np.asarray(case["vi"])
    mods = pd.DataFrame({"ablat": case["ablat"]}) if "ablat" in case else None
    return bm.rma(yi, vi, mods=mods, method=method, test=test, control=control)


def _tokens(text: str) -> list[str]:
    text = text.replace("\u2018", "'").replace("\u2019", "'")
    return text.split()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_print_equals_metafor_print_rma(case_id):
    """``print(res)`` gives metafor's print.rma text (same tokens, in the same order)."""
    case = CASES[case_id]
    res = _fit(case, TIGHT)
    assert _tokens(str(res)) == _tokens(case["print_tight"])
    assert _tokens(res.summary().as_text()) == _tokens(case["print_tight"])


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_metafor_default_control_reproduces_default_rma(case_id):
    """With metafor's default threshold (1e-5) the fit equals a default ``rma()`` call."""
    case = CASES[case_id]
    res = _fit(case, METAFOR_DEFAULT)
    np.testing.assert_allclose(res.beta, case["default_beta"], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(res.tau2, case["default_tau2"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.zval, case["default_zval"], rtol=1e-6)  # PM: uniroot vs Newton end points
    assert _tokens(str(res)) == _tokens(case["print_default"])


def test_to_frame_is_the_coefficient_table():
    case = CASES["bcg_reml_ablat_knha"]
    res = _fit(case, TIGHT)
    frame = res.to_frame()
    assert list(frame.index) == ["intrcpt", "ablat"]
    assert list(frame.columns) == ["estimate", "se", "tval", "df", "pval", "ci_lb", "ci_ub"]
    np.testing.assert_allclose(frame["estimate"], res.beta)
    np.testing.assert_allclose(frame["df"], 11)
    html = res._repr_html_()
    assert "<table" in html and "ablat" in html


def test_forest_and_funnel_return_figures_without_writing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    case = CASES["bcg_reml"]
    res = _fit(case, TIGHT)
    fig = res.forest(slab=[f"Trial {i}" for i in range(1, 14)], transf=np.exp, xlabel="Risk ratio")
    assert isinstance(fig, Figure)
    texts = {t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))}
    assert "Trial 1" in texts and "Trial 13" in texts
    assert isinstance(res.funnel(), Figure)
    assert list(tmp_path.iterdir()) == []


def test_glmm_prints_wald_and_lrt_tests():
    res = bm.rma_glmm([27, 58, 6, 18], [70, 98, 13, 25])
    text = str(res)
    assert "Wld(df = 3)" in text and "LRT(df = 3)" in text
    assert res.to_frame().shape == (1, 6)


def test_escalc_names_follow_metafor():
    a = bm.escalc("RR", ai=[10, 3], bi=[40, 37], ci=[5, 1], di=[45, 37])
    b = bm.escalc("RR", ai=[10, 3], n1i=[50, 40], ci=[5, 1], n2i=[50, 38])
    np.testing.assert_allclose(a.yi, b.yi)
    np.testing.assert_allclose(a.yi[0], np.log(2.0))
    with pytest.raises(ValueError, match="needs xi"):
        bm.escalc("PLO", ni=[10])


def test_import_is_light_and_names_resolve():
    """``import blinameta`` loads neither PyMC nor matplotlib; every exported name resolves."""
    code = ("import sys, blinameta as bm; heavy = [m for m in ('pymc', 'matplotlib', 'arviz', 'scipy') "
            "if m in sys.modules]; print(','.join(heavy)); "
            "missing = [n for n in bm.__all__ if getattr(bm, n, None) is None]; print(missing)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == ""
    assert second == "[]"


MH_CASES = {b["id"]: b for b in FIXTURE["mh_blocks"]}


@pytest.mark.parametrize("case_id", sorted(MH_CASES))
def test_mh_and_peto_print_equal_metafor(case_id):
    """``print(bm.rma_mh(...))`` / ``rma_peto`` give metafor's print.rma.mh / print.rma.peto text."""
    case = MH_CASES[case_id]
    args = (case["ai"], case["n1i"], case["ci"], case["n2i"])
    if "peto" in case_id:
        res = bm.rma_peto(*args)
    else:
        res = bm.rma_mh(*args, measure=case_id.rsplit("_", 1)[1].upper())
    assert _tokens(str(res)) == _tokens(case["print"])
    assert res.to_frame().shape[0] == 1


def test_bayes_result_prints_its_posterior_summary():
    post = bm.bayes_meta([27, 58, 6, 18], [70, 98, 13, 25], exact=True)
    frame = post.to_frame()
    assert list(frame.index[:2]) == ["mu", "tau"]
    text = str(post)
    assert "k = 4; exact quadrature" in text and "half_normal:0.5" in text
    for name in ("mu", "tau", "p_median", "p_new"):
        assert f"{frame.loc[name, 'lb']:.4f}" in text and f"{frame.loc[name, 'ub']:.4f}" in text
    assert "<table" in post._repr_html_()


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "blinameta", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pool" in out.stdout and "init" in out.stdout


def test_analysis_result_presents_the_review_analysis(tmp_path):
    """``bm.run_analysis`` on the review: the printed summary carries the headline and the GRADE
    rating, ``to_frame()`` the studies with their observed proportions and exact intervals."""
    from blinameta.frequentist.escalc import ci_clopper_pearson

    root = Path(__file__).resolve().parents[1]
    res = bm.run_analysis("cr_overt", evidence=root / "evidence", models=root / "models")
    frame = res.to_frame()
    assert len(frame) == res.k
    np.testing.assert_allclose(frame["estimate"], frame["events"] / frame["total"])
    lb, ub = ci_clopper_pearson(frame["events"].to_numpy(int), frame["total"].to_numpy(int))
    np.testing.assert_allclose(frame["ci_lb"], lb)
    np.testing.assert_allclose(frame["weight"].sum(), 100.0)
    text = str(res)
    assert res.spec.title in text and "Primary analysis" in text
    assert f"{100 * res.primary.estimate:.1f}%" in text
    if res.certainty is not None:
        assert res.certainty.symbols in text
    assert len(res.sensitivity_frame()) == len(res.sensitivity)
    from matplotlib.figure import Figure

    assert isinstance(res.forest(), Figure)
