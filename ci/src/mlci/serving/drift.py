"""Feature drift: a sliding window of scored rows against the training baseline, by population stability index.

The server bins every row it scores into the baseline's bins and reports, per feature, the PSI between the
window and the baseline. A PSI under 0.1 is usually read as stable, over 0.25 as drift.
"""

from __future__ import annotations

import numpy as np

from ..model.baseline import Baseline, bin_indices

# A fraction of zero would make the PSI infinite; empty bins count as this fraction instead.
EPSILON = 1e-4


def psi(actual_counts: np.ndarray, expected_fractions: np.ndarray) -> np.ndarray:
    """Population stability index per feature (row) of binned counts against expected fractions."""
    totals = actual_counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual = np.maximum(actual_counts / totals, EPSILON)
    expected = np.maximum(expected_fractions, EPSILON)
    padded = expected_fractions <= 0
    terms = np.where(padded & (actual_counts == 0), 0.0, (actual - expected) * np.log(actual / expected))
    result: np.ndarray = terms.sum(axis=1)
    result[totals[:, 0] == 0] = np.nan
    return result


class DriftWindow:
    """The bin counts of the last `size` rows scored, kept in `counts` (features x bins), updated in place.

    `counts` may be a view of shared memory so that another process can read it.
    """

    def __init__(self, baseline: Baseline, size: int, counts: np.ndarray) -> None:
        self.edges = baseline.edge_matrix()
        self.bins = baseline.bins
        self.size = size
        self.counts = counts
        self.counts[:] = 0
        self._ring = np.zeros((size, len(baseline.features)), dtype=np.int64)
        self._next = 0
        self._filled = 0
        self._offsets = np.arange(len(baseline.features)) * self.bins

    @property
    def rows(self) -> int:
        return self._filled

    def add(self, matrix: np.ndarray) -> None:
        """Count numeric rows into the window, evicting the oldest ones once it is full."""
        self.add_bins(bin_indices(matrix[-self.size :], self.edges))

    def add_bins(self, new: np.ndarray) -> None:
        """Count rows given as their bins (rows x features) into the window, evicting the oldest ones."""
        new = new[-self.size :]
        n = new.shape[0]
        if n == 0:
            return
        flat = self.counts.reshape(-1)
        slots = (self._next + np.arange(n)) % self.size
        evicted = slots[slots < self._filled]  # slots at or past _filled were never written
        if evicted.size:
            old = self._ring[evicted] + self._offsets
            flat -= np.bincount(old.reshape(-1), minlength=flat.size)
        flat += np.bincount((new + self._offsets).reshape(-1), minlength=flat.size)
        self._ring[slots] = new
        self._next = (self._next + n) % self.size
        self._filled = min(self.size, self._filled + n)
