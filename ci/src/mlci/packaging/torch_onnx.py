"""ONNX export of a PyTorch model logged by MLflow in the 'pt2' format (a torch.export program).

The program is loaded with `torch.export.load`, so no class of the project is needed. A program
exported from a one-row example has its batch fixed at 1; it is re-traced with a dynamic batch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..serving.dataplane import Batch

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def pt2_path(directory: Path) -> Path:
    import yaml

    flavor = (yaml.safe_load((directory / "MLmodel").read_text()).get("flavors") or {}).get("pytorch") or {}
    path = directory / str(flavor.get("model_data", "data")) / "model.pt2"
    if not path.is_file():
        raise ModelError(f"{path} is missing: only models logged with serialization_format='pt2' export to ONNX")
    return path


def export_pytorch(directory: Path, sample: Batch, out: Path) -> dict[str, str]:
    """Write `out` (one ONNX file, dynamic batch); the names and dtype that the runtime feeds it."""
    import torch

    program: Any = torch.export.load(str(pt2_path(directory)))
    signature = program.graph_signature
    if len(signature.user_inputs) != 1 or len(signature.user_outputs) != 1:
        raise ModelError("the PyTorch program takes or returns several tensors; mlci exports one in, one out")
    placeholder = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == signature.user_inputs[0])
    value = placeholder.meta["val"]
    if not isinstance(value.shape[0], torch.SymInt):
        example = torch.zeros((2, *[int(d) for d in value.shape[1:]]), dtype=value.dtype)
        program = torch.export.export(
            program.module(check_guards=False), (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
        )
    with contextlib.ExitStack() as stack:
        # The exporter reports its progress on stdout and warns about optional packages: keep it quiet.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        onnx_logger = logging.getLogger("torch.onnx")
        stack.callback(onnx_logger.setLevel, onnx_logger.level)
        onnx_logger.setLevel(logging.ERROR)
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        torch.onnx.export(
            program,
            (),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: "batch"},),
            external_data=False,
            verbose=False,
            optimize=True,
        )
    dtype = str(value.dtype).removeprefix("torch.")
    return {"input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": dtype}
