"""Drift: baselines, the population stability index and the sliding window."""

import numpy as np
import pytest

from mlci.drift import feature_baseline
from mlci.errors import ModelError
from mlci.model.baseline import Baseline, bin_indices
from mlci.serving.drift import DriftWindow, psi


def _baseline(matrix, bins=10):
    return Baseline.from_dict(feature_baseline(matrix, [f"f{i}" for i in range(matrix.shape[1])], bins))


def test_baseline_bins_hold_equal_shares_of_a_continuous_feature():
    values = np.random.default_rng(0).normal(size=(10_000, 2))
    baseline = _baseline(values)
    assert baseline.bins == 10
    assert np.allclose(baseline.fraction_matrix(), 0.1, atol=0.002)


def test_a_feature_with_few_values_gets_fewer_bins_padded_to_stay_empty():
    values = np.column_stack([np.repeat([0.0, 1.0], 500), np.random.default_rng(1).normal(size=1000)])
    baseline = _baseline(values)
    assert len(baseline.edges[0]) == 1
    assert baseline.fractions[0] == (0.5, 0.5)
    assert np.isinf(baseline.edge_matrix()[0, 1:]).all()
    counts = np.bincount(bin_indices(values, baseline.edge_matrix())[:, 0], minlength=baseline.bins)
    assert counts[:2].tolist() == [500, 500] and counts[2:].sum() == 0


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    generator = np.random.default_rng(2)
    baseline = _baseline(generator.normal(size=(20_000, 1)))
    same = np.bincount(bin_indices(generator.normal(size=(5000, 1)), baseline.edge_matrix())[:, 0], minlength=10)
    shifted = np.bincount(
        bin_indices(generator.normal(2, 1, size=(5000, 1)), baseline.edge_matrix())[:, 0], minlength=10
    )
    expected = baseline.fraction_matrix()
    assert psi(same[None, :], expected)[0] < 0.02
    assert psi(shifted[None, :], expected)[0] > 1.0


def test_psi_of_an_empty_window_is_nan():
    assert np.isnan(psi(np.zeros((1, 10)), np.full((1, 10), 0.1))[0])


def test_the_window_counts_exactly_the_last_rows_after_wrapping():
    generator = np.random.default_rng(3)
    baseline = _baseline(generator.normal(size=(1000, 3)))
    counts = np.zeros((3, baseline.bins))
    window = DriftWindow(baseline, size=50, counts=counts)
    rows = generator.normal(size=(137, 3))
    seen = []
    for chunk in np.array_split(rows, [7, 30, 31, 80, 136]):  # uneven batches, some wrapping the ring
        window.add(chunk)
        seen.append(chunk)
        recent = np.concatenate(seen)[-50:]
        expected = np.zeros_like(counts)
        for feature, column in enumerate(bin_indices(recent, baseline.edge_matrix()).T):
            expected[feature] = np.bincount(column, minlength=baseline.bins)
        assert np.array_equal(counts, expected)
        assert window.rows == len(recent)
    window.add(generator.normal(size=(500, 3)))  # larger than the window: only its last 50 rows count
    assert counts.sum(axis=1).tolist() == [50, 50, 50]


def test_a_malformed_baseline_is_refused_naming_the_feature():
    with pytest.raises(ModelError, match="feature 'a' has 1 edges but 3 fractions"):
        Baseline.from_dict({"features": ["a"], "edges": [[0.0]], "fractions": [[0.3, 0.3, 0.4]]})
    with pytest.raises(ModelError, match="malformed"):
        Baseline.from_dict({"features": ["a"]})
