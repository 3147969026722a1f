import numpy as np
import pytest

from {{ cookiecutter.package_name }}.evaluate import compute_metrics, regression_metrics, regression_points, roc_points


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


def test_perfect_regression_predictions_score_zero_error_and_r2_one():
    actual = np.array([10.0, 20.0, 30.0, 45.0])
    assert regression_metrics(actual, actual.copy()) == {"rmse": 0.0, "mae": 0.0, "r2": 1.0}


def test_predicting_the_mean_scores_r2_zero_and_the_spread_as_rmse():
    actual = np.array([10.0, 20.0, 30.0, 40.0])
    scores = regression_metrics(actual, np.full(4, 25.0))
    assert scores["r2"] == pytest.approx(0.0) and scores["rmse"] == pytest.approx(actual.std())
    assert scores["mae"] == pytest.approx(10.0)


def test_the_regression_plots_hold_every_row_and_its_residual():
    actual = np.array([1.0, 2.0, 3.0])
    predicted, residuals = regression_points(actual, np.array([[1.5], [2.0], [2.0]]))
    assert predicted["predicted"].tolist() == [1.5, 2.0, 2.0]
    assert residuals["residual"].tolist() == [-0.5, 0.0, 1.0]
