"""Your model goes here: a scikit-learn pipeline whose preprocessing travels inside the served artifact.

Numbers are imputed (when the training data misses any) and scaled; text columns are one-hot encoded, unseen
categories ignored; then a random forest or a logistic regression. Keep the functions below and their promises:
train, evaluate and package call them. A missing text value is the empty string, in training and in serving (mlci
feeds it so), which keeps the ONNX export's answers identical to scikit-learn's.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FRAMEWORK = "sklearn"


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["random_forest", "logistic_regression"] = "random_forest"
    n_estimators: int = Field(default=100, ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    C: float = Field(default=1.0, gt=0)


def text_columns(features: pd.DataFrame) -> list[str]:
    """The columns that hold text (categories): every column that is neither numeric nor boolean."""
    return [
        str(c)
        for c in features.columns
        if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))
    ]


def build(params: TrainParams, seed: int, features: pd.DataFrame) -> Pipeline:
    """An unfitted pipeline for the chosen estimator and these features' types, seeded."""
    if params.model == "random_forest":
        estimator: Any = RandomForestClassifier(
            n_estimators=params.n_estimators, max_depth=params.max_depth, random_state=seed, n_jobs=-1
        )
    else:
        estimator = LogisticRegression(C=params.C, max_iter=5000, random_state=seed)
    text = text_columns(features)
    numbers = [str(c) for c in features.columns if str(c) not in text]
    scale: Any = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    if not features[numbers].isna().to_numpy().any():
        scale = StandardScaler()  # nothing to impute: the served model takes no missing number either
    if not text:  # numbers only: one matrix in, by position (the fastest ONNX feed)
        return Pipeline([("scale", scale), ("model", estimator)])
    columns = [("text", OneHotEncoder(handle_unknown="ignore"), text)]
    if numbers:
        columns.insert(0, ("numbers", scale, numbers))
    return Pipeline([("features", ColumnTransformer(columns)), ("model", estimator)])


def fit(params: TrainParams, features: pd.DataFrame, labels: pd.Series, seed: int) -> Pipeline:
    """The pipeline fitted on the training set."""
    inputs = model_input(features)
    return build(params, seed, inputs).fit(inputs, labels)


def model_input(features: pd.DataFrame) -> pd.DataFrame:
    """What the logged model takes: the feature columns by name, a missing text value as the empty string."""
    text = text_columns(features)
    if not text:
        return features
    return features.assign(**{c: features[c].astype(object).where(features[c].notna(), "") for c in text})


def signature_input(features: pd.DataFrame) -> pd.DataFrame:
    """What the signature is inferred from: the features as they come, missing values included."""
    return features


def predict_proba(model: Pipeline, features: pd.DataFrame) -> Any:
    """Class probabilities, one column per class in sorted label order."""
    return model.predict_proba(model_input(features))


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
