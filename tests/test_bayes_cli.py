"""``blinameta bayes`` through :func:`blinameta.cli.main`."""

from __future__ import annotations

import json

import pytest

from blinameta.bayes import binomial_normal, fit_exact
from blinameta.cli import main

CR_CSV = """study,events,total,age,setting
A,12,20,5,trial
B,30,70,8,trial
C,27,39,6,compassionate
D,19,33,10,trial
E,41,110,12,compassionate
F,9,14,4,trial
"""
HR_CSV = """study_id,yi,vi
S1,-0.51,0.09
S2,-0.22,0.05
S3,-0.69,0.16
S4,0.10,0.12
S5,-0.36,0.04
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # one cache for the module, so that repeated sampling runs are loaded, not refitted
    monkeypatch.setenv("BLINAMETA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def cr_csv(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_text(CR_CSV)
    return str(path)


@pytest.fixture
def hr_csv(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text(HR_CSV)
    return str(path)


def _run(capsys, *args):
    status = main(["bayes", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_exact_json(capsys, cr_csv):
    status, out, err = _run(capsys, cr_csv, "--events", "events", "--total", "total", "--exact",
                            "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["method"] == "exact"
    assert set(data["mu"]) == {"mean", "sd", "lb", "ub"}
    assert set(data["tau"]) == {"mean", "sd", "lb", "ub"}
    for name in ("p_median", "p_mean", "p_new"):
        assert set(data[name]) == {"mean", "lb", "ub"}
    assert "diagnostics" not in data and "coef" not in data
    want = fit_exact(binomial_normal([12, 30, 27, 19, 41, 9], [20, 70, 39, 33, 110, 14]))
    assert data["mu"]["mean"] == pytest.approx(want.mu.mean, abs=1e-12)
    assert data["p_new"]["ub"] == pytest.approx(want.p_new.ub, abs=1e-12)
    assert [s["study"] for s in data["study"]] == list("ABCDEF")


def test_nuts_json_and_cache(capsys, cr_csv):
    args = (cr_csv, "--events", "events", "--total", "total", "--json", "--seed", "5")
    status, out, err = _run(capsys, *args)
    assert status == 0, err
    first = json.loads(out)
    assert first["method"] == "nuts"
    assert set(first["diagnostics"]) == {"rhat_max", "ess_bulk_min", "ess_tail_min",
                                         "divergences", "bfmi_min", "limits", "tail_checks",
                                         "tails_agree", "passed"}
    assert first["diagnostics"]["passed"] is True
    assert len(first["diagnostics"]["tail_checks"]) == 4
    assert first["diagnostics"]["rhat_max"] <= 1.01
    assert first["diagnostics"]["divergences"] == 0
    status, out, _ = _run(capsys, *args)
    second = json.loads(out)
    assert second.pop("from_cache") is True and first.pop("from_cache") is False
    assert first == second


def test_mods_json_has_coefficients(capsys, cr_csv):
    status, out, err = _run(capsys, cr_csv, "--events", "events", "--total", "total",
                            "--mods", "setting", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert [c["name"] for c in data["coef"]] == ["setting[trial]"]
    assert set(data["coef"][0]) == {"name", "mean", "sd", "lb", "ub"}


def test_readable_output_keeps_brackets_in_names(capsys, cr_csv):
    status, out, err = _run(capsys, cr_csv, "--events", "events", "--total", "total",
                            "--mods", "setting")
    assert status == 0, err
    assert "beta[setting[trial]]" in out
    assert "note: mu and the proportions are at moderator values 0 / reference levels" in out


def test_generic_effect_exact(capsys, hr_csv):
    status, out, err = _run(capsys, hr_csv, "--yi", "yi", "--vi", "vi", "--exact", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["model"] == "normal_normal"
    assert "p_mean" not in data and set(data["theta_new"]) == {"mean", "lb", "ub"}
    assert data["study"][0]["study"] == "S1"


def test_readable_output_is_labelled(capsys, cr_csv):
    status, out, _ = _run(capsys, cr_csv, "--events", "events", "--total", "total", "--exact",
                          "--prior-tau", "half_cauchy:0.5")
    assert status == 0
    for label in ("median rate invlogit(mu)", "population-average rate", "rate in a new study",
                  "tau ~ half_cauchy:0.5", "shrunken study estimates", "P(rate > threshold)"):
        assert label in out


@pytest.mark.parametrize(
    ("csv", "args", "message"),
    [
        ("study,e,n\nA,13,12\n", ("--events", "e", "--total", "n"),
         "row 2, column 'e': 13 events greater than the total 12"),
        ("study,e,n\nA,1,12\nB,2.5,10\n", ("--events", "e", "--total", "n"),
         "row 3, column 'e': '2.5' is not a whole number"),
        ("study,e,n\nA,-1,12\n", ("--events", "e", "--total", "n"), "row 2, column 'e'"),
        ("study,e,n\nA,1,0\n", ("--events", "e", "--total", "n"), "row 2, column 'n'"),
        ("study,e,n\nA,x,12\n", ("--events", "e", "--total", "n"), "'x' is not a number"),
        ("study,y,v\nA,0.1,0\n", ("--yi", "y", "--vi", "v"),
         "row 2, column 'v': '0' must be greater than 0"),
        ("study,e,n\nA,1,12\n", ("--events", "e", "--total", "nn"), "no column 'nn'"),
        ("study,e,n\nA,1,12\n", ("--events", "e"), "--events and --total go together"),
        ("study,e,n\nA,1,12\n", (), "give either --events and --total"),
        ("study,e,n,y,v\nA,1,12,0,1\n", ("--events", "e", "--total", "n", "--yi", "y", "--vi",
                                        "v"), "give either"),
        ("study,e,n,a\nA,1,12,1\nB,2,9,2\n", ("--events", "e", "--total", "n", "--mods", "a",
                                              "--exact"), "--exact does not handle moderators"),
        ("study,e,n\nA,1,12\n", ("--events", "e", "--total", "n", "--prior-tau", "normal:0:1"),
         "--prior-tau: normal is not a prior for a standard deviation"),
        ("study,e,n\nA,1,12\n", ("--events", "e", "--total", "n", "--prior-mu", "normal:0:-1"),
         "--prior-mu: the sd of"),
        ("study,e,n\nA,1,12\nA,2,12\n", ("--events", "e", "--total", "n"),
         "row 3, column 'study': study 'A' repeats row 2"),
    ],
)
def test_bad_input_is_one_line_with_status_2(capsys, tmp_path, csv, args, message):
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    status, out, err = _run(capsys, str(path), *args)
    assert status == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_missing_file(capsys, tmp_path):
    status, _, err = _run(capsys, str(tmp_path / "nope.csv"), "--events", "e", "--total", "n")
    assert status == 2 and "no such file" in err


def test_failed_convergence_is_one_line_with_status_1(capsys, cr_csv):
    args = ["bayes", cr_csv, "--events", "events", "--total", "total", "--draws", "20",
            "--tune", "20", "--no-cache"]
    status = main(args)
    out, err = capsys.readouterr()
    assert status == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("warning: MCMC failed the convergence gate")
    assert lines[-1].startswith("error: MCMC did not converge after a retry")
    assert "bulk ESS min" in lines[-1] and "Traceback" not in err
    assert out == ""
