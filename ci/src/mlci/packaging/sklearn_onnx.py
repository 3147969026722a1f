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


def export_sklearn(directory: Path, mlmodel: dict[str, Any], sample: Batch, out: Path) -> dict[str, str]:
    """Export a scikit-learn model with skl2onnx, trees deciding as scikit-learn's; how to serve it."""
    import mlflow.sklearn
    from skl2onnx import to_onnx

    model = mlflow.sklearn.load_model(str(directory))
    assert sample.matrix is not None
    method = (mlmodel["flavors"].get("python_function") or {}).get("predict_fn", "predict")
    if method not in ("predict", "predict_proba"):
        raise ModelError(f"pyfunc_predict_fn {method!r} has no ONNX export; mlci exports predict and predict_proba")
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onnx_model = to_onnx(model, sample.matrix[:1], options=options)
    match_sklearn_trees(onnx_model, model)
    write_atomic(out, onnx_model.SerializeToString())
    output = "probabilities" if method == "predict_proba" else onnx_model.graph.output[0].name
    return {"input": onnx_model.graph.input[0].name, "output": output, "dtype": sample.matrix.dtype.name}
