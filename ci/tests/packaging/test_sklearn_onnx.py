"""ONNX forests branch exactly like scikit-learn, even on values that sit on a threshold."""

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from mlci.packaging.sklearn_onnx import match_sklearn_trees


def _on_thresholds(forest, features: np.ndarray, rows: int) -> np.ndarray:
    """Rows whose values are thresholds of the forest rounded to the nearest float32: the hard cases."""
    generator = np.random.default_rng(0)
    matrix = features[generator.integers(0, len(features), rows)].copy()
    for tree in forest.estimators_:
        split = tree.tree_.feature >= 0
        for feature, threshold in zip(tree.tree_.feature[split], tree.tree_.threshold[split], strict=True):
            matrix[generator.integers(0, rows), feature] = float(np.float32(threshold))
    return matrix


def _onnx_proba(onnx_model, matrix: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"X": matrix})[0]


def test_values_on_thresholds_follow_the_same_branch_as_sklearn():
    features, labels = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(50, random_state=0).fit(features, labels)
    rows = _on_thresholds(forest, features, 400)
    expected = forest.predict_proba(rows)
    plain = to_onnx(forest, rows[:1], options={id(forest): {"zipmap": False}})
    assert np.abs(_onnx_proba(plain, rows) - expected).max() > 1e-3  # what skl2onnx alone gets wrong
    exact = to_onnx(forest, rows[:1], options={id(forest): {"zipmap": False}})
    assert match_sklearn_trees(exact, forest)
    assert np.abs(_onnx_proba(exact, rows) - expected).max() < 1e-6


def test_models_without_trees_are_left_alone():
    from sklearn.linear_model import LogisticRegression

    features, labels = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    onnx_model = to_onnx(model, features[:1], options={id(model): {"zipmap": False}})
    before = onnx_model.SerializeToString()
    assert not match_sklearn_trees(onnx_model, model)
    assert onnx_model.SerializeToString() == before
