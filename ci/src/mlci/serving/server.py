"""Run the model server: bind once, fork the workers, drain them on SIGTERM.

The workers listen on the same port, each on its own socket once its model is loaded (SO_REUSEPORT: the kernel
spreads connections evenly over them), and share the metrics slab. SIGTERM or SIGINT stops accepting
connections, lets in-flight requests finish (up to the graceful timeout) and exits 0; a worker that dies on its
own stops the whole server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from ..model.manifest import ServedModel
from .app import Limits, ServingApp
from .feedback import PredictionLog, PredictionStore
from .metrics import Layout, ServerMetrics, shared_slab
from .protocol import guarded
from .runtime import load_runtime

log = logging.getLogger("mlci.serve")


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    limits: Limits = field(default_factory=Limits)
    drift_window: int = 1000
    graceful_timeout: int = 30
    log_level: str = "info"
    read_timeout: float = 10.0  # seconds a request may take to arrive, headers and body; then 408
    max_connections: int = 1000  # open connections per worker; beyond, 503 with Retry-After
    feedback_capacity: int = 100_000  # recent predictions each worker keeps for /feedback (0: none)
    feedback_window_s: float = 3600.0  # feedback older than this after its prediction is unmatched
    prediction_log: str | None = None  # a file (or "-", stdout) of sampled predictions, JSON lines
    prediction_log_sample: float = 1.0  # the share of rows logged


class _Server(uvicorn.Server):
    """uvicorn's server, minus its re-raising of the signal after a graceful shutdown (exit 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    """The server's socket on host:port. With `reuse_port`, each worker listens on a socket of its own on the same
    port (SO_REUSEPORT), and the kernel spreads new connections evenly over them; the supervisor's own socket then
    only holds the port (bound, never listening, so it is given no connection)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        from ..errors import MlciError

        raise MlciError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _run_worker(
    index: int,
    model: ServedModel,
    options: ServeOptions,
    sock: socket.socket,
    slab: Any,
    layout: Layout,
    store: PredictionStore | None,
) -> int:
    info = {
        "name": model.name,
        "version": model.version,
        "sha256": model.sha256,
        "runtime": model.runtime,
        "flavor": model.flavor,
    }
    log_file = options.prediction_log
    predictions = PredictionLog(log_file, options.prediction_log_sample, model.version) if log_file else None
    metrics = ServerMetrics(
        layout, slab, index, info, model.baseline, options.drift_window, model.trained_at, store, predictions
    )
    exit_code = 0
    server: _Server | None = None

    def fatal(code: int) -> None:
        nonlocal exit_code
        exit_code = code
        if server is not None:
            server.should_exit = True

    app = ServingApp(model, lambda: load_runtime(model, options.threads), metrics, options.limits, fatal)
    if options.workers > 1:
        # Each worker loads, then listens on its own socket of the shared port (SO_REUSEPORT): no connection
        # reaches a worker still loading, and the kernel spreads them evenly. A lone worker loads in the
        # background and answers /healthz meanwhile.
        try:
            app.preload()
        except Exception:
            log.exception("the model failed to load")
            return 3
        host, port = sock.getsockname()[:2]
        placeholder, sock = sock, bind(host, port, listen=True, reuse_port=True)
        placeholder.close()
    config = uvicorn.Config(
        app,
        loop=_loop(),
        http=guarded(options.read_timeout, options.max_connections, app),
        lifespan="on",
        access_log=False,
        log_level=options.log_level,
        timeout_graceful_shutdown=options.graceful_timeout,
        server_header=False,
        proxy_headers=False,
    )
    server = _Server(config)
    server.run(sockets=[sock])
    return exit_code


def serve(model: ServedModel, options: ServeOptions) -> int:
    """Serve until SIGTERM/SIGINT; the exit status (0 after a clean drain)."""
    several = options.workers > 1
    sock = bind(options.host, options.port, listen=not several, reuse_port=several)
    classes = model.output.classes if model.output.kind == "probabilities" else ()
    edges = model.output.edges if model.output.kind == "values" else ()
    baseline = model.baseline
    layout = Layout(classes, len(baseline.features) if baseline else 0, baseline.bins if baseline else 0, edges)
    slab = shared_slab(options.workers, layout.width)
    store = (
        PredictionStore(options.workers, options.feedback_capacity, options.feedback_window_s)
        if options.feedback_capacity
        else None
    )
    host, port = sock.getsockname()[:2]
    log.info(
        "serving %s version %s (%s, sha256 %s) on http://%s:%s with %d worker(s), %d thread(s) each",
        model.name,
        model.version,
        model.runtime,
        model.sha256[:12],
        host,
        port,
        options.workers,
        options.threads,
    )
    if options.workers == 1:
        return _run_worker(0, model, options, sock, slab, layout, store)
    return _supervise(model, options, sock, slab, layout, store)


def _supervise(
    model: ServedModel,
    options: ServeOptions,
    sock: socket.socket,
    slab: Any,
    layout: Layout,
    store: PredictionStore | None,
) -> int:
    children: dict[int, int] = {}
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signals = {signal.SIGINT, signal.SIGTERM}
    previous = {sig: signal.signal(sig, stop) for sig in signals}
    # A stop that arrives while workers fork waits until every worker is known (and each has its own handlers):
    # else a worker forked after it would run on, or one not yet reset would run the supervisor's handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        for index in range(options.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                for sig in previous:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
                code = 1
                try:
                    code = _run_worker(index, model, options, sock, slab, layout, store)
                finally:
                    os._exit(code)
            children[pid] = index
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)  # a pending stop is handled here, with every worker
    sock.close()
    status = 0
    while children:
        pid, wait_status = os.wait()
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(wait_status)
        # A worker still loading its model when the server stops dies of the SIGTERM itself: that is a clean stop.
        stopped_while_loading = stopping and code == -signal.SIGTERM
        if (code != 0 and not stopped_while_loading) or not stopping:
            if not stopping:
                log.error("worker %d exited with status %d; stopping the server", pid, code)
            status = status or (code if code > 0 else 1)
            stop(signal.SIGTERM, None)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    return status
