"""Make an ONNX tree ensemble decide exactly as scikit-learn does.

scikit-learn casts a tree's input to float32 and compares it with float64 thresholds; skl2onnx stores
the thresholds rounded to the nearest float32 and compares whatever precision arrives. A value that
lands on a threshold rounded up then goes the other way. For a float32 x and a float64 t,
`x <= t` holds exactly when `x <= t rounded down to float32`, so: cast the input to float32 and
store every threshold rounded down. The ensemble then follows the same branch for every input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
