"""Prediction ids, the recent predictions they name, and the ground truth that comes back for them.

Every predicted row has an id, `<request id>:<row index>`. The request id is the client's (X-Request-Id, or a v2
request's `id`) or one the worker makes. A row's key is a 64-bit number derived from its id, so that any worker
of the server finds it again from the id alone.

The recent predictions live in anonymous shared memory made before the workers fork, one region per worker, each
written by its worker only (no lock): a table of `capacity` slots where a row's key has two, by its low and by its
high bits; it takes the first unless a fresh other row holds it (or another row of the same flush picked it), else
the second, evicting whatever is there. With one slot per key, 300 rows lost one with odds of about 1 in 3; with
two, none in 200 trials of 300 rows. A feedback request, whichever worker it reaches, looks a
key up in every region: found, and younger than the window, it is matched; else it is counted as unmatched, never
refused. Rows enter the table when the worker flushes what it scored (once a second, as the metrics do).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MlciError
from .dataplane import RequestError, parse_json

# Row i of a request whose key is k has key k + i * STEP (mod 2**64): distinct rows, spread over the slots.
STEP = np.uint64(0x9E3779B97F4A7C15)
MAX_ID_LENGTH = 128
EMPTY = np.uint64(0)


def request_key(request_id: str) -> int:
    """The 64-bit key of a request id (never 0, which marks an empty slot): Python's own string hash, the same in
    every worker of a server (they fork from one process, and share its hash secret) and a tenth of a keyed
    digest's cost on each request. The keys live as long as the server; the prediction log keeps the ids."""
    return hash(request_id) % 2**64 or 1


def row_keys(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The keys of every row of requests with these keys and row counts, in order."""
    total = int(rows.sum())
    starts = np.repeat(np.cumsum(rows) - rows, rows)
    index = np.arange(total, dtype=np.uint64) - starts.astype(np.uint64)
    out = np.repeat(keys.astype(np.uint64), rows) + index * STEP  # wraps around, as uint64 arrays do
    out[out == EMPTY] = 1
    return out


def valid_request_id(value: str) -> str:
    """A client's request id, checked: 1 to 128 visible ASCII characters."""
    if not 0 < len(value) <= MAX_ID_LENGTH or not value.isascii() or not value.isprintable() or " " in value:
        raise RequestError(f"X-Request-Id must be 1 to {MAX_ID_LENGTH} visible ASCII characters, without spaces")
    return value


def id_key(prediction_id: str) -> int | None:
    """The key of a prediction id `<request id>:<row index>`, or None for a string that is no such id."""
    request, sep, row = prediction_id.rpartition(":")
    if not sep or not request or not row.isdigit() or len(row) > 9:
        return None
    return (request_key(request) + int(row) * int(STEP)) % 2**64 or 1


class PredictionStore:
    """Each worker's recent predictions (a number per row: the class index, or the value predicted), shared."""

    def __init__(self, workers: int, capacity: int, window_s: float) -> None:
        self.capacity, self.window_s = capacity, window_s
        cells = workers * capacity
        self._buffer = mmap.mmap(-1, max(cells * 24, 8))
        self.keys = np.frombuffer(self._buffer, np.uint64, cells, 0).reshape(workers, capacity)
        self.values = np.frombuffer(self._buffer, np.float64, cells, cells * 8).reshape(workers, capacity)
        self.times = np.frombuffer(self._buffer, np.float64, cells, cells * 16).reshape(workers, capacity)

    def _slots(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's two places: by its low bits and by its high bits. One place per key lost a prediction to a
        collision at a few hundred rows already (300 keys in 100,000 places collide with odds of about 1 in 3);
        with two, a key is lost only where both are held by fresh other keys."""
        capacity = np.uint64(self.capacity)
        return (keys % capacity).astype(np.intp), ((keys >> np.uint64(32)) % capacity).astype(np.intp)

    def record(self, worker: int, keys: np.ndarray, values: np.ndarray, now: float) -> None:
        first, second = self._slots(keys)
        held = self.keys[worker, first]
        taken = (held != 0) & (held != keys) & (now - self.times[worker, first] <= self.window_s)
        taken[np.setdiff1d(np.arange(len(keys)), np.unique(first, return_index=True)[1])] = True  # a batch's own
        slots = np.where(taken, second, first)
        self.keys[worker, slots] = keys
        self.values[worker, slots] = values
        self.times[worker, slots] = now

    def lookup(self, keys: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """For each key: whether a worker holds it within the window, and its value there."""
        found = np.zeros(keys.shape, dtype=bool)
        values = np.zeros(keys.shape, dtype=np.float64)
        for slots in self._slots(keys):
            for worker in range(self.keys.shape[0]):
                hit = (self.keys[worker, slots] == keys) & (now - self.times[worker, slots] <= self.window_s) & ~found
                values[hit] = self.values[worker, slots[hit]]
                found |= hit
        return found, values


@dataclass(frozen=True)
class Feedback:
    """A feedback request's rows: their keys (None for a string that is no prediction id) and labels."""

    keys: np.ndarray  # uint64; 0 where the id was not a prediction id
    labels: list[Any]


def parse_feedback(body: bytes, classes: tuple[str, ...], max_rows: int) -> Feedback:
    """`{"feedback": [{"id": ..., "label": ...}, ...]}` (`value`, a number, for a regression)."""
    document = parse_json(body)
    if not isinstance(document, dict) or set(document) != {"feedback"}:
        raise RequestError('the body must be a JSON object {"feedback": [{"id": ..., "label": ...}, ...]}')
    items = document["feedback"]
    if not isinstance(items, list) or not items:
        raise RequestError("'feedback' must be a non-empty list")
    if len(items) > max_rows:
        raise RequestError(f"'feedback' has {len(items)} items; this server takes at most {max_rows}")
    field = "label" if classes else "value"
    keys = np.zeros(len(items), dtype=np.uint64)
    labels: list[Any] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"id", field}:
            raise RequestError(f"feedback[{i}] must be an object with exactly 'id' and '{field}'")
        if not isinstance(item["id"], str):
            raise RequestError(f"feedback[{i}].id must be a string, the prediction's id")
        label = item[field]
        if classes:
            if not isinstance(label, (str, int)) or isinstance(label, bool):
                raise RequestError(f"feedback[{i}].label must be a class (a string or an integer)")
            label = str(label)
        elif isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label):
            raise RequestError(f"feedback[{i}].value must be a finite number")
        keys[i] = id_key(item["id"]) or 0
        labels.append(label)
    return Feedback(keys, labels)


def score(feedback: Feedback, found: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """The figures one batch of feedback adds: correct, wrong and unmatched rows for classes; matched, unmatched,
    and the sums of absolute and squared errors for values."""
    matched = found & (feedback.keys != EMPTY)
    unmatched = float((~matched).sum())
    if classes:
        index = {name: i for i, name in enumerate(classes)}
        truth = np.array([index.get(label, -1) for label in feedback.labels], dtype=np.float64)
        correct = float((matched & (truth == predicted)).sum())
        return {"correct": correct, "wrong": float(matched.sum()) - correct, "unmatched": unmatched}
    errors = (np.asarray(feedback.labels, dtype=np.float64) - predicted)[matched]
    return {
        "matched": float(matched.sum()),
        "unmatched": unmatched,
        "absolute_error": float(np.abs(errors).sum()),
        "squared_error": float((errors**2).sum()),
    }


class PredictionLog:
    """JSON lines of sampled predictions (id, version, time, and class or value) for labels that come later than
    the store's window: `mlci feedback` joins them offline. Each flush writes its lines in one append."""

    def __init__(self, target: str, sample: float, version: str) -> None:
        self.sample, self.version = sample, version
        self._threshold = int(sample * 2**32)
        self._fd = 1 if target == "-" else os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def sampled(self, keys: np.ndarray) -> np.ndarray:
        """Which rows are logged: decided by the key, so that every worker logs the same rows of an id."""
        return (keys >> np.uint64(32)) < np.uint64(self._threshold)

    def write(self, ids: list[str], rows: list[int], keys: np.ndarray, outputs: list[Any]) -> None:
        """Log the sampled rows of requests with these ids and row counts; `outputs` holds a row's class or value."""
        chosen = self.sampled(keys)
        if not chosen.any():
            return
        field = "class" if outputs and isinstance(outputs[0], str) else "value"
        now = time.time()
        lines, at = [], 0
        for request_id, count in zip(ids, rows, strict=True):
            for i in range(count):
                if chosen[at + i]:
                    record = {"id": f"{request_id}:{i}", "version": self.version, "time": now, field: outputs[at + i]}
                    lines.append(json.dumps(record))
            at += count
        if lines:
            os.write(self._fd, ("\n".join(lines) + "\n").encode())


def offline(predictions: Path, labels: Path) -> dict[str, dict[str, float]]:
    """The figures POST /feedback counts, per model version, from a prediction log and a labels file (JSON lines,
    or a CSV with a header, of `id` and `label`, or `value` for a regression): a label whose id the log lacks is
    unmatched."""
    logged: dict[str, tuple[str, Any]] = {}
    kind = ""
    for number, line in enumerate(_lines(predictions), start=1):
        record = _record(line, predictions, number)
        field = "class" if "class" in record else "value"
        if "id" not in record or field not in record or "version" not in record:
            raise MlciError(f"{predictions}:{number}: a prediction log line has id, version, and class or value")
        if kind and field != kind:
            raise MlciError(f"{predictions}:{number}: the log mixes classes and values")
        kind = field
        logged[str(record["id"])] = (str(record["version"]), record[field])
    field = "label" if kind != "value" else "value"
    figures: dict[str, dict[str, float]] = {}
    unmatched = 0
    for number, row in enumerate(_label_rows(labels), start=1):
        if "id" not in row or field not in row:
            raise MlciError(f"{labels}:{number}: each label has 'id' and '{field}'")
        found = logged.get(str(row["id"]))
        if found is None:
            unmatched += 1
            continue
        version, predicted = found
        counts = figures.setdefault(version, dict.fromkeys(FIGURES[field], 0.0))
        if field == "label":
            counts["correct" if str(row["label"]) == str(predicted) else "wrong"] += 1
        else:
            try:
                error = float(row["value"]) - float(predicted)
            except (TypeError, ValueError):
                raise MlciError(f"{labels}:{number}: value {row['value']!r} is not a number") from None
            counts["matched"] += 1
            counts["absolute_error"] += abs(error)
            counts["squared_error"] += error * error
    figures["(no prediction logged)"] = {"unmatched": float(unmatched)}
    return figures


FIGURES = {"label": ("correct", "wrong"), "value": ("matched", "absolute_error", "squared_error")}


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise MlciError(f"cannot read {path}: {error.strerror}") from None


def _record(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise MlciError(f"{path}:{number}: not JSON: {error.msg}") from None
    if not isinstance(record, dict):
        raise MlciError(f"{path}:{number}: expected a JSON object")
    return record


def _label_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        import csv

        try:
            with path.open(newline="") as handle:
                return list(csv.DictReader(handle))
        except OSError as error:
            raise MlciError(f"cannot read {path}: {error.strerror}") from None
    return [_record(line, path, number) for number, line in enumerate(_lines(path), start=1)]
