import numpy as np
import pytest

from {{ cookiecutter.package_name }}.evaluate import compute_metrics, roc_points


def test_perfect_binary_predictions_score_one():
    labels = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.7, 0.3]])
    scores = compute_metrics(labels, proba, [0, 1])
    assert scores["accuracy"] == 1.0 and scores["roc_auc"] == 1.0 and scores["f1_macro"] == 1.0


def test_multiclass_metrics_use_one_vs_rest():
    labels = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
    scores = compute_metrics(labels, proba, [0, 1, 2])
    assert scores["accuracy"] == pytest.approx(0.75)
    assert 0.5 < scores["roc_auc"] <= 1.0


def test_roc_points_run_from_origin_to_one():
    labels = np.array([0, 1, 2, 1])
    proba = np.eye(3)[[0, 1, 2, 0]]
    points = roc_points(labels, proba, [0, 1, 2])
    assert points.iloc[0].tolist() == [0.0, 0.0] and points.iloc[-1].tolist() == [1.0, 1.0]
