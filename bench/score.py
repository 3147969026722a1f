"""Bench: `mlci score` against `mlflow models predict`, the same forest and the same 1,000,000 rows, one run.

Trains the template's forest (100 trees of depth 8 on breast cancer, scaled; n_jobs -1, so scikit-learn predicts on
every core), packages it, and makes 1,000,000 rows (the training rows resampled with noise) as Parquet for `mlci
score` (with an id column it keeps) and as CSV, the input format of `mlflow models predict --env-manager local`
(the pyfunc). Both are timed whole command to whole command, `mlci score` with one model thread and with every
core (its default, as scikit-learn predicts here), and on the CSV too. Beside them: onnxruntime alone on the same record
batches of the Parquet file, read into memory first (predict only, no I/O, the same session settings and
threads), and scikit-learn's predict_proba in process. Targets, at each thread setting: `mlci score` at least 4x
the rows/s of `mlflow models predict`, and at least half of onnxruntime's own rate.

Then memory: the bench caps `mlci score`'s data segment (RLIMIT_DATA: every private writable mapping, heap,
mmap and thread stacks) at 768 MiB and scores a Parquet file more than four times that size; it prints the
peak resident set beside the file's size. Target: the run completes under the cap.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "tests"))

from mlci.package import package  # noqa: E402
from models import save_sklearn_forest  # noqa: E402

ROWS = 1_000_000
BATCH_ROWS = 65_536
MLFLOW_TARGET = 4.0
ONNX_TARGET = 0.5
CAP_MIB = 768
BIN = Path(sys.executable).parent
THREADS = len(os.sched_getaffinity(0))


def rows(count: int, seed: int = 0):
    """`count` rows like the training data: its rows resampled, each value scaled by 1 +- 5% noise."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data
    generator = np.random.default_rng(seed)
    picked = features.to_numpy()[generator.integers(0, len(features), count)]
    return list(features.columns), picked * generator.normal(1.0, 0.05, picked.shape)


def timed(command: list[str], limit_bytes: int | None = None) -> tuple[float, int, str]:
    """Seconds a command takes, whole, its own peak resident set in bytes, and what it printed."""

    def cap() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, preexec_fn=cap)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the maximum over every child
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"bench: {command[0]} failed ({child.returncode}): {err.read()[-2000:]}")
        return seconds, usage.ru_maxrss * 1024, out.read()


def onnx_alone(model_path: Path, parquet: Path, columns: list[str], threads: int) -> float:
    """Rows/s of onnxruntime's own predict over the Parquet file's record batches, already in memory."""
    import numpy as np
    import onnxruntime as ort
    import pyarrow.parquet as pq

    batches = [
        np.column_stack([batch.column(name).to_numpy() for name in columns])
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    ]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # as `mlci score --threads`
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: batches[0][:8]})
    started = time.perf_counter()
    for matrix in batches:
        session.run(None, {name: matrix})
    return sum(len(m) for m in batches) / (time.perf_counter() - started)


def sklearn_alone(model_dir: Path, frame) -> float:
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(model_dir))
    started = time.perf_counter()
    model.predict_proba(frame)
    return len(frame) / (time.perf_counter() - started)


def main() -> int:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = sorted({1, THREADS})  # onnxruntime's threads: one, and every core (mlci's default)
    ours: dict[int, float] = {}
    onnx_rate: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model = save_sklearn_forest(scratch / "model", trees=100, max_depth=8, n_jobs=-1)
        served = package(str(model), scratch / "serving", log=lambda _: None)
        columns, values = rows(ROWS)
        frame = pd.DataFrame(values, columns=columns)
        table = pa.table({"id": np.arange(ROWS), **{c: values[:, i] for i, c in enumerate(columns)}})
        pq.write_table(table, scratch / "rows.parquet", row_group_size=BATCH_ROWS)
        frame.to_csv(scratch / "rows.csv", index=False)
        os.sync()  # no write-back of these files while the commands run
        mlci = [str(BIN / "mlci"), "score", str(served.directory), "--input"]
        parquet = [str(scratch / "rows.parquet"), "--key", "id"]  # the CSV, mlflow's input, has no id column
        for threads in settings:
            out = str(scratch / f"mlci-{threads}.parquet")
            ours[threads], _, said = timed([*mlci, *parquet, "--output", out, "--threads", str(threads)])
        ours_csv, _, _ = timed(
            [*mlci, str(scratch / "rows.csv"), "--output", str(scratch / "mlci-csv.parquet"), "--threads", "1"]
        )
        peer, _, _ = timed([str(BIN / "mlflow"), "models", "predict", "-m", str(model), "-i", str(scratch / "rows.csv"),
                            "-t", "csv", "-o", str(scratch / "mlflow.json"), "--env-manager", "local"])  # fmt: skip
        # Both predicted the same: mlci's probabilities are mlflow's (the export's parity, within 1e-5).
        theirs = np.asarray(json.loads((scratch / "mlflow.json").read_text())["predictions"])
        scored = pq.read_table(scratch / "mlci-1.parquet")
        agree = float(np.abs(scored["probability_benign"].to_numpy() - theirs[:, 1]).max())
        for threads in settings:
            onnx_rate[threads] = onnx_alone(served.artifact_path, scratch / "rows.parquet", columns, threads)
        sklearn_rate = sklearn_alone(model, frame)
        copies = 1 + (4 * CAP_MIB << 20) // (scratch / "rows.parquet").stat().st_size
        big = scratch / "big.parquet"
        with pq.ParquetWriter(big, table.schema) as writer:
            for _ in range(copies):
                writer.write_table(table, row_group_size=BATCH_ROWS)
        os.sync()
        del table, frame, values, theirs, scored
        command = [*mlci, str(big), "--key", "id", "--output", str(scratch / "big.out.parquet")]
        capped, peak, capped_said = timed(command, limit_bytes=CAP_MIB << 20)
        big_size = big.stat().st_size
        os.unlink(big)
    print(f"{THREADS} cores; {said.strip()}")
    print(f"{'command':<50}{'seconds':>10}{'rows/s':>12}")
    lines = [(f"mlci score --threads {n} (Parquet in)", ours[n]) for n in settings]
    lines += [("mlci score --threads 1 (CSV in)", ours_csv), ("mlflow models predict --env-manager local (CSV)", peer)]
    lines += [(f"onnxruntime alone, {n} thread(s), same batches, no I/O", ROWS / onnx_rate[n]) for n in settings]
    lines += [("sklearn predict_proba in process (n_jobs -1)", ROWS / sklearn_rate)]
    for name, seconds in lines:
        print(f"{name:<50}{seconds:>10.2f}{ROWS / seconds:>12,.0f}")
    print(f"mlci and mlflow agree within {agree:.1e} on P(benign)")
    met = agree <= 1e-5
    for n in settings:
        vs_mlflow, vs_onnx = peer / ours[n], (ROWS / ours[n]) / onnx_rate[n]
        print(
            f"--threads {n}: mlci score / mlflow models predict {vs_mlflow:.1f}x (target >= {MLFLOW_TARGET:.0f}x), "
            f"/ onnxruntime alone on {n} thread(s) {vs_onnx:.2f}x (target >= {ONNX_TARGET})"
        )
        met = met and vs_mlflow >= MLFLOW_TARGET and vs_onnx >= ONNX_TARGET
    print(
        f"memory: {big_size / 2**30:.2f} GiB Parquet ({copies * ROWS:,} rows) under a {CAP_MIB} MiB cap "
        f"({big_size / (CAP_MIB << 20):.1f}x the cap): peak RSS {peak / 2**20:.0f} MiB in {capped:.1f} s; "
        f"{capped_said.strip()}"
    )
    print(f"targets (every thread setting): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
