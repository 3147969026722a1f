"""Packaging: an MLflow model exported for serving (ONNX per framework, else the pyfunc), with its parity check."""
