"""Stage featurize: a seeded split of the validated data into train and test sets (stratified by class for a
classification)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from .ingest import RAW_DATA
from .params import Params
from .stage import run_stage
from .storage import write_parquet_atomic

TRAIN_DATA = Path("data/prepared/train.parquet")
TEST_DATA = Path("data/prepared/test.parquet")


def split(
    frame: pd.DataFrame, target: str, test_size: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames; with `stratify`, the class proportions of `frame` kept in both."""
    by = frame[target] if stratify else None
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=by)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def featurize(params: Params) -> None:
    train, test = split(
        pd.read_parquet(RAW_DATA),
        params.ingest.target,
        params.featurize.test_size,
        params.seed,
        stratify=params.task == "classification",
    )
    write_parquet_atomic(train, TRAIN_DATA)
    write_parquet_atomic(test, TEST_DATA)


def main() -> None:
    run_stage("featurize", featurize)


if __name__ == "__main__":
    main()
