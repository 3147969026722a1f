import numpy as np
import pytest

from {{ cookiecutter.package_name }}.validate import validate_frame


@pytest.fixture(scope="module")
def sample(dataset, params):
    rows = min(len(dataset), max(300, params.validate_.min_rows))
    return dataset.sample(n=rows, random_state=0).reset_index(drop=True)


def test_clean_data_meets_the_contract(sample, params):
    assert validate_frame(sample, params.validate_, params.ingest.target) == []


def test_nulls_fail_the_null_expectation_of_that_column(sample, params):
    column = next(iter(params.validate_.columns))
    broken = sample.copy()
    broken.loc[:4, column] = np.nan
    failed = validate_frame(broken, params.validate_, params.ingest.target)
    assert ("expect_column_values_to_not_be_null", column) in {(f.expectation, f.column) for f in failed}


def test_out_of_range_values_fail_the_range_expectation(sample, params):
    column, number = next(iter(params.validate_.numeric().items()))
    high = number.range[1]
    broken = sample.copy()
    broken.loc[:2, column] = high * 10
    failed = validate_frame(broken, params.validate_, params.ingest.target)
    assert [(f.expectation, f.column) for f in failed] == [("expect_column_values_to_be_between", column)]


def test_a_vanishing_class_fails_the_balance_expectation(sample, params):
    target = params.ingest.target
    rare = sample[target].value_counts().index[-1]
    keep = sample[sample[target] != rare]
    broken = np.concatenate([keep.index.to_numpy(), sample.index[sample[target] == rare][:1]])
    failed = validate_frame(sample.loc[broken], params.validate_, target)
    assert ("expect_column_values_to_be_in_set", target) in {(f.expectation, f.column) for f in failed}
