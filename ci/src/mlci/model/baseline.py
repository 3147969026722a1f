"""The feature baseline: histograms of the training data, saved with the model at training time.

`feature_baseline` makes it from the training matrix; the server bins every row it scores into the same
bins and compares the two (`mlci.serving.drift`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import ModelError

# A missing value of a text feature is this category (what the model is fed for it too).
MISSING_TEXT = ""
# A text feature keeps at most this many categories; the rest share its last bin with unseen ones.
MAX_CATEGORIES = 20


@dataclass(frozen=True)
class Baseline:
    """Per feature: the fraction of training rows in each bin. A numeric feature's bins are cut by its inner
    edges; a text feature's bins are its categories (by name, in `categories`) and a last bin for any other."""

    features: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    fractions: tuple[tuple[float, ...], ...]
    categories: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.categories:  # a baseline of numeric features only (as saved before text features)
            object.__setattr__(self, "categories", tuple(() for _ in self.features))

    def is_text(self, i: int) -> bool:
        return bool(self.categories[i])

    @cached_property
    def _category_bins(self) -> list[dict[str, int]]:
        return [{category: j for j, category in enumerate(names)} for names in self.categories]

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

    def bin_columns(self, columns: dict[str, list[Any]]) -> np.ndarray:
        """Each row's bin per feature, for rows given column by column (values of any type, None for missing)."""
        rows = len(next(iter(columns.values()))) if columns else 0
        result = np.empty((rows, len(self.features)), dtype=np.int64)
        edges = self.edge_matrix()
        for i, name in enumerate(self.features):
            values = columns[name]
            if self.is_text(i):
                known = self._category_bins[i]
                other = len(known)
                result[:, i] = [known.get(MISSING_TEXT if v is None else v, other) for v in values]
            else:
                numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                result[:, i] = bin_indices(numbers[:, None], edges[i : i + 1])[:, 0]
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "edges": [list(e) for e in self.edges],
            "fractions": [list(f) for f in self.fractions],
            "categories": [list(c) for c in self.categories],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        try:
            baseline = cls(
                tuple(str(f) for f in data["features"]),
                tuple(tuple(float(v) for v in e) for e in data["edges"]),
                tuple(tuple(float(v) for v in f) for f in data["fractions"]),
                tuple(tuple(str(v) for v in c) for c in data.get("categories") or ()),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"the drift baseline is malformed: {error!r}") from error
        if not (len(baseline.features) == len(baseline.edges) == len(baseline.fractions)):
            raise ModelError("the drift baseline has different numbers of features, edges and fractions")
        if len(baseline.categories) != len(baseline.features):
            raise ModelError("the drift baseline has different numbers of features and category lists")
        for name, edges, fractions, categories in zip(
            baseline.features, baseline.edges, baseline.fractions, baseline.categories, strict=True
        ):
            if categories and edges:
                raise ModelError(f"the drift baseline of feature {name!r} has both edges and categories")
            cuts, what = (len(categories), "categories") if categories else (len(edges), "edges")
            if len(fractions) != cuts + 1:
                raise ModelError(
                    f"the drift baseline of feature {name!r} has {cuts} {what} but "
                    f"{len(fractions)} fractions; it needs one fraction more than {what}"
                )
        return baseline


def bin_indices(matrix: np.ndarray, edge_matrix: np.ndarray) -> np.ndarray:
    """For each value, its bin: the number of the feature's edges at or below it (NaN: the feature's last bin,
    where the baseline counted its missing values, not a padded one)."""
    values = np.asarray(matrix, dtype=np.float64)
    result = np.empty(values.shape, dtype=np.int64)
    for i, edges in enumerate(edge_matrix):  # one sorted search per feature beats a 3-D comparison
        column = values[:, i]
        result[:, i] = np.searchsorted(edges, column, side="right")
        missing = np.isnan(column)
        if missing.any():
            result[missing, i] = np.count_nonzero(np.isfinite(edges))
    return result


def feature_baseline(data: Any, features: list[str], bins: int = 10) -> dict[str, Any]:
    """The baseline of the training features, as a dict to save with the model: a matrix, or a DataFrame whose
    text columns get category bins (their most frequent values, a missing one as the empty string).

    Numeric features get quantile bins; those with few distinct values get fewer (duplicate quantiles merge).
    """
    if bins < 2:
        raise ValueError("a baseline needs at least 2 bins")
    columns = _columns(data, features)
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges: list[list[float]] = []
    fractions: list[list[float]] = []
    categories: list[list[str]] = []
    for column in columns:
        if column.dtype.kind in "biuf":
            inner, counts = _quantile_bins(column.astype(np.float64), quantiles)
            edges.append([float(e) for e in inner])
            categories.append([])
        else:
            text = np.array([MISSING_TEXT if _missing(v) else str(v) for v in column], dtype=object)
            names, seen = np.unique(text, return_counts=True)
            kept = [str(n) for n in names[np.argsort(-seen, kind="stable")][:MAX_CATEGORIES]]
            index = {name: i for i, name in enumerate(kept)}
            counts = np.bincount([index.get(v, len(kept)) for v in text], minlength=len(kept) + 1)
            edges.append([])
            categories.append(kept)
        fractions.append([float(c) for c in counts / max(column.size, 1)])
    return {"features": list(features), "edges": edges, "fractions": fractions, "categories": categories}


def _columns(data: Any, features: list[str]) -> list[np.ndarray]:
    if hasattr(data, "columns"):  # a DataFrame: its columns by name, each with its own type
        missing = [name for name in features if name not in data.columns]
        if missing:
            raise ValueError(f"a baseline needs the columns {features}; {missing[0]!r} is missing")
        return [data[name].to_numpy() for name in features]
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(features):
        raise ValueError(f"a baseline needs a matrix of {len(features)} columns, got shape {values.shape}")
    return list(values.T)


def _quantile_bins(column: np.ndarray, quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = column[np.isfinite(column)]
    inner = np.array([])
    if finite.size:  # edges are data values; one at the minimum would leave the first bin empty
        inner = np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))
        inner = inner[inner > finite.min()]
    return inner, np.bincount(bin_indices(column[:, None], inner[None, :])[:, 0], minlength=inner.size + 1)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
