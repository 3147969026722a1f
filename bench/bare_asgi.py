"""The limit of a Python model server, for bench/serve_limit.py: a bare ASGI app on uvicorn (httptools, uvloop)
that reads an /invocations dataframe_split body or a v2 infer body with orjson, scores the matrix with
onnxruntime and answers with orjson. No validation, no metrics, no drift: what is left is the transport.

Run: python bench/bare_asgi.py MODEL.onnx INPUT_NAME OUTPUT_NAME DTYPE PORT
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn

MODEL, INPUT, OUTPUT, DTYPE, PORT = sys.argv[1], sys.argv[2], sys.argv[3], np.dtype(sys.argv[4]), int(sys.argv[5])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
HEADERS = [(b"content-type", b"application/json")]


async def app(scope, receive, send):  # noqa: ANN001, ANN201 (ASGI's own signature)
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # readiness
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    document = orjson.loads(body) if body else {}
    if "dataframe_split" in document:
        rows = document["dataframe_split"]["data"]
    else:  # v2: one tensor 'input' of shape [rows, columns]
        tensor = document.get("inputs", [{}])[0]
        rows = np.asarray(tensor.get("data", []), dtype=DTYPE).reshape(tensor.get("shape", [0, 0]))
    matrix = np.asarray(rows, dtype=DTYPE)
    answer = session.run([OUTPUT], {INPUT: matrix})[0]
    payload = orjson.dumps({"predictions": answer}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=PORT, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )
