"""The model: a PyTorch multilayer perceptron, a classifier or a regressor as params.yaml's `task` says; trains on
CUDA when present, on the CPU otherwise. This module meets interface.ModelModule: train, evaluate and package call
only what that protocol lists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .interface import Task
from .tracking import pinned

FRAMEWORK = "pytorch"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_units: int = Field(default=64, ge=1)
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)


class Network(nn.Module):
    """Standardises its inputs with the training statistics, then an MLP of `outputs` units."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int, outputs: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(nn.Linear(mean.numel(), hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """What training's loss reads: a classifier's logits, a regressor's standardised prediction."""
        return self.net((x - self.mean) / self.std)


class Classifier(Network):
    """Returns class probabilities, one column per class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.raw(x), dim=1)


class Regressor(Network):
    """Learns the target standardised; returns it in its own units, one value per row."""

    def __init__(
        self, mean: torch.Tensor, std: torch.Tensor, hidden: int, target_mean: float, target_std: float
    ) -> None:
        super().__init__(mean, std, hidden, 1)
        self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw(x)[:, 0] * self.target_std + self.target_mean


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _nonzero(std: torch.Tensor) -> torch.Tensor:
    return torch.where(std > 0, std, torch.ones_like(std))


def fit(params: TrainParams, features: pd.DataFrame, labels: pd.Series, seed: int, task: Task) -> Network:
    """The network trained on the training set, seeded; returned on the CPU, in eval mode."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.tensor(model_input(features))
    model: Network
    if task == "classification":
        classes = sorted(labels.unique().tolist())
        y = torch.tensor(labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64))
        model = Classifier(x.mean(dim=0), _nonzero(x.std(dim=0)), params.hidden_units, len(classes))
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        values = torch.tensor(labels.to_numpy(dtype=np.float32))
        centre, spread = float(values.mean()), float(_nonzero(values.std()))
        y = ((values - centre) / spread)[:, None]
        model = Regressor(x.mean(dim=0), _nonzero(x.std(dim=0)), params.hidden_units, centre, spread)
        loss_fn = nn.MSELoss()
    run_on = device()
    model.to(run_on)
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    x, y = x.to(run_on), y.to(run_on)
    model.train()
    for _ in range(params.epochs):
        order = torch.randperm(len(x), generator=generator).to(run_on)
        for start in range(0, len(x), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss_fn(model.raw(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.cpu().eval()


def model_input(features: pd.DataFrame) -> np.ndarray:
    """What the logged model takes: a float32 matrix, features in training column order."""
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        from .stage import StageError

        raise StageError(
            f"column {text[0]!r} holds text ({len(text)} such columns): the PyTorch model takes numbers only; "
            "encode them as numbers before ingest, or bake the project with model_framework=sklearn"
        )
    matrix = features.to_numpy(dtype=np.float32, copy=True)
    gaps = np.isnan(matrix).sum(axis=0)
    if gaps.any():
        from .stage import StageError

        column = features.columns[int(np.argmax(gaps > 0))]
        raise StageError(
            f"column {column!r} misses values in {int(gaps.max())} rows: the PyTorch model takes no missing number; "
            "fill them before ingest, or bake the project with model_framework=sklearn (its pipeline imputes)"
        )
    return matrix


def signature_input(features: pd.DataFrame) -> np.ndarray:
    """What the signature is inferred from: the float32 matrix the model takes (a tensor signature)."""
    return model_input(features.head(5))


def predict(model: Network, features: pd.DataFrame) -> Any:
    """A classifier's probabilities, one column per class in sorted label order; a regressor's values."""
    with torch.no_grad():
        return model(torch.from_numpy(model_input(features))).numpy()


def log_model(
    model: Network, registered_name: str, signature: Any, input_example: np.ndarray, metadata: dict[str, Any]
) -> Any:
    """Log the model to the active MLflow run and register a version; its pyfunc answers as `predict` does.

    The 'pt2' format stores the traced graph (torch.export), so loading it needs no class of ours.
    """
    import mlflow.pytorch

    return mlflow.pytorch.log_model(
        model,
        name="model",
        registered_model_name=registered_name,
        signature=signature,
        input_example=input_example,
        metadata=metadata,
        pip_requirements=pinned("mlflow", "numpy", "pandas", "torch"),
        serialization_format="pt2",
    )
