"""Request bodies to model inputs: every MLflow format, the v2 protocol, and every kind of bad request."""

import json

import numpy as np
import pytest

from mlci.model.schema import Feature, InputSchema
from mlci.serving.dataplane import RequestError
from mlci.serving.invocations import InvocationsParser
from mlci.serving.v2 import V2Parser

NUMBERS = InputSchema((Feature("a", "double"), Feature("b", "double"), Feature("c", "double")), "columns", "float64")
MIXED = InputSchema(
    (
        Feature("x", "double"),
        Feature("n", "long"),
        Feature("flag", "boolean"),
        Feature("opt", "double", required=False),
    ),
    "columns",
    "float64",
)
TENSOR = InputSchema(tuple(Feature(str(i), "float") for i in range(3)), "tensor", "float32")
ROWS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]


def parse(document, schema=NUMBERS, content_type="application/json", max_rows=100):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return InvocationsParser(schema, max_rows).parse(body, content_type)


def refused(document, schema=NUMBERS, content_type="application/json", max_rows=100) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(document, schema, content_type, max_rows)
    return caught.value


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": ROWS}},
        {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3.0, 1.0, 2.0], [6.5, 4.0, 5.0]]}},
        {"dataframe_split": {"index": [0, 1], "columns": ["a", "b", "c"], "data": ROWS}, "params": {}},
        {"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3.0}, {"c": 6.5, "b": 5, "a": 4}]},
        {"instances": ROWS},
        {"instances": [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 4.0, "b": 5.0, "c": 6.5}]},
        {"inputs": ROWS},
        {"inputs": {"a": [1.0, 4.0], "b": [2.0, 5.0], "c": [3.0, 6.5]}},
    ],
)
def test_every_mlflow_format_gives_the_same_matrix(document):
    batch = parse(document)
    assert batch.matrix is not None and batch.matrix.dtype == np.float64
    assert batch.matrix.tolist() == ROWS


def test_csv_bodies_are_read_with_their_header():
    batch = parse(b"b,a,c\n2,1,3\n5,4,6.5\n", content_type="text/csv; charset=utf-8")
    assert batch.matrix.tolist() == ROWS


def test_a_tensor_model_gets_its_own_dtype():
    batch = parse({"inputs": ROWS}, TENSOR)
    assert batch.matrix.dtype == np.float32 and batch.matrix.shape == (2, 3)


def test_mixed_columns_are_checked_one_by_one():
    batch = parse(
        {"dataframe_records": [{"x": 1.5, "n": 2, "flag": True}, {"x": 0, "n": 3.0, "flag": False, "opt": None}]}, MIXED
    )
    assert batch.matrix[:, :3].tolist() == [[1.5, 2.0, 1.0], [0.0, 3.0, 0.0]]
    assert np.isnan(batch.matrix[:, 3]).all()


@pytest.mark.parametrize(
    ("document", "status", "message"),
    [
        (b"", 400, "the body is empty"),
        (b'{"dataframe_split": ', 400, "invalid JSON"),
        (b"\xff\xfe{}", 400, "invalid JSON"),
        (b"[" * 5000 + b"]" * 5000, 400, "invalid JSON"),
        ([1, 2], 400, "must be a JSON object"),
        ({}, 400, "exactly one of the keys"),
        ({"inputs": ROWS, "instances": ROWS}, 400, "found instances, inputs"),
        ({"data": ROWS}, 400, "unknown key 'data'"),
        ({"inputs": ROWS, "params": 3}, 400, "'params' must be an object"),
        ({"dataframe_split": ROWS}, 400, "'dataframe_split' must be an object"),
        ({"dataframe_split": {"columns": ["a", "b", "c"]}}, 400, "needs 'data'"),
        ({"dataframe_split": {"columns": ["a", "b", "c"], "data": ROWS, "orient": 1}}, 400, "unknown key 'orient'"),
        ({"dataframe_split": {"columns": ["a", "b", "x"], "data": ROWS}}, 400, "unknown column 'x'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}, 400, "missing column 'c'"),
        ({"dataframe_split": {"columns": ["a", "a", "b"], "data": ROWS}}, 400, "column 'a' appears twice"),
        ({"dataframe_split": {"columns": "abc", "data": ROWS}}, 400, "must be a list of column names"),
        ({"dataframe_split": {"columns": ["a", "b", "c"], "data": ROWS, "index": [0]}}, 400, "one entry per row"),
        ({"inputs": [[1.0, 2.0]]}, 400, "inputs[0] has 2 values; the model takes 3"),
        ({"inputs": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]]}, 400, "inputs[1] has 4 values"),
        ({"inputs": [1.0, 2.0, 3.0]}, 400, "wrap a single row in a list"),
        ({"inputs": [[1.0, "2", 3.0]]}, 400, "inputs[0], column 'b': expected a number (double), got a string"),
        ({"inputs": [[1.0, True, 3.0]]}, 400, "column 'b': expected a number (double), got a boolean"),
        ({"inputs": [[1.0, [2.0], 3.0]]}, 400, "column 'b': expected a number (double), got a list"),
        ({"inputs": [[1.0, None, 3.0]]}, 400, "column 'b': null is not allowed"),
        (b'{"inputs": [[1.0, NaN, 3.0]]}', 400, "column 'b': NaN is not allowed"),
        (b'{"inputs": [[1.0, 2.0, -Infinity]]}', 400, "column 'c': -inf is not allowed"),
        ({"inputs": []}, 400, "'inputs' has no rows"),
        ({"inputs": "rows"}, 400, "'inputs' must be a list of rows, got a string"),
        ({"inputs": {"a": [1.0], "b": [2.0]}}, 400, "missing column 'c'"),
        ({"inputs": {"a": [1.0], "b": [2.0], "c": [3.0, 4.0]}}, 400, "different lengths"),
        ({"inputs": {"a": [1.0], "b": [2.0], "c": 3.0}}, 400, "'inputs.c' must be a list"),
        ({"dataframe_records": [{"a": 1.0, "b": 2.0}]}, 400, "dataframe_records[0], column 'c' is missing"),
        ({"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3, "d": 4}]}, 400, "unknown column 'd'"),
        ({"dataframe_records": [[1.0, 2.0, 3.0]]}, 400, "must be an object of column: value"),
        ({"inputs": [[1.0, 2.0, 3.0]] * 101}, 413, "has 101 rows; this server takes at most 100"),
        (b"a,b,c\n1,2,oops\n", 400, "column 'c': expected a number (double), got a string \"oops\""),
        (b"a,b\n1,2\n", 400, "missing column 'c'"),
        (b"a,b,c\n1,2,3,4\n", 400, "has 4 values; the model takes 3"),
        (b"\n", 400, "the CSV body is empty"),
    ],
)
def test_bad_requests_are_refused_naming_the_problem(document, status, message):
    content_type = "text/csv" if isinstance(document, bytes) and document[:1] in (b"a", b"\n") else "application/json"
    error = refused(document, content_type=content_type, max_rows=100)
    assert error.status == status
    assert message in error.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"inputs": [[1.5, 2.5, True]]}, "column 'n': expected an integer (long), got 2.5"),
        ({"inputs": [[1.5, 2, 1]]}, "column 'flag': expected a boolean, got a number"),
        ({"inputs": [["1.5", 2, True]]}, "column 'x': expected a number (double), got a string"),
    ],
)
def test_integer_and_boolean_columns_take_only_their_own_values(document, message):
    schema = InputSchema(MIXED.features[:3], "columns", "float64")
    assert message in refused(document, schema).message


def test_unknown_content_types_get_415():
    error = refused(b"a=1", content_type="application/x-www-form-urlencoded")
    assert error.status == 415 and "application/x-www-form-urlencoded" in error.message


def v2(inputs, schema=NUMBERS, **extra):
    body = json.dumps({"inputs": inputs, **extra}).encode()
    return V2Parser(schema, 100).parse(body)


def test_v2_takes_one_tensor_per_column_or_one_matrix_named_input():
    columns = [{"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in ROWS]} for i, n in enumerate("abc")]
    batch, request_id = v2(columns, id="r-1")
    assert batch.matrix.tolist() == ROWS and request_id == "r-1"
    batch, _ = v2([{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6.5]}])
    assert batch.matrix.tolist() == ROWS
    batch, _ = v2([{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": ROWS}], TENSOR)
    assert batch.matrix.dtype == np.float32


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("x", "'inputs' must be a non-empty list"),
        ([], "'inputs' must be a non-empty list"),
        ([{"name": "input", "shape": [1, 3], "datatype": "FP64"}], "inputs[0] is missing 'data'"),
        ([{"name": "input", "shape": [1, 3], "datatype": "FP99", "data": [1, 2, 3]}], 'datatype "FP99"'),
        ([{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2]}], "has 2 values but its shape"),
        ([{"name": "input", "shape": [-1, 3], "datatype": "FP64", "data": [1, 2, 3]}], "non-negative integers"),
        ([{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}], "the model takes [rows, 3]"),
        ([{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, "x", 3]}], "expected a number (FP64)"),
        (
            [{"name": "input", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}],
            "column 'a': expected a number",
        ),
        ([{"name": "wrong", "shape": [1], "datatype": "FP64", "data": [1]}], "unknown input 'wrong'"),
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], "missing input 'b'"),
        ([{"name": "input", "shape": [1000, 3], "datatype": "FP64", "data": [0] * 3000}], "at most 100"),
    ],
)
def test_bad_v2_requests_are_refused_naming_the_problem(inputs, message):
    with pytest.raises(RequestError) as caught:
        v2(inputs)
    assert message in caught.value.message
    assert caught.value.status in (400, 413)


@pytest.mark.parametrize("field", ["dataframe_records", "instances"])
def test_a_record_that_gives_a_column_twice_is_refused_naming_it(field):
    rows = '[{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 4.0, "b": 5.0, "b": 9.0, "c": 6.5}]'
    body = f'{{"{field}": {rows}}}'.encode()
    error = refused(body)
    assert error.status == 400 and "gives the key 'b' twice" in str(error) and field in str(error)


def test_a_text_value_that_spells_a_column_name_is_no_repeat():
    schema = InputSchema((Feature("a", "double"), Feature("b", "string")), "columns", "float64")
    batch = parse({"dataframe_records": [{"a": 1.0, "b": "a"}, {"a": 2.0, "b": "b"}]}, schema)
    assert batch.columns["b"] == ["a", "b"]


def v2_rows(document, schema=NUMBERS):
    return V2Parser(schema, 100).parse(json.dumps(document).encode())


@pytest.mark.parametrize(
    "inputs",
    [
        [{"name": "input", "shape": [2, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]}],
        [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": ROWS}],
        [{"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in ROWS]} for i, n in enumerate("abc")],
        [{"name": n, "shape": [2, 1], "datatype": "FP64", "data": [[r[i]] for r in ROWS]} for i, n in enumerate("abc")],
        [
            {"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in ROWS]}
            for i, n in reversed(list(enumerate("abc")))
        ],
    ],
)
def test_v2_reads_a_matrix_or_a_tensor_per_column_to_the_same_rows(inputs):
    batch, _ = v2_rows({"inputs": inputs})
    assert batch.matrix is not None and batch.matrix.tolist() == ROWS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1.0, 2.0, "3", 4.0, 5.0, 6.5], "expected a number"),
        ([1.0, 2.0, None, 4.0, 5.0, 6.5], "'c'"),
        ([1.0, 2.0, True, 4.0, 5.0, 6.5], "expected a number"),
        ([1.0, 2.0, 3.0, 4.0, 5.0], "has 5 values but its shape"),
    ],
)
def test_the_v2_fast_path_leaves_every_refusal_to_the_careful_one(data, message):
    with pytest.raises(RequestError, match=message):
        v2_rows({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP64", "data": data}]})


def test_clean_numbers_take_the_fast_path_and_anything_else_the_careful_one():
    parser = V2Parser(NUMBERS, 100)
    matrix = [{"name": "input", "shape": [2, 3], "datatype": "FP64", "data": ROWS}]
    assert parser._fast(matrix, json.dumps(matrix).encode()) is not None
    per_column = [
        {"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in ROWS]} for i, n in enumerate("abc")
    ]
    assert parser._fast(per_column, b"") is not None
    assert parser._fast(per_column[::-1], b"") is None  # another order: the careful path maps it
    with_text = [{**matrix[0], "data": [1.0, "2", 3.0, 4.0, 5.0, 6.5]}]
    assert parser._fast(with_text, json.dumps(with_text).encode()) is None
