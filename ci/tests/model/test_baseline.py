"""The feature baseline of any table: numeric bins, text categories, missing values counted where they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlci.errors import ModelError
from mlci.model.baseline import MAX_CATEGORIES, Baseline, feature_baseline


def test_a_text_column_gets_its_categories_with_missing_as_the_empty_string_and_an_other_bin():
    frame = pd.DataFrame({"city": ["Paris", "Lyon", None, "Paris"], "n": [1, 2, 3, 4]})
    baseline = Baseline.from_dict(feature_baseline(frame, ["city", "n"]))
    assert baseline.categories[0] == ("Paris", "", "Lyon") and baseline.edges[0] == ()
    assert baseline.fractions[0] == (0.5, 0.25, 0.25, 0.0)
    assert baseline.categories[1] == () and baseline.edges[1]
    bins = baseline.bin_columns({"city": ["Lyon", None, "Rome"], "n": [1, 4, None]})
    assert bins[:, 0].tolist() == [2, 1, 3]  # Rome was never seen: the other bin


def test_a_missing_number_counts_in_the_bin_the_baseline_counted_it_in():
    """A feature with fewer edges than the widest is padded: a NaN must not land in a padded bin (expected share 0,
    an infinite-looking drift), but in the feature's own last bin, where training NaNs went."""
    frame = pd.DataFrame({"wide": np.arange(100.0), "narrow": [1.0, 2.0, np.nan, 1.0] * 25})
    baseline = Baseline.from_dict(feature_baseline(frame, ["wide", "narrow"]))
    last = len(baseline.edges[1])
    assert baseline.fractions[1][last] == pytest.approx(0.5)  # 2.0 and the NaNs
    assert baseline.bin_columns({"wide": [5.0], "narrow": [None]})[0, 1] == last
    from mlci.model.baseline import bin_indices

    assert bin_indices(np.array([[5.0, np.nan]]), baseline.edge_matrix())[0, 1] == last


def test_many_categories_keep_the_most_frequent_and_the_rest_share_the_other_bin():
    values = [f"c{i}" for i in range(MAX_CATEGORIES + 10) for _ in range(1 + (i < 5))]
    baseline = Baseline.from_dict(feature_baseline(pd.DataFrame({"v": values}), ["v"]))
    assert len(baseline.categories[0]) == MAX_CATEGORIES
    assert baseline.categories[0][:5] == ("c0", "c1", "c2", "c3", "c4")
    assert baseline.fractions[0][-1] > 0


def test_a_baseline_saved_before_text_features_still_loads():
    old = {"features": ["a"], "edges": [[1.0, 2.0]], "fractions": [[0.3, 0.3, 0.4]]}
    assert Baseline.from_dict(old).categories == ((),)


def test_a_text_feature_with_edges_or_the_wrong_number_of_fractions_is_refused():
    both = {"features": ["c"], "edges": [[1.0]], "fractions": [[0.5, 0.5]], "categories": [["x"]]}
    with pytest.raises(ModelError, match="feature 'c' has both edges and categories"):
        Baseline.from_dict(both)
    short = {"features": ["c"], "edges": [[]], "fractions": [[1.0]], "categories": [["x", "y"]]}
    with pytest.raises(ModelError, match="feature 'c' has 2 categories but 1 fractions"):
        Baseline.from_dict(short)
