"""Parity: does the served artifact predict what the trained model predicts, within a tolerance?

`compare` is the verdict on two prediction arrays; `check_parity` loads both models and runs them
on the same rows. The certification gate calls `check_parity` with the held-out set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ParityResult:
    """The largest difference between two runtimes' outputs over `rows` rows: absolute for values within ±1 (class
    probabilities), relative to the value beyond (a regression's numbers, which float32 holds to about 1e-7 of
    their size)."""

    rows: int
    max_diff: float
    tolerance: float
    reason: str

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "max_diff": self.max_diff, "tolerance": self.tolerance}


def compare(served: Any, reference: Any, tolerance: float) -> ParityResult:
    """The parity of two outputs: same shape, and every value within `tolerance` of the reference's, times the
    reference's magnitude where that is above 1."""
    a, b = np.asarray(served), np.asarray(reference)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape != b.shape:
        return ParityResult(len(b), float("inf"), tolerance, f"output shapes differ: {a.shape} vs {b.shape}")
    if a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        same = bool(np.all(a.astype(str) == b.astype(str)))
        return ParityResult(
            len(b), 0.0 if same else float("inf"), tolerance, "labels equal" if same else "labels differ"
        )
    reference64 = b.astype(np.float64)
    diff = np.abs(a.astype(np.float64) - reference64) / np.maximum(1.0, np.abs(reference64))
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if np.isnan(diff).any():
        worst = float("inf")
    row = int(np.unravel_index(np.nanargmax(diff), diff.shape)[0]) if diff.size and np.isfinite(worst) else 0
    return ParityResult(
        len(b), worst, tolerance, f"max |diff| {worst:.3g} at row {row} (tolerance {tolerance:g}, relative above 1)"
    )


def check_parity(packaged: Path, trained: Path, rows: Any, tolerance: float) -> ParityResult:
    """Score `rows` (a DataFrame of the model's features) with the packaged artifact and the MLflow model."""
    import mlflow.pyfunc

    from ..model import manifest
    from ..serving.dataplane import Batch
    from ..serving.runtime import load_runtime, model_input

    served_model = manifest.load(packaged)
    schema = served_model.inputs
    if schema.numeric:
        matrix = np.asarray(rows[schema.names] if hasattr(rows, "columns") and schema.layout == "columns" else rows)
        batch = Batch(matrix.astype(schema.dtype), None, matrix.shape[0])
    else:  # text columns: column by column, a missing value as None (as a request brings it)
        columns = {name: rows[name].astype(object).where(rows[name].notna(), None).tolist() for name in schema.names}
        batch = Batch(None, columns, len(rows))
    served = load_runtime(served_model, threads=1).predict(batch)
    reference = mlflow.pyfunc.load_model(str(trained)).predict(model_input(schema, batch))
    return compare(served, reference, tolerance)
