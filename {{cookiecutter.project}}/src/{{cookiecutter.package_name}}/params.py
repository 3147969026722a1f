"""Typed view of params.yaml: every knob of the pipeline, checked before a stage runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    model_validator,
)

if TYPE_CHECKING:
    from .model import TrainParams

PARAMS_FILE = Path("params.yaml")
BUILTIN_PREFIX = "sklearn:"
BUILTIN_DATASETS = ("breast_cancer", "digits", "diabetes")
Task = Literal["classification", "regression"]


class ParamsError(ValueError):
    """params.yaml is missing, malformed or holds a value out of range."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestParams(Strict):
    source: str = Field(
        description="'sklearn:breast_cancer', 'sklearn:digits', 'sklearn:diabetes', or a .csv or .parquet file's path"
    )
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
Share = Annotated[float, Field(ge=0, le=1)]


class NumericColumn(Strict):
    """A number in [min, max]; at most `max_null_share` of the rows may miss it."""

    type: Literal["number"] = "number"
    range: Range
    max_null_share: Share = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> NumericColumn:
        low, high = self.range
        if low > high:
            raise ValueError(f"range [{low}, {high}] has min above max")
        return self


class CategoryColumn(Strict):
    """Text, one of `values`; at most `max_null_share` of the rows may miss it."""

    type: Literal["category"]
    values: list[str] = Field(min_length=1)
    max_null_share: Share = 0.0


def _shorthand(value: object) -> object:
    """`[min, max]` is a numeric column that no row may miss."""
    return {"type": "number", "range": value} if isinstance(value, list) else value


Column = Annotated[
    Annotated[NumericColumn, Tag("number")] | Annotated[CategoryColumn, Tag("category")],
    Discriminator(lambda v: v.get("type", "number") if isinstance(v, dict) else getattr(v, "type", "number")),
    BeforeValidator(_shorthand),
]


class ClassTarget(Strict):
    """A classification label: one of `classes` (when listed), each class at least `min_class_fraction` of the rows."""

    classes: list[int | str] | None = Field(default=None, min_length=2)
    min_class_fraction: float = Field(gt=0, lt=1)


class NumericTarget(Strict):
    """A regression target: a number in [min, max]."""

    range: Range

    @model_validator(mode="after")
    def _ordered(self) -> NumericTarget:
        if self.range[0] > self.range[1]:
            raise ValueError(f"range [{self.range[0]}, {self.range[1]}] has min above max")
        return self


Target = Annotated[
    Annotated[ClassTarget, Tag("classes")] | Annotated[NumericTarget, Tag("range")],
    Discriminator(
        lambda v: "range" if (isinstance(v, dict) and "range" in v) or isinstance(v, NumericTarget) else "classes"
    ),
]


class ValidateParams(Strict):
    min_rows: int = Field(ge=1)
    # The label: {classes: [...], min_class_fraction: share} for classification, {range: [min, max]} for regression.
    target: Target
    columns: dict[str, Column] = Field(min_length=1)
    # Rows that repeat another row entirely (features and label), at most this share of them.
    max_duplicate_share: Share = 0.01
    # Test rows whose features are also a training row's, at most this share of the test set.
    max_train_test_overlap: Share = 0.01
    # A feature that alone predicts the label this well (accuracy, or |correlation|) is a leak of the label.
    leakage_bound: float = Field(default=0.99, gt=0.5, le=1)
    # Columns that may hold a single value (kept for the model's input shape); any other constant column fails.
    constant_columns: list[str] = []

    def numeric(self) -> dict[str, NumericColumn]:
        return {name: c for name, c in self.columns.items() if isinstance(c, NumericColumn)}

    def categories(self) -> dict[str, CategoryColumn]:
        return {name: c for name, c in self.columns.items() if isinstance(c, CategoryColumn)}


class FeaturizeParams(Strict):
    test_size: float = Field(gt=0, lt=1)


class PackageParams(Strict):
    # auto: ONNX when the export predicts what the model predicts, else the MLflow pyfunc (much slower).
    runtime: Literal["auto", "onnx", "pyfunc"] = "auto"


class Params(Strict):
    # classification: the model predicts a class (probabilities per class); regression: a number.
    task: Task = "classification"
    seed: int = Field(ge=0)
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    featurize: FeaturizeParams
    # The model's own section, checked by its TrainParams when a stage asks for it (`train`): the stages before
    # training never import the model, nor its framework (seconds per stage for PyTorch).
    train_: dict[str, Any] = Field(alias="train")
    package: PackageParams = PackageParams()
    _source: Path = PrivateAttr(default=PARAMS_FILE)

    @property
    def train(self) -> TrainParams:
        from .model import TrainParams

        try:
            return TrainParams.model_validate(self.train_)
        except ValidationError as err:
            raise ParamsError(_messages(self._source, err, prefix=("train",))) from None

    @model_validator(mode="after")
    def _target_fits_the_task(self) -> Params:
        target = self.validate_.target
        if self.task == "classification" and not isinstance(target, ClassTarget):
            raise ValueError("task 'classification' needs validate.target as {min_class_fraction: share}, not a range")
        if self.task == "regression" and not isinstance(target, NumericTarget):
            raise ValueError("task 'regression' needs validate.target as {range: [min, max]}, not classes")
        return self


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
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_messages(path, err)) from None
    params._source = path
    return params


def _messages(path: Path, err: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One line per error: the file, the key's dotted path and what is wrong."""
    return "\n".join(
        f"{path}: {'.'.join(str(p) for p in (*prefix, *e['loc'])) or '<root>'}: {e['msg']}"
        for e in err.errors(include_url=False)
    )
