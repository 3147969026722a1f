"""The input schema read from MLflow signatures."""

import json

import pytest

from mlci.errors import ModelError
from mlci.model.schema import from_signature


def test_column_signature_keeps_names_types_and_order():
    schema = from_signature(
        json.dumps(
            [
                {"type": "double", "name": "b", "required": True},
                {"type": "long", "name": "a", "required": False},
            ]
        )
    )
    assert schema.layout == "columns"
    assert schema.names == ["b", "a"]
    assert [f.type for f in schema.features] == ["double", "long"]
    assert [f.required for f in schema.features] == [True, False]
    assert schema.dtype == "float64" and schema.numeric


def test_tensor_signature_takes_feature_names_when_their_count_matches():
    spec = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]
    assert from_signature(spec, ["x", "y", "z"]).names == ["x", "y", "z"]
    assert from_signature(spec, ["x"]).names == ["0", "1", "2"]
    assert from_signature(spec).dtype == "float32"


def test_string_columns_make_a_non_numeric_schema():
    schema = from_signature([{"type": "string", "name": "city"}, {"type": "double", "name": "x"}])
    assert not schema.numeric


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "no inputs"),
        ([{"type": "binary", "name": "blob"}], "'blob' has type 'binary'"),
        ([{"type": "double"}], "unnamed columns"),
        ([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8, 8]}}], "2-D inputs"),
        ([{"type": "tensor", "tensor-spec": {"dtype": "object", "shape": [-1, 2]}}], "dtype 'object'"),
        ([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}] * 2, "2 tensors"),
    ],
)
def test_unservable_signatures_are_refused_with_the_reason(inputs, message):
    with pytest.raises(ModelError, match=message):
        from_signature(inputs)
