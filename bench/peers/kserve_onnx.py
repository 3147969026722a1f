"""A KServe model server on an ONNX file, for bench/serve_peers.py: a `kserve.Model` whose onnxruntime session (one
intra-op and one inter-op thread) scores a v1 request's `instances` (rows) or a v2 request's first input tensor.

Run: python kserve_onnx.py --model_name NAME --model_path MODEL.onnx --input_name X --output_name Y --dtype D
     --http_port PORT [kserve.ModelServer's own options: --workers, --enable_grpc, ...]
"""

from __future__ import annotations

import argparse
import logging

import kserve
import numpy as np
import onnxruntime as ort
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_path", required=True)
parser.add_argument("--input_name", required=True)
parser.add_argument("--output_name", required=True)
parser.add_argument("--dtype", required=True)


class OnnxModel(kserve.Model):
    def __init__(self, name: str, path: str, input_name: str, output_name: str, dtype: str) -> None:
        super().__init__(name)
        self.path, self.input_name, self.output_name, self.dtype = path, input_name, output_name, np.dtype(dtype)
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: matrix.astype(self.dtype, copy=False)})[0]

    async def predict(self, payload, headers=None, response_headers=None):  # noqa: ANN001, ANN201 (KServe's)
        if isinstance(payload, InferRequest):  # v2
            scores = self.score(payload.inputs[0].as_numpy())
            output = InferOutput(self.output_name, list(scores.shape), "FP32", scores)
            return InferResponse(payload.id or "", self.name, [output])
        return {"predictions": self.score(np.asarray(payload["instances"])).tolist()}  # v1


if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.model_name, args.model_path, args.input_name, args.output_name, args.dtype)
    server = kserve.ModelServer()  # reads --http_port, --workers, --enable_grpc, ... from the command line
    for per_request in ("uvicorn.access", "kserve.trace"):  # a line per request each; after the server set logging up
        logging.getLogger(per_request).setLevel(logging.WARNING)
    server.start([model])
