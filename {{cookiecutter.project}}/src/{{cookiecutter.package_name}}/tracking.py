"""Where MLflow runs and registered models live."""

from __future__ import annotations

import os

DEFAULT_TRACKING_URI = "{{ cookiecutter.mlflow_tracking_uri }}"
EXPERIMENT = "{{ cookiecutter.project }}"
REGISTERED_MODEL = "{{ cookiecutter.project }}"


def use_tracking_server() -> None:
    """Point MLflow at MLFLOW_TRACKING_URI when set, else at the project's default store."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    mlflow.set_experiment(EXPERIMENT)
