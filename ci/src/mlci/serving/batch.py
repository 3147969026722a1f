"""Batch inference, what `mlci score` runs: a table in, its predictions out, one record batch at a time.

Parquet and CSV files (local, or object storage through pyarrow's filesystems) are read in record batches, so a
file larger than memory scores in bounded memory. Each batch is checked against the model's signature as `mlci
serve` checks a request: a column at a time with numpy, and only the rows that fail are walked one by one, through
the data plane's own `check_value`, so that their reason reads as serve's; they go to a rejects file. The other
rows are scored by the serving runtime and written with the key columns asked for, the prediction (the class and
each class's probability, or the value), the model version and a prediction id `<run>.<file>:<row>` (the file's
place in the sorted listing, the row's in its file) that ground truth joins on later.

Reading, scoring and writing overlap: a thread reads and checks the next batch and another writes the last one
while the runtime scores (pyarrow and onnxruntime release the GIL). For a fan-out (an Indexed Job), partition i of
N scores files i, i+N, ... of the sorted listing of a folder and writes `part-<i>.parquet`; every file is written
whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import MlciError, ModelError
from ..model.manifest import ServedModel
from ..model.schema import INTEGER_TYPES, Feature
from .app import warmup_batch
from .dataplane import Batch, RequestError, check_value
from .feedback import MAX_ID_LENGTH, valid_request_id
from .invocations import csv_value
from .runtime import Runtime, load_runtime

SUFFIXES = (".parquet", ".csv")
BATCH_ROWS = 65_536
# A CSV block of this many bytes is one record batch: tens of thousands of rows of a few dozen numbers.
CSV_BLOCK = 16 << 20
# Batches in flight between the reader, the runtime and the writer: what bounds the memory besides one batch.
DEPTH = 2
OUTPUT_COLUMNS = ("prediction", "model_version", "prediction_id")
REJECT_COLUMNS = {"file": pa.string(), "row": pa.int64(), "column": pa.string(), "reason": pa.string()}
NO_NULL_MATRIX = "null, which an integer or boolean input cannot hold"


@dataclass(frozen=True)
class ScoreOptions:
    """How one `mlci score` runs: its share of the input, the columns it keeps, its bound on rejects."""

    keys: tuple[str, ...] = ()
    partition: int = 0
    partitions: int = 1
    max_reject_share: float = 0.0
    rejects: str | None = None  # default: beside the output (`X.rejects.parquet`, or `_rejects/` in a folder)
    run_id: str | None = None  # default: the time and a random suffix
    threads: int = 1
    batch_rows: int = BATCH_ROWS


@dataclass(frozen=True)
class Progress:
    """Where a run is: the file being read (of this partition's), and the rows read so far."""

    file: int
    files: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class ScoreOutcome:
    """What a run did: rows scored and rejected, from which files, written where, and whether the rejects stayed
    within the bound."""

    scored: int
    rejected: int
    files: tuple[str, ...]
    output: str
    rejects: str
    ignored: tuple[str, ...]  # columns of the input neither in the signature nor kept as keys
    run_id: str
    seconds: float
    max_reject_share: float

    @property
    def rows(self) -> int:
        return self.scored + self.rejected

    @property
    def passed(self) -> bool:
        return self.rejected <= self.max_reject_share * self.rows


@dataclass(frozen=True)
class Place:
    """A file or folder on a filesystem of pyarrow's: a local path, or a URI (s3://bucket/key, file:///...)."""

    fs: pafs.FileSystem
    path: str
    shown: str  # as the user wrote it

    @classmethod
    def of(cls, location: str) -> Place:
        if "://" not in location:
            return cls(pafs.LocalFileSystem(), os.path.abspath(location), location)
        try:
            fs, path = pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
            raise MlciError(f"{location}: not a filesystem pyarrow reads: {error}") from None
        return cls(fs, path.rstrip("/"), location)

    def child(self, name: str) -> Place:
        return Place(self.fs, f"{self.path}/{name}", f"{self.shown.rstrip('/')}/{name}")

    @property
    def kind(self) -> pafs.FileType:
        try:
            return self.fs.get_file_info(self.path).type
        except OSError as error:
            raise MlciError(f"{self.shown}: {error}") from None


def input_files(source: Place) -> tuple[list[Place], bool]:
    """The .parquet and .csv files of `source` in sorted order (the file itself, or every one under the folder
    or prefix, but hidden ones: `.name` and `_name`), and whether it is a folder."""
    kind = source.kind
    if kind == pafs.FileType.File:
        return [source], False
    if kind != pafs.FileType.Directory:
        raise MlciError(f"--input {source.shown}: no such file or folder")
    selector = pafs.FileSelector(source.path, recursive=True)
    found = []
    for info in source.fs.get_file_info(selector):
        relative = info.path[len(source.path) :].lstrip("/")
        hidden = any(part.startswith((".", "_")) for part in relative.split("/"))
        if info.type == pafs.FileType.File and info.path.endswith(SUFFIXES) and not hidden:
            found.append(Place(source.fs, info.path, source.child(relative).shown))
    if not found:
        raise MlciError(f"--input {source.shown}: no .parquet or .csv file in it")
    return sorted(found, key=lambda place: place.path), True


def _reason(feature: Feature, value: Any, where: str, integral: bool) -> str:
    """Why serve would refuse this value, in `check_value`'s words."""
    try:
        checked = check_value(feature, value, where)
    except RequestError as error:
        return error.message
    if checked is None and integral:
        return f"{where}: {NO_NULL_MATRIX}"
    return f"{where}: refused"  # the vectorised checks and check_value disagree: name the row rather than guess


@dataclass(frozen=True)
class Reject:
    """A row serve would refuse: its place in the batch, the column that failed first, and why."""

    row: int
    column: str
    reason: str


@dataclass
class _Column:
    """One feature of a batch, checked: its values (numbers in numpy, or text as a list), which rows fail, and the
    value serve would see in a failing row (for its reason)."""

    values: Any
    missing: np.ndarray | None  # rows with no value (null, or NaN), or None when there is none
    bad: np.ndarray | None
    raw: Callable[[int], Any]


class _Checker:
    """Checks record batches against one model's signature; `file` names them in errors."""

    def __init__(self, model: ServedModel) -> None:
        self.schema = model.inputs
        self.numeric = self.schema.numeric
        self.dtype = np.dtype(self.schema.dtype)
        # An integer or boolean matrix cannot hold a missing value: serve refuses one, so a row with one is rejected.
        self.integral = self.numeric and self.dtype.kind in "iub"

    def column(self, feature: Feature, array: pa.Array, file: str) -> _Column:
        kind = array.type
        if pa.types.is_dictionary(kind):
            array = array.cast(kind.value_type)
            kind = array.type
        if feature.type == "string":
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise MlciError(f"{file}: column {feature.name!r} holds {kind}; the model takes text (string)")
            values = array.to_pylist()
            missing = _nulls(array)
            bad = missing if feature.required else None
            return _Column(values, missing, bad, lambda i: None)
        if feature.type == "boolean":
            return self._booleans(feature, array, file)
        return self._numbers(feature, array, file)

    def _booleans(self, feature: Feature, array: pa.Array, file: str) -> _Column:
        kind = array.type
        missing = _nulls(array)
        if pa.types.is_boolean(kind):
            values = array.fill_null(False).to_numpy(zero_copy_only=False)
            return _Column(values, missing, self._missing_bad(feature, missing), lambda i: None)
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise MlciError(f"{file}: column {feature.name!r} holds {kind}; the model takes booleans")
        lowered = pc.utf8_lower(array)
        true = pc.equal(lowered, "true").fill_null(False).to_numpy(zero_copy_only=False)
        false = pc.equal(lowered, "false").fill_null(False).to_numpy(zero_copy_only=False)
        unknown = ~(true | false)
        if missing is not None:
            unknown &= ~missing
        bad = _either(self._missing_bad(feature, missing), unknown if unknown.any() else None)
        return _Column(true, missing, bad, lambda i: csv_value(array[i].as_py(), feature))

    def _numbers(self, feature: Feature, array: pa.Array, file: str) -> _Column:
        kind = array.type
        written = array  # the cells as the file holds them, for a failing row's reason
        raw: Callable[[int], Any]
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            # CSV, or text in a Parquet column: numbers as serve reads a CSV cell, and a row whose cell is none is
            # rejected. pyarrow's cast reads them all at once; only a batch where it fails goes cell by cell.
            try:
                array = pc.cast(array, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return self._parsed(feature, array)

            def raw(i: int) -> Any:
                return csv_value(written[i].as_py(), feature) if written[i].is_valid else None

        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):

            def raw(i: int) -> Any:
                return written[i].as_py()

        else:
            raise MlciError(f"{file}: column {feature.name!r} holds {kind}; the model takes numbers ({feature.type})")
        if pa.types.is_integer(array.type):  # exact as integers; with a null, floats and NaN
            nulls = _nulls(array)
            return _Column(array.to_numpy(zero_copy_only=False), nulls, self._missing_bad(feature, nulls), raw)
        values = array.to_numpy(zero_copy_only=False)  # a null reads as NaN: both are missing
        return self._checked_numbers(feature, values, None, raw)

    def _checked_numbers(
        self, feature: Feature, values: np.ndarray, wrong: np.ndarray | None, raw: Callable[[int], Any]
    ) -> _Column:
        """Floats checked as serve checks numbers: missing (NaN) only where allowed, finite, integers for an integer
        column; `wrong` marks cells that were no number at all."""
        nan = np.isnan(values)
        if wrong is not None:
            nan &= ~wrong
        missing = nan if nan.any() else None
        bad = _either(self._missing_bad(feature, missing), wrong)
        infinite = np.isinf(values)
        bad = _either(bad, infinite if infinite.any() else None)
        if feature.type in INTEGER_TYPES:
            fractional = np.isfinite(values) & (values != np.trunc(values))
            bad = _either(bad, fractional if fractional.any() else None)
        return _Column(values, missing, bad, raw)

    def _parsed(self, feature: Feature, array: pa.Array) -> _Column:
        """Text that pyarrow does not read as numbers: each cell as serve reads a CSV cell (slow, but only for a
        batch with such a cell)."""
        parsed = [None if cell is None else csv_value(cell, feature) for cell in array.to_pylist()]
        wrong = np.fromiter((isinstance(v, str) for v in parsed), dtype=bool, count=len(parsed))
        values = np.array([np.nan if v is None or isinstance(v, str) else v for v in parsed], dtype=np.float64)
        return self._checked_numbers(feature, values, wrong if wrong.any() else None, parsed.__getitem__)

    def _missing_bad(self, feature: Feature, missing: np.ndarray | None) -> np.ndarray | None:
        return missing if missing is not None and (feature.required or self.integral) else None

    def check(
        self, batch: pa.RecordBatch, file: str, first_row: int
    ) -> tuple[Batch | None, np.ndarray | None, list[Reject]]:
        """The batch's rows that serve would take, as the runtime's `Batch` (None when none is left); which rows
        those are (None: all of them); and each other row once, with the reason of its first failing column."""
        rows = batch.num_rows
        names = set(batch.schema.names)
        rejected = np.zeros(rows, dtype=bool)
        rejects: list[Reject] = []
        columns: dict[str, _Column] = {}
        for feature in self.schema.features:
            if feature.name in names:
                column = self.column(feature, batch.column(feature.name), file)
            else:  # an optional column the file lacks (a required one was refused when the file was opened)
                column = self._absent(feature, rows)
            if column.bad is not None:
                for i in np.flatnonzero(column.bad & ~rejected).tolist():
                    where = f"row {first_row + i}, column {feature.name!r}"
                    rejects.append(Reject(i, feature.name, _reason(feature, column.raw(i), where, self.integral)))
                rejected |= column.bad
            columns[feature.name] = column
        keep = ~rejected if rejects else None
        kept = rows - len(rejects)
        return (self._batch(columns, keep, kept) if kept else None), keep, rejects

    def _absent(self, feature: Feature, rows: int) -> _Column:
        missing = np.ones(rows, dtype=bool)
        values: Any = [None] * rows if feature.type == "string" else np.full(rows, np.nan)
        return _Column(values, missing, missing if self.integral else None, lambda i: None)

    def _batch(self, columns: dict[str, _Column], keep: np.ndarray | None, rows: int) -> Batch:
        features = self.schema.features
        if self.numeric:
            matrix = np.empty((rows, len(features)), dtype=self.dtype)
            for i, feature in enumerate(features):
                column = columns[feature.name]
                matrix[:, i] = column.values if keep is None else column.values[keep]
                if column.missing is not None and self.dtype.kind == "f":  # a missing boolean too: NaN, as serve
                    matrix[column.missing if keep is None else column.missing[keep], i] = np.nan
            return Batch(matrix, None, rows)
        lists: dict[str, list[Any]] = {}
        for feature in features:
            column = columns[feature.name]
            if feature.type == "string":
                values = column.values
                lists[feature.name] = values if keep is None else [v for v, k in zip(values, keep, strict=True) if k]
                continue
            numbers = column.values if keep is None else column.values[keep]
            missing = column.missing if column.missing is None or keep is None else column.missing[keep]
            if feature.type in INTEGER_TYPES and numbers.dtype.kind == "f":  # as serve reads an integer cell
                numbers = np.where(missing, 0, numbers) if missing is not None else numbers
                numbers = numbers.astype(np.int64)
            lists[feature.name] = pa.array(numbers, mask=missing).to_pylist()
        return Batch(None, lists, rows)


def _nulls(array: pa.Array) -> np.ndarray | None:
    return array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else a | b


class _Outputs:
    """The model's output as columns: `prediction` (the class, or the value) and a `probability_<class>` per class,
    then `model_version` and `prediction_id`; their types come from a first prediction, so that an empty part
    has the same schema as a full one."""

    def __init__(self, model: ServedModel, probe: np.ndarray) -> None:
        self.kind = model.output.kind
        self.classes = model.output.classes
        if self.kind == "probabilities" and not self.classes and probe.ndim == 2:
            self.classes = tuple(str(i) for i in range(probe.shape[1]))
        self._labels = pa.array(self.classes, pa.string())
        self._version = pa.array([model.version], pa.string())
        self.fields = [pa.field(name, array.type) for name, array in self.arrays(probe)]

    def arrays(self, output: np.ndarray) -> list[tuple[str, pa.Array]]:
        if self.kind == "probabilities":
            if output.ndim != 2 or output.shape[1] != len(self.classes):
                raise ModelError(
                    f"the model answered shape {list(output.shape)}; serving.json names {len(self.classes)} classes"
                )
            best = pa.array(output.argmax(axis=1).astype(np.int32))
            named = [("prediction", pa.DictionaryArray.from_arrays(best, self._labels))]
            return named + [(f"probability_{c}", pa.array(output[:, i])) for i, c in enumerate(self.classes)]
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            return [("prediction", pa.array(output.reshape(-1)))]
        return [(f"prediction_{i}", pa.array(output[:, i])) for i in range(output.shape[1])]

    def names(self) -> list[str]:
        return [field.name for field in self.fields] + ["model_version", "prediction_id"]

    def columns(self, output: np.ndarray, prefix: str, rows: np.ndarray) -> list[pa.Array]:
        """The output columns of scored rows whose places in their file are `rows`; ids `<prefix>:<row>`."""
        arrays = [array if array.type == field.type else array.cast(field.type)
                  for (_, array), field in zip(self.arrays(output), self.fields, strict=True)]  # fmt: skip
        version = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(rows), dtype=np.int32)), self._version)
        ids = pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(rows), pa.string()), ":")
        return [*arrays, version, ids]

    def schema(self, keys: list[pa.Field]) -> pa.Schema:
        version = pa.field("model_version", pa.dictionary(pa.int32(), pa.string()))
        return pa.schema([*keys, *self.fields, version, pa.field("prediction_id", pa.string())])


@dataclass(frozen=True)
class _Scored:
    """A batch read and checked: its file (by index in the listing, and as named), where its rows start in that file,
    the runtime's batch of the rows kept (and which those are), the key columns of every row, and the rejects."""

    file: int
    position: int  # of the file among this partition's
    shown: str
    first_row: int
    rows: int
    batch: Batch | None
    keep: np.ndarray | None
    keys: list[pa.Array]
    rejects: list[Reject]


class _Table:
    """One input file: its columns checked against the signature and the keys when opened, then its batches."""

    def __init__(self, place: Place, model: ServedModel, keys: tuple[str, ...]) -> None:
        self.place, self.keys = place, keys
        self.csv = place.path.endswith(".csv")
        names = self._names()
        features = model.inputs.names
        missing = [f.name for f in model.inputs.features if f.required and f.name not in names]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5])
            raise MlciError(f"{place.shown}: missing column {shown} ({len(missing)} of the model's {len(features)})")
        absent = [k for k in keys if k not in names]
        if absent:
            raise MlciError(f"{place.shown}: no column {absent[0]!r} to keep (--key); it has {_shown(names)}")
        wanted = set(features) | set(keys)
        self.columns = [n for n in names if n in wanted]
        self.ignored = [n for n in names if n not in wanted]

    def _names(self) -> list[str]:
        try:
            if self.csv:
                with self.place.fs.open_input_stream(self.place.path) as stream:
                    first = pacsv.ReadOptions(block_size=1 << 20, use_threads=False)  # the header's block only
                    return list(pacsv.open_csv(stream, read_options=first).schema.names)
            with self.place.fs.open_input_file(self.place.path) as handle:
                return list(pq.ParquetFile(handle).schema_arrow.names)
        except (pa.ArrowInvalid, OSError) as error:
            raise MlciError(
                f"{self.place.shown}: not a readable {'CSV' if self.csv else 'Parquet'} file: {error}"
            ) from None

    def key_fields(self) -> list[pa.Field]:
        """The key columns' types: text in a CSV (its cells as written), the file's own in Parquet."""
        if self.csv:
            return [pa.field(k, pa.string()) for k in self.keys]
        with self.place.fs.open_input_file(self.place.path) as handle:
            schema = pq.ParquetFile(handle).schema_arrow
        return [schema.field(k) for k in self.keys]

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The file's record batches: `rows` rows each for Parquet, a block of CSV_BLOCK bytes for CSV, whose cells
        are read as text (checked as serve reads a CSV body)."""
        try:
            if self.csv:
                convert = pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.columns, pa.string()),
                    include_columns=self.columns,
                    strings_can_be_null=True,
                    null_values=[""],  # an empty cell is missing, as in serve's CSV; "NA" is text
                )
                with self.place.fs.open_input_stream(self.place.path) as stream:
                    reader = pacsv.open_csv(stream, pacsv.ReadOptions(block_size=CSV_BLOCK), convert_options=convert)
                    yield from reader
                return
            with self.place.fs.open_input_file(self.place.path) as handle:
                if isinstance(self.place.fs, pafs.LocalFileSystem):  # pages streamed through a 1 MB buffer
                    parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
                    yield from parquet.iter_batches(batch_size=rows, columns=self.columns)
                    return
                # Object storage: a row group's column chunks fetched at once, in a few coalesced requests. (In one
                # call over every row group, pyarrow's pre-buffering would hold the whole file in memory.)
                parquet = pq.ParquetFile(handle, pre_buffer=True)
                for group in range(parquet.num_row_groups):
                    yield from parquet.iter_batches(batch_size=rows, row_groups=[group], columns=self.columns)
        except (pa.ArrowInvalid, OSError) as error:
            raise MlciError(f"{self.place.shown}: {error}") from None


class _Part:
    """A Parquet file written through a hidden temporary beside it, moved into place once whole: a reader never
    sees a part of it (pyarrow streams record batches, so `mlci.files.write_atomic`, which takes bytes, cannot)."""

    def __init__(self, place: Place, schema: pa.Schema) -> None:
        self.place = place
        parent, _, name = place.path.rpartition("/")
        if isinstance(place.fs, pafs.LocalFileSystem):
            place.fs.create_dir(parent, recursive=True)
        self.temporary = f"{parent}/.{name}.{os.urandom(4).hex()}.partial"
        try:
            self._stream = place.fs.open_output_stream(self.temporary)
        except OSError as error:
            raise MlciError(f"cannot write {place.shown}: {error}") from None
        self._writer = pq.ParquetWriter(self._stream, schema)
        self.schema = schema

    def write(self, columns: list[pa.Array]) -> None:
        if columns and len(columns[0]):
            self._writer.write_batch(pa.record_batch(columns, schema=self.schema))

    def commit(self) -> None:
        self._writer.close()
        self._stream.close()
        self.place.fs.move(self.temporary, self.place.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(Exception):
            self.place.fs.delete_file(self.temporary)


def score(
    model: ServedModel,
    source: str,
    target: str,
    options: ScoreOptions,
    progress: Callable[[Progress], None] | None = None,
    runtime: Runtime | None = None,
) -> ScoreOutcome:
    """Score this partition's files of `source` into `target` (a Parquet file, or for a folder input or several
    partitions, `part-<i>.parquet` in the folder `target`), and its rejected rows into the rejects file; both are
    written whole, empty ones too, or not at all."""
    started = time.perf_counter()
    if not 0 <= options.partition < options.partitions:
        raise MlciError(f"--partition-index {options.partition} is not one of 0..{options.partitions - 1}")
    inputs = Place.of(source)
    listing, folder = input_files(inputs)
    mine = list(range(options.partition, len(listing), options.partitions))
    parted = folder or options.partitions > 1
    out = Place.of(target)
    name = f"part-{options.partition:05d}.parquet"
    output = out.child(name) if parted else out
    rejects = _rejects_place(options.rejects, out, parted, name)
    inside = out.path == inputs.path or out.path.startswith(inputs.path + "/")
    if folder and inside and type(out.fs) is type(inputs.fs):
        raise MlciError(f"--output {out.shown} is inside --input {inputs.shown}: a later run would score predictions")
    run_id = options.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(3).hex()
    try:
        valid_request_id(f"{run_id}.{len(listing)}")
    except RequestError:
        raise MlciError(f"--run-id {run_id!r}: visible ASCII characters without spaces, and short enough that "
                        f"'{run_id}.{len(listing)}' takes at most {MAX_ID_LENGTH}") from None  # fmt: skip
    runtime = runtime or load_runtime(model, options.threads)
    outputs = _Outputs(model, runtime.predict(warmup_batch(model)))
    taken = [*outputs.names(), *REJECT_COLUMNS]
    clash = [k for k in options.keys if k in taken]
    if clash:
        raise MlciError(f"--key {clash[0]!r} is also an output column ({', '.join(taken)})")
    keys = _Table(listing[0], model, options.keys).key_fields()
    tables = [_Table(listing[i], model, options.keys) for i in mine]
    written = _Part(output, outputs.schema(keys))
    refused: _Part | None = None
    try:
        refused = _Part(rejects, pa.schema([*keys, *(pa.field(n, t) for n, t in REJECT_COLUMNS.items())]))
        parts = (written, refused)
        scored, rejected = _run(tables, mine, _Checker(model), runtime, outputs, keys, run_id, options, parts, progress)
        refused.commit()  # first: an output in place means its rejects are too
        written.commit()
    except BaseException:
        written.discard()
        if refused is not None:
            refused.discard()
        raise
    return ScoreOutcome(
        scored=scored,
        rejected=rejected,
        files=tuple(t.place.shown for t in tables),
        output=output.shown,
        rejects=rejects.shown,
        ignored=tuple(sorted({n for t in tables for n in t.ignored})),
        run_id=run_id,
        seconds=time.perf_counter() - started,
        max_reject_share=options.max_reject_share,
    )


def _run(
    tables: list[_Table],
    mine: list[int],
    checker: _Checker,
    runtime: Runtime,
    outputs: _Outputs,
    keys: list[pa.Field],
    run_id: str,
    options: ScoreOptions,
    parts: tuple[_Part, _Part],
    progress: Callable[[Progress], None] | None,
) -> tuple[int, int]:
    """Rows scored and rejected. A thread reads and checks, this one scores, another writes, each at most DEPTH
    batches ahead of the next."""
    written, refused = parts
    started = time.perf_counter()

    def produce() -> Generator[_Scored, None, None]:
        for position, (table, index) in enumerate(zip(tables, mine, strict=True)):
            first = 0
            for batch in table.batches(options.batch_rows):
                checked, keep, rejects = checker.check(batch, table.place.shown, first)
                held = [_key(batch.column(k), field, table.place) for k, field in zip(options.keys, keys, strict=True)]
                yield _Scored(index, position, table.place.shown, first, batch.num_rows, checked, keep, held, rejects)
                first += batch.num_rows

    def write(item: _Scored, output: np.ndarray | None) -> None:
        if output is not None:
            rows = np.arange(item.first_row, item.first_row + item.rows, dtype=np.int64)
            held = item.keys
            if item.keep is not None:
                rows, mask = rows[item.keep], pa.array(item.keep)
                held = [k.filter(mask) for k in held]
            written.write([*held, *outputs.columns(output, f"{run_id}.{item.file}", rows)])
        if item.rejects:
            at = pa.array([r.row for r in item.rejects], pa.int64())
            refused.write([
                *(k.take(at) for k in item.keys),
                pa.array([item.shown] * len(item.rejects), pa.string()),
                pc.add(at, item.first_row),
                pa.array([r.column for r in item.rejects], pa.string()),
                pa.array([r.reason for r in item.rejects], pa.string()),
            ])  # fmt: skip

    scored = rejected = read = 0
    items = produce()
    reader = ThreadPoolExecutor(1, thread_name_prefix="mlci-score-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="mlci-score-write")
    ahead: deque[Future[_Scored | None]] = deque(reader.submit(next, items, None) for _ in range(DEPTH))
    behind: deque[Future[None]] = deque()
    try:
        while (item := ahead.popleft().result()) is not None:
            ahead.append(reader.submit(next, items, None))
            output = runtime.predict(item.batch) if item.batch is not None else None
            scored_rows = item.batch is not None
            item = replace(item, batch=None)  # the matrix is spent: the writer needs the keys and the output only
            behind.append(writer.submit(write, item, output if scored_rows else None))
            while len(behind) > DEPTH:
                behind.popleft().result()
            read += item.rows
            rejected += len(item.rejects)
            scored += item.rows - len(item.rejects)
            if progress is not None:
                progress(Progress(item.position + 1, len(tables), read, time.perf_counter() - started))
        while behind:
            behind.popleft().result()
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
        items.close()
    return scored, rejected


def _key(array: pa.Array, field: pa.Field, file: Place) -> pa.Array:
    """A key column as the first file of the listing types it, so that every part has one schema."""
    if array.type == field.type:
        return array
    try:
        return array.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MlciError(
            f"{file.shown}: key column {field.name!r} holds {array.type}, the first input file's {field.type}"
        ) from None


def _rejects_place(given: str | None, out: Place, parted: bool, name: str) -> Place:
    """Where rejected rows go: `--rejects` (a folder of parts when the output is one), else beside the output,
    `X.rejects.parquet`, or a folder's `_rejects/` (a name that readers of the folder's dataset skip)."""
    if given is not None:
        place = Place.of(given)
        return place.child(name) if parted else place
    if parted:
        return out.child("_rejects").child(name)
    stem = out.path.removesuffix(".parquet")
    return Place(out.fs, stem + ".rejects.parquet", out.shown.removesuffix(".parquet") + ".rejects.parquet")


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:8]) + (f", ... ({len(names)} columns)" if len(names) > 8 else "")
