"""certification.yaml: which gates run and their thresholds, validated with errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import MlciError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class DataGate(Strict):
    enabled: bool = True
    command: str = Field(min_length=1)


class QualityGate(Strict):
    enabled: bool = True
    metrics: str = "metrics.json"
    thresholds: dict[str, Bound] = Field(min_length=1)


class ChampionGate(Strict):
    enabled: bool = True
    alias: str = Field(default="champion", pattern=r"^[A-Za-z0-9_-]+$")
    tolerance: dict[str, float] = Field(min_length=1)
    # Per metric: whether a higher value is better. A metric left out is read from its quality bound or its name.
    greater_is_better: dict[str, bool] = {}

    @model_validator(mode="after")
    def _known_metrics(self) -> ChampionGate:
        unknown = sorted(set(self.greater_is_better) - set(self.tolerance))
        if unknown:
            raise ValueError(f"greater_is_better names {unknown[0]!r}, which has no tolerance")
        return self


class ServingGate(Strict):
    enabled: bool = True
    seconds: float = Field(default=5.0, gt=0, le=600)
    connections: int = Field(default=8, ge=1, le=256)
    p99_ms: float = Field(gt=0)
    min_requests_per_s: float = Field(ge=0)


class RobustnessGate(Strict):
    enabled: bool = True


class ParityGate(Strict):
    enabled: bool = True
    tolerance: float = Field(default=1e-5, ge=0)
    data: str = "data/prepared/test.parquet"
    target: str = "target"


class ReproducibilityGate(Strict):
    enabled: bool = True


class Gates(Strict):
    data: DataGate
    quality: QualityGate
    champion: ChampionGate
    serving: ServingGate
    robustness: RobustnessGate = RobustnessGate()
    parity: ParityGate = ParityGate()
    reproducibility: ReproducibilityGate = ReproducibilityGate()


class Certification(Strict):
    model: str = "models/model"
    model_info: str = "models/model_info.json"
    serving: str = "models/serving"
    # The sections of the model card the team writes once (intended use, limitations, owners), a Markdown file of
    # the project that every model card includes as it is; none: the card has only what the pipeline knows.
    model_card: str | None = Field(default=None, min_length=1)
    gates: Gates


def load(path: Path) -> Certification:
    """The certification config at `path`; a bad one raises MlciError naming the file, key and what is allowed."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MlciError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise MlciError(f"{path}: not valid YAML: {error}") from None
    try:
        return Certification.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            message = problem["msg"]
            if problem["type"] == "extra_forbidden":
                message = "unknown key; " + _allowed(problem["loc"])
            lines.append(f"{path}: {key}: {message}")
        raise MlciError("\n".join(lines)) from None


def _allowed(location: tuple[Any, ...]) -> str:
    model: Any = Certification
    for part in location[:-1]:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return "see the template's certification.yaml"
        model = field.annotation
    return "allowed: " + ", ".join(model.model_fields)
