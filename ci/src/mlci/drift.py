"""Feature drift: histograms of the training data (the baseline) against a sliding window of requests.

The baseline is saved with the model at training time (`feature_baseline`); the server bins every
row it scores into the same bins and reports, per feature, the population stability index (PSI)
between the window and the baseline. A PSI under 0.1 is usually read as stable, over 0.25 as drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ModelError

# A fraction of zero would make the PSI infinite; empty bins count as this fraction instead.
EPSILON = 1e-4


@dataclass(frozen=True)
class Baseline:
    """Per feature: the inner bin edges and the fraction of training rows in each bin."""

    features: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    fractions: tuple[tuple[float, ...], ...]

    @property
    def bins(self) -> int:
        """The number of bins of the widest feature; narrower ones are padded with empty bins."""
        return max(len(f) for f in self.fractions)

    def edge_matrix(self) -> np.ndarray:
        """Edges padded with +inf to one (features, bins - 1) matrix: padded bins never fill."""
        matrix = np.full((len(self.features), self.bins - 1), np.inf)
        for i, edges in enumerate(self.edges):
            matrix[i, : len(edges)] = edges
        return matrix

    def fraction_matrix(self) -> np.ndarray:
        matrix = np.zeros((len(self.features), self.bins))
        for i, fractions in enumerate(self.fractions):
            matrix[i, : len(fractions)] = fractions
        return matrix

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "edges": [list(e) for e in self.edges],
            "fractions": [list(f) for f in self.fractions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        try:
            baseline = cls(
                tuple(str(f) for f in data["features"]),
                tuple(tuple(float(v) for v in e) for e in data["edges"]),
                tuple(tuple(float(v) for v in f) for f in data["fractions"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"the drift baseline is malformed: {error!r}") from error
        if not (len(baseline.features) == len(baseline.edges) == len(baseline.fractions)):
            raise ModelError("the drift baseline has different numbers of features, edges and fractions")
        for name, edges, fractions in zip(baseline.features, baseline.edges, baseline.fractions, strict=True):
            if len(fractions) != len(edges) + 1:
                raise ModelError(
                    f"the drift baseline of feature {name!r} has {len(edges)} edges but "
                    f"{len(fractions)} fractions; it needs one fraction more than edges"
                )
        return baseline


def bin_indices(matrix: np.ndarray, edge_matrix: np.ndarray) -> np.ndarray:
    """For each value, its bin: the number of the feature's edges at or below it (NaN: the last bin)."""
    values = np.asarray(matrix, dtype=np.float64)
    result = np.empty(values.shape, dtype=np.int64)
    for i, edges in enumerate(edge_matrix):  # one sorted search per feature beats a 3-D comparison
        result[:, i] = np.searchsorted(edges, values[:, i], side="right")
    return result


def feature_baseline(matrix: Any, features: list[str], bins: int = 10) -> dict[str, Any]:
    """The baseline of a training matrix: quantile bins per feature, as a dict to save with the model.

    Features with few distinct values get fewer bins (duplicate quantiles are merged).
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(features):
        raise ValueError(f"a baseline needs a matrix of {len(features)} columns, got shape {values.shape}")
    if bins < 2:
        raise ValueError("a baseline needs at least 2 bins")
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges, fractions = [], []
    for column in values.T:
        finite = column[np.isfinite(column)]
        inner = np.array([])
        if finite.size:  # edges are data values; one at the minimum would leave the first bin empty
            inner = np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))
            inner = inner[inner > finite.min()]
        counts = np.bincount(bin_indices(column[:, None], inner[None, :])[:, 0], minlength=inner.size + 1)
        edges.append([float(e) for e in inner])
        fractions.append([float(c) for c in counts / max(column.size, 1)])
    return {"features": list(features), "edges": edges, "fractions": fractions}


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
        """Count rows into the window, evicting the oldest ones once it is full."""
        if matrix.shape[0] > self.size:
            matrix = matrix[-self.size :]
        n = matrix.shape[0]
        if n == 0:
            return
        flat = self.counts.reshape(-1)
        new = bin_indices(matrix, self.edges)
        slots = (self._next + np.arange(n)) % self.size
        evicted = slots[slots < self._filled]  # slots at or past _filled were never written
        if evicted.size:
            old = self._ring[evicted] + self._offsets
            flat -= np.bincount(old.reshape(-1), minlength=flat.size)
        flat += np.bincount((new + self._offsets).reshape(-1), minlength=flat.size)
        self._ring[slots] = new
        self._next = (self._next + n) % self.size
        self._filled = min(self.size, self._filled + n)
