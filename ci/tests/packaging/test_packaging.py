"""Packaging: ONNX export with a parity check, the pyfunc fallback, registry URIs and tamper detection."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mlci.errors import ModelError
from mlci.model import manifest
from mlci.package import package
from mlci.packaging.parity import check_parity, compare
from models import breast_cancer_frame, save_sklearn_forest


def quiet(_: str) -> None:
    pass


def test_a_forest_exports_to_onnx_with_its_schema_classes_and_baseline(forest_package, forest_dir):
    served = forest_package
    assert served.runtime == "onnx" and served.flavor == "sklearn"
    assert (served.name, served.version) == ("tumor-classifier", "7")
    assert served.sha256 == manifest.artifact_sha256(served.directory / "model.onnx")
    assert served.source_sha256 == manifest.artifact_sha256(forest_dir)
    assert served.output.kind == "probabilities" and served.output.classes == ("malignant", "benign")
    assert served.inputs.names == list(breast_cancer_frame().columns)
    assert served.baseline is not None and len(served.baseline.features) == 30
    assert served.parity["rows"] > 200 and served.parity["max_diff"] <= 1e-5


def test_the_packaged_artifact_predicts_what_the_mlflow_model_predicts(forest_package, forest_dir):
    result = check_parity(forest_package.directory, forest_dir, breast_cancer_frame(), tolerance=1e-5)
    assert result.passed and result.rows == 569
    assert result.max_diff < 1e-5


def test_parity_fails_when_outputs_differ_beyond_the_tolerance():
    reference = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert compare(reference + 1e-7, reference, 1e-5).passed
    drifted = reference.copy()
    drifted[1, 0] += 0.01
    result = compare(drifted, reference, 1e-5)
    assert not result.passed and "at row 1" in result.reason
    assert not compare(reference[:, :1], reference, 1e-5).passed


def test_the_pyfunc_runtime_packages_the_mlflow_model_itself(forest_dir, tmp_path):
    served = package(str(forest_dir), tmp_path / "pyfunc", runtime="pyfunc", log=quiet)
    assert served.runtime == "pyfunc" and (served.directory / "model" / "MLmodel").is_file()
    assert served.sha256 == served.source_sha256  # the served artifact is the trained one, byte for byte
    result = check_parity(served.directory, forest_dir, breast_cancer_frame().head(50), tolerance=0.0)
    assert result.passed


def test_the_package_is_readable_by_any_user_even_from_a_private_source(forest_dir, tmp_path):
    """An image copies the package as root and serves it as another user: nothing in it may be private."""
    private = tmp_path / "private"
    shutil.copytree(forest_dir, private)
    for path in [private, *private.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    served = package(str(private), tmp_path / "pyfunc", runtime="pyfunc", log=quiet)
    for path in [served.directory, *served.directory.rglob("*")]:
        assert path.stat().st_mode & 0o005 == (0o005 if path.is_dir() else 0o004), path


def test_a_predict_model_serves_labels(tmp_path):
    model = save_sklearn_forest(tmp_path / "labels", trees=5, predict_fn="predict")
    served = package(str(model), tmp_path / "package", log=quiet)
    assert served.runtime == "onnx" and served.onnx["output"] == "label"
    assert served.output.kind == "values"
    assert check_parity(served.directory, model, breast_cancer_frame(), tolerance=0.0).passed


def test_a_changed_artifact_is_refused_at_load(forest_package, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(forest_package.directory, copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="the artifact changed after packaging"):
        manifest.load(copy)


def test_a_malformed_manifest_is_refused_naming_the_file(forest_package, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(forest_package.directory, copy)
    data = json.loads((copy / "serving.json").read_text())
    del data["inputs"]
    (copy / "serving.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"serving.json is malformed: KeyError\('inputs'\)"):
        manifest.load(copy)


def test_bad_model_arguments_are_refused_and_leave_the_output_alone(tmp_path, forest_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("untouched")
    with pytest.raises(ModelError, match="no such directory"):
        package(str(tmp_path / "missing"), out, log=quiet)
    with pytest.raises(ModelError, match="has no MLmodel file"):
        package(str(tmp_path), out, log=quiet)
    unsigned = tmp_path / "unsigned"
    shutil.copytree(forest_dir, unsigned)
    text = (unsigned / "MLmodel").read_text()
    (unsigned / "MLmodel").write_text(text.replace("signature:", "old_signature:"))
    with pytest.raises(ModelError, match="has no signature"):
        package(str(unsigned), out, log=quiet)
    with pytest.raises(ModelError, match="cannot serve with onnx"):
        package(str(forest_dir), out, runtime="onnx", tolerance=-1.0, log=quiet)
    assert [p.name for p in out.iterdir()] == ["keep"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_registry_uris_resolve_aliases_and_versions(tmp_path, monkeypatch, forest_dir):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.create_registered_model("tumor-classifier")
    versions = []
    for _ in range(2):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(forest_dir), artifact_path="model")
        source = f"runs:/{run.info.run_id}/model"
        versions.append(client.create_model_version("tumor-classifier", source, run_id=run.info.run_id).version)
    client.set_registered_model_alias("tumor-classifier", "champion", versions[0])
    served = package("models:/tumor-classifier@champion", tmp_path / "by-alias", log=quiet)
    assert (served.name, served.version, served.runtime) == ("tumor-classifier", str(versions[0]), "onnx")
    assert served.source == "models:/tumor-classifier@champion"
    assert package("models:/tumor-classifier/latest", tmp_path / "latest", log=quiet).version == str(versions[1])
    with pytest.raises(ModelError, match="models:/tumor-classifier@nobody"):
        package("models:/tumor-classifier@nobody", tmp_path / "missing", log=quiet)


def test_a_model_saved_without_an_input_example_or_baseline_is_checked_on_rows_from_its_signature(tmp_path):
    """What `mlflow models serve` serves, mlci serves too: the parity sample comes from the signature's types."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from skops.io import dumps, get_untrusted_types

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(features, labels)
    mlflow.sklearn.save_model(
        forest,
        str(tmp_path / "model"),
        signature=infer_signature(features, forest.predict_proba(features.head(5))),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=get_untrusted_types(data=dumps(forest)),
    )
    said: list[str] = []
    served = package(str(tmp_path / "model"), tmp_path / "serving", log=said.append)
    assert served.runtime == "onnx" and served.parity["rows"] > 100 and served.parity["max_diff"] <= 1e-5
    assert any("signature's types alone" in line for line in said), said
