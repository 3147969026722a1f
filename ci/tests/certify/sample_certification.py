"""A certification as `mlci certify` records it, built from the gates' own verdicts (no process runs): the shapes of
measured values and thresholds are the real ones, with the long floats a real run stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlci.certify import certificate, config, summary
from mlci.certify.gates import champion, data, error, parity, quality, reproducibility, robustness, serving
from mlci.model.manifest import OutputSpec, ServedModel
from mlci.model.schema import Feature, InputSchema
from mlci.packaging.parity import ParityResult

METRICS = {"accuracy": 0.956140350877193, "roc_auc": 0.9910714285714286, "log_loss": 0.12345678901234}
CHAMPION = {"accuracy": 0.9473684210526315, "roc_auc": 0.9932539682539683, "log_loss": 0.1301234}
BOUNDS = {
    "accuracy": config.Bound(min=0.90),
    "roc_auc": config.Bound(min=0.95),
    "log_loss": config.Bound(max=0.5),
}
TOLERANCE = {"accuracy": 0.01, "roc_auc": 0.01}
HIGHER = {"accuracy": True, "roc_auc": True, "log_loss": False}
CONTRACT = {
    "min_rows": 100,
    "target": {"classes": [0, 1], "min_class_fraction": 0.2},
    "columns": {"mean radius": [0, 57], "mean texture": [0, 79], "colour": {"type": "category", "values": ["a", "b"]}},
}
COMMAND = "python -m tumor.validate --data data/prepared/train.parquet --test data/prepared/test.parquet"
DATA_OUTPUT = "validate: the data contract holds on data/prepared/train.parquet (455 rows, 4 columns, 14 checks passed)"


def metrics(faults: bool = False) -> dict[str, float]:
    return dict(METRICS, accuracy=0.8512345678) if faults else METRICS


def champion_metrics(faults: bool = False) -> dict[str, float]:
    return dict(CHAMPION, roc_auc=0.9990123) if faults else CHAMPION


def gates(faults: bool = False, with_champion: bool = True) -> list[Any]:
    """The seven gates, all passing; with `faults`, data, quality, champion, serving and robustness fail and parity
    could not run."""
    metrics_, theirs = metrics(faults), champion_metrics(faults)
    measured = serving.Measured(200.0, 199.8765, 1.23456789, 0, 14089.4321, 3.2109876)
    slow = serving.Measured(200.0, 150.5, 312.654321, 3, 180.25, 400.0)
    return [
        data.verdict(COMMAND, 1, "x\n  - null share on column mean radius: 455 unexpected values (100.00%)")
        if faults
        else data.verdict(COMMAND, 0, DATA_OUTPUT),
        quality.verdict(metrics_, BOUNDS),
        champion.verdict(metrics_, theirs if with_champion else None, TOLERANCE, HIGHER, "champion"),
        serving.verdict(slow if faults else measured, 50, 200),
        robustness.verdict({"invalid JSON": 500 if faults else 400, "missing field": 422, "wrong type": 422}, True),
        error("parity", "RuntimeError: the ONNX session could not load") if faults
        else parity.verdict(ParityResult(114, 3.2109876e-07, 1e-05, "max diff 3.2e-07 over 114 rows")),
        reproducibility.verdict("Data and pipelines are up to date.", True),
    ]  # fmt: skip


def document(results: list[Any]) -> dict[str, Any]:
    return {
        "schema_version": certificate.SCHEMA_VERSION,
        "verdict": certificate.verdict(results),
        "created_at": "2026-12-01T10:00:00+00:00",
        "gates": [r.to_dict() for r in results],
        "disabled_gates": [],
        "model": {
            "name": "tumor-classifier",
            "version": "4",
            "runtime": "onnx",
            "sha256": "ab" * 32,
            "source_sha256": "cd" * 32,
            "trained_at": "2026-12-01T09:58:00+00:00",
        },
        "data": {"data/prepared/test.parquet": "1" * 32, "data/prepared/train.parquet": "2" * 32},
        "data_version": {"id": "0123456789ab", "since": "2026-11-30T12:00:00+00:00"},
        "params": {
            "sha256": "ef" * 32,
            "values": {
                "task": "classification",
                "seed": 42,
                "validate": CONTRACT,
                "train": {"model": "random_forest", "n_estimators": 100, "max_depth": 8, "C": 1.0},
            },
        },
        "git": {"commit": "0" * 40, "dirty": False},
        "image": {"digest": None},
        "tools": {"python": "3.11.2", "mlci": "0.1.0", "scikit-learn": "1.6.1"},
        "run": {"url": "https://github.com/acme/tumor/actions/runs/42", "actor": "octocat"},
    }


def context(with_champion: bool = True, faults: bool = False) -> summary.Context:
    return summary.Context(
        metrics=metrics(faults),
        thresholds={name: quality.bound_text(bound) for name, bound in BOUNDS.items()},
        champion=champion_metrics(faults) if with_champion else None,
        champion_version="3" if with_champion else None,
        higher_is_better=HIGHER,
        contract=CONTRACT,
    )


def served(directory: Path) -> ServedModel:
    features = (Feature("mean radius", "double"), Feature("mean texture", "double"), Feature("colour", "string", False))
    return ServedModel(
        directory=directory,
        name="tumor-classifier",
        version="4",
        flavor="sklearn",
        runtime="onnx",
        artifact="model.onnx",
        sha256="ab" * 32,
        source="models/model",
        source_sha256="cd" * 32,
        inputs=InputSchema(features, "columns", "float64"),
        output=OutputSpec("probabilities", "probabilities", ("0", "1")),
    )
