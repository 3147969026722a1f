"""`mlci score`: batch predictions equal to serve's, rejects with serve's reasons, partitions as an Indexed Job's
pods take them, the attested artifact only, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from mlci.cli import app
from mlci.errors import MlciError
from mlci.model.manifest import ServedModel
from mlci.package import package
from mlci.serving.app import Limits, ServingApp
from mlci.serving.batch import ScoreOptions, score
from mlci.serving.metrics import Layout, ServerMetrics, shared_slab
from mlci.serving.runtime import load_runtime
from models import breast_cancer_frame, mixed_frame


def served_answer(model: ServedModel, columns: list[str], rows: list[list[object]]) -> np.ndarray:
    """What `mlci serve` answers for these rows on /invocations: its app in process, its parser and runtime."""
    layout = Layout(model.output.classes, 0, 0)
    metrics = ServerMetrics(layout, shared_slab(1, layout.width), 0, {"name": model.name}, None, 10)
    app = ServingApp(model, lambda: load_runtime(model, 1), metrics, Limits(max_rows=100_000), lambda _: None)
    app.preload()
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
    status, payload, _, _ = app.answer(app.inline_routes()[b"/invocations"], "POST", "/invocations", body, "")
    assert status == 200, payload
    return np.asarray(json.loads(payload)["predictions"])


def probabilities(table: pa.Table, classes: tuple[str, ...]) -> np.ndarray:
    return np.column_stack([table[f"probability_{c}"].to_numpy() for c in classes])


@pytest.fixture(scope="module")
def forest_pyfunc(forest_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return package(str(forest_dir), tmp_path_factory.mktemp("pyfunc") / "forest", runtime="pyfunc", log=lambda _: None)


@pytest.mark.parametrize("runtime", ["onnx", "pyfunc", "mixed"])
def test_the_predictions_are_serves_on_the_same_rows_from_parquet_and_csv(
    runtime, forest_package, forest_pyfunc, mixed_package, tmp_path
):
    if runtime == "mixed":
        model = mixed_package[0]
        frame, _ = mixed_frame(rows=300, seed=3)
    else:
        model = forest_package if runtime == "onnx" else forest_pyfunc
        frame = breast_cancer_frame().head(300)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    columns = model.inputs.names
    rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_numpy().tolist()
    want = served_answer(model, columns, rows)
    classes = model.output.classes
    for name in ("rows.parquet", "rows.csv"):
        out = tmp_path / f"{name}.out.parquet"
        done = score(model, str(tmp_path / name), str(out), ScoreOptions(keys=("id",), run_id="night", batch_rows=128))
        assert (done.scored, done.rejected, done.passed) == (300, 0, True)
        table = pq.read_table(out)
        assert table["id"].to_pylist() == frame["id"].tolist()
        mine = probabilities(table, classes)  # the same runtime fed the same numbers: the same bits
        assert np.array_equal(mine, want.astype(mine.dtype)), name  # (serve's JSON prints float32 shortest)
        assert table["prediction"].to_pylist() == [classes[i] for i in want.argmax(axis=1)]
        assert set(table["model_version"].to_pylist()) == {model.version}
        assert table["prediction_id"].to_pylist() == [f"night.0:{i}" for i in range(300)]
        assert pq.read_table(done.rejects).num_rows == 0


MIXED_CSV = """\
age,income,city,plan,visits,comment,id
40,,,pro,3,fine,a
23,rich,Lyon,basic,0,text in a number,b
71,12000,Paris,,29,no plan,c
40.5,1000,Nice,pro,3,half an age,d
,1000,Nice,pro,3,no age,e
33,inf,Nice,pro,3,an infinite income,f
35,1_000.5,Nice,basic,4,a number Python reads,g
50,nan,Nice,basic,x,two faults: the first column's is told,h
"""

REASONS = {
    "b": "row 1, column 'income': expected a number (double), got a string \"rich\"",
    "c": "row 2, column 'plan': null is not allowed; 'plan' is a required string column",
    "d": "row 3, column 'age': expected an integer (long), got 40.5",
    "e": "row 4, column 'age': null is not allowed; 'age' is a required long column",
    "f": "row 5, column 'income': inf is not allowed; 'income' takes finite numbers",
    "h": "row 7, column 'visits': expected a number (long), got a string \"x\"",
}


def test_rows_serve_would_refuse_go_to_the_rejects_file_with_serves_reason(mixed_package, tmp_path):
    model, _ = mixed_package
    (tmp_path / "rows.csv").write_text(MIXED_CSV)
    done = score(model, str(tmp_path / "rows.csv"), str(tmp_path / "out.parquet"), ScoreOptions(keys=("id",)))
    assert (done.scored, done.rejected) == (2, 6) and not done.passed
    assert done.ignored == ("comment",)  # a column the model does not take is left out, and named
    assert pq.read_table(tmp_path / "out.parquet")["id"].to_pylist() == ["a", "g"]
    rejects = pq.read_table(tmp_path / "out.rejects.parquet").to_pylist()
    assert {r["id"]: r["reason"] for r in rejects} == REASONS
    assert {(r["id"], r["row"], r["column"]) for r in rejects} >= {("b", 1, "income"), ("h", 7, "visits")}
    assert {r["file"] for r in rejects} == {str(tmp_path / "rows.csv")}


def test_typed_parquet_rejects_count_across_batches_and_a_wrong_type_of_column_is_refused(mixed_package, tmp_path):
    model, _ = mixed_package
    frame, _ = mixed_frame(rows=100, seed=4)
    frame["age"] = frame["age"].astype("float64")
    frame.loc[70, "age"] = 40.5  # not an integer, in the third batch of 32 rows
    frame.loc[90, "plan"] = None  # a required text column
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    done = score(model, str(tmp_path / "rows.parquet"), str(tmp_path / "out.parquet"), ScoreOptions(batch_rows=32))
    rejects = pq.read_table(done.rejects).to_pylist()
    assert (done.scored, [(r["row"], r["column"]) for r in rejects]) == (98, [(70, "age"), (90, "plan")])
    assert rejects[0]["reason"] == "row 70, column 'age': expected an integer (long), got 40.5"
    assert pq.read_table(tmp_path / "out.parquet")["prediction_id"].to_pylist()[69:71] == [
        f"{done.run_id}.0:69",
        f"{done.run_id}.0:71",  # a prediction id is the row's place in its file
    ]
    frame["city"] = 1
    frame.to_parquet(tmp_path / "numbers.parquet", index=False)
    with pytest.raises(MlciError, match=r"numbers.parquet: column 'city' holds int64; the model takes text"):
        score(model, str(tmp_path / "numbers.parquet"), str(tmp_path / "numbers.out.parquet"), ScoreOptions())
    frame.drop(columns=["plan"]).to_parquet(tmp_path / "short.parquet", index=False)
    with pytest.raises(MlciError, match=r"short.parquet: missing column 'plan' \(1 of the model's 5\)"):
        score(model, str(tmp_path / "short.parquet"), str(tmp_path / "short.out.parquet"), ScoreOptions())
    assert not (tmp_path / "numbers.out.parquet").exists() and not (tmp_path / "short.out.parquet").exists()


def mlci(*args: str, env: dict[str, str] | None = None) -> Result:
    """`mlci ARGS` in this process (typer's runner): a command's own start would cost a second per call."""
    return CliRunner().invoke(app, list(args), env=env)


def test_an_indexed_job_of_four_pods_scores_every_row_of_a_folder_once(forest_package, tmp_path):
    """`mlci score` with JOB_COMPLETION_INDEX 0..3, as the batch CronJob's four pods run it: four parts, together
    every input row once."""
    frame = breast_cancer_frame()
    frame.insert(0, "id", range(len(frame)))
    (tmp_path / "in" / "day=1").mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 6)):  # 6 files over 4 pods: 2, 2, 1, 1
        part = frame.iloc[rows]
        if i % 2:
            part.to_csv(tmp_path / "in" / "day=1" / f"{i}.csv", index=False)
        else:
            part.to_parquet(tmp_path / "in" / f"{i}.parquet", index=False)
    (tmp_path / "in" / "_SUCCESS").write_text("")  # hidden: never read
    command = ["score", str(forest_package.directory), "--input", str(tmp_path / "in"), "--output",
               str(tmp_path / "out"), "--key", "id", "--partitions", "4", "--run-id", "job-1"]  # fmt: skip
    said = [mlci(*command, env={"JOB_COMPLETION_INDEX": str(i)}) for i in range(4)]
    assert [done.exit_code for done in said] == [0, 0, 0, 0], [done.output for done in said]
    parts = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert parts == [f"part-0000{i}.parquet" for i in range(4)]
    table = pa.concat_tables(pq.read_table(tmp_path / "out" / name) for name in parts)
    assert sorted(table["id"].to_pylist()) == list(range(len(frame)))  # the CSV files' ids too, typed as the first's
    assert len(set(table["prediction_id"].to_pylist())) == len(frame)
    assert sorted(p.name for p in (tmp_path / "out" / "_rejects").iterdir()) == parts
    # Sorted, the listing is 0, 2, 4.parquet, then day=1/1, 3, 5.csv: pod 3 scores day=1/1.csv (95 rows) alone.
    assert "score: 95 rows scored, 0 rejected (0.00%) from 1 file(s)" in said[3].stdout


def test_the_exit_is_1_over_the_reject_bound_and_an_unattested_artifact_is_refused(mixed_package, tmp_path):
    from mlci.trust import attestation, keys

    model, _ = mixed_package
    (tmp_path / "rows.csv").write_text(MIXED_CSV)
    command = ["score", str(model.directory), "--input", str(tmp_path / "rows.csv"), "--output"]
    over = mlci(*command, str(tmp_path / "a.parquet"))
    assert over.exit_code == 1 and "2 rows scored, 6 rejected (75.00%)" in over.stdout, over.output
    assert "75.00% of the rows rejected, over --max-reject-share 0.00%" in over.stderr
    assert (tmp_path / "a.parquet").is_file() and (tmp_path / "a.rejects.parquet").is_file()
    assert mlci(*command, str(tmp_path / "b.parquet"), "--max-reject-share", "0.8").exit_code == 0
    public = keys.generate(tmp_path / "signing.key")
    (tmp_path / "trust.yaml").write_text(json.dumps({"keys": [{"name": "release", "public_key": public.read_text()}]}))
    certificate = {"verdict": "pass", "model": {"name": "mixed", "version": "3", "sha256": "99" * 32}}
    envelope = attestation.attest("ghcr.io/o/mixed", "sha256:" + "ab" * 32, certificate, "99" * 32,
                                  keys.load_signer(tmp_path / "signing.key"))  # fmt: skip
    (tmp_path / "attestation.json").write_bytes(attestation.encode(envelope))
    trusted = ["--attestation", str(tmp_path / "attestation.json"), "--trust", str(tmp_path / "trust.yaml")]
    refused = mlci(*command, str(tmp_path / "c.parquet"), *trusted)
    assert isinstance(refused.exception, MlciError)  # `mlci` prints it as one line and exits 2
    assert str(refused.exception).startswith(f"refusing to score {model.sha256[:12]}: ")
    assert "this is not the attested model" in str(refused.exception)
    assert not (tmp_path / "c.parquet").exists()


def test_a_file_that_breaks_midway_leaves_nothing_behind(forest_package, tmp_path):
    frame = breast_cancer_frame()
    text = frame.to_csv(index=False)
    rows = text.split("\n", 1)[1]
    (tmp_path / "rows.csv").write_text(text + rows * 16 + "1,2,3\n")  # 2 MB, then a row with 3 of its 30 cells
    broken = r"rows.csv: CSV parse error: (Row #\d+: )?Expected 30 columns, got 3: 1,2,3"  # a row number on one thread
    with pytest.raises(MlciError, match=broken):
        score(forest_package, str(tmp_path / "rows.csv"), str(tmp_path / "out" / "p.parquet"), ScoreOptions())
    assert list((tmp_path / "out").iterdir()) == []
