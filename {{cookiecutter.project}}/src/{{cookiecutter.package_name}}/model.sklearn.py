"""The model: a scikit-learn pipeline (scaling, then a random forest or a logistic regression)."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FRAMEWORK = "sklearn"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["random_forest", "logistic_regression"] = "random_forest"
    n_estimators: int = Field(default=100, ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    C: float = Field(default=1.0, gt=0)


def build(params: TrainParams, seed: int) -> Pipeline:
    """An unfitted pipeline for the chosen estimator, seeded."""
    if params.model == "random_forest":
        estimator: Any = RandomForestClassifier(
            n_estimators=params.n_estimators, max_depth=params.max_depth, random_state=seed, n_jobs=-1
        )
    else:
        estimator = LogisticRegression(C=params.C, max_iter=5000, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("model", estimator)])


def fit(params: TrainParams, features: pd.DataFrame, labels: pd.Series, seed: int) -> Pipeline:
    """The pipeline fitted on the training set."""
    return build(params, seed).fit(features, labels)


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """What the logged model takes: the feature columns by name."""
    return features


def predict_proba(model: Pipeline, features: pd.DataFrame) -> Any:
    """Class probabilities, one column per class in sorted label order."""
    return model.predict_proba(features)


def log_model(
    model: Pipeline, registered_name: str, signature: Any, input_example: pd.DataFrame, metadata: dict[str, Any]
) -> Any:
    """Log the model to the active MLflow run and register a version; pyfunc predicts probabilities."""
    import mlflow.sklearn
    from skops.io import dumps, get_untrusted_types

    return mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name=registered_name,
        signature=signature,
        input_example=input_example,
        metadata=metadata,
        pyfunc_predict_fn="predict_proba",
        # The pipeline's own types: skops refuses to load types it was not told to trust.
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
    )
