"""Stage ingest: load the raw data set (built-in or the user's file) into data/raw/dataset.parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .params import BUILTIN_PREFIX, IngestParams, Params
from .stage import StageError, run_stage
from .storage import write_parquet_atomic

RAW_DATA = Path("data/raw/dataset.parquet")


def load_builtin(name: str, target: str) -> pd.DataFrame:
    """One of the data sets that ship with scikit-learn, with the label in column `target`: breast cancer and
    digits (classification), diabetes (regression: disease progression, its features in their own units)."""
    from sklearn import datasets

    if name == "diabetes":
        frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    else:
        frame = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name](
            as_frame=True
        ).frame
    return frame.rename(columns={"target": target})


def read_source(params: IngestParams) -> pd.DataFrame:
    """The data set named by params.ingest; a missing file or target column raises StageError."""
    if params.source.startswith(BUILTIN_PREFIX):
        return load_builtin(params.source.removeprefix(BUILTIN_PREFIX), params.target)
    path = Path(params.source)
    if not path.is_file():
        raise StageError(f"ingest.source {params.source!r}: file not found")
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:  # pandas raises many types for unreadable files
        raise StageError(f"ingest.source {params.source!r}: cannot read it: {err}") from err
    if params.target not in frame.columns:
        raise StageError(f"ingest.source {params.source!r}: no target column {params.target!r}")
    return frame


def labelled(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """The rows that carry a label, and how many did not (they cannot train or test anything)."""
    keep = frame[target].notna()
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def ingest(params: Params) -> None:
    frame, dropped = labelled(read_source(params.ingest), params.ingest.target)
    if dropped:
        print(f"ingest: dropped {dropped} of {dropped + len(frame)} rows without a label ({params.ingest.target!r})")
    write_parquet_atomic(frame, RAW_DATA)


def main() -> None:
    run_stage("ingest", ingest)


if __name__ == "__main__":
    main()
