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
