import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import interface, model
from {{ cookiecutter.package_name }}.stage import StageError
from {{ cookiecutter.package_name }}.train import split_xy


def fitted_on(dataset, params, rows: int, seed: int = 0):
    features, labels = split_xy(dataset.sample(n=min(rows, len(dataset)), random_state=seed), params.ingest.target)
    return features, labels, model.fit(params.train, features, labels, seed=params.seed, task=params.task)


def test_model_py_meets_the_interface():
    assert interface.checked(model) is model


def test_a_model_module_without_predict_is_named(monkeypatch):
    monkeypatch.delattr(model, "predict")
    with pytest.raises(StageError, match=r"model.py has no function predict\(\)"):
        interface.checked(model)


@pytest.mark.task("classification")
def test_the_classifier_learns_the_training_set(dataset, params):
    features, labels, fitted = fitted_on(dataset, params, 300)
    proba = np.asarray(model.predict(fitted, features))
    assert proba.shape == (len(features), labels.nunique())
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    classes = np.array(sorted(labels.unique()))
    assert (classes[proba.argmax(axis=1)] == labels.to_numpy()).mean() > 0.9


@pytest.mark.task("regression")
def test_the_regressor_explains_the_training_set_better_than_its_mean(dataset, params):
    features, labels, fitted = fitted_on(dataset, params, 300)
    predicted = np.asarray(model.predict(fitted, features), dtype=float)
    assert predicted.shape == (len(features),)
    actual = labels.to_numpy(dtype=float)
    r2 = 1 - ((actual - predicted) ** 2).sum() / ((actual - actual.mean()) ** 2).sum()
    assert r2 > 0.3, r2


def test_training_is_seeded(dataset, params):
    features, labels = split_xy(dataset.sample(n=min(200, len(dataset)), random_state=1), params.ingest.target)
    first = model.predict(model.fit(params.train, features, labels, seed=3, task=params.task), features)
    second = model.predict(model.fit(params.train, features, labels, seed=3, task=params.task), features)
    # A forest's threads add up its trees in any order: the same model, equal to the last few bits.
    assert np.allclose(np.asarray(first), np.asarray(second), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_table_with_text_and_missing_values_trains_or_is_refused_naming_the_column(task):
    features = pd.DataFrame(
        {
            "size": [1.0, None, 3.0, 4.0, 5.0, 6.0] * 10,
            "colour": ["red", "blue", None, "red", "green", "blue"] * 10,
        }
    )
    labels = pd.Series([0, 1, 0, 1, 1, 0] * 10) if task == "classification" else pd.Series([1.5, 2.0, 0.5] * 20)
    params = model.TrainParams()
    if model.FRAMEWORK == "pytorch":
        with pytest.raises(StageError, match="column 'colour' holds text"):
            model.fit(params, features, labels, seed=0, task=task)
        with pytest.raises(StageError, match="column 'size' misses values in 10 rows"):
            model.fit(params, features[["size"]], labels, seed=0, task=task)
        return
    fitted = model.fit(params, features, labels, seed=0, task=task)
    unseen = pd.DataFrame({"size": [None, 2.0], "colour": ["purple", None]})
    predicted = np.asarray(model.predict(fitted, unseen))
    if task == "classification":
        assert predicted.shape == (2, 2) and np.allclose(predicted.sum(axis=1), 1.0)
    else:
        assert predicted.shape == (2,) and np.isfinite(predicted).all()
{%- if cookiecutter.model_framework == "sklearn" %}


@pytest.mark.parametrize("estimator", ["random_forest", "linear", "hist_gradient_boosting"])
def test_every_estimator_fits_both_tasks_on_text_and_gaps(estimator):
    generator = np.random.default_rng(0)
    features = pd.DataFrame(
        {
            "size": np.where(generator.random(120) < 0.1, np.nan, generator.normal(5, 2, 120)),
            "colour": generator.choice(["red", "blue", "green"], 120),
        }
    )
    params = model.TrainParams(model=estimator, n_estimators=20)
    for task, labels in (("classification", pd.Series(features["colour"] == "red")),
                         ("regression", features["size"].fillna(5) * 2)):  # fmt: skip
        fitted = model.fit(params, features, labels, seed=0, task=task)
        predicted = np.asarray(model.predict(fitted, features))
        assert len(predicted) == 120 and np.isfinite(predicted).all(), (estimator, task)
{%- endif %}
