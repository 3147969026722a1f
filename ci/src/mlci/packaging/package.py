"""`mlci package`: turn an MLflow model into a served artifact, exported to ONNX when the flavour allows.

The export is accepted only if the ONNX model predicts what the MLflow pyfunc predicts on a sample
(the model's input example plus rows drawn across every baseline bin); otherwise the model is
served through its pyfunc, or with `runtime="onnx"` packaging fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from ..errors import ModelError
from ..model import manifest
from ..model.baseline import MISSING_TEXT, Baseline
from ..model.manifest import OutputSpec, ServedModel, artifact_sha256
from ..model.schema import INTEGER_TYPES, InputSchema, from_signature
from ..serving.dataplane import Batch
from ..serving.runtime import OnnxRuntime, model_input
from .parity import ParityResult, compare

DEFAULT_TOLERANCE = 1e-5
RUNTIMES = ("auto", "onnx", "pyfunc")
SAMPLE_ROWS = 256


@dataclass(frozen=True)
class ResolvedModel:
    """A local MLflow model directory and where it came from."""

    directory: Path
    source: str
    name: str | None = None
    version: str | None = None


def resolve(model: str, scratch: Path) -> ResolvedModel:
    """A local directory for `model`: a directory with an MLmodel file, or a `models:/` URI (downloaded)."""
    if model.startswith("models:/"):
        return _download(model, scratch)
    directory = Path(model)
    if not directory.is_dir():
        raise ModelError(f"{model}: no such directory (give an MLflow model directory or a models:/ URI)")
    if not (directory / "MLmodel").is_file():
        raise ModelError(f"{model} is not an MLflow model directory: it has no MLmodel file")
    return ResolvedModel(directory, str(directory))


def _download(uri: str, scratch: Path) -> ResolvedModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    reference = uri.removeprefix("models:/")
    name, _, selector = reference.partition("@") if "@" in reference else reference.partition("/")
    client = mlflow.MlflowClient()
    try:
        if "@" in reference:
            version = client.get_model_version_by_alias(name, selector).version
        elif selector in ("", "latest"):
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise ModelError(f"{uri}: the registry has no versions of {name!r}")
            version = max(versions, key=lambda v: int(v.version)).version
        else:
            version = client.get_model_version(name, selector).version
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(scratch))
    except MlflowException as error:
        raise ModelError(f"{uri}: {error.message}") from None
    return ResolvedModel(Path(local), uri, name, str(version))


def read_mlmodel(directory: Path) -> dict[str, Any]:
    path = directory / "MLmodel"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ModelError(f"{path} is unreadable: {error}") from None
    if not isinstance(document, dict) or "flavors" not in document:
        raise ModelError(f"{path} has no 'flavors'; it is not an MLflow model")
    return document


def input_schema(mlmodel: dict[str, Any], directory: Path) -> InputSchema:
    signature = mlmodel.get("signature") or {}
    if not signature.get("inputs"):
        raise ModelError(f"{directory / 'MLmodel'} has no signature; log the model with one (infer_signature)")
    baseline = (mlmodel.get("metadata") or {}).get("mlci", {}).get("baseline") or {}
    return from_signature(signature["inputs"], baseline.get("features"))


def flavor_of(mlmodel: dict[str, Any]) -> str:
    flavors = [name for name in mlmodel["flavors"] if name != "python_function"]
    return flavors[0] if flavors else "python_function"


def sample_inputs(schema: InputSchema, baseline: Baseline | None, example: Any, rows: int, seed: int = 0) -> Batch:
    """Rows to compare runtimes on, of every type the signature holds: the input example, then per feature values
    from every baseline bin (numbers inside and at the edges of each bin, integers whole; text: its categories, the
    missing one and one never seen), and nulls where the signature makes a feature optional."""
    import pandas as pd

    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    if example is not None:
        frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(np.asarray(example))
        if frame.shape[1] == len(schema.features):
            frame.columns = schema.names if list(frame.columns) != schema.names else frame.columns
            for name in schema.names:
                columns[name] += [None if _is_missing(v) else v for v in frame[name].tolist()]
    if baseline is not None:
        generator = np.random.default_rng(seed)
        for i, feature in enumerate(schema.features):
            drawn = _draw(feature, baseline, i, rows, generator)
            if not feature.required:  # one row in ten has no value
                drawn = [None if gap else v for v, gap in zip(drawn, generator.random(rows) < 0.1, strict=True)]
            columns[feature.name] += drawn
    count = len(columns[schema.names[0]]) if schema.names else 0
    if not count and schema.names:  # no example, no baseline: the signature's types alone, over many magnitudes
        generator = np.random.default_rng(seed)
        for feature in schema.features:
            drawn = _from_signature(feature, rows, generator)
            if not feature.required:
                drawn = [None if gap else v for v, gap in zip(drawn, generator.random(rows) < 0.1, strict=True)]
            columns[feature.name] = drawn
        count = rows
    if not count:
        raise ModelError("no sample to check the export on: the signature names no input column")
    if not schema.numeric:
        return Batch(None, columns, count)
    matrix = np.array([[np.nan if v is None else v for v in columns[n]] for n in schema.names], dtype=np.float64).T
    return Batch(matrix.astype(schema.dtype), None, count)


def _draw(feature: Any, baseline: Baseline, i: int, rows: int, generator: np.random.Generator) -> list[Any]:
    """`rows` values of one feature from its baseline bins, of the feature's type."""
    if feature.type == "string":
        seen = [c for c in baseline.categories[i] if c != MISSING_TEXT] if i < len(baseline.categories) else []
        choices = [*seen, MISSING_TEXT, "mlci: a category never seen"]
        return [str(v) for v in generator.choice(np.array(choices, dtype=object), size=rows)]
    if feature.type == "boolean":
        return [bool(v) for v in generator.random(rows) < 0.5]
    # Values drawn uniformly inside every bin (the outer ones a tenth wider than the inner span),
    # and the edges themselves, which are values of the training data.
    points = np.asarray(baseline.edges[i] if i < len(baseline.edges) else (), dtype=np.float64)
    spread = max(float(points[-1] - points[0]), 1.0) if points.size else 1.0
    bounds = np.concatenate(
        [
            [points[0] - spread / 10] if points.size else [-spread],
            points,
            [points[-1] + spread / 10] if points.size else [spread],
        ]
    )
    bins = generator.integers(0, bounds.size - 1, size=rows)
    inside = bounds[bins] + generator.random(rows) * (bounds[bins + 1] - bounds[bins])
    column = (
        np.where(generator.random(rows) < 0.2, generator.choice(points, size=rows), inside) if points.size else inside
    )
    if feature.type in INTEGER_TYPES:  # both runtimes must see the same whole numbers
        return [int(v) for v in np.round(column)]
    return [float(v) for v in column]


def _from_signature(feature: Any, rows: int, generator: np.random.Generator) -> list[Any]:
    """`rows` values of a feature's type when nothing tells its range: numbers of either sign from 0.001 to 10,000
    and zero, integers whole; text: the missing value, short words and one never seen; booleans both ways."""
    if feature.type == "string":
        words = np.array([MISSING_TEXT, "a", "b", "mlci: a category never seen"], dtype=object)
        return [str(v) for v in generator.choice(words, size=rows)]
    if feature.type == "boolean":
        return [bool(v) for v in generator.random(rows) < 0.5]
    magnitude = 10.0 ** generator.uniform(-3, 4, rows)
    values = np.where(generator.random(rows) < 0.1, 0.0, magnitude * generator.choice([-1.0, 1.0], size=rows))
    if feature.type in INTEGER_TYPES:
        return [int(v) for v in np.round(values)]
    return [float(v) for v in values]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _load_example(directory: Path) -> Any:
    from mlflow.models import Model

    try:
        return Model.load(str(directory)).load_input_example(str(directory))
    except Exception:  # an absent or unreadable example only means a smaller sample
        return None


def _classes(mlmodel: dict[str, Any], width: int) -> tuple[str, ...]:
    saved = (mlmodel.get("metadata") or {}).get("mlci", {}).get("classes")
    if isinstance(saved, list) and len(saved) == width:
        return tuple(str(c) for c in saved)
    return tuple(str(i) for i in range(width))


def _output_spec(reference: np.ndarray, mlmodel: dict[str, Any], name: str) -> OutputSpec:
    if (
        reference.ndim == 2
        and reference.shape[1] >= 2
        and reference.dtype.kind == "f"
        and np.all(reference >= 0)
        and np.allclose(reference.sum(axis=1), 1.0, atol=1e-4)
    ):
        return OutputSpec(name, "probabilities", _classes(mlmodel, reference.shape[1]))
    values = reference.reshape(-1) if reference.ndim == 1 or reference.shape[1:] == (1,) else None
    if values is not None and values.dtype.kind == "f" and np.isfinite(values).all() and values.size:
        # One number per row, a regression: the edges its training saved (deciles of its predictions on the
        # training set), else the deciles of what it predicts on the sample, bound its histogram.
        saved = (mlmodel.get("metadata") or {}).get("mlci", {}).get("prediction_edges")
        if isinstance(saved, list) and saved and all(isinstance(e, int | float) for e in saved):
            return OutputSpec(name, "values", (), tuple(sorted({float(e) for e in saved})))
        edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
        return OutputSpec(name, "values", (), tuple(float(e) for e in edges))
    return OutputSpec(name, "values")


EXPORTABLE = ("sklearn", "pytorch")


def _export(
    flavor: str, directory: Path, mlmodel: dict[str, Any], schema: InputSchema, sample: Batch, out: Path
) -> dict[str, str]:
    """Export to ONNX with the flavour's exporter (imported only when used: torch is heavy)."""
    if flavor == "sklearn":
        from .sklearn_onnx import export_sklearn

        return export_sklearn(directory, mlmodel, schema, sample, out)
    from .torch_onnx import export_pytorch

    return export_pytorch(directory, sample, out)


def package(
    model: str,
    out: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    runtime: str = "auto",
    tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] = print,
) -> ServedModel:
    """Package `model` (a directory or models:/ URI) into `out`, replacing it only once complete; `runtime` is
    one of RUNTIMES (auto: ONNX when the export predicts what the model predicts, else the pyfunc)."""
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    import mlflow.pyfunc

    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch_name:
        scratch = Path(scratch_name)
        resolved = resolve(model, scratch / "download")
        mlmodel = read_mlmodel(resolved.directory)
        schema = input_schema(mlmodel, resolved.directory)
        saved = (mlmodel.get("metadata") or {}).get("mlci", {})
        baseline = Baseline.from_dict(saved["baseline"]) if saved.get("baseline") else None
        if baseline is not None and len(baseline.features) != len(schema.features):
            raise ModelError(
                f"the drift baseline has {len(baseline.features)} features; the signature {len(schema.features)}"
            )
        if baseline is None:
            log("package: the model carries no drift baseline (metadata.mlci.baseline); drift gauges are off")
        flavor = flavor_of(mlmodel)
        example = _load_example(resolved.directory)
        if example is None and baseline is None:
            log("package: the model has no input example and no baseline: parity is checked on rows drawn from its "
                "signature's types alone, across many magnitudes")  # fmt: skip
        sample = sample_inputs(schema, baseline, example, SAMPLE_ROWS)
        try:
            pyfunc = mlflow.pyfunc.load_model(str(resolved.directory))
            reference = np.asarray(pyfunc.predict(model_input(schema, sample)))
        except Exception as error:
            raise ModelError(f"the MLflow model does not load or predict: {error}") from error
        staging = scratch / "package"
        staging.mkdir()
        chosen, onnx_info, parity = _choose_runtime(
            resolved.directory, mlmodel, schema, sample, reference, flavor, runtime, tolerance, staging, log
        )
        if chosen == "pyfunc":
            shutil.copytree(resolved.directory, staging / "model")
        artifact = "model.onnx" if chosen == "onnx" else "model"
        served = ServedModel(
            directory=staging,
            name=name or resolved.name or str(saved.get("name") or resolved.directory.resolve().name),
            version=version or resolved.version or "0",
            flavor=flavor,
            runtime=chosen,
            artifact=artifact,
            sha256=artifact_sha256(staging / artifact),
            source=resolved.source,
            source_sha256=artifact_sha256(resolved.directory),
            inputs=schema,
            output=_output_spec(reference, mlmodel, onnx_info.get("output", "predictions")),
            baseline=baseline,
            onnx=onnx_info,
            parity=parity.to_dict() if parity else {},
            trained_at=_trained_at(mlmodel),
        )
        served.write()
        _readable_by_all(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return manifest.load(out)


def _trained_at(mlmodel: dict[str, Any]) -> str | None:
    """MLmodel's utc_time_created ("2026-11-21 08:55:03.123456") as ISO 8601 UTC, if it has one."""
    from datetime import UTC, datetime

    created = mlmodel.get("utc_time_created")
    try:
        return datetime.fromisoformat(str(created)).replace(tzinfo=UTC).isoformat(timespec="seconds")
    except ValueError:
        return None


def _readable_by_all(tree: Path) -> None:
    """Folders 755 and files 644 (within the umask): a downloaded model arrives in private temporary folders,
    and the package must be readable by whoever serves it (an image's non-root user, say)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o755 if path.is_dir() else 0o644) & ~umask)


def _choose_runtime(
    directory: Path,
    mlmodel: dict[str, Any],
    schema: InputSchema,
    sample: Batch,
    reference: np.ndarray,
    flavor: str,
    runtime: str,
    tolerance: float,
    staging: Path,
    log: Callable[[str], None],
) -> tuple[Literal["onnx", "pyfunc"], dict[str, str], ParityResult | None]:
    if runtime == "pyfunc":
        return "pyfunc", {}, None
    reason = None
    if flavor not in EXPORTABLE:
        reason = f"the {flavor} flavour has no ONNX export in mlci"
    elif flavor == "pytorch" and not schema.numeric:
        reason = "the signature has text columns, which the PyTorch export does not take"
    if reason is None:
        target = staging / "model.onnx"
        try:
            info = _export(flavor, directory, mlmodel, schema, sample, target)
            served = _onnx_predict(target, info, schema, sample)
        except ModelError:
            raise
        except Exception as error:  # converters and onnxruntime raise many types for what they do not support
            reason = f"the ONNX export failed: {type(error).__name__}: {str(error).strip()[:300]}"
            target.unlink(missing_ok=True)
        else:
            parity = compare(served, reference, tolerance)
            if parity.passed:
                log(f"package: exported to ONNX; parity on {parity.rows} rows: max |diff| {parity.max_diff:.2e}")
                return "onnx", info, parity
            target.unlink()
            reason = f"the ONNX export differs from the model: {parity.reason}"
    if runtime == "onnx":
        raise ModelError(f"cannot serve with onnx: {reason}")
    log(f"package: serving the MLflow pyfunc, because {reason}")
    return "pyfunc", {}, None


def _onnx_predict(path: Path, info: dict[str, str], schema: InputSchema, sample: Batch) -> np.ndarray:
    probe = ServedModel(
        directory=path.parent,
        name="",
        version="",
        flavor="",
        runtime="onnx",
        artifact=path.name,
        sha256="",
        source="",
        source_sha256="",
        inputs=schema,
        output=OutputSpec("", "values"),
        onnx=info,
    )
    return OnnxRuntime(probe, threads=1).predict(sample)
