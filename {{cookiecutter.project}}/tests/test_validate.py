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


@pytest.mark.task("classification")
def test_a_vanishing_class_fails_the_balance_expectation(sample, params):
    target = params.ingest.target
    rare = sample[target].value_counts().index[-1]
    keep = sample[sample[target] != rare]
    broken = np.concatenate([keep.index.to_numpy(), sample.index[sample[target] == rare][:1]])
    failed = validate_frame(sample.loc[broken], params.validate_, target)
    assert ("expect_column_values_to_be_in_set", target) in {(f.expectation, f.column) for f in failed}


def checks(failed):
    return {(str(f).split(" (")[0], f.column) for f in failed}


def test_a_column_equal_to_the_label_is_target_leakage(sample, params):
    target = params.ingest.target
    leaked = sample.copy()
    column = next(iter(params.validate_.numeric()))
    leaked[column] = leaked[target].astype(float)
    assert ("target leakage", column) in checks(validate_frame(leaked, params.validate_, target))


def test_half_the_rows_repeated_are_duplicate_rows(sample, params):
    import pandas as pd

    doubled = pd.concat([sample, sample.head(len(sample) // 2)], ignore_index=True)
    failed = validate_frame(doubled, params.validate_, params.ingest.target)
    assert any(str(f).startswith("duplicate rows") for f in failed), failed


def test_a_column_of_one_value_is_a_constant_column(sample, params):
    column = next(c for c in params.validate_.numeric() if c not in params.validate_.constant_columns)
    constant = sample.assign(**{column: sample[column].iloc[0]})
    failed = validate_frame(constant, params.validate_, params.ingest.target)
    assert any(str(f).startswith("constant column") and f.column == column for f in failed)


def test_test_rows_that_are_training_rows_are_train_test_overlap(sample, params):
    from {{ cookiecutter.package_name }}.validate import overlap

    train, test = sample.iloc[:200], sample.iloc[150:250]
    (failure,) = overlap(train, test, params.validate_, params.ingest.target)
    assert failure.check == "train/test overlap" and "50 of 100 test rows" in str(failure)
    assert overlap(sample.iloc[:200], sample.iloc[200:], params.validate_, params.ingest.target) == []


def test_a_category_the_contract_never_listed_is_an_unseen_category(params):
    import pandas as pd

    from {{ cookiecutter.package_name }}.params import ValidateParams

    contract = ValidateParams(
        min_rows=1,
        target={"classes": [0, 1], "min_class_fraction": 0.1},
        columns={"colour": {"type": "category", "values": ["red", "blue"]}, "size": [0, 10]},
    )
    frame = pd.DataFrame({"colour": ["red", "blue", "purple", "red"] * 10, "size": range(40), "y": [0, 1] * 20})
    failed = validate_frame(frame, contract, "y")
    assert [str(f).split(" (")[0] for f in failed if f.column == "colour"] == ["unseen category"]
    assert "purple" in next(f.detail for f in failed if f.column == "colour")


@pytest.mark.task("classification")
def test_the_balance_check_names_the_rare_class_and_the_bound(sample, params):
    import pandas as pd

    target = params.ingest.target
    rare = sample[target].value_counts().index[-1]
    one_left = pd.concat([sample[sample[target] != rare], sample[sample[target] == rare].head(1)])
    (failure,) = [f for f in validate_frame(one_left, params.validate_, target) if f.column == target]
    assert failure.check == "class balance" and repr(rare) in failure.detail
    assert f"{params.validate_.target.min_class_fraction:.1%}" in failure.detail


@pytest.mark.task("classification")
def test_a_label_outside_the_contracts_classes_is_an_unseen_class(sample, params):
    target = params.ingest.target
    if params.validate_.target.classes is None:
        pytest.skip("the contract lists no classes")
    broken = sample.copy()
    broken[target] = broken[target].astype(object)
    broken.loc[:2, target] = "unheard-of"
    failed = [f for f in validate_frame(broken, params.validate_, target) if f.column == target]
    assert "unseen class" in {f.check for f in failed} and "unheard-of" in str(failed)


@pytest.mark.task("regression")
def test_a_target_out_of_its_range_fails_the_range_expectation(sample, params):
    target = params.ingest.target
    broken = sample.copy()
    broken.loc[:2, target] = params.validate_.target.range[1] * 10
    failed = validate_frame(broken, params.validate_, target)
    assert ("expect_column_values_to_be_between", target) in {(f.expectation, f.column) for f in failed}


@pytest.mark.task("regression")
def test_a_feature_that_tracks_the_target_is_target_leakage(sample, params):
    target = params.ingest.target
    column = next(iter(params.validate_.numeric()))
    low, high = params.validate_.numeric()[column].range
    span = sample[target].max() - sample[target].min()
    noise = np.random.default_rng(0).normal(0, span * 0.01, len(sample))
    leaked = sample.assign(
        **{column: low + (sample[target] - sample[target].min() + noise) / span * (high - low) * 0.9}
    )
    failed = validate_frame(leaked.assign(**{column: leaked[column].clip(low, high)}), params.validate_, target)
    leak = next(f for f in failed if f.column == column)
    assert leak.check == "target leakage" and "|correlation|" in leak.detail
