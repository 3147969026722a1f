"""Prometheus metrics of a model server, shared by its worker processes.

Every worker writes only its own row of one shared float64 slab (anonymous shared memory made
before the workers fork), so counting needs no lock; a scrape of any worker sums the rows into
prometheus_client's metric families. Recording into the slab costs a fraction of prometheus_client's
multiprocess mode (bench/serving_internals.py measures both).

A request's count and latency go into the slab at once. What it scored (its predictions and its rows, for the
predicted-class counts, the score and value histograms and the drift window) is queued and counted in one
vectorised pass by `flush`: once a second, and before a scrape of the worker itself. So a scrape always sees
its own worker's every row, and another worker's as of its last flush, at most a second ago. A request then
pays for two appends instead of a dozen numpy calls, whose work also evicts the model's own state from the
CPU between requests (bench/serve_limit.py measures the difference).
"""

from __future__ import annotations

import mmap
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..model.baseline import Baseline
from .dataplane import Batch
from .drift import DriftWindow, psi
from .feedback import PredictionLog, PredictionStore, row_keys

ROUTES = (
    "/invocations",
    "/v2/models/{name}/infer",
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/healthz",
    "/readyz",
    "/ping",
    "/version",
    "/metrics",
    "/openapi.json",
    "/feedback",
    "other",
)
ROUTE_INDEX = {route: i for i, route in enumerate(ROUTES)}
PREDICTION_ROUTES = ("/invocations", "/v2/models/{name}/infer")
CODES = (200, 400, 404, 405, 411, 413, 415, 500, 503)
CODE_INDEX = {code: i for i, code in enumerate(CODES)}
# Queued outputs are counted at once when this many rows wait (a flush is otherwise due within a second).
FLUSH_ROWS = 65_536
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FEEDBACK_CLASSES = ("correct", "wrong", "unmatched")
FEEDBACK_VALUES = ("matched", "unmatched", "absolute_error", "squared_error")
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Layout:
    """Where each series lives in a worker's row of the slab."""

    classes: tuple[str, ...]
    features: int
    bins: int
    values: tuple[float, ...] = ()  # bounds of the predicted-value histogram (a regression), none for classes

    @property
    def latency(self) -> int:
        return len(ROUTES) * len(CODES)

    @property
    def latency_stride(self) -> int:
        return len(LATENCY_BUCKETS) + 3  # buckets, +Inf, sum, count

    @property
    def predictions(self) -> int:
        return self.latency + len(ROUTES) * self.latency_stride

    @property
    def score(self) -> int:
        return self.predictions + len(self.classes)

    @property
    def value(self) -> int:
        return self.score + len(SCORE_BUCKETS) + 3

    @property
    def window_rows(self) -> int:
        return self.value + (len(self.values) + 3 if self.values else 0)

    @property
    def drift(self) -> int:
        return self.window_rows + 1

    @property
    def feedback(self) -> int:
        return self.drift + self.features * self.bins

    @property
    def feedback_cells(self) -> tuple[str, ...]:
        """The feedback figures counted: outcomes for classes; matched, unmatched and error sums for values."""
        return FEEDBACK_CLASSES if self.classes else FEEDBACK_VALUES

    @property
    def width(self) -> int:
        return self.feedback + len(self.feedback_cells)


def shared_slab(workers: int, width: int) -> np.ndarray:
    """A zeroed (workers, width) float64 array in anonymous shared memory, inherited across fork."""
    buffer = mmap.mmap(-1, max(workers * width * 8, 8))
    return np.frombuffer(buffer, dtype=np.float64, count=workers * width).reshape(workers, width)


class ServerMetrics:
    """The metrics one worker records, and the exposition of all workers' metrics together."""

    def __init__(
        self,
        layout: Layout,
        slab: np.ndarray,
        worker: int,
        info: dict[str, str],
        baseline: Baseline | None,
        window: int,
        trained_at: str | None = None,
        store: PredictionStore | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.layout = layout
        self.worker = worker
        self.store, self.prediction_log = store, prediction_log
        self._trained = _timestamp(trained_at)
        self.slab = slab
        self.row = slab[worker]
        self._cells = memoryview(self.row).cast("B").cast("d")
        self._info = dict(info)
        self.baseline = baseline
        self._expected = baseline.fraction_matrix() if baseline else None
        drift_cells = self.row[layout.drift : layout.feedback].reshape(layout.features, layout.bins)
        self.window = DriftWindow(baseline, window, drift_cells) if baseline else None
        # Scored batches wait here to be binned (a matrix, or columns by name), newest last, at most a window's
        # worth of rows beyond the oldest batch: older rows would be evicted from the window before anyone read it.
        self._pending: deque[Batch] = deque()
        self._pending_rows = 0
        self._window_size = window
        # Model outputs wait here to be counted: probabilities of the layout's classes, or predicted numbers.
        self._outputs: list[np.ndarray] = []
        self._output_rows = 0
        # And their requests' keys and ids (feedback.py), one per output.
        self._keys: list[int] = []
        self._ids: list[str] = []
        # The layout's offsets as plain ints: they are read on every request.
        self._latency, self._stride = layout.latency, layout.latency_stride
        self._predictions, self._score = layout.predictions, layout.score
        self._classes = len(layout.classes)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def record_request(self, route: int, code: int, seconds: float) -> None:
        cells = self._cells
        cells[route * len(CODES) + CODE_INDEX.get(code, CODE_INDEX[500])] += 1.0
        base = self._latency + route * self._stride
        cells[base + bisect_left(LATENCY_BUCKETS, seconds)] += 1.0
        cells[base + len(LATENCY_BUCKETS) + 1] += seconds
        cells[base + len(LATENCY_BUCKETS) + 2] += 1.0

    def record_scored(self, batch: Batch, output: np.ndarray, key: int = 0, request_id: str = "") -> None:
        """Queue what a request scored: its output for the prediction metrics (and, under its request's key, for
        feedback), its rows for the drift window (a window's worth at most). Counted at the next `flush`; one that
        lags far behind is flushed here."""
        if self._classes:
            if output.ndim == 2 and output.shape[1] == self._classes:
                self._outputs.append(output)
                self._output_rows += output.shape[0]
                self._keys.append(key)
                self._ids.append(request_id)
        elif self.layout.values and output.size == output.shape[0]:  # a number per row: (rows,) or (rows, 1)
            self._outputs.append(output.reshape(-1))
            self._output_rows += output.shape[0]
            self._keys.append(key)
            self._ids.append(request_id)
        if self.window is not None:
            pending = self._pending
            pending.append(batch)
            self._pending_rows += batch.rows
            while self._pending_rows - pending[0].rows >= self._window_size:
                self._pending_rows -= pending.popleft().rows
        if self._output_rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Count the queued outputs and bin the queued rows into the drift window."""
        if self._outputs:
            outputs, self._outputs, self._output_rows = self._outputs, [], 0
            keys, self._keys, ids, self._ids = self._keys, [], self._ids, []
            joined = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
            predicted = self._count_predictions(joined) if self._classes else self._count_values(joined)
            if self.store is not None or self.prediction_log is not None:
                self._keep(keys, ids, [len(o) for o in outputs], predicted)
        self._flush_drift()

    def _keep(self, keys: list[int], ids: list[str], rows: list[int], predicted: np.ndarray) -> None:
        """The rows just counted into the prediction store, and the sampled ones into the prediction log."""
        every = row_keys(np.array(keys, dtype=np.uint64), np.array(rows, dtype=np.int64))
        if self.store is not None:
            self.store.record(self.worker, every, predicted, time.time())
        if self.prediction_log is not None:
            classes = self.layout.classes
            shown = [classes[int(i)] for i in predicted] if classes else predicted.tolist()
            self.prediction_log.write(ids, rows, every, shown)

    def record_feedback(self, figures: dict[str, float]) -> None:
        """Add one feedback request's figures (feedback.score) to this worker's counts."""
        base = self.layout.feedback
        for i, name in enumerate(self.layout.feedback_cells):
            self._cells[base + i] += figures[name]

    def _count_predictions(self, proba: np.ndarray) -> np.ndarray:
        """Count each row's predicted class and the probability it was given; the classes' indices."""
        cells, score_at, stride = self._cells, self._score, len(SCORE_BUCKETS)
        best_index = proba.argmax(axis=1)
        best_score = proba.max(axis=1).astype(np.float64)
        row = self.row
        row[self._predictions : score_at] += np.bincount(best_index, minlength=self._classes)
        row[score_at : score_at + stride + 1] += np.bincount(
            np.searchsorted(SCORE_BUCKETS, best_score, side="left"), minlength=stride + 1
        )
        cells[score_at + stride + 1] += float(best_score.sum())
        cells[score_at + stride + 2] += proba.shape[0]
        return np.asarray(best_index, dtype=np.float64)

    def _count_values(self, output: np.ndarray) -> np.ndarray:
        """Count each row's predicted number into the predicted-value histogram; the numbers."""
        values, base = self.layout.values, self.layout.value
        predicted = output.astype(np.float64)
        counts = np.bincount(np.searchsorted(values, predicted, side="left"), minlength=len(values) + 1)
        self.row[base : base + len(values) + 1] += counts
        self._cells[base + len(values) + 1] += float(predicted.sum())
        self._cells[base + len(values) + 2] += predicted.size
        return predicted

    def _flush_drift(self) -> None:
        if self.window is None or self.baseline is None or not self._pending_rows:
            return
        pending, self._pending, self._pending_rows = self._pending, deque(), 0
        matrices = [b.matrix for b in pending if b.matrix is not None]
        if matrices:
            self.window.add(np.concatenate(matrices) if len(matrices) > 1 else matrices[0])
        columns = [b.columns for b in pending if b.columns is not None]
        if columns:
            joined = {name: [v for batch in columns for v in batch[name]] for name in self.baseline.features}
            self.window.add_bins(self.baseline.bin_columns(joined))
        self._cells[self.layout.window_rows] = float(self.window.rows)

    def exposition(self) -> bytes:
        """All workers' metrics in the Prometheus text format (version 0.0.4), from prometheus_client's families."""
        return generate_latest(self._registry)

    def collect(self) -> Iterator[Metric]:
        """The metric families of every worker's row summed (prometheus_client's collector protocol)."""
        self.flush()
        layout = self.layout
        total = self.slab.sum(axis=0)
        info = GaugeMetricFamily("mlci_model_info", "The model being served.", labels=list(self._info))
        info.add_metric(list(self._info.values()), 1)
        yield info
        if self._trained is not None:
            yield GaugeMetricFamily(
                "mlci_model_trained_timestamp_seconds",
                "When the served model was trained (Unix time).",
                value=self._trained,
            )
        requests = CounterMetricFamily(
            "mlci_requests_total", "HTTP requests by route and status code.", labels=["route", "code"]
        )
        for r, route in enumerate(ROUTES):
            for c, code in enumerate(CODES):
                value = total[r * len(CODES) + c]
                if value or (route in PREDICTION_ROUTES and code in (200, 500)):
                    requests.add_metric([route, str(code)], value)
        yield requests
        latency = HistogramMetricFamily(
            "mlci_request_duration_seconds", "Time from a request's arrival to its response.", labels=["route"]
        )
        for r, route in enumerate(ROUTES):
            base = layout.latency + r * layout.latency_stride
            if total[base + len(LATENCY_BUCKETS) + 2] or route in PREDICTION_ROUTES:
                latency.add_metric([route], *_histogram(LATENCY_BUCKETS, total, base))
        yield latency
        predictions = CounterMetricFamily(
            "mlci_predictions_total", "Rows scored, by predicted class.", labels=["class"]
        )
        for i, name in enumerate(layout.classes):
            predictions.add_metric([name], total[layout.predictions + i])
        yield predictions
        score = HistogramMetricFamily("mlci_prediction_score", "Probability of the predicted class, per row scored.")
        score.add_metric([], *_histogram(SCORE_BUCKETS, total, layout.score))
        yield score
        if layout.values:
            value = HistogramMetricFamily("mlci_prediction_value", "The number predicted, per row scored (regression).")
            value.add_metric([], *_histogram(layout.values, total, layout.value))
            yield value
        yield from self._feedback_families(total)
        if self.baseline is not None and self._expected is not None:
            counts = total[layout.drift : layout.feedback].reshape(layout.features, layout.bins)
            yield GaugeMetricFamily(
                "mlci_drift_window_rows",
                "Rows in the drift window (summed over workers).",
                value=total[layout.window_rows],
            )
            drift = GaugeMetricFamily(
                "mlci_feature_psi",
                "Population stability index of the window against the training baseline.",
                labels=["feature"],
            )
            for name, value in zip(self.baseline.features, psi(counts, self._expected), strict=True):
                drift.add_metric([name], float(value))
            yield drift

    def _feedback_families(self, total: np.ndarray) -> Iterator[Metric]:
        """Ground truth that came back (POST /feedback), by the version that made the predictions."""
        layout, version = self.layout, self._info.get("version", "")
        cells = dict(zip(layout.feedback_cells, total[layout.feedback : layout.width].tolist(), strict=True))
        outcomes = CounterMetricFamily(
            "mlci_feedback",
            "Rows of feedback by outcome: correct or wrong prediction, or no prediction of that id in the window."
            if layout.classes
            else "Rows of feedback: matched to a prediction in the window, or not.",
            labels=["version", "outcome"],
        )
        for outcome in ("correct", "wrong", "unmatched") if layout.classes else ("matched", "unmatched"):
            outcomes.add_metric([version, outcome], cells[outcome])
        yield outcomes
        if not layout.classes:
            for name, what in (("absolute_error", "absolute"), ("squared_error", "squared")):
                family = CounterMetricFamily(
                    f"mlci_feedback_{name}", f"Sum of the {what} errors of the matched rows.", labels=["version"]
                )
                family.add_metric([version], cells[name])
                yield family


def _histogram(bounds: tuple[float, ...], total: np.ndarray, base: int) -> tuple[list[tuple[str, float]], float]:
    """A histogram's cumulative buckets (+Inf last) and its sum, from its cells: buckets, +Inf, sum, count."""
    cumulative = np.cumsum(total[base : base + len(bounds) + 1]).tolist()
    buckets = [(_bound(bound), cumulative[i]) for i, bound in enumerate(bounds)]
    return [*buckets, ("+Inf", cumulative[-1])], float(total[base + len(bounds) + 1])


def _bound(bound: float) -> str:
    """A bucket's `le`: short where that is exact (0.0005, 1), every digit otherwise (no two bounds may read alike)."""
    short = f"{bound:g}"
    return short if float(short) == bound else repr(bound)


def _timestamp(iso: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None
