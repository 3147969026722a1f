"""ONNX export of a scikit-learn model (skl2onnx), with its tree ensembles deciding exactly as scikit-learn does.

scikit-learn casts a tree's input to float32 and compares it with float64 thresholds; skl2onnx stores
the thresholds rounded to the nearest float32 and compares whatever precision arrives. A value that
lands on a threshold rounded up then goes the other way. For a float32 x and a float64 t,
`x <= t` holds exactly when `x <= t rounded down to float32`, so: cast the input to float32 and
store every threshold rounded down. The ensemble then follows the same branch for every input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..files import write_atomic
from ..model.schema import InputSchema
from ..serving.dataplane import Batch

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def _trees(model: Any) -> list[Any] | None:
    """The fitted decision trees of a forest, a single tree, or the last step of a pipeline."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(final, "tree_"):
        return [final]
    estimators = getattr(final, "estimators_", None)
    if isinstance(estimators, list) and estimators and all(hasattr(e, "tree_") for e in estimators):
        return estimators
    return None


def _round_down(threshold: float) -> float:
    value = np.float32(threshold)
    if float(value) > threshold:
        value = np.nextafter(value, np.float32(-np.inf))
    return float(value)


def match_sklearn_trees(onnx_model: Any, model: Any) -> bool:
    """Rewrite the tree ensembles of `onnx_model` in place; False when the model is not a forest or tree."""
    from onnx import TensorProto, helper

    trees = _trees(model)
    nodes = [n for n in onnx_model.graph.node if n.op_type in TREE_OPS]
    if trees is None or len(nodes) != 1:
        return False
    (node,) = nodes
    attributes = {a.name: a for a in node.attribute}
    if not {"nodes_treeids", "nodes_nodeids", "nodes_modes", "nodes_values"} <= attributes.keys():
        return False
    tree_ids = list(attributes["nodes_treeids"].ints)
    node_ids = list(attributes["nodes_nodeids"].ints)
    modes = list(attributes["nodes_modes"].strings)
    values = list(attributes["nodes_values"].floats)
    for i, mode in enumerate(modes):
        if mode == b"BRANCH_LEQ":
            values[i] = _round_down(float(trees[tree_ids[i]].tree_.threshold[node_ids[i]]))
    del attributes["nodes_values"].floats[:]
    attributes["nodes_values"].floats.extend(values)
    cast_output = f"{node.input[0]}_as_float32"
    cast = helper.make_node("Cast", [node.input[0]], [cast_output], to=TensorProto.FLOAT, name="mlci_tree_input")
    node.input[0] = cast_output
    position = list(onnx_model.graph.node).index(node)
    onnx_model.graph.node.insert(position, cast)
    return True


def export_sklearn(
    directory: Path, mlmodel: dict[str, Any], schema: InputSchema, sample: Batch, out: Path
) -> dict[str, str]:
    """Export a scikit-learn model with skl2onnx, trees deciding as scikit-learn's; how to serve it. A signature of
    numbers only is fed as one matrix; one with text columns as one input per column (numbers as float64)."""
    import mlflow.sklearn
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    model = mlflow.sklearn.load_model(str(directory))
    method = (mlmodel["flavors"].get("python_function") or {}).get("predict_fn", "predict")
    if method not in ("predict", "predict_proba"):
        raise ModelError(f"pyfunc_predict_fn {method!r} has no ONNX export; mlci exports predict and predict_proba")
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    by_name = _selects_columns_by_name(model)
    if sample.matrix is not None and not by_name:
        onnx_model = to_onnx(model, sample.matrix[:1], options=options)
        info = {"input": onnx_model.graph.input[0].name, "dtype": sample.matrix.dtype.name}
    else:  # text columns, or a ColumnTransformer that picks columns by name: one input per column
        inputs = [
            (f.name, StringTensorType([None, 1]) if f.type == "string" else DoubleTensorType([None, 1]))
            for f in schema.features
        ]
        onnx_model = to_onnx(model, initial_types=inputs, options=options)
        info = {"feed": "columns", "dtype": "float64"}
    match_sklearn_trees(onnx_model, model)
    impute_in_double(onnx_model)
    trees_answer_in_double(onnx_model)
    write_atomic(out, onnx_model.SerializeToString())
    info["output"] = "probabilities" if method == "predict_proba" else onnx_model.graph.output[0].name
    return info


def _selects_columns_by_name(model: Any) -> bool:
    """Whether a ColumnTransformer anywhere in the model picks its columns by name."""
    from sklearn.compose import ColumnTransformer

    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    return any(
        isinstance(step, ColumnTransformer)
        and any(isinstance(columns, str) or (isinstance(columns, list) and columns and isinstance(columns[0], str))
                for _, _, columns in step.transformers)
        for step in steps
    )  # fmt: skip


def impute_in_double(onnx_model: Any) -> int:
    """Replace every Imputer of float64 values by IsNaN and Where, which onnxruntime runs on float64 (its Imputer
    takes float32 only: NOT_IMPLEMENTED). scikit-learn imputes in float64, so parity needs float64 here.
    The number of Imputers replaced."""
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    graph = onnx_model.graph
    typed = shape_inference.infer_shapes(onnx_model).graph
    kinds = {v.name: v.type.tensor_type.elem_type for v in [*typed.input, *typed.value_info, *typed.output]}
    replaced = 0
    for node in list(graph.node):
        if node.op_type != "Imputer" or kinds.get(node.input[0]) != TensorProto.DOUBLE:
            continue
        attributes = {a.name: a for a in node.attribute}
        values = list(attributes["imputed_value_floats"].floats) if "imputed_value_floats" in attributes else []
        missing = attributes["replaced_value_float"].f if "replaced_value_float" in attributes else float("nan")
        if not values or not np.isnan(missing):
            continue  # an Imputer of a value other than NaN: left to onnxruntime
        x, y = node.input[0], node.output[0]
        fill = numpy_helper.from_array(np.asarray([values], dtype=np.float64), name=f"{y}_mlci_fill")
        graph.initializer.append(fill)
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("IsNaN", [x], [f"{y}_mlci_missing"], name=f"{y}_mlci_isnan"))
        graph.node.insert(
            position + 1, helper.make_node("Where", [f"{y}_mlci_missing", fill.name, x], [y], name=f"{y}_mlci_impute")
        )
        replaced += 1
    return replaced


def trees_answer_in_double(onnx_model: Any) -> int:
    """A tree regressor fed float64 is declared to answer float64, but onnxruntime's answers float32 (a graph it
    refuses to load): cast its answer. The number of casts added."""
    from onnx import TensorProto, helper

    graph = onnx_model.graph
    declared = {v.name: v.type.tensor_type.elem_type for v in [*graph.output, *graph.value_info]}
    added = 0
    for node in [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]:
        answer = node.output[0]
        if declared.get(answer) != TensorProto.DOUBLE:
            continue
        node.output[0] = f"{answer}_mlci_float32"
        cast = helper.make_node("Cast", [node.output[0]], [answer], to=TensorProto.DOUBLE, name=f"{answer}_mlci_cast")
        graph.node.insert(list(graph.node).index(node) + 1, cast)
        added += 1
    return added
