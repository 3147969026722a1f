import math

import pytest

from {{ cookiecutter.package_name }}.featurize import split


@pytest.mark.task("classification")
def test_split_keeps_class_proportions_and_loses_no_row(dataset, params):
    target = params.ingest.target
    train, test = split(dataset, target, 0.25, seed=1)
    assert len(train) + len(test) == len(dataset)
    expected = dataset[target].value_counts(normalize=True)
    assert (train[target].value_counts(normalize=True) - expected).abs().max() < 0.02
    assert (test[target].value_counts(normalize=True) - expected).abs().max() < 0.02


def test_a_split_without_strata_takes_a_numeric_target_and_loses_no_row(dataset, params):
    train, test = split(dataset, params.ingest.target, 0.25, seed=1, stratify=False)
    assert len(train) + len(test) == len(dataset) and len(test) == math.ceil(len(dataset) * 0.25)


def test_split_is_seeded(dataset, params):
    stratify = params.task == "classification"
    first, _ = split(dataset, params.ingest.target, 0.25, seed=7, stratify=stratify)
    second, _ = split(dataset, params.ingest.target, 0.25, seed=7, stratify=stratify)
    assert first.equals(second)
