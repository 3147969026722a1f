"""Stage evaluate: metrics on the held-out set (metrics.json) and DVC plots.

Classification: accuracy, macro F1, ROC AUC and log loss; the ROC curve and the confusion matrix.
Regression: RMSE, MAE and R²; predicted against actual, and the residuals against the prediction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from . import model
from .featurize import TEST_DATA
from .interface import checked
from .params import Params
from .stage import run_stage
from .storage import write_csv_atomic, write_json_atomic
from .tracking import use_tracking_server
from .train import MODEL_DIR, MODEL_INFO, predicted_labels, split_xy

METRICS = Path("metrics.json")
ROC_PLOT = Path("plots/roc.csv")
CONFUSION_PLOT = Path("plots/confusion.csv")
PREDICTED_PLOT = Path("plots/predicted.csv")
RESIDUALS_PLOT = Path("plots/residuals.csv")


def compute_metrics(labels: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, float]:
    """Accuracy, macro F1, ROC AUC (one-vs-rest for several classes) and log loss."""
    predicted = predicted_labels(proba, classes)
    clipped = np.clip(proba, 1e-15, 1)
    clipped /= clipped.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 only within rounding
    if len(classes) == 2:
        auc = skm.roc_auc_score(labels == classes[1], proba[:, 1])
    else:
        auc = skm.roc_auc_score(labels, proba, multi_class="ovr", labels=classes)
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "f1_macro": float(skm.f1_score(labels, predicted, average="macro")),
        "roc_auc": float(auc),
        "log_loss": float(skm.log_loss(labels, clipped, labels=classes)),
    }


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (in the target's units) and R² (1 is perfect, 0 no better than predicting the mean)."""
    predicted = predicted.reshape(-1)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(actual, predicted))),
        "mae": float(skm.mean_absolute_error(actual, predicted)),
        "r2": float(skm.r2_score(actual, predicted)),
    }


def regression_points(actual: np.ndarray, predicted: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two regression plots: predicted against actual, and the residual (actual - predicted) per prediction."""
    predicted = predicted.reshape(-1).round(6)
    return (
        pd.DataFrame({"actual": actual, "predicted": predicted}),
        pd.DataFrame({"predicted": predicted, "residual": (actual - predicted).round(6)}),
    )


def roc_points(labels: np.ndarray, proba: np.ndarray, classes: list[Any]) -> pd.DataFrame:
    """ROC curve points: of the positive class for two classes, micro-averaged for more."""
    if len(classes) == 2:
        fpr, tpr, _ = skm.roc_curve(labels == classes[1], proba[:, 1])
    else:
        fpr, tpr, _ = skm.roc_curve(label_binarize(labels, classes=classes).ravel(), proba.ravel())
    return pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)})


def evaluate(params: Params) -> None:
    import mlflow

    framework = checked(model)
    info = json.loads(MODEL_INFO.read_text())
    features, labels = split_xy(pd.read_parquet(TEST_DATA), params.ingest.target)
    served = mlflow.pyfunc.load_model(str(MODEL_DIR))
    predictions = np.asarray(served.predict(framework.model_input(features)), dtype=float)
    actual = labels.to_numpy()
    if params.task == "classification":
        classes = info["classes"]
        scores = compute_metrics(actual, predictions, classes)
        plots = {
            ROC_PLOT: roc_points(actual, predictions, classes),
            CONFUSION_PLOT: pd.DataFrame({"actual": actual, "predicted": predicted_labels(predictions, classes)}),
        }
    else:
        scores = regression_metrics(actual.astype(float), predictions)
        predicted, residuals = regression_points(actual.astype(float), predictions)
        plots = {PREDICTED_PLOT: predicted, RESIDUALS_PLOT: residuals}
    write_json_atomic(scores, METRICS)
    for path, points in plots.items():
        write_csv_atomic(points, path)
    use_tracking_server()
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="plots")
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))


def main() -> None:
    run_stage("evaluate", evaluate)


if __name__ == "__main__":
    main()
