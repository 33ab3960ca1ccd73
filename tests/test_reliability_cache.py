"""Reliability: the posterior cache is never a reason to fail or to lie (issue 15, audit §3, §11).

An unusable cache folder is reported and bypassed before sampling; a cached file that cannot be
read, was stored under another key, or whose stored summaries are not sane is reported and
refitted; a failed write after sampling is a warning and the result is kept.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from reliability_support import run

from blinameta.bayes import cache

KEY = "a" * 64


def _result(mu_mean: float = -0.4) -> str:
    p = {"mean": mu_mean, "sd": 0.2, "lb": -0.8, "ub": 0.0}
    return json.dumps({
        "mu": p, "tau": {"mean": 0.3, "sd": 0.1, "lb": 0.1, "ub": 0.6},
        "coef": [], "study": [{"study": "s1", "mean": 0.4, "lb": 0.2, "ub": 0.6}], "exceedance": [],
        "diagnostics": {"rhat_max": 1.0, "ess_bulk_min": 900.0, "ess_tail_min": 800.0, "divergences": 0},
        "retried": False, "notes": [],
    })


def _tree(result: str | None = None) -> xr.DataTree:
    posterior = xr.Dataset({"mu": (("chain", "draw"), np.zeros((2, 5)))})
    tree = xr.DataTree.from_dict({"posterior": posterior})
    tree.attrs["blinameta_result"] = result if result is not None else _result()
    return tree


def _load(directory, key=KEY):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = cache.load(key, directory)
    return value, [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]


def test_a_sane_file_round_trips(tmp_path):
    assert cache.save(KEY, tmp_path, _tree()) is not None
    value, messages = _load(tmp_path)
    assert value is not None and not messages
    assert (tmp_path / "bayes" / f"{KEY}.nc").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_missing_file_is_a_silent_miss(tmp_path):
    assert _load(tmp_path) == (None, [])


def test_a_cache_folder_that_is_a_file_is_bypassed(tmp_path):
    target = tmp_path / "cachefile"
    target.write_text("not a folder")
    value, messages = _load(target)
    assert value is None and any("is not a folder" in m for m in messages)
    with pytest.warns(cache.CacheWarning, match="not cached"):
        assert cache.save(KEY, target, _tree()) is None
    assert target.read_text() == "not a folder"


def test_a_cache_file_that_is_a_folder_is_bypassed(tmp_path):
    (tmp_path / "bayes" / f"{KEY}.nc").mkdir(parents=True)
    value, messages = _load(tmp_path)
    assert value is None and any("cannot be read" in m for m in messages)
    with pytest.warns(cache.CacheWarning, match="not cached"):
        assert cache.save(KEY, tmp_path, _tree()) is None


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\ntruncated", b"random bytes" * 100])
def test_unreadable_cache_files_are_refitted(tmp_path, content):
    (tmp_path / "bayes").mkdir()
    (tmp_path / "bayes" / f"{KEY}.nc").write_bytes(content)
    value, messages = _load(tmp_path)
    assert value is None and any("cannot be read" in m for m in messages)


@pytest.mark.parametrize("result, why", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (_result(mu_mean=9.99), "mean 9.99 outside [-0.8, 0]"),
    (json.dumps({"mu": {"mean": 0.0, "sd": 1, "lb": -1, "ub": 1}}), "incomplete"),
    (json.dumps({"tau": {"mean": 0.3, "sd": 0.1, "lb": 0.1, "ub": 0.6}}), "no summary of mu"),
])
def test_insane_cached_results_are_refitted(tmp_path, result, why):
    cache.save(KEY, tmp_path, _tree(result))
    value, messages = _load(tmp_path)
    assert value is None and any(why in m for m in messages), messages


def test_a_file_stored_under_another_key_is_refitted(tmp_path):
    cache.save("b" * 64, tmp_path, _tree())
    (tmp_path / "bayes" / f"{'b' * 64}.nc").rename(tmp_path / "bayes" / f"{KEY}.nc")
    value, messages = _load(tmp_path)
    assert value is None and any("another key" in m for m in messages)


@pytest.mark.slow
def test_bayes_with_an_unusable_cache_warns_before_sampling_and_answers(tmp_path, capsys, monkeypatch):
    data = tmp_path / "d.csv"
    data.write_text("study,events,total\na,3,20\nb,7,25\nc,5,30\n")
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("BLINAMETA_CACHE_DIR", str(blocker))
    status, out, err = run(capsys, ["bayes", data, "--events", "events", "--total", "total", "--draws", "1000",
                                    "--tune", "1000", "--chains", "4", "--json"])
    assert status == 0, err
    assert "posterior cache bypassed" in err and json.loads(out)["mu"]["mean"] is not None
    assert blocker.read_text() == "x"
