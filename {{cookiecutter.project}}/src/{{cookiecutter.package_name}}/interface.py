"""What train, evaluate and package need of `model.py`, written down: the `ModelModule` protocol.

Bring any model (XGBoost, LightGBM, your own network) by rewriting model.py so that it still meets this protocol;
`checked` reads model.py against it before a stage runs and names whatever is missing.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, Literal, Protocol, cast

import pandas as pd
from pydantic import BaseModel

Task = Literal["classification", "regression"]


class ModelModule(Protocol):
    """The functions and names model.py provides (a module meets a protocol, as a class would)."""

    FRAMEWORK: str  # the MLflow flavour's name: 'sklearn', 'pytorch', ...
    TrainParams: type[BaseModel]  # the `train` section of params.yaml, checked

    def fit(self, params: Any, features: pd.DataFrame, labels: pd.Series, seed: int, task: Task) -> Any:
        """The model fitted on the training set, seeded: a classifier or a regressor, as `task` says."""
        ...

    def predict(self, model: Any, features: pd.DataFrame) -> Any:
        """A classifier's probabilities (one column per class, in sorted label order) or a regressor's values."""
        ...

    def model_input(self, features: pd.DataFrame) -> Any:
        """What the logged model takes, made from the feature columns."""
        ...

    def signature_input(self, features: pd.DataFrame) -> Any:
        """What the MLflow signature is inferred from (it is what the server checks requests against)."""
        ...

    def log_model(
        self, model: Any, registered_name: str, signature: Any, input_example: Any, metadata: dict[str, Any]
    ) -> Any:
        """Log the model to the active MLflow run and register a version; its pyfunc answers as `predict` does."""
        ...


def checked(module: ModuleType) -> ModelModule:
    """`module` as a ModelModule, once each function it must have is there and takes the protocol's parameters."""
    from .stage import StageError  # stage imports params, which imports model, which imports this module

    where = f"{module.__name__.rpartition('.')[2]}.py"
    for name in ("FRAMEWORK", "TrainParams"):
        if not hasattr(module, name):
            raise StageError(f"{where} defines no {name} (see interface.ModelModule)")
    for name, promised in inspect.getmembers(ModelModule, inspect.isfunction):
        if name.startswith("_"):
            continue
        given = getattr(module, name, None)
        if not callable(given):
            raise StageError(f"{where} has no function {name}() (see interface.ModelModule)")
        wanted = list(inspect.signature(promised).parameters)[1:]
        taken = list(inspect.signature(given).parameters)
        if taken != wanted:
            raise StageError(f"{where}: {name}({', '.join(taken)}) should take ({', '.join(wanted)})")
    return cast(ModelModule, module)
