"""Writes that never leave a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    _replace_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json_atomic(data: Any, path: Path) -> None:
    _replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def write_text_atomic(text: str, path: Path) -> None:
    _replace_atomically(path, lambda tmp: tmp.write_text(text))


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    _replace_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
