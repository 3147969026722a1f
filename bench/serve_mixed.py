"""Bench: `mlci serve` on a table with text columns against the same server on an all-numeric table, one run.

Two 100-tree forests on 2,000 rows of 10 features: one all numeric, one whose last 4 features are text categories
(one-hot inside the pipeline). Both are packaged (ONNX when parity holds) and served by `mlci serve` (one worker,
validation, metrics and drift on), then driven by wrk with single-row requests. Target: the mixed table's rate at
least 70% of the numeric one's. Needs wrk (Debian package `wrk`) on the PATH.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_vs_mlflow import drive  # noqa: E402

from mlci.certify.process import ServerProcess, free_port  # noqa: E402
from mlci.package import package  # noqa: E402

ROWS, NUMBERS, TEXT = 2_000, 6, 4
TARGET = 0.70


def table(text: bool) -> tuple[pd.DataFrame, np.ndarray]:
    generator = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": generator.normal(size=ROWS) for i in range(NUMBERS)})
    for i in range(TEXT):
        codes = generator.integers(0, 5, ROWS)
        frame[f"c{i}"] = np.array(["red", "green", "blue", "grey", "gold"])[codes] if text else codes.astype(float)
    signal = frame["x0"] + frame["x1"] * 0.5 + (frame["c0"] == ("red" if text else 0.0))
    return frame, (signal > signal.median()).astype(int).to_numpy()


def save(path: Path, text: bool) -> list[object]:
    """The model of one table, saved as a project saves it; one row of that table to send."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from skops.io import dumps, get_untrusted_types

    from mlci.drift import feature_baseline

    frame, labels = table(text)
    numbers, categories = [f"x{i}" for i in range(NUMBERS)], [f"c{i}" for i in range(TEXT)]
    encode = OneHotEncoder(handle_unknown="ignore") if text else StandardScaler()
    features = ColumnTransformer([("numbers", StandardScaler(), numbers), ("text", encode, categories)])
    model = Pipeline([("features", features), ("model", RandomForestClassifier(100, random_state=0))])
    model.fit(frame, labels)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(frame, model.predict_proba(frame.head(5))),
        input_example=frame.head(5),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
        metadata={"mlci": {"name": "bench", "baseline": feature_baseline(frame, list(frame.columns))}},
    )
    return frame.iloc[7].tolist()


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    rates: dict[str, float] = {}
    columns = [*(f"x{i}" for i in range(NUMBERS)), *(f"c{i}" for i in range(TEXT))]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for name, text in (("all numeric", False), ("4 text columns", True)):
            row = save(scratch / name / "model", text)
            served = package(str(scratch / name / "model"), scratch / name / "serving", log=lambda _: None)
            port = free_port()
            command = [str(Path(sys.executable).parent / "mlci"), "serve", str(served.directory), "--port", str(port)]
            body = json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})
            with ServerProcess(command + ["--log-level", "warning"], f"http://127.0.0.1:{port}/readyz",
                               scratch / f"{name}.log") as server:  # fmt: skip
                url = server.ready_url.rsplit("/", 1)[0] + "/invocations"
                drive(url, body, seconds=2)  # warm-up
                load = drive(url, body)
            rates[name] = load.requests_per_s
            print(f"{name:<16} runtime {served.runtime:<7} {load.requests_per_s:>8.0f} requests/s, "
                  f"p99 {load.p99_ms:.2f} ms, errors {load.errors}")  # fmt: skip
    ratio = rates["4 text columns"] / rates["all numeric"]
    print(f"ratio: the table with text columns serves {ratio:.2f}x the all-numeric rate "
          f"(target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'MISSED'})")  # fmt: skip
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
