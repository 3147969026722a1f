"""Typed view of params.yaml: every knob of the pipeline, checked before a stage runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .model import TrainParams

PARAMS_FILE = Path("params.yaml")
BUILTIN_PREFIX = "sklearn:"
BUILTIN_DATASETS = ("breast_cancer", "digits")


class ParamsError(ValueError):
    """params.yaml is missing, malformed or holds a value out of range."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestParams(Strict):
    source: str = Field(description="'sklearn:breast_cancer', 'sklearn:digits', or a path to a .csv or .parquet file")
    target: str = "target"

    @model_validator(mode="after")
    def _known_source(self) -> IngestParams:
        if self.source.startswith(BUILTIN_PREFIX):
            name = self.source.removeprefix(BUILTIN_PREFIX)
            if name not in BUILTIN_DATASETS:
                allowed = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_DATASETS)
                raise ValueError(f"unknown built-in data set {self.source!r}; allowed: {allowed}")
        elif Path(self.source).suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"{self.source!r} is neither a built-in data set nor a .csv/.parquet file")
        return self


Range = Annotated[list[float], Field(min_length=2, max_length=2)]


class ValidateParams(Strict):
    min_rows: int = Field(ge=1)
    min_class_fraction: float = Field(gt=0, lt=1)
    columns: dict[str, Range] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered_ranges(self) -> ValidateParams:
        for name, (low, high) in self.columns.items():
            if low > high:
                raise ValueError(f"column {name!r}: range [{low}, {high}] has min above max")
        return self


class FeaturizeParams(Strict):
    test_size: float = Field(gt=0, lt=1)


class PackageParams(Strict):
    # auto: ONNX when the export predicts what the model predicts, else the MLflow pyfunc (much slower).
    runtime: Literal["auto", "onnx", "pyfunc"] = "auto"


class Params(Strict):
    seed: int = Field(ge=0)
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    featurize: FeaturizeParams
    train: TrainParams
    package: PackageParams = PackageParams()


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; a bad value raises ParamsError naming the file and the key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ParamsError(f"{path}: file not found (run from the project root)") from err
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in err.errors(include_url=False)
        ]
        raise ParamsError("\n".join(lines)) from None
