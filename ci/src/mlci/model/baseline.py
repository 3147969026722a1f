"""The feature baseline: histograms of the training data, saved with the model at training time.

`feature_baseline` makes it from the training matrix; the server bins every row it scores into the same
bins and compares the two (`mlci.serving.drift`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError


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
