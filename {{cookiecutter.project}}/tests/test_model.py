import numpy as np

from {{ cookiecutter.package_name }} import model
from {{ cookiecutter.package_name }}.train import split_xy


def test_the_model_learns_the_training_set(dataset, params):
    features, labels = split_xy(dataset.sample(n=300, random_state=0), params.ingest.target)
    fitted = model.fit(params.train, features, labels, seed=params.seed)
    proba = np.asarray(model.predict_proba(fitted, features))
    assert proba.shape == (len(features), labels.nunique())
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    classes = np.array(sorted(labels.unique()))
    assert (classes[proba.argmax(axis=1)] == labels.to_numpy()).mean() > 0.9


def test_training_is_seeded(dataset, params):
    features, labels = split_xy(dataset.sample(n=200, random_state=1), params.ingest.target)
    first = model.predict_proba(model.fit(params.train, features, labels, seed=3), features)
    second = model.predict_proba(model.fit(params.train, features, labels, seed=3), features)
    assert np.array_equal(np.asarray(first), np.asarray(second))


def test_a_table_with_text_and_missing_values_trains_or_is_refused_naming_the_column():
    import pandas as pd
    import pytest

    from {{ cookiecutter.package_name }}.stage import StageError

    features = pd.DataFrame(
        {
            "size": [1.0, None, 3.0, 4.0, 5.0, 6.0] * 10,
            "colour": ["red", "blue", None, "red", "green", "blue"] * 10,
        }
    )
    labels = pd.Series([0, 1, 0, 1, 1, 0] * 10)
    params = model.TrainParams()
    if model.FRAMEWORK == "pytorch":
        with pytest.raises(StageError, match="column 'colour' holds text"):
            model.fit(params, features, labels, seed=0)
        return
    fitted = model.fit(params, features, labels, seed=0)
    unseen = pd.DataFrame({"size": [None, 2.0], "colour": ["purple", None]})
    proba = np.asarray(model.predict_proba(fitted, unseen))
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0)
