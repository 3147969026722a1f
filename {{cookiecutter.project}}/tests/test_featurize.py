from {{ cookiecutter.package_name }}.featurize import split


def test_split_keeps_class_proportions_and_loses_no_row(dataset, params):
    target = params.ingest.target
    train, test = split(dataset, target, 0.25, seed=1)
    assert len(train) + len(test) == len(dataset)
    expected = dataset[target].value_counts(normalize=True)
    assert (train[target].value_counts(normalize=True) - expected).abs().max() < 0.02
    assert (test[target].value_counts(normalize=True) - expected).abs().max() < 0.02


def test_split_is_seeded(dataset, params):
    first, _ = split(dataset, params.ingest.target, 0.25, seed=7)
    second, _ = split(dataset, params.ingest.target, 0.25, seed=7)
    assert first.equals(second)
