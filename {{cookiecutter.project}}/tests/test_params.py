from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.params import ParamsError, load_params


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_params_are_valid(params):
    assert params.featurize.test_size < 1
    assert params.validate_.columns


def test_an_unknown_key_names_the_file_and_the_key(workdir, params):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["featurize"]["test_szie"] = 0.3
    with pytest.raises(ParamsError, match=r"params.yaml: featurize.test_szie: Extra inputs"):
        load_params(write(workdir / "params.yaml", raw))


def test_an_out_of_range_value_is_refused(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["featurize"]["test_size"] = 1.5
    with pytest.raises(ParamsError, match=r"featurize.test_size: Input should be less than 1"):
        load_params(write(workdir / "params.yaml", raw))


def test_an_unknown_builtin_data_set_lists_the_allowed_ones(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["ingest"]["source"] = "sklearn:iris"
    with pytest.raises(ParamsError, match=r"sklearn:breast_cancer, sklearn:digits, sklearn:diabetes"):
        load_params(write(workdir / "params.yaml", raw))


def test_malformed_yaml_is_reported(workdir):
    (workdir / "params.yaml").write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(workdir / "params.yaml")


def test_an_unknown_serving_runtime_is_refused_naming_the_choices(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["package"]["runtime"] = "tensorrt"
    with pytest.raises(ParamsError, match=r"package.runtime: Input should be 'auto', 'onnx' or 'pyfunc'"):
        load_params(write(workdir / "params.yaml", raw))


def test_a_target_that_does_not_fit_the_task_is_refused(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["task"] = "regression" if raw["task"] == "classification" else "classification"
    with pytest.raises(ParamsError, match=rf"task '{raw['task']}' needs validate.target as"):
        load_params(write(workdir / "params.yaml", raw))


def test_an_unknown_task_names_the_choices(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["task"] = "ranking"
    with pytest.raises(ParamsError, match=r"task: Input should be 'classification' or 'regression'"):
        load_params(write(workdir / "params.yaml", raw))


def test_a_bad_model_parameter_is_refused_naming_the_key_when_the_train_section_is_read(workdir):
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["train"]["epochs" if "epochs" in raw["train"] else "n_estimators"] = 0
    params = load_params(write(workdir / "params.yaml", raw))  # the stages before training never read it
    with pytest.raises(ParamsError, match=r"params.yaml: train.(epochs|n_estimators): Input should be greater than"):
        _ = params.train
