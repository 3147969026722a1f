"""The robustness catalogue is built from the signature's types: every case is wrong for the column it is put in."""

from __future__ import annotations

import pytest

from mlci.certify.process import send
from mlci.certify.robustness_cases import catalogue, valid_row
from mlci.model.schema import Feature, InputSchema


def test_every_bad_request_to_a_mixed_table_model_gets_a_4xx_and_a_valid_row_a_200(mixed_server):
    server, _ = mixed_server
    schema = InputSchema(
        (
            Feature("age", "long"),
            Feature("income", "double", required=False),
            Feature("city", "string", required=False),
            Feature("plan", "string"),
            Feature("visits", "long"),
        ),
        "columns",
        "float64",
    )
    cases = catalogue(schema, "mixed", 10_000, 16 * 1024 * 1024)  # the server's defaults
    answers = {c.name: send(server.url, c.method, c.path, c.body, c.content_type, c.declared_length) for c in cases}
    assert len(answers) >= 25
    assert {name for name, status in answers.items() if not 400 <= status < 500} == set()
    assert "number in a text column" in answers
    status, _ = server.post("/invocations", {"inputs": [valid_row(schema)]})
    assert status == 200


@pytest.mark.parametrize("kind", ["string", "boolean", "double"])
def test_a_case_that_a_schema_cannot_make_wrong_is_left_out(kind):
    schema = InputSchema((Feature("a", kind, required=False),), "columns", "float64")
    names = {case.name for case in catalogue(schema, "m", 10, 1000)}
    assert "null value" not in names and "NaN" not in names  # an optional column takes both
    assert ("string value" in names) == (kind != "string")
    assert ("number in a text column" in names) == (kind != "double")
