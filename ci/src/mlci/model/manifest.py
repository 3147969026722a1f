"""A packaged model: the served artifact and `serving.json`, which says what it is and how to serve it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ModelError
from ..files import write_atomic
from .baseline import Baseline
from .schema import InputSchema

MANIFEST = "serving.json"
FORMAT = 1


def artifact_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory: every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(artifact_sha256(file).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class OutputSpec:
    """What the model returns: class probabilities (one column per class) or plain values; for numbers (a
    regression), `edges` are the bounds of the histogram of predicted values that the server keeps."""

    name: str
    kind: Literal["probabilities", "values"]
    classes: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()


@dataclass(frozen=True)
class ServedModel:
    """A model ready to serve: its identity, runtime, input schema, output and drift baseline."""

    directory: Path
    name: str
    version: str
    flavor: str
    runtime: Literal["onnx", "pyfunc"]
    artifact: str
    sha256: str
    source: str
    source_sha256: str
    inputs: InputSchema
    output: OutputSpec
    baseline: Baseline | None = None
    onnx: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    # When the model was trained (MLmodel's utc_time_created), ISO 8601 UTC: a stale-model alert reads it.
    trained_at: str | None = None

    @property
    def artifact_path(self) -> Path:
        return self.directory / self.artifact

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "runtime": self.runtime,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "inputs": self.inputs.to_dict(),
            "output": {
                "name": self.output.name,
                "kind": self.output.kind,
                "classes": list(self.output.classes),
                "edges": list(self.output.edges),
            },
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "onnx": self.onnx,
            "parity": self.parity,
            "trained_at": self.trained_at,
        }

    def write(self) -> None:
        write_atomic(self.directory / MANIFEST, json.dumps(self.to_dict(), indent=2) + "\n")


def is_packaged(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def load(directory: Path, verify: bool = True) -> ServedModel:
    """The packaged model in `directory`; with `verify`, its artifact must hash to the recorded sha256."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{directory} is not a packaged model: {MANIFEST} is missing (run `mlci package`)") from None
    except (OSError, ValueError) as error:
        raise ModelError(f"{path} is unreadable: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path} is not a format {FORMAT} manifest; package the model again with this mlci")
    try:
        output = data["output"]
        model = ServedModel(
            directory=directory,
            name=str(data["name"]),
            version=str(data["version"]),
            flavor=str(data["flavor"]),
            runtime=data["runtime"],
            artifact=str(data["artifact"]),
            sha256=str(data["sha256"]),
            source=str(data["source"]),
            source_sha256=str(data["source_sha256"]),
            inputs=InputSchema.from_dict(data["inputs"]),
            output=OutputSpec(
                str(output["name"]),
                output["kind"],
                tuple(str(c) for c in output["classes"]),
                tuple(float(e) for e in output.get("edges") or ()),
            ),
            baseline=Baseline.from_dict(data["baseline"]) if data.get("baseline") else None,
            onnx=dict(data.get("onnx") or {}),
            parity=dict(data.get("parity") or {}),
            trained_at=data.get("trained_at"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path} is malformed: {error!r}") from None
    if model.runtime not in ("onnx", "pyfunc"):
        raise ModelError(f"{path}: runtime {model.runtime!r} is not one of onnx, pyfunc")
    if not model.artifact_path.exists():
        raise ModelError(f"{path} names the artifact {model.artifact!r}, which is missing")
    if verify:
        actual = artifact_sha256(model.artifact_path)
        if actual != model.sha256:
            raise ModelError(
                f"{model.artifact_path} hashes to sha256 {actual}, but {MANIFEST} records {model.sha256}: "
                "the artifact changed after packaging"
            )
    return model
