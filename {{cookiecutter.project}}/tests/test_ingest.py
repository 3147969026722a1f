from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.ingest import RAW_DATA, ingest, read_source
from {{ cookiecutter.package_name }}.params import IngestParams
from {{ cookiecutter.package_name }}.stage import StageError


def test_the_builtin_data_set_has_the_contract_columns(dataset, params):
    assert set(dataset.columns) == {*params.validate_.columns, params.ingest.target}


def test_a_csv_file_is_read(tmp_path, dataset):
    path = tmp_path / "data.csv"
    dataset.head(20).to_csv(path, index=False)
    frame = read_source(IngestParams(source=str(path)))
    assert frame.shape == (20, dataset.shape[1])


def test_a_missing_target_column_is_named(tmp_path, dataset):
    path = tmp_path / "data.parquet"
    dataset.drop(columns=["target"]).to_parquet(path)
    with pytest.raises(StageError, match="no target column 'target'"):
        read_source(IngestParams(source=str(path)))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(StageError, match="file not found"):
        read_source(IngestParams(source=str(tmp_path / "nope.csv")))


def test_ingest_writes_the_raw_data(workdir, params):
    ingest(params)
    assert len(pd.read_parquet(Path(RAW_DATA))) > 0
