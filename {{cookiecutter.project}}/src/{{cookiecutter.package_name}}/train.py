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

from . import model as framework
from .featurize import TRAIN_DATA
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

    features, labels = split_xy(pd.read_parquet(TRAIN_DATA), params.ingest.target)
    classes = sorted(labels.unique().tolist())
    use_tracking_server()
    with mlflow.start_run() as run:
        mlflow.log_params({"seed": params.seed, "framework": framework.FRAMEWORK, **params.train.model_dump()})
        model = framework.fit(params.train, features, labels, params.seed)
        proba = np.asarray(framework.predict_proba(model, features))
        train_accuracy = float(np.mean(predicted_labels(proba, classes) == labels.to_numpy()))
        mlflow.log_metric("train_accuracy", train_accuracy)
        sample = framework.model_input(features.head(5))
        # From every training row: a column that misses values there is optional in the signature (served nulls).
        signature = infer_signature(framework.signature_input(features), proba[:5])
        # Travels in the model's MLmodel file: what mlci serves drift gauges and class names from.
        metadata = {
            "mlci": {
                "name": REGISTERED_MODEL,
                "classes": [str(c) for c in classes],
                "baseline": feature_baseline(features, list(features.columns)),
            }
        }
        logged = framework.log_model(model, REGISTERED_MODEL, signature, sample, metadata)
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
            "classes": classes,
            "features": list(features.columns),
            "train_accuracy": train_accuracy,
        },
        MODEL_INFO,
    )
    print(f"train: registered {REGISTERED_MODEL} version {logged.registered_model_version} (run {run.info.run_id})")


def main() -> None:
    run_stage("train", train)


if __name__ == "__main__":
    main()
