"""Small models served as MLflow pyfuncs, which misbehave on purpose when CANARY_FAULT says so: `errors` (3
requests in 10 fail), `slow` (100 ms more per request), `shifted` (the classifier calls every row the second
class; the regressor predicts a value raised by half its range, as a model broken by a shifted input would) or
`late` (well for 1,300 requests after the spared calls, then 2 in 10 fail: what one query after a short load
cannot see).
Shipped with the model (code_paths), so `mlci serve` can load it; the server's warm-up calls are spared."""

from __future__ import annotations

import itertools
import os
import random
import time

import mlflow.pyfunc
import numpy as np

# Calls in this process: the server's warm-up calls (the first few) are spared the faults.
_CALLS = itertools.count()
WARM_UP_CALLS = 50  # more than mlci serve's warm-up rounds
LATE_AFTER = 1300  # requests the `late` fault answers well


def _fault() -> str:
    """The fault to play on this call: none during the server's warm-up, then CANARY_FAULT's."""
    call = next(_CALLS)
    fault = os.environ.get("CANARY_FAULT", "none") if call >= WARM_UP_CALLS else "none"
    if fault == "errors" and random.random() < 0.3:
        raise RuntimeError("injected fault")
    if fault == "late" and call >= WARM_UP_CALLS + LATE_AFTER and random.random() < 0.2:
        raise RuntimeError("injected late fault")
    if fault == "slow":
        time.sleep(0.1)
    return fault


class Candidate(mlflow.pyfunc.PythonModel):
    def __init__(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: float) -> None:
        self.mean, self.scale, self.weights, self.bias = mean, scale, weights, bias

    def predict(self, context, model_input, params=None):  # noqa: ARG002 (MLflow's signature)
        fault = _fault()
        features = (np.asarray(model_input, dtype=np.float64) - self.mean) / self.scale
        benign = 1.0 / (1.0 + np.exp(-(features @ self.weights + self.bias)))
        if fault == "shifted":
            benign = np.full_like(benign, 0.9)
        return np.column_stack([1.0 - benign, benign])


class RegressionCandidate(mlflow.pyfunc.PythonModel):
    def __init__(self, weights: np.ndarray, bias: float) -> None:
        self.weights, self.bias = weights, bias

    def predict(self, context, model_input, params=None):  # noqa: ARG002 (MLflow's signature)
        fault = _fault()
        values = np.asarray(model_input, dtype=np.float64) @ self.weights + self.bias
        return values + 150.0 if fault == "shifted" else values
