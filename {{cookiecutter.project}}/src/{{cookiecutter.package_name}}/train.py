"""Stage train: fit the model on the training set, log it to MLflow and register a version.

models/model is a copy of the exact artifact logged to MLflow, so what DVC tracks, what the
registry holds and what gets served are byte for byte the same.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import model
from .featurize import TRAIN_DATA
from .interface import checked
from .params import Params
from .stage import StageError, run_stage
from .storage import write_json_atomic
from .tracking import REGISTERED_MODEL, use_tracking_server

MODEL_DIR = Path("models/model")
MODEL_INFO = Path("models/model_info.json")


def split_xy(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and labels of a prepared data set."""
    if target not in frame.columns:
        raise StageError(f"target column {target!r} is missing from the prepared data")
    return frame.drop(columns=[target]), frame[target]


def predicted_labels(proba: np.ndarray, classes: list) -> np.ndarray:
    """The most probable class of each row; probability columns follow `classes` in order."""
    return np.asarray(classes)[proba.argmax(axis=1)]


def fit_score(task: str, predictions: np.ndarray, labels: pd.Series, classes: list) -> tuple[str, float]:
    """How well the model fits its own training set: accuracy, or for a regression the RMSE."""
    if task == "classification":
        return "train_accuracy", float(np.mean(predicted_labels(predictions, classes) == labels.to_numpy()))
    return "train_rmse", float(np.sqrt(np.mean((predictions.reshape(-1) - labels.to_numpy(dtype=float)) ** 2)))


def prediction_edges(predictions: np.ndarray) -> list[float]:
    """The deciles of a regressor's predictions on its training set: the bounds of the histogram of predicted values
    that mlci serve keeps (the canary compares canary and stable on it)."""
    return sorted({float(e) for e in np.quantile(predictions.reshape(-1), np.linspace(0.1, 0.9, 9))})


def _replace_dir(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        shutil.rmtree(destination, ignore_errors=True)
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def train(params: Params) -> None:
    import mlflow
    from mlci.drift import feature_baseline
    from mlflow.models import infer_signature

    framework = checked(model)
    features, labels = split_xy(pd.read_parquet(TRAIN_DATA), params.ingest.target)
    classes = sorted(labels.unique().tolist()) if params.task == "classification" else []
    use_tracking_server()
    with mlflow.start_run() as run:
        mlflow.log_params(
            {"seed": params.seed, "task": params.task, "framework": framework.FRAMEWORK, **params.train.model_dump()}
        )
        fitted = framework.fit(params.train, features, labels, params.seed, params.task)
        predictions = np.asarray(framework.predict(fitted, features))
        score_name, score = fit_score(params.task, predictions, labels, classes)
        mlflow.log_metric(score_name, score)
        sample = framework.model_input(features.head(5))
        # From every training row: a column that misses values there is optional in the signature (served nulls).
        signature = infer_signature(framework.signature_input(features), predictions[:5])
        # Travels in the model's MLmodel file: what mlci serve's drift gauges, class names and histogram read.
        described: dict[str, object] = {
            "name": REGISTERED_MODEL,
            "task": params.task,
            "baseline": feature_baseline(features, list(features.columns)),
        }
        if params.task == "classification":
            described["classes"] = [str(c) for c in classes]
        else:
            described["prediction_edges"] = prediction_edges(predictions)
        metadata = {"mlci": described}
        logged = framework.log_model(fitted, REGISTERED_MODEL, signature, sample, metadata)
        with tempfile.TemporaryDirectory() as scratch:
            local = mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=scratch)
            _replace_dir(Path(local), MODEL_DIR)
    write_json_atomic(
        {
            "run_id": run.info.run_id,
            "model_uri": logged.model_uri,
            "registered_model": REGISTERED_MODEL,
            "version": logged.registered_model_version,
            "framework": framework.FRAMEWORK,
            "task": params.task,
            "classes": classes,
            "features": list(features.columns),
            score_name: score,
        },
        MODEL_INFO,
    )
    print(f"train: registered {REGISTERED_MODEL} version {logged.registered_model_version} (run {run.info.run_id})")


def main() -> None:
    run_stage("train", train)


if __name__ == "__main__":
    main()
