"""Stage validate: the data contract as a Great Expectations suite, checked on the raw data.

The suite is code: schema (exact column set), per column its type, null share and range (numbers) or allowed
values (categories), row count and class balance, all read from the `validate` section of params.yaml (which
`make contract` drafts from the data). A failing suite
fails the stage with the list of failed expectations, and reports/validation.json holds the details.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .ingest import RAW_DATA
from .params import ClassTarget, NumericTarget, Params, ValidateParams
from .stage import StageError, run_stage
from .storage import write_json_atomic

REPORT = Path("reports/validation.json")


# What each expectation checks, in the words a failure is reported in.
CHECKS = {
    "expect_table_columns_to_match_set": "column set",
    "expect_table_row_count_to_be_between": "row count",
    "expect_column_values_to_not_be_null": "null share",
    "expect_column_values_to_be_in_type_list": "column type",
    "expect_column_values_to_be_between": "out of range",
    "expect_column_values_to_be_in_set": "unseen category",
    "expect_compound_columns_to_be_unique": "duplicate rows",
    "expect_column_unique_value_count_to_be_between": "constant column",
}


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    detail: str
    check: str = ""  # the check in plain words: "target leakage", "duplicate rows", ...

    def __str__(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        check = self.check or CHECKS.get(self.expectation, self.expectation)
        return f"{check} ({self.expectation}){where}: {self.detail}"


def build_suite(contract: ValidateParams, target: str, classes: list[Any]) -> Any:
    """The expectation suite of the data contract (a great_expectations ExpectationSuite)."""
    import great_expectations as gx

    return gx.ExpectationSuite(name="data_contract", expectations=_expectations(contract, target, classes))


def _expectations(contract: ValidateParams, target: str, classes: list[Any]) -> list[Any]:
    """The contract's expectations, each once. A suite made from them at once, not by add_expectation (which
    compares each new one with all before it, seconds for a wide table's), is the same suite."""
    import great_expectations as gx

    ex = gx.expectations
    expectations: list[Any] = []
    add = expectations.append
    add(ex.ExpectTableColumnsToMatchSet(column_set=[*contract.columns, target], exact_match=True))
    add(ex.ExpectTableRowCountToBeBetween(min_value=contract.min_rows))
    add(
        ex.ExpectCompoundColumnsToBeUnique(
            column_list=[*contract.columns, target], mostly=1 - contract.max_duplicate_share
        )
    )
    for column in contract.columns:
        if column not in contract.constant_columns:
            add(ex.ExpectColumnUniqueValueCountToBeBetween(column=column, min_value=2))
    for column, spec in contract.columns.items():
        if spec.max_null_share == 0:
            add(ex.ExpectColumnValuesToNotBeNull(column=column))
        elif spec.max_null_share < 1:
            add(ex.ExpectColumnValuesToNotBeNull(column=column, mostly=1 - spec.max_null_share))
    for column, number in contract.numeric().items():
        low, high = number.range
        add(
            ex.ExpectColumnValuesToBeInTypeList(
                column=column, type_list=["int", "int8", "int16", "int32", "int64", "float", "float32", "float64"]
            )
        )
        add(ex.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high))
    for column, category in contract.categories().items():
        # A category outside the contract's values is one the model never saw in training.
        add(ex.ExpectColumnValuesToBeInSet(column=column, value_set=category.values))
    add(ex.ExpectColumnValuesToNotBeNull(column=target))
    label = contract.target
    if isinstance(label, NumericTarget):
        low, high = label.range
        add(ex.ExpectColumnValuesToBeBetween(column=target, min_value=low, max_value=high))
        return expectations
    if label.classes is not None:
        add(ex.ExpectColumnValuesToBeInSet(column=target, value_set=label.classes))
    for value in label.classes or classes:
        # At least min_class_fraction of the rows carry each label: no class may (nearly) vanish.
        add(ex.ExpectColumnValuesToBeInSet(column=target, value_set=[value], mostly=label.min_class_fraction))
    return expectations


def _detail(result: dict[str, Any], exception: dict[str, Any]) -> str:
    if exception.get("raised_exception"):
        return "could not be evaluated: " + str(exception.get("exception_message", "")).strip()
    if "details" in result and "mismatched" in result["details"]:
        mismatch = result["details"]["mismatched"]
        return f"missing columns {mismatch.get('missing')}, unexpected columns {mismatch.get('unexpected')}"
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list", [])[:5]
        share = result.get("unexpected_percent") or 0
        return f"{result['unexpected_count']} unexpected values ({share:.2f}%), e.g. {sample}"
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    return "failed"


def ephemeral_context() -> Any:
    """A Great Expectations context that keeps nothing on disk and reports nothing home."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(context: Any, frame: pd.DataFrame, suite: Any) -> list[FailedExpectation]:
    """Validate `frame` against `suite`; the expectations that did not hold."""
    import great_expectations as gx

    batch = (
        context.data_sources.add_pandas("raw")
        .add_dataframe_asset("dataset")
        .add_batch_definition_whole_dataframe("all rows")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="data_contract", data=batch, suite=context.suites.add(suite))
    )
    outcome = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    failed = []
    for item in outcome.results:
        if item.success:
            continue
        config = item.expectation_config
        failed.append(
            FailedExpectation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                detail=_detail(dict(item.result or {}), dict(item.exception_info or {})),
            )
        )
    return failed


def validate_frame(frame: pd.DataFrame, contract: ValidateParams, target: str) -> list[FailedExpectation]:
    """The failed expectations of the data contract on `frame` (empty when the data holds)."""
    classes = _seen_classes(frame, contract, target)
    context = ephemeral_context()
    failed = [
        _in_words(f, frame, target, contract) for f in run_suite(context, frame, build_suite(contract, target, classes))
    ]
    if not any(f.expectation == "expect_table_columns_to_match_set" for f in failed):
        failed += leaks(frame, contract, target)
    return failed


def _seen_classes(frame: pd.DataFrame, contract: ValidateParams, target: str) -> list[Any]:
    """The labels in `frame` when the contract lists no classes: the suite then checks the balance of these."""
    label = contract.target
    seen = isinstance(label, ClassTarget) and label.classes is None and target in frame.columns
    return sorted(frame[target].dropna().unique().tolist(), key=str) if seen else []


def check_count(frame: pd.DataFrame, contract: ValidateParams, target: str, with_test: bool) -> int:
    """How many checks the contract makes on `frame`: the suite's expectations, target leakage, and the overlap
    with the test set when there is one."""
    return len(_expectations(contract, target, _seen_classes(frame, contract, target))) + 1 + int(with_test)


def _in_words(
    failure: FailedExpectation, frame: pd.DataFrame, target: str, contract: ValidateParams
) -> FailedExpectation:
    """A class-balance failure names the rare class, its share and the bound (GE's own sample shows the others);
    a label outside the contract's classes is an unseen class."""
    label = contract.target
    if failure.column != target or not isinstance(label, ClassTarget):
        return failure
    if failure.expectation != "expect_column_values_to_be_in_set":
        return failure
    if label.classes is not None and not frame[target].isin(label.classes).all():
        unseen = sorted({str(v) for v in frame[target][~frame[target].isin(label.classes)]})[:5]
        detail = f"labels {unseen} are none of the contract's classes {label.classes}"
        return FailedExpectation(failure.expectation, target, detail, "unseen class")
    shares = frame[target].value_counts(normalize=True).reindex(label.classes or None, fill_value=0.0)
    rare = shares.idxmin()
    detail = f"class {rare!r} holds {shares.min():.1%} of the rows; every class needs {label.min_class_fraction:.1%}"
    return FailedExpectation(failure.expectation, target, detail, "class balance")


def leaks(frame: pd.DataFrame, contract: ValidateParams, target: str) -> list[FailedExpectation]:
    """Target leakage: a feature equal to the label, or that alone predicts it about as well as the label itself.

    Classification: the cross-validated accuracy of a small tree on that feature, at or above the leakage bound
    (and above the majority class's share). Regression: the feature's |correlation| with the target (numbers), or
    the share of the target's spread its categories explain, square-rooted (text), at or above the bound.
    """
    labels = frame[target]
    if labels.isna().any() or labels.nunique() < 2 or len(frame) < 20:
        return []
    regression = isinstance(contract.target, NumericTarget)
    found = []
    for column in contract.columns:
        values = frame[column]
        numbers = pd.api.types.is_numeric_dtype(values) and pd.api.types.is_numeric_dtype(labels)
        same = bool((values.astype(float) == labels.astype(float)).all()) if numbers else None
        if same or (same is None and values.astype(str).equals(labels.astype(str))):
            found.append(FailedExpectation("mlci_target_leakage", column, "it equals the label", "target leakage"))
            continue
        strength, measure = (_association if regression else _tree_accuracy)(values, labels)
        if strength >= contract.leakage_bound:
            detail = f"alone it predicts the label with {measure} {strength:.3f} (bound {contract.leakage_bound})"
            found.append(FailedExpectation("mlci_target_leakage", column, detail, "target leakage"))
    return found


def _tree_accuracy(values: pd.Series, labels: pd.Series) -> tuple[float, str]:
    """How well a small tree on this feature alone predicts the class (0 when no better than the majority)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier

    if pd.api.types.is_numeric_dtype(values):
        codes = values.fillna(values.median())
    else:  # text: its categories as numbers, a missing value one of them
        codes = values.astype("category").cat.codes
    x, y = codes.to_numpy(dtype=float).reshape(-1, 1), labels.astype(str).to_numpy()
    # cross_val_score(tree, x, y, cv=3)'s folds and score, without its per-call machinery: 3.7 times faster on
    # the demo's 30 columns, and validate runs this on every column of every table it checks.
    scores = []
    with warnings.catch_warnings():  # a class too rare for 3 folds is the balance check's to report
        warnings.simplefilter("ignore", UserWarning)
        for fit, held in StratifiedKFold(n_splits=3).split(x, y):
            tree = DecisionTreeClassifier(min_samples_leaf=5, random_state=0).fit(x[fit], y[fit])
            scores.append(float((tree.predict(x[held]) == y[held]).mean()))
    accuracy = sum(scores) / len(scores)
    majority = float(labels.value_counts(normalize=True).max())
    return (accuracy if accuracy > majority else 0.0), "accuracy"


def _association(values: pd.Series, labels: pd.Series) -> tuple[float, str]:
    """|Pearson correlation| of a numeric feature with the target; for text, the correlation ratio (eta)."""
    target = labels.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        present = values.notna()
        if present.sum() < 3 or values[present].nunique() < 2:
            return 0.0, "|correlation|"
        return abs(float(values[present].astype(float).corr(target[present]))), "|correlation|"
    groups = target.groupby(values.fillna("").astype(str))
    spread = float(((target - target.mean()) ** 2).sum())
    between = float((groups.count() * (groups.mean() - target.mean()) ** 2).sum())
    return ((between / spread) ** 0.5 if spread else 0.0), "correlation ratio"


def overlap(train: pd.DataFrame, test: pd.DataFrame, contract: ValidateParams, target: str) -> list[FailedExpectation]:
    """Train/test overlap: test rows whose features are also a training row's (the test set then measures memory)."""
    features = [c for c in test.columns if c != target]
    seen = set(train[features].astype(str).itertuples(index=False, name=None))
    shared = [row for row in test[features].astype(str).itertuples(index=False, name=None) if row in seen]
    share = len(shared) / max(len(test), 1)
    if share <= contract.max_train_test_overlap:
        return []
    detail = (
        f"{len(shared)} of {len(test)} test rows ({share:.1%}) are also training rows, e.g. {list(shared[0])[:4]}; "
        f"the bound is {contract.max_train_test_overlap:.1%}"
    )
    return [FailedExpectation("mlci_train_test_overlap", None, detail, "train/test overlap")]


def validate(params: Params) -> None:
    frame = pd.read_parquet(RAW_DATA)
    failed = validate_frame(frame, params.validate_, params.ingest.target)
    write_json_atomic(
        {
            "success": not failed,
            "rows": len(frame),
            "columns": len(frame.columns),
            "failed": [asdict(f) for f in failed],
        },
        REPORT,
    )
    if failed:
        listing = "\n".join(f"  - {f}" for f in failed)
        raise StageError(f"{len(failed)} expectation(s) failed on {RAW_DATA}:\n{listing}\nDetails: {REPORT}")


def check(path: Path, test: Path | None = None) -> Callable[[Params], None]:
    """The contract on another data file (certification runs it on the training data, and its overlap with the
    test set); writes no report."""

    def body(params: Params) -> None:
        frame = pd.read_parquet(path)
        failed = validate_frame(frame, params.validate_, params.ingest.target)
        if test is not None:
            failed += overlap(frame, pd.read_parquet(test), params.validate_, params.ingest.target)
        if failed:
            listing = "\n".join(f"  - {f}" for f in failed)
            raise StageError(f"{len(failed)} expectation(s) failed on {path}:\n{listing}")
        # mlci certify's report shows the figures in parentheses: rows, columns, checks passed.
        checks = check_count(frame, params.validate_, params.ingest.target, test is not None)
        figures = f"{len(frame)} rows, {len(frame.columns)} columns, {checks} checks passed"
        print(f"validate: the data contract holds on {path} ({figures})")

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description="Validate the raw data (the stage), or --data another file.")
    parser.add_argument("--data", type=Path, help="check this Parquet file instead; no report is written")
    parser.add_argument("--test", type=Path, help="with --data: the test set, which may share few rows with it")
    arguments = parser.parse_args()
    run_stage("validate", check(arguments.data, arguments.test) if arguments.data else validate)


if __name__ == "__main__":
    main()
