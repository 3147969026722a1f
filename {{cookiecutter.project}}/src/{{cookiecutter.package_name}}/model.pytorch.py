"""The model: a PyTorch multilayer perceptron; trains on CUDA when present, on the CPU otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

FRAMEWORK = "pytorch"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_units: int = Field(default=64, ge=1)
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)


class Classifier(nn.Module):
    """Standardises its inputs with the training statistics, then an MLP; returns probabilities."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(nn.Linear(mean.numel(), hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit(params: TrainParams, features: pd.DataFrame, labels: pd.Series, seed: int) -> Classifier:
    """The classifier trained on the training set, seeded; returned on the CPU, in eval mode."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classes = sorted(labels.unique().tolist())
    x = torch.tensor(model_input(features))
    y = torch.tensor(labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64))
    std = x.std(dim=0)
    model = Classifier(
        x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)), params.hidden_units, len(classes)
    )
    run_on = device()
    model.to(run_on)
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    x, y = x.to(run_on), y.to(run_on)
    model.train()
    for _ in range(params.epochs):
        order = torch.randperm(len(x), generator=generator).to(run_on)
        for start in range(0, len(x), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss_fn(model.logits(x[batch]), y[batch]).backward()
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
    return features.to_numpy(dtype=np.float32, copy=True)


def signature_input(features: pd.DataFrame) -> np.ndarray:
    """What the signature is inferred from: the float32 matrix the model takes (a tensor signature)."""
    return model_input(features.head(5))


def predict_proba(model: Classifier, features: pd.DataFrame) -> Any:
    """Class probabilities, one column per class in sorted label order."""
    with torch.no_grad():
        return model(torch.from_numpy(model_input(features))).numpy()


def log_model(
    model: Classifier, registered_name: str, signature: Any, input_example: np.ndarray, metadata: dict[str, Any]
) -> Any:
    """Log the model to the active MLflow run and register a version; pyfunc predicts probabilities.

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
        serialization_format="pt2",
    )
