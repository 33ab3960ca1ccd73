"""Tests of blinameta.plots: files written, SVG content (text as text), reproducibility, layout.

The checks read the written files back (PNG pixels via matplotlib.image, SVG as XML), so they
fail when a label, a number, a diamond or the axis scale is wrong, not only when drawing fails.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from blinameta.plots import (
    BAYES_LABEL,
    baujat_plot,
    bubble_plot,
    forest_plot,
    funnel_plot,
    posterior_plot,
    shrinkage_plot,
)

SVG_NS = "{http://www.w3.org/2000/svg}"
QUOTE = 'CR within two cycles: 66 of 110 patients (60%) — "Table 2" & <p. 5>'


# --------------------------------------------------------------------------- helpers


def _rows(n: int = 3, *, subgroups: list[str] | None = None, weights: bool = True) -> pd.DataFrame:
    events = [66, 27, 45, 9, 12, 5, 30, 18, 40, 22]
    totals = [110, 70, 100, 15, 20, 9, 50, 31, 77, 41]
    e = np.array([events[i % 10] for i in range(n)], dtype=float)
    t = np.array([totals[i % 10] for i in range(n)], dtype=float)
    p = e / t
    se = np.sqrt(p * (1 - p) / t)
    df = pd.DataFrame({
        "label": [f"Study {i + 1} ({2010 + i})" for i in range(n)],
        "detail": [f"{int(a)}/{int(b)}" for a, b in zip(e, t, strict=True)],
        "estimate": p,
        "ci_lb": np.clip(p - 1.96 * se, 0, 1),
        "ci_ub": np.clip(p + 1.96 * se, 0, 1),
        "weight": 100 * t / t.sum() if weights else np.nan,
    })
    df.loc[0, "label"] = "Locatelli 2020 (RIALTO)"
    if subgroups is not None:
        df["subgroup"] = [subgroups[i % len(subgroups)] for i in range(n)]
    return df


OVERALL = {"label": "Random-effects model", "estimate": 0.53, "ci_lb": 0.45, "ci_ub": 0.61,
           "pi_lb": 0.33, "pi_ub": 0.72}


def _svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return ["".join(el.itertext()) for el in root.iter(f"{SVG_NS}text")]


def _svg_ids(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [el.get("id") for el in root.iter(f"{SVG_NS}g") if el.get("id")]


def _png_shape(path: Path) -> tuple[int, int]:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img.shape[0], img.shape[1]


def _check_files(paths: list[Path], stem: Path, min_w: int = 400, min_h: int = 250) -> None:
    assert paths == [stem.parent / (stem.name + ".png"), stem.parent / (stem.name + ".svg")]
    h, w = _png_shape(paths[0])
    assert w >= min_w and h >= min_h
    assert w < 6000 and h < 6000
    root = ET.parse(paths[1]).getroot()
    assert root.tag == f"{SVG_NS}svg"
    # atomic writes leave no temporary files behind
    leftovers = [p.name for p in stem.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _tick_x(path: Path, label: str) -> float:
    root = ET.parse(path).getroot()
    xs = [float(el.get("x")) for el in root.iter(f"{SVG_NS}text")
          if "".join(el.itertext()) == label and el.get("x") is not None]
    assert len(xs) == 1, f"tick label {label!r} found {len(xs)} times"
    return xs[0]


# --------------------------------------------------------------------------- forest


def test_forest_files_and_text_as_text(tmp_path: Path) -> None:
    rows = _rows(3)
    rows["flag"] = ["", "†", ""]
    het = "Heterogeneity: Q = 12.3 (df = 6, p = 0.05); I² = 51%; τ² = 0.21"
    stem = tmp_path / "forest"
    paths = forest_plot(stem, rows, pooled=[OVERALL], heterogeneity=het,
                        bayes={"estimate": 0.54, "ci_lb": 0.42, "ci_ub": 0.66,
                               "pi_lb": 0.22, "pi_ub": 0.83},
                        title="Complete remission ≥ 2 cycles")
    _check_files(paths, stem)
    texts = _svg_texts(paths[1])
    joined = "\n".join(texts)
    assert "Locatelli 2020 (RIALTO)" in texts
    assert "Study 2 (2011) †" in texts  # flag after the label
    for detail in rows["detail"]:
        assert detail in texts
    for r in rows.itertuples():
        assert f"{r.estimate:.2f} [{r.ci_lb:.2f}, {r.ci_ub:.2f}]" in texts
        assert f"{r.weight:.1f}%" in texts
    assert "0.53 [0.45, 0.61]" in texts
    assert "[0.33, 0.72]" in texts  # prediction interval
    assert het in texts  # τ and ² kept as Unicode text
    assert BAYES_LABEL in texts and "0.54 [0.42, 0.66]" in texts and "[0.22, 0.83]" in texts
    assert "Complete remission ≥ 2 cycles" in joined
    assert "nan" not in joined.lower()


def test_forest_svg_and_png_are_reproducible(tmp_path: Path) -> None:
    rows = _rows(4, subgroups=["A", "B"])
    rows["tooltip"] = [QUOTE, "", "x", ""]
    pooled = [OVERALL, {**OVERALL, "label": "A", "subgroup": "A", "pi_lb": None, "pi_ub": None}]
    a = forest_plot(tmp_path / "a", rows, pooled=pooled)
    b = forest_plot(tmp_path / "b", rows, pooled=pooled)
    assert a[1].read_bytes() == b[1].read_bytes()
    assert a[0].read_bytes() == b[0].read_bytes()
    assert b"<dc:date>" not in a[1].read_bytes()


def test_forest_svg_identical_in_a_fresh_process(tmp_path: Path) -> None:
    code = (
        "import sys, pandas as pd\n"
        "from blinameta.plots import forest_plot\n"
        "rows = pd.DataFrame({'label': ['A 2020', 'B 2021'], 'detail': ['3/10', '5/9'],\n"
        "  'estimate': [0.3, 0.556], 'ci_lb': [0.07, 0.21], 'ci_ub': [0.65, 0.86],\n"
        "  'weight': [45.0, 55.0]})\n"
        "forest_plot(sys.argv[1], rows, pooled=[{'label': 'RE', 'estimate': 0.43,\n"
        "  'ci_lb': 0.2, 'ci_ub': 0.66}])\n"
    )
    for name in ("p1", "p2"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    assert (tmp_path / "p1.svg").read_bytes() == (tmp_path / "p2.svg").read_bytes()


def test_forest_height_grows_with_rows(tmp_path: Path) -> None:
    small = forest_plot(tmp_path / "s", _rows(3), pooled=OVERALL)
    large = forest_plot(tmp_path / "l", _rows(25), pooled=OVERALL)
    h3, w3 = _png_shape(small[0])
    h25, w25 = _png_shape(large[0])
    # 22 more rows at 0.25 in and 150 dpi: about 825 px taller
    assert h25 - h3 == pytest.approx(22 * 0.25 * 150, abs=3)
    assert w25 == w3  # same labels width ("Study 10 (2019)" vs "Locatelli 2020 (RIALTO)")


def test_forest_two_rows_and_long_label_widen_the_figure(tmp_path: Path) -> None:
    rows = _rows(2)
    short = forest_plot(tmp_path / "short", rows, pooled=OVERALL)
    rows.loc[1, "label"] = "A very long cohort label: relapsed/refractory B-ALL, second relapse"
    long = forest_plot(tmp_path / "long", rows, pooled=OVERALL)
    assert _png_shape(long[0])[1] > _png_shape(short[0])[1] + 150
    assert rows.loc[1, "label"] in _svg_texts(long[1])


def test_forest_subgroups_one_diamond_each_plus_overall(tmp_path: Path) -> None:
    groups = ["Trial", "Real-world", "Compassionate use"]
    rows = _rows(7, subgroups=groups)
    pooled = [{"label": f"RE model ({g})", "estimate": 0.5, "ci_lb": 0.4, "ci_ub": 0.6,
               "subgroup": g} for g in groups]
    pooled += [OVERALL, {"label": "Common-effect model", "estimate": 0.52, "ci_lb": 0.47,
                         "ci_ub": 0.57, "kind": "common"}]
    paths = forest_plot(tmp_path / "sub", rows, pooled=pooled,
                        subgroup_test="Test for subgroup differences: Q = 3.1, df = 2, p = 0.21")
    ids = _svg_ids(paths[1])
    random = [i for i in ids if i.startswith("blinameta-forest-diamond-") and i.endswith("random")]
    common = [i for i in ids if i.startswith("blinameta-forest-diamond-") and i.endswith("common")]
    assert len(random) == len(groups) + 1
    assert len(common) == 1
    texts = _svg_texts(paths[1])
    for g in groups:  # panel headers, in order of first appearance
        assert g in texts
    order = [texts.index(g) for g in groups]
    assert order == sorted(order)
    assert "Test for subgroup differences: Q = 3.1, df = 2, p = 0.21" in texts
    # random diamonds filled, the common one hollow
    root = ET.parse(paths[1]).getroot()
    styles = {g.get("id"): g.find(f"{SVG_NS}path").get("style") for g in root.iter(f"{SVG_NS}g")
              if (g.get("id") or "").startswith("blinameta-forest-diamond-")}
    assert all("fill: #ffffff" not in styles[i] for i in random)
    assert "fill: #ffffff" in styles[common[0]]


def test_forest_log_scale_for_hazard_ratios(tmp_path: Path) -> None:
    rows = pd.DataFrame({"label": ["Locatelli 2021", "Brown 2021"], "detail": ["HR", "HR"],
                         "estimate": [0.43, 0.70], "ci_lb": [0.18, 0.47], "ci_ub": [1.01, 1.03],
                         "weight": [np.nan, np.nan]})
    paths = forest_plot(tmp_path / "hr", rows, pooled={"label": "RE", "estimate": 0.62,
                                                        "ci_lb": 0.40, "ci_ub": 0.95},
                        scale="log", xlabel="Hazard ratio", null_value=1, xlim=(0.1, 10),
                        favours=("Favours blinatumomab", "Favours chemotherapy"))
    x01, x1, x10 = (_tick_x(paths[1], t) for t in ("0.1", "1", "10"))
    x05, x2 = _tick_x(paths[1], "0.5"), _tick_x(paths[1], "2")
    assert x1 - x01 == pytest.approx(x10 - x1, rel=1e-3)  # decades equally spaced
    assert x1 - x05 == pytest.approx(x2 - x1, rel=1e-3)  # HR 0.5 and 2 symmetric about 1
    ids = _svg_ids(paths[1])
    assert any(i.startswith("blinameta-forest-null-") for i in ids)
    texts = _svg_texts(paths[1])
    assert "Weight" not in texts  # all weights NaN: no weight column
    assert "← Favours blinatumomab" in texts and "Favours chemotherapy →" in texts
    with pytest.raises(ValueError, match="> 0 on a log scale"):
        bad = rows.assign(ci_lb=[0.0, 0.47])
        forest_plot(tmp_path / "bad", bad, pooled=[], scale="log")


def test_forest_arrows_only_where_clipped(tmp_path: Path) -> None:
    rows = _rows(3)
    rows.loc[1, ["estimate", "ci_lb", "ci_ub"]] = [0.3, 0.05, 0.55]
    paths = forest_plot(tmp_path / "clip", rows, pooled=OVERALL, xlim=(0.2, 0.8))
    ids = set(_svg_ids(paths[1]))
    assert "blinameta-forest-row-1-ci-arrow-left" in ids
    assert "blinameta-forest-row-1-ci-arrow-right" not in ids
    assert not any(i.startswith("blinameta-forest-row-0-ci-arrow") for i in ids)


def test_forest_tooltips_carry_the_quote(tmp_path: Path) -> None:
    rows = _rows(3)
    rows["tooltip"] = [QUOTE, None, ""]
    paths = forest_plot(tmp_path / "tip", rows, pooled=OVERALL)
    root = ET.parse(paths[1]).getroot()  # the quote's & and <> are escaped: it parses
    groups = {g.get("id"): g for g in root.iter(f"{SVG_NS}g") if g.get("id")}
    for part in ("label", "band", "marker"):
        title = groups[f"blinameta-forest-row-0-{part}"].find(f"{SVG_NS}title")
        assert title is not None and title.text == QUOTE
    assert groups["blinameta-forest-row-1-label"].find(f"{SVG_NS}title") is None


def test_forest_nan_weights_and_dollar_signs(tmp_path: Path) -> None:
    rows = _rows(3)
    rows.loc[2, "weight"] = np.nan
    rows.loc[1, "label"] = "Cost $5 and $6 cohort"  # would be mathtext if parsed
    paths = forest_plot(tmp_path / "nanw", rows, pooled=OVERALL)
    texts = _svg_texts(paths[1])
    assert "Cost $5 and $6 cohort" in texts
    assert "Weight" in texts and "—" in texts  # the missing weight is shown as a dash
    assert not any("nan" in t.lower() for t in texts)


def test_forest_leaves_global_rcparams_alone(tmp_path: Path) -> None:
    before = (mpl.rcParams["svg.fonttype"], mpl.rcParams["svg.hashsalt"],
              mpl.rcParams["font.size"])
    forest_plot(tmp_path / "rc", _rows(2), pooled=OVERALL)
    assert (mpl.rcParams["svg.fonttype"], mpl.rcParams["svg.hashsalt"],
            mpl.rcParams["font.size"]) == before


def test_forest_from_threads_matches_serial(tmp_path: Path) -> None:
    serial = forest_plot(tmp_path / "serial", _rows(5), pooled=OVERALL)[1].read_bytes()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            forest_plot(tmp_path / f"t{i}", _rows(5), pooled=OVERALL)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(3):
        assert (tmp_path / f"t{i}.svg").read_bytes() == serial


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        paths = forest_plot(tmp_path / "perm.png", _rows(2), pooled=OVERALL)  # suffix dropped
    finally:
        os.umask(old)
    assert [p.name for p in paths] == ["perm.png", "perm.svg"]
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.drop(columns="detail"), "missing column"),
        (lambda r: r.assign(estimate=[0.6, np.nan, 0.4]), "non-finite estimate"),
        (lambda r: r.assign(ci_ub=[0.5, 0.5, 0.5]), "ci_lb <= estimate <= ci_ub"),
        (lambda r: r.assign(weight=[10.0, -1.0, 3.0]), "weight must be >= 0"),
        (lambda r: r.assign(estimate=["a", "b", "c"]), "must be numeric"),
    ],
)
def test_forest_rejects_bad_rows(tmp_path: Path, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        forest_plot(tmp_path / "bad", change(_rows(3)), pooled=OVERALL)


def test_forest_rejects_bad_pooled(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subgroup"):
        forest_plot(tmp_path / "bad", _rows(3, subgroups=["A"]),
                    pooled=[{**OVERALL, "subgroup": "B"}])
    with pytest.raises(ValueError, match="kind"):
        forest_plot(tmp_path / "bad", _rows(3), pooled=[{**OVERALL, "kind": "fixed"}])
    with pytest.raises(ValueError, match=r"pooled\[0\]\['estimate'\]"):
        forest_plot(tmp_path / "bad", _rows(3), pooled=[{**OVERALL, "estimate": math.inf}])
    with pytest.raises(ValueError, match="xlim"):
        forest_plot(tmp_path / "bad", _rows(3), pooled=OVERALL, xlim=(0.8, 0.2))
    assert not list(tmp_path.iterdir())  # nothing written on error


# --------------------------------------------------------------------------- other plots


def test_funnel_plot(tmp_path: Path) -> None:
    yi = np.array([0.4, -0.2, 0.9, 0.1, 0.3])
    sei = np.array([0.2, 0.45, 0.5, 0.3, 0.25])
    stem = tmp_path / "funnel"
    paths = funnel_plot(stem, yi, sei, estimate=0.25, labels=list("ABCDE"),
                        egger_text="Egger's test: z = 1.23, p = 0.22")
    _check_files(paths, stem)
    texts = _svg_texts(paths[1])
    assert "Egger's test: z = 1.23, p = 0.22" in texts
    assert {"A", "B", "C", "D", "E"} <= set(texts)
    # inverted y-axis: the standard error 0.0 is at the top (smallest SVG y)
    root = ET.parse(paths[1]).getroot()
    ys = {"".join(el.itertext()): float(el.get("y")) for el in root.iter(f"{SVG_NS}text")
          if "".join(el.itertext()) in ("0.0", "0.4")}
    assert ys["0.0"] < ys["0.4"]
    # labels of coincident points are moved apart, not drawn on top of each other
    same = funnel_plot(tmp_path / "same", [0.3, 0.3, 0.3], [0.2, 0.2, 0.2], estimate=0.3,
                       labels=["X1", "X2", "X3"])
    root = ET.parse(same[1]).getroot()
    ys_same = [float(el.get("y")) for el in root.iter(f"{SVG_NS}text")
               if "".join(el.itertext()) in ("X1", "X2", "X3")]
    assert len(ys_same) == 3
    gaps = np.diff(sorted(ys_same))
    assert (gaps >= 6.0).all()  # at least ~ one 7-pt line apart (SVG units are points)
    with pytest.raises(ValueError, match="same length"):
        funnel_plot(tmp_path / "bad", yi, sei[:4], estimate=0.25)
    with pytest.raises(ValueError, match="sei"):
        funnel_plot(tmp_path / "bad", yi, [0.2, 0.0, 0.5, 0.3, 0.25], estimate=0.25)
    with pytest.raises(ValueError, match="estimate"):
        funnel_plot(tmp_path / "bad", yi, sei, estimate=math.nan)


def test_bubble_plot_continuous_and_categorical(tmp_path: Path) -> None:
    x = np.array([5.0, 8.0, 11.0, 14.0])
    yi = np.array([0.1, 0.3, 0.2, 0.6])
    vi = np.array([0.05, 0.02, 0.1, 0.04])
    fx = np.linspace(5, 14, 20)
    fy = 0.05 + 0.03 * (fx - 5)
    paths = bubble_plot(tmp_path / "bub", x, yi, vi, fit_x=fx, fit_y=fy, fit_lb=fy - 0.2,
                        fit_ub=fy + 0.2, xlabel="Median age (years)", ylabel="Logit proportion",
                        labels=["S1", "S2", "S3", "S4"])
    _check_files(paths, tmp_path / "bub")
    texts = _svg_texts(paths[1])
    assert {"Median age (years)", "Logit proportion", "S1", "S4"} <= set(texts)
    assert "Fitted line (95% CI)" in texts

    levels = ["Trial", "Real-world"]
    paths = bubble_plot(tmp_path / "cat", ["Trial", "Real-world", "Trial", "Real-world"], yi, vi,
                        fit_x=levels, fit_y=[0.15, 0.45], fit_lb=[0.0, 0.2], fit_ub=[0.3, 0.7],
                        xlabel="Setting", ylabel="Logit proportion", categorical=True)
    texts = _svg_texts(paths[1])
    assert _tick_x(paths[1], "Trial") < _tick_x(paths[1], "Real-world")  # fit_x order
    assert "Fitted value (95% CI)" in texts
    with pytest.raises(ValueError, match="not in fit_x"):
        bubble_plot(tmp_path / "bad", ["Trial", "Other", "Trial", "Trial"], yi, vi,
                    fit_x=levels, fit_y=[0.1, 0.2], xlabel="", ylabel="", categorical=True)
    with pytest.raises(ValueError, match="same length"):
        bubble_plot(tmp_path / "bad", x[:3], yi, vi, fit_x=fx, fit_y=fy, xlabel="", ylabel="")
    with pytest.raises(ValueError, match="fit_lb, fit_ub"):
        bubble_plot(tmp_path / "bad", x, yi, vi, fit_x=fx, fit_y=fy, fit_lb=fy,
                    xlabel="", ylabel="")


def test_posterior_plot(tmp_path: Path) -> None:
    grid = np.linspace(0, 1, 201)
    dens = np.exp(-0.5 * ((grid - 0.57) / 0.05) ** 2)
    pred = np.exp(-0.5 * ((grid - 0.57) / 0.15) ** 2)
    paths = posterior_plot(tmp_path / "post", [
        {"label": "Pooled median rate", "x": grid, "density": dens, "lb": 0.48, "ub": 0.66},
        {"label": "Rate in a new study", "x": grid, "density": pred},
    ], thresholds={"Historical (30%)": 0.3})
    _check_files(paths, tmp_path / "post")
    texts = _svg_texts(paths[1])
    assert "Pooled median rate (95% CrI 0.48–0.66)" in texts
    assert "Rate in a new study" in texts and "Historical (30%)" in texts
    # unlabelled thresholds show their value; log scale for ratios
    hr = np.exp(np.linspace(np.log(0.1), np.log(4), 100))
    log_paths = posterior_plot(tmp_path / "post_hr", [{"label": "HR", "x": hr,
                                                       "density": np.exp(-np.log(hr / 0.6) ** 2)}],
                               xlabel="Hazard ratio", thresholds=[1.5], scale="log")
    assert "1.5" in _svg_texts(log_paths[1])
    x01, x1 = _tick_x(log_paths[1], "0.1"), _tick_x(log_paths[1], "1")
    x02, x2 = _tick_x(log_paths[1], "0.2"), _tick_x(log_paths[1], "2")
    assert x1 - x01 == pytest.approx(x2 - x02, rel=1e-3)  # log spacing
    with pytest.raises(ValueError, match="increasing"):
        posterior_plot(tmp_path / "bad", [{"label": "a", "x": grid[::-1], "density": dens}])
    with pytest.raises(ValueError, match="x has 201 values, density 200"):
        posterior_plot(tmp_path / "bad", [{"label": "a", "x": grid, "density": dens[:-1]}])


def test_shrinkage_plot(tmp_path: Path) -> None:
    labels = ["Locatelli 2020", "Gore 2018", "Horibe 2020"]
    obs = np.array([0.6, 0.9, 0.35])
    shr = np.array([0.58, 0.75, 0.45])
    paths = shrinkage_plot(tmp_path / "shr", labels, obs, obs - 0.1, obs + 0.08, shr, shr - 0.08,
                           shr + 0.08, pooled={"estimate": 0.55, "ci_lb": 0.5, "ci_ub": 0.6})
    _check_files(paths, tmp_path / "shr")
    texts = _svg_texts(paths[1])
    assert set(labels) <= set(texts)
    # studies listed top to bottom in the given order
    root = ET.parse(paths[1]).getroot()
    y = {"".join(el.itertext()): float(el.get("y")) for el in root.iter(f"{SVG_NS}text")
         if "".join(el.itertext()) in labels}
    assert y[labels[0]] < y[labels[1]] < y[labels[2]]
    with pytest.raises(ValueError, match="same length"):
        shrinkage_plot(tmp_path / "bad", labels[:2], obs, obs, obs, shr, shr, shr)
    with pytest.raises(ValueError, match="shrunk"):
        shrinkage_plot(tmp_path / "bad", labels, obs, obs, obs, shr, shr + 0.1, shr + 0.2)


def test_baujat_plot(tmp_path: Path) -> None:
    paths = baujat_plot(tmp_path / "bj", [0.5, 3.2, 1.1], [0.2, 1.4, np.nan],
                        ["Study A", "Study B", "Study C"])
    _check_files(paths, tmp_path / "bj")
    texts = _svg_texts(paths[1])
    assert "Study A" in texts and "Study B" in texts
    assert "Not shown (leave-one-out fit failed): Study C" in texts
    with pytest.raises(ValueError, match="infinite"):
        baujat_plot(tmp_path / "bad", [0.5, 3.2], [0.2, math.inf], ["a", "b"])


# --------------------------------------------------------------------------- RevMan 5 elements


def test_forest_revman_columns_percent_weights_totals_and_primary(tmp_path: Path) -> None:
    """The RevMan 5 / JAMA elements: Events and Total columns, % with one decimal, common and
    random weights, a Total row with total events, the primary row marked, the Bayesian prior."""
    rows = _rows(3)
    rows["events"] = ["66", "27", "45"]
    rows["total"] = ["110", "70", "100"]
    rows["weight_common"] = [40.0, 25.0, 35.0]
    pooled = [{"label": "Total (common effect, 95% CI)", "kind": "common", "estimate": 0.5, "ci_lb": 0.45,
               "ci_ub": 0.55, "cells": {"total": "280"}, "weight_common_text": "100.0%"},
              {**OVERALL, "label": "Total (random effects, 95% CI)", "cells": {"total": "280"}, "weight_text": "100.0%"}]
    paths = forest_plot(tmp_path / "rm", rows, pooled=pooled, percent=True,
                        columns=[("Events", "events"), ("Total", "total")], total_events={"events": "138"},
                        heterogeneity=["Heterogeneity: τ² = 0.1", "Test for overall effect: Z = 2.00 (P = 0.045)"],
                        bayes={"estimate": 0.52, "ci_lb": 0.4, "ci_ub": 0.63, "primary": True,
                               "label": "Bayesian — primary analysis", "note": "Priors: μ ~ normal(mean 0, SD 1.5)"})
    texts = _svg_texts(paths[1])
    for t in ("Events", "Total", "Weight (common)", "Weight (random)", "Total events", "138", "280",
              "60.0 [50.8, 69.2]", "Priors: μ ~ normal(mean 0, SD 1.5)", "Bayesian — primary analysis",
              "Test for overall effect: Z = 2.00 (P = 0.045)"):
        assert t in texts, t
    assert "0.60 [0.51, 0.69]" not in texts  # percentages, not fractions
    assert "blinameta-forest-primary-bayes" in _svg_ids(paths[1])


def test_forest_column_groups_and_diamond_arrows(tmp_path: Path) -> None:
    rows = pd.DataFrame({"label": ["Brown 2021", "Locatelli 2021"], "detail": ["", ""], "estimate": [0.7, 0.33],
                         "ci_lb": [0.47, 0.18], "ci_ub": [1.03, 0.61], "weight": [55.0, 45.0],
                         "a": ["105", "54"], "b": ["103", "54"]})
    pooled = {"label": "Total (random effects)", "estimate": 0.5, "ci_lb": 0.004, "ci_ub": 58.0}
    paths = forest_plot(tmp_path / "hr", rows, pooled=pooled, scale="log", null_value=1, xlim=(0.1, 10),
                        columns=[("N", "a"), ("N", "b")], column_groups=[("Blinatumomab", 1), ("Chemotherapy", 1)],
                        favours=("Favours blinatumomab", "Favours chemotherapy"))
    texts = _svg_texts(paths[1])
    assert "Blinatumomab" in texts and "Chemotherapy" in texts
    ids = set(_svg_ids(paths[1]))
    assert {"blinameta-forest-diamond-0-cut-arrow-left", "blinameta-forest-diamond-0-cut-arrow-right"} <= ids
    x_b, x_c = _tick_x(paths[1], "Blinatumomab"), _tick_x(paths[1], "Chemotherapy")
    assert x_c - x_b > 40  # the two arm titles do not overlap


def test_rob_traffic_light_and_summary(tmp_path: Path) -> None:
    from blinameta.plots import rob_summary, rob_traffic_light

    studies = ["Brown 2021 (AALL1331)", "Locatelli 2021"]
    judg = [["low", "some_concerns", "low"], ["high", "no_information", "high"]]
    paths = rob_traffic_light(tmp_path / "tl", studies, ["D1", "D2", "Overall"], judg,
                              domain_names=["Randomization", "Deviations", "Overall"])
    ids = _svg_ids(paths[1])
    assert "blinameta-rob-0-1-some_concerns" in ids and "blinameta-rob-1-2-high" in ids
    texts = _svg_texts(paths[1])
    assert {"+", "−", "×", "?"} <= set(texts) and studies[0] in texts
    paths = rob_summary(tmp_path / "sum", ["Randomization", "Deviations", "Overall"], judg)
    ids = _svg_ids(paths[1])
    assert "blinameta-robsum-0-low" in ids and "blinameta-robsum-0-high" in ids
    assert "50%" in _svg_texts(paths[1])
    with pytest.raises(ValueError, match="unknown judgement"):
        rob_traffic_light(tmp_path / "bad", studies, ["D1"], [["yes"], ["low"]])


def test_flow_diagram(tmp_path: Path) -> None:
    from blinameta.plots import flow_diagram

    stages = [{"phase": "Identification", "main": ["Publications identified: 25"], "side": ["Excluded: 3", "adult: 3"]},
              {"phase": "Included", "main": ["Publications in at least one analysis: 14"]}]
    paths = flow_diagram(tmp_path / "flow", stages)
    texts = _svg_texts(paths[1])
    assert "Publications identified: 25" in texts and "adult: 3" in texts
    ids = _svg_ids(paths[1])
    assert "blinameta-flow-main-0" in ids and "blinameta-flow-side-0" in ids and "blinameta-flow-main-1" in ids
    again = flow_diagram(tmp_path / "flow2", stages)
    assert again[1].read_bytes() == paths[1].read_bytes()
