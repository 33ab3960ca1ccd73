"""Subgroup tests honest about thin data (issue 11, item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blinameta.analysis.run import _honest_subgroups
from blinameta.analysis.spec import FrequentistSettings
from blinameta.frequentist.subgroup import subgroup

YI = np.array([0.1, 0.3, 0.2, 0.9, 1.1, -0.5, 0.4])
VI = np.array([0.04, 0.05, 0.06, 0.05, 0.04, 0.09, 0.05])
SETTINGS = FrequentistSettings()


def _run(groups):
    values = pd.Series(groups)
    use = values.notna().to_numpy()
    full = subgroup(YI[use], VI[use], values[use].astype(str).to_numpy(), tau2="separate", method="REML", test="knha")
    notes: list[str] = []
    return _honest_subgroups("m", full, values, YI, VI, SETTINGS, notes), full, notes


def test_single_study_subgroups_are_shown_but_left_out_of_the_test():
    honest, full, _ = _run(["a", "a", "a", "b", "b", "c", None])
    assert list(honest.result.groups) == ["a", "b", "c"]  # all shown
    assert honest.single_study_groups == ("c",) and honest.tested_groups == ("a", "b")
    direct = subgroup(YI[:5], VI[:5], ["a", "a", "a", "b", "b"], tau2="separate", method="REML", test="knha")
    assert honest.result.qb == pytest.approx(direct.qb, rel=1e-12)
    assert honest.result.qb_df[0] == 1 and honest.result.qb != pytest.approx(full.qb)
    assert "single-study subgroups shown but not tested (c)" in honest.test_label


def test_with_one_multi_study_subgroup_the_test_is_labelled_optimistic_and_missing_studies_are_counted():
    honest, full, notes = _run(["a", "a", "a", None, None, "c", None])
    assert honest.result.qb == full.qb
    assert "z-based" in honest.test_label and "optimistic" in honest.test_label
    assert honest.k_excluded_missing == 3 and "3 studies not reporting m left out" in honest.test_label
    assert any("3 of 7 studies do not report it" in n for n in notes)
