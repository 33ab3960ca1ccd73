"""The ``blinameta pool`` command: numbers against the metafor fixtures, output formats, and
user errors (exit status 2, a one-line message naming row and column, no traceback)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from blinameta.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "frequentist"
RMA = json.loads((FIXTURES / "rma.json").read_text())["blocks"]
ESC = json.loads((FIXTURES / "escalc.json").read_text())["blocks"]
RTOL = 1e-6  # the CLI uses the default control (threshold 1e-10), R the tight one

PEDS = next(b for b in RMA if b["data"] == "peds")
EVENTS, TOTAL = PEDS["xi"], PEDS["ni"]


def _block(**kw):
    return next(b for b in RMA if all(b.get(k) == v for k, v in kw.items()))


def _csv(tmp_path: Path, header: list[str], rows: list[list], name: str = "data.csv") -> str:
    lines = [",".join(header)] + [",".join(str(c) for c in row) for row in rows]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _peds_csv(tmp_path):
    groups = ["A", "B", "A", "C", "B", "C", "A", "B"]
    return _csv(tmp_path, ["study", "events", "total", "group"],
                [[f"S{i + 1}", e, n, g] for i, (e, n, g) in enumerate(zip(EVENTS, TOTAL, groups))])


def _run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("measure", ["PLO", "PFT", "PAS"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_pool_proportions_against_metafor(tmp_path, capsys, measure, test):
    path = _peds_csv(tmp_path)
    out = _run_json(capsys, ["pool", path, "--events", "events", "--total", "total",
                             "--measure", measure, "--test", test])
    block = _block(data="peds", measure=measure, method="REML", test=test)
    fit, pt = block["fit"], block["predict_transf"]
    assert out["k"] == 8
    np.testing.assert_allclose(
        [out["estimate"], out["se"], out["ci_lb"], out["ci_ub"], out["tau2"], out["i2"],
         out["h2"], out["qe"], out["qe_p"], out["pval"]],
        [fit["beta"], fit["se"], fit["ci_lb"], fit["ci_ub"], fit["tau2"], fit["i2"], fit["h2"],
         fit["qe"], fit["qe_p"], fit["pval"]], rtol=RTOL)
    np.testing.assert_allclose(
        [out["pi_lb"], out["pi_ub"]], [block["predict"]["pi_lb"], block["predict"]["pi_ub"]],
        rtol=RTOL)
    np.testing.assert_allclose([out["tau2_ci_lb"], out["tau2_ci_ub"]],
                               block["confint"]["tau2"][1:], rtol=RTOL)
    np.testing.assert_allclose(
        [out["pred_prop"], out["ci_lb_prop"], out["ci_ub_prop"], out["pi_lb_prop"],
         out["pi_ub_prop"]],
        [pt["pred"], pt["ci_lb"], pt["ci_ub"], pt["pi_lb"], pt["pi_ub"]], rtol=RTOL)


def test_pool_text_summary(tmp_path, capsys):
    path = _peds_csv(tmp_path)
    assert main(["pool", path, "--events", "events", "--total", "total", "--measure", "PFT"]) == 0
    text = capsys.readouterr().out
    assert "Random-Effects Model (k = 8; tau^2 estimator: REML)" in text
    assert "Test for Heterogeneity:" in text and "Q(df = 7)" in text
    assert "Pooled proportion (inverse Freeman-Tukey at the harmonic mean of the totals)" in text
    fit = _block(data="peds", measure="PFT", method="REML", test="z")["fit"]
    assert f"{fit['i2']:.2f}%" in text and f"{fit['beta']:.4f}" in text


def test_pool_equal_effects_has_no_tau2_interval(tmp_path, capsys):
    out = _run_json(capsys, ["pool", _peds_csv(tmp_path), "--events", "events", "--total",
                             "total", "--method", "FE"])
    fit = _block(data="peds", measure="PLO", method="EE", test="z")["fit"]
    np.testing.assert_allclose(out["estimate"], fit["beta"], rtol=RTOL)
    assert out["tau2"] == 0 and out["tau2_ci_lb"] is None and out["pi_lb"] is None


def test_pool_yi_vi_with_moderators_against_metafor(tmp_path, capsys):
    block = _block(data="bcg", mods="alloc_ablat", method="REML", test="knha")
    rows = [[y, v, a, b] for y, v, a, b in
            zip(block["yi"], block["vi"], block["alloc"], block["ablat"])]
    path = _csv(tmp_path, ["yi", "vi", "alloc", "ablat"], rows)
    out = _run_json(capsys, ["pool", path, "--yi", "yi", "--vi", "vi", "--mods", "alloc,ablat",
                             "--test", "knha", "--permutations", "200", "--seed", "1"])
    fit = block["fit"]
    assert out["coef_names"] == fit["coef_names"]
    np.testing.assert_allclose(out["coef"], fit["beta"], rtol=RTOL)
    np.testing.assert_allclose(out["se"], fit["se"], rtol=RTOL)
    np.testing.assert_allclose([out["tau2"], out["qe"], out["qm"], out["qm_p"], out["r2"]],
                               [fit["tau2"], fit["qe"], fit["qm"], fit["qm_p"], fit["r2"]],
                               rtol=RTOL)
    assert len(out["perm_p"]) == 4 and all(0 < p <= 1 for p in out["perm_p"])
    assert "estimate" not in out


def test_pool_hazard_ratios_against_metafor(tmp_path, capsys):
    block = next(b for b in ESC if b["kind"] == "hr")
    rows = [[h, lb, ub] for h, lb, ub in zip(block["hr"], block["ci_lb"], block["ci_ub"])]
    path = _csv(tmp_path, ["hr", "lb", "ub"], rows)
    out = _run_json(capsys, ["pool", path, "--hr", "hr", "--ci-lb", "lb", "--ci-ub", "ub"])
    pr = block["pred_hr"]
    np.testing.assert_allclose([out["pred_hr"], out["ci_lb_hr"], out["ci_ub_hr"]],
                               [pr["pred"], pr["ci_lb"], pr["ci_ub"]], rtol=RTOL)
    np.testing.assert_allclose(out["tau2"], block["fit"]["tau2"], rtol=RTOL, atol=1e-10)


@pytest.mark.skipif(importlib.util.find_spec("blinameta.frequentist.glmm") is None,
                    reason="blinameta.frequentist.glmm (colleague's module) not present yet")
def test_pool_glmm_branch(tmp_path, capsys):
    out = _run_json(capsys, ["pool", _peds_csv(tmp_path), "--events", "events", "--total",
                             "total", "--method", "GLMM"])
    assert out["k"] == 8 and 0 < out["pred_prop"] < 1 and out["tau2"] >= 0


GLMM_FIXTURES = Path(__file__).parent / "fixtures" / "glmm"
#: Named tolerances of tests/test_glmm_against_lme4.py (lme4 at nAGQ = 7; its standard errors
#: come from a finite-difference Hessian, hence 1e-4).
GLMM_RTOL = 1e-4
GLMM_ATOL_TAU2 = 1e-6


@pytest.mark.parametrize(
    "name, extra",
    [("pediatric", []), ("zero_and_all_events", []),
     # metafor has no Knapp-Hartung adjustment for GLMMs: --test knha is rma.glmm(test = "t")
     ("pediatric_t", ["--test", "knha", "--level", "90"])],
)
def test_pool_glmm_against_metafor(tmp_path, capsys, name, extra):
    """``blinameta pool --method GLMM`` against ``rma.glmm`` + ``predict`` (and
    ``predict(res, transf = transf.ilogit)``), tests/fixtures/glmm/{name}.json, written by
    tests/r/glmm_diagnostics_fixtures.R; the R call is in the fixture's "call"."""
    fx = json.loads((GLMM_FIXTURES / f"{name}.json").read_text())
    assert ("test = 't'" in fx["call"]) == ("knha" in extra)
    rows = [[x, n] for x, n in zip(fx["data"]["xi"], fx["data"]["ni"])]
    path = _csv(tmp_path, ["events", "total"], rows)
    out = _run_json(capsys, ["pool", path, "--events", "events", "--total", "total",
                             "--method", "GLMM"] + extra)
    assert (out["k"], out["qe_df"], out["method"]) == (fx["k"], fx["QE_df"], "GLMM")
    close = np.testing.assert_allclose
    close([out["estimate"], out["se"], out["pval"], out["ci_lb"], out["ci_ub"]],
          [fx["beta"], fx["se"], fx["pval"], fx["ci_lb"], fx["ci_ub"]], rtol=GLMM_RTOL)
    close(out["tau2"], fx["tau2"], rtol=GLMM_RTOL, atol=GLMM_ATOL_TAU2)
    close([out["i2"], out["h2"]], [fx["I2"], fx["H2"]], rtol=GLMM_RTOL, atol=1e-4)
    close([out["qe"], out["qe_p"]], [fx["QE_Wld"], fx["QEp_Wld"]], rtol=GLMM_RTOL)
    close([out["qe_lrt"], out["qe_lrt_p"]], [fx["QE_LRT"], fx["QEp_LRT"]], rtol=1e-8)
    close([out["pi_lb"], out["pi_ub"]], [fx["pred_pi_lb"], fx["pred_pi_ub"]], rtol=GLMM_RTOL)
    assert fx["predict_transf_call"] == "predict(res, transf = transf.ilogit)"
    close([out["pred_prop"], out["ci_lb_prop"], out["ci_ub_prop"], out["pi_lb_prop"],
           out["pi_ub_prop"]],
          [fx["pred_prop"], fx["pred_prop_ci_lb"], fx["pred_prop_ci_ub"], fx["pred_prop_pi_lb"],
           fx["pred_prop_pi_ub"]], rtol=GLMM_RTOL)


def test_pool_glmm_knha_text_says_t_tests(tmp_path, capsys):
    fx = json.loads((GLMM_FIXTURES / "pediatric_t.json").read_text())
    path = _csv(tmp_path, ["events", "total"],
                [[x, n] for x, n in zip(fx["data"]["xi"], fx["data"]["ni"])])
    assert main(["pool", path, "--events", "events", "--total", "total", "--method", "glmm",
                 "--test", "KNHA", "--level", "90"]) == 0
    text = capsys.readouterr().out
    assert "tval" in text and f"{fx['beta']:.4f}" in text and f"{fx['pval']:.4f}" in text


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    "rows, args, expected",
    [
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "nope"], ["nope", "no column"]),
        ([[3, 10], ["x", 12]], ["--events", "ev", "--total", "n"],
         ["row 3", "'ev'", "not a number"]),
        ([[3, 10], [-1, 12]], ["--events", "ev", "--total", "n"], ["row 3", "'ev'", "negative"]),
        ([[3, 10], [14, 12]], ["--events", "ev", "--total", "n"], ["row 3", "'ev'", "14 events"]),
        ([[3, 10], [4, 0]], ["--events", "ev", "--total", "n"], ["row 3", "'n'", "greater than 0"]),
        ([[3, 10]], ["--events", "ev", "--total", "n"], ["at least 2 studies"]),
        ([[0.1, 0.02], [0.2, 0.0]], ["--yi", "ev", "--vi", "n"],
         ["row 3", "'n'", "greater than 0"]),
        ([[3, 10], [4, 12]], ["--events", "ev"], ["--events and --total"]),
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "n", "--yi", "ev", "--vi", "n"],
         ["exactly one input"]),
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "n", "--mods", "ev"],
         ["at least 3 studies"]),
        ([[3, 10], [4, 12], [5, 9]], ["--events", "ev", "--total", "n", "--mods", "ev,n"],
         ["3 coefficients", "at least 4 studies"]),
        ([[3, 10]], ["--events", "ev", "--total", "n", "--method", "GLMM"],
         ["GLMM", "at least 2 studies"]),
        ([[0.1, 0.02]], ["--yi", "ev", "--vi", "n", "--method", "REML"],
         ["REML", "at least 2 studies", "1 data row"]),
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "n", "--measure", "OR"],
         ["--measure", "'OR'", "PLO"]),
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "n", "--method", "XYZ"],
         ["--method", "'XYZ'", "REML"]),
        ([[3, 10], [4, 12]], ["--events", "ev", "--total", "n", "--test", "wald"],
         ["--test", "'wald'", "knha"]),
        ([[3, 10], [4.5, 12]], ["--events", "ev", "--total", "n"],
         ["row 3", "'ev'", "whole number"]),
        ([[0.1, 0.02], [0.2, "abc"]], ["--yi", "ev", "--vi", "n"],
         ["row 3", "'n'", "not a number"]),
        ([[0.1, 0.02], [0.2, -0.1]], ["--yi", "ev", "--vi", "n"],
         ["row 3", "'n'", "greater than 0"]),
    ],
    ids=["missing-column", "non-numeric", "negative", "events>total", "zero-total", "k=1",
         "zero-variance", "half-input", "two-inputs", "k<=p", "k<=p-two-mods", "k=1-glmm",
         "k=1-yi", "unknown-measure", "unknown-method", "unknown-test", "fractional-count",
         "non-numeric-vi", "negative-vi"],
)
def test_pool_bad_input_exits_2_with_one_line(tmp_path, capsys, rows, args, expected):
    path = _csv(tmp_path, ["ev", "n"], rows)
    message = _error(capsys, ["pool", path] + args)
    for piece in expected:
        assert piece in message


def test_pool_empty_moderator_cell_names_row(tmp_path, capsys):
    path = _csv(tmp_path, ["ev", "n", "g"], [[3, 10, "a"], [4, 12, ""], [5, 9, "b"]])
    message = _error(capsys, ["pool", path, "--events", "ev", "--total", "n", "--mods", "g"])
    assert "row 3" in message and "'g'" in message


def test_pool_missing_file(tmp_path, capsys):
    assert "no such file" in _error(capsys, ["pool", str(tmp_path / "none.csv"), "--yi", "a",
                                             "--vi", "b"])


def _bcg_block(mods: str, method: str = "REML", test: str = "knha"):
    blocks = json.loads((Path(__file__).parent / "fixtures" / "frequentist" / "rma.json").read_text())["blocks"]
    return next(b for b in blocks if b.get("data") == "bcg" and b.get("mods") == mods
                and b.get("method") == method and b.get("test") == test and "predict_new" in b)


@pytest.mark.parametrize("mods", ["ablat", "alloc"])
def test_pool_newmods_against_metafor(tmp_path, capsys, mods):
    """``--newmods`` gives metafor's predict(res, newmods=) (fixture written by tests/r/frequentist_fixtures.R)."""
    block = _bcg_block(mods)
    data = tmp_path / "bcg.csv"
    lines = [f"yi,vi,{mods}"] + [f"{y!r},{v!r},{m}" for y, v, m in zip(block["yi"], block["vi"], block[mods])]
    data.write_text("\n".join(lines) + "\n")
    new = tmp_path / "new.csv"
    new.write_text(f"{mods}\n" + "\n".join(str(v) for v in block["newmods_df"][mods]) + "\n")
    status = main(["pool", str(data), "--yi", "yi", "--vi", "vi", "--mods", mods, "--method", "REML",
                   "--test", "knha", "--newmods", str(new), "--json"])
    assert status == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    theirs = block["predict_new"]
    for key in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        np.testing.assert_allclose([p[key] for p in predictions], theirs[key], rtol=1e-6, err_msg=key)


def test_pool_newmods_unknown_level_names_row_and_column(tmp_path, capsys):
    block = _bcg_block("alloc")
    data = tmp_path / "bcg.csv"
    data.write_text("yi,vi,alloc\n" + "\n".join(f"{y!r},{v!r},{m}" for y, v, m in zip(block["yi"], block["vi"], block["alloc"])) + "\n")
    new = tmp_path / "new.csv"
    new.write_text("alloc\nrandom\nquasi\n")
    assert main(["pool", str(data), "--yi", "yi", "--vi", "vi", "--mods", "alloc", "--newmods", str(new)]) == 2
    err = capsys.readouterr().err
    assert "row 3, column 'alloc'" in err and "'quasi' is not a level" in err


# --------------------------------------------------------------------------- metafor parity:
# 2x2 tables, Mantel-Haenszel/Peto, metafor's default control, plots and diagnostics.
# Reference texts: tests/fixtures/api/print.json (tests/r/api_fixtures.R, metafor's print()).

API_FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "api" / "print.json").read_text())
API_CASES = {b["id"]: b for b in API_FIXTURE["blocks"] + API_FIXTURE["mh_blocks"]}


def _tokens(text: str) -> list[str]:
    return text.replace("\u2018", "'").replace("\u2019", "'").split()


def _bcg_tables(tmp_path) -> str:
    case = API_CASES["bcg_mh_or"]
    rows = [[f"Trial {i + 1}", a, n1, c, n2] for i, (a, n1, c, n2) in
            enumerate(zip(case["ai"], case["n1i"], case["ci"], case["n2i"]))]
    return _csv(tmp_path, ["study", "ai", "n1", "ci", "n2"], rows)


def _table_args(path: str) -> list[str]:
    return ["pool", path, "--ai", "ai", "--n1i", "n1", "--ci", "ci", "--n2i", "n2", "--slab", "study"]


def test_pool_2x2_risk_ratio_prints_as_metafor(tmp_path, capsys):
    """``--ai/--n1i/--ci/--n2i --measure RR``: escalc('RR') + rma(), metafor's print text."""
    assert main(_table_args(_bcg_tables(tmp_path)) + ["--measure", "RR"]) == 0
    text = capsys.readouterr().out
    model, extra = text.split("\n\nPooled RR")
    model = "\n".join(line for line in model.splitlines() if "Q-profile" not in line)  # our addition
    assert _tokens(model) == _tokens(API_CASES["bcg_reml"]["print_tight"])
    assert "0.4894" in extra  # exp(-0.7145), metafor: predict(res, transf=exp)


@pytest.mark.parametrize("case_id, args", [("bcg_mh_or", ["--method", "MH", "--measure", "OR"]),
                                           ("bcg_mh_rr", ["--method", "MH", "--measure", "RR"]),
                                           ("bcg_mh_rd", ["--method", "MH", "--measure", "RD"]),
                                           ("bcg_peto", ["--method", "PETO"])])
def test_pool_mantel_haenszel_and_peto_print_as_metafor(tmp_path, capsys, case_id, args):
    assert main(_table_args(_bcg_tables(tmp_path)) + args) == 0
    assert _tokens(capsys.readouterr().out) == _tokens(API_CASES[case_id]["print"])


def test_pool_control_metafor_prints_a_default_rma(tmp_path, capsys):
    case = API_CASES["bcg_reml"]
    path = _csv(tmp_path, ["yi", "vi"], [[y, v] for y, v in zip(case["yi"], case["vi"])])
    assert main(["pool", path, "--yi", "yi", "--vi", "vi", "--control", "metafor"]) == 0
    text = capsys.readouterr().out
    # the Q-profile CI line is blinameta's addition to print.rma
    text = "\n".join(line for line in text.splitlines() if "Q-profile" not in line)
    assert _tokens(text) == _tokens(case["print_default"])


def test_pool_plots_are_written_and_valid(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    path = _bcg_tables(tmp_path)
    forest, funnel, baujat = tmp_path / "forest.svg", tmp_path / "funnel.png", tmp_path / "baujat.svg"
    assert main(_table_args(path) + ["--measure", "RR", "--plot", "forest", str(forest), "--plot", "funnel",
                                     str(funnel), "--plot", "baujat", str(baujat)]) == 0
    root = ET.parse(forest)  # well-formed XML
    svg = forest.read_text()
    assert "Trial 13" in svg and root.getroot().tag.endswith("svg")
    assert funnel.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ET.parse(baujat)
    assert main(_table_args(path) + ["--method", "MH", "--plot", "forest", str(tmp_path / "mh.svg")]) == 0
    assert "Mantel-Haenszel" in (tmp_path / "mh.svg").read_text()
    assert "must end in .svg or .png" in _error(capsys, _table_args(path) + ["--plot", "forest", "x.pdf"])


def test_pool_diagnostics_equal_the_api(tmp_path, capsys):
    """``--leave1out --influence --regtest --trimfill`` report what the (metafor-checked) engine
    functions give for the same fit."""
    import blinameta as bm

    case = API_CASES["bcg_reml"]
    path = _csv(tmp_path, ["yi", "vi"], [[y, v] for y, v in zip(case["yi"], case["vi"])])
    out = _run_json(capsys, ["pool", path, "--yi", "yi", "--vi", "vi", "--leave1out", "--influence",
                             "--regtest", "--trimfill"])
    res = bm.rma(case["yi"], case["vi"])
    np.testing.assert_allclose(out["leave1out"]["estimate"], bm.leave1out(res).estimate, rtol=1e-10)
    np.testing.assert_allclose(out["influence"]["cook_d"], bm.influence(res).cook_d, rtol=1e-10)
    assert out["regtest"]["pval"] == pytest.approx(bm.regtest(res).pval, rel=1e-10)
    assert out["trimfill"]["k0"] == bm.trimfill(res).k0
    assert main(["pool", path, "--yi", "yi", "--vi", "vi", "--regtest"]) == 0
    assert "Regression Test for Funnel Plot Asymmetry" in capsys.readouterr().out
