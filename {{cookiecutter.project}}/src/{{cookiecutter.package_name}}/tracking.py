"""Where MLflow runs and registered models live."""

from __future__ import annotations

import os
from importlib.metadata import version

DEFAULT_TRACKING_URI = "{{ cookiecutter.mlflow_tracking_uri }}"
EXPERIMENT = "{{ cookiecutter.project }}"
REGISTERED_MODEL = "{{ cookiecutter.project }}"


def use_tracking_server() -> None:
    """Point MLflow at MLFLOW_TRACKING_URI when set, else at the project's default store."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    mlflow.set_experiment(EXPERIMENT)


def pinned(*distributions: str) -> list[str]:
    """The model's requirements, pinned to the versions installed here (a local label such as +cpu dropped).

    Given to log_model: MLflow would otherwise infer them by importing the model in a subprocess (5 s per
    training) and list whatever that imported, test runners included.
    """
    return [f"{name}=={version(name).split('+')[0]}" for name in distributions]
