"""Stage evaluate: metrics on the held-out set (metrics.json) and DVC plots (ROC, confusion matrix)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from . import model as framework
from .featurize import TEST_DATA
from .params import Params
from .stage import run_stage
from .storage import write_csv_atomic, write_json_atomic
from .tracking import use_tracking_server
from .train import MODEL_DIR, MODEL_INFO, predicted_labels, split_xy

METRICS = Path("metrics.json")
ROC_PLOT = Path("plots/roc.csv")
CONFUSION_PLOT = Path("plots/confusion.csv")


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


def roc_points(labels: np.ndarray, proba: np.ndarray, classes: list[Any]) -> pd.DataFrame:
    """ROC curve points: of the positive class for two classes, micro-averaged for more."""
    if len(classes) == 2:
        fpr, tpr, _ = skm.roc_curve(labels == classes[1], proba[:, 1])
    else:
        fpr, tpr, _ = skm.roc_curve(label_binarize(labels, classes=classes).ravel(), proba.ravel())
    return pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)})


def evaluate(params: Params) -> None:
    import mlflow

    info = json.loads(MODEL_INFO.read_text())
    features, labels = split_xy(pd.read_parquet(TEST_DATA), params.ingest.target)
    classes = info["classes"]
    served = mlflow.pyfunc.load_model(str(MODEL_DIR))
    proba = np.asarray(served.predict(framework.model_input(features)), dtype=float)
    scores = compute_metrics(labels.to_numpy(), proba, classes)
    write_json_atomic(scores, METRICS)
    write_csv_atomic(roc_points(labels.to_numpy(), proba, classes), ROC_PLOT)
    confusion = pd.DataFrame({"actual": labels.to_numpy(), "predicted": predicted_labels(proba, classes)})
    write_csv_atomic(confusion, CONFUSION_PLOT)
    use_tracking_server()
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        for plot in (ROC_PLOT, CONFUSION_PLOT):
            mlflow.log_artifact(str(plot), artifact_path="plots")
    print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))


def main() -> None:
    run_stage("evaluate", evaluate)


if __name__ == "__main__":
    main()
