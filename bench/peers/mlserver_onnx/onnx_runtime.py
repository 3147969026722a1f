"""An MLServer runtime for an ONNX file, for bench/serve_peers.py: one onnxruntime session (one intra-op and one
inter-op thread) scores the first input tensor of a v2 request and answers with one output tensor.

model-settings.json names the file (`parameters.uri`) and, in `parameters.extra`, the model's input and output
names and the dtype its input takes.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self._input, self._output, self._dtype = extra["input"], extra["output"], np.dtype(extra["dtype"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = await get_model_uri(self.settings)
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        matrix = NumpyCodec.decode_input(payload.inputs[0]).astype(self._dtype, copy=False)
        scores = self._session.run([self._output], {self._input: matrix})[0]
        return InferenceResponse(
            model_name=self.name, id=payload.id, outputs=[NumpyCodec.encode_output(self._output, scores)]
        )
