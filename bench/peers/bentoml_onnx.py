"""A BentoML service on an ONNX file, for bench/serve_peers.py: `predict` takes `rows` (a JSON matrix, read into a
numpy array by BentoML) and answers the model's output for them, scored by one onnxruntime session (one intra-op and
one inter-op thread) on the event loop. One worker, access log off.

The file, its input and output names and the dtype its input takes come from the environment: PEER_ONNX_PATH,
PEER_ONNX_INPUT, PEER_ONNX_OUTPUT, PEER_ONNX_DTYPE.
Run: bentoml serve bentoml_onnx:OnnxForest --host 127.0.0.1 --port PORT (from this folder)
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
import onnxruntime as ort


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class OnnxForest:
    def __init__(self) -> None:
        self.input_name, self.output_name = os.environ["PEER_ONNX_INPUT"], os.environ["PEER_ONNX_OUTPUT"]
        self.dtype = np.dtype(os.environ["PEER_ONNX_DTYPE"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.environ["PEER_ONNX_PATH"], options, providers=["CPUExecutionProvider"])

    @bentoml.api
    async def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: rows.astype(self.dtype, copy=False)})[0]
