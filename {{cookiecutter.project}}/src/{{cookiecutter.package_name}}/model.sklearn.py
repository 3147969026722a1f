"""Your model goes here: a scikit-learn pipeline whose preprocessing travels inside the served artifact.

Numbers are imputed (when the training data misses any) and scaled; text columns are one-hot encoded, unseen
categories ignored; then a random forest, a linear model (logistic regression, or ridge for a regression) or a
histogram gradient boosting, a classifier or a regressor as params.yaml's `task` says. This module meets
interface.ModelModule: train, evaluate and package call only what that protocol lists. A missing text value is the
empty string, in training and in serving (mlci feeds it so), which keeps the ONNX export's answers identical to
scikit-learn's.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .interface import Task
from .tracking import pinned

FRAMEWORK = "sklearn"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["random_forest", "linear", "hist_gradient_boosting"] = "random_forest"
    n_estimators: int = Field(default=100, ge=1)  # trees of the forest, boosting rounds of the gradient boosting
    max_depth: int | None = Field(default=None, ge=1)
    C: float = Field(default=1.0, gt=0)  # inverse regularisation of the linear model (ridge: alpha = 1 / C)
    learning_rate: float = Field(default=0.1, gt=0, le=1)  # of the gradient boosting


def text_columns(features: pd.DataFrame) -> list[str]:
    """The columns that hold text (categories): every column that is neither numeric nor boolean."""
    return [
        str(c)
        for c in features.columns
        if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))
    ]


def estimator(params: TrainParams, seed: int, task: Task) -> Any:
    """The unfitted estimator that params.yaml's `train.model` names, for this task, seeded."""
    classify = task == "classification"
    if params.model == "random_forest":
        forest = RandomForestClassifier if classify else RandomForestRegressor
        return forest(n_estimators=params.n_estimators, max_depth=params.max_depth, random_state=seed, n_jobs=-1)
    if params.model == "hist_gradient_boosting":
        boosting = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return boosting(
            max_iter=params.n_estimators,
            max_depth=params.max_depth,
            learning_rate=params.learning_rate,
            random_state=seed,
        )
    if classify:
        return LogisticRegression(C=params.C, max_iter=5000, random_state=seed)
    return Ridge(alpha=1 / params.C)


def build(params: TrainParams, seed: int, features: pd.DataFrame, task: Task = "classification") -> Pipeline:
    """An unfitted pipeline for the chosen estimator, the task and these features' types, seeded."""
    model = estimator(params, seed, task)
    text = text_columns(features)
    numbers = [str(c) for c in features.columns if str(c) not in text]
    scale: Any = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    if not features[numbers].isna().to_numpy().any():
        scale = StandardScaler()  # nothing to impute: the served model takes no missing number either
    if not text:  # numbers only: one matrix in, by position (the fastest ONNX feed)
        return Pipeline([("scale", scale), ("model", model)])
    # Dense: the gradient boosting takes no sparse matrix (and categories here are few).
    columns = [("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text)]
    if numbers:
        columns.insert(0, ("numbers", scale, numbers))
    return Pipeline([("features", ColumnTransformer(columns)), ("model", model)])


def fit(params: TrainParams, features: pd.DataFrame, labels: pd.Series, seed: int, task: Task) -> Pipeline:
    """The pipeline fitted on the training set."""
    inputs = model_input(features)
    return build(params, seed, inputs, task).fit(inputs, labels)


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """What the logged model takes: the feature columns by name, a missing text value as the empty string."""
    text = text_columns(features)
    if not text:
        return features
    return features.assign(**{c: features[c].astype(object).where(features[c].notna(), "") for c in text})


def signature_input(features: pd.DataFrame) -> pd.DataFrame:
    """What the signature is inferred from: the features as they come, missing values included."""
    return features


def predict(model: Pipeline, features: pd.DataFrame) -> Any:
    """A classifier's probabilities, one column per class in sorted label order; a regressor's values."""
    inputs = model_input(features)
    return model.predict_proba(inputs) if is_classifier(model) else model.predict(inputs)


def log_model(
    model: Pipeline, registered_name: str, signature: Any, input_example: pd.DataFrame, metadata: dict[str, Any]
) -> Any:
    """Log the model to the active MLflow run and register a version; its pyfunc answers as `predict` does."""
    import mlflow.sklearn
    from skops.io import dumps, get_untrusted_types

    return mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name=registered_name,
        signature=signature,
        input_example=input_example,
        metadata=metadata,
        pip_requirements=pinned("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops"),
        pyfunc_predict_fn="predict_proba" if is_classifier(model) else "predict",
        # The pipeline's own types: skops refuses to load types it was not told to trust.
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
    )
