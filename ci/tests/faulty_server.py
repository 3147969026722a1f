"""A deliberately bad model server for the gates' tests: `500` answers 500 to every bad request, `slow`
sleeps 300 ms before each answer, `stall` answers at once but stops answering for 500 ms every 2 seconds (as
a long pause would). Both are several times the gates tests' p99 bound (100 ms): the latency is injected, not
hoped for from a busy machine. Usage: python faulty_server.py MODE PORT"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 0.3
PAUSE_SECONDS = 0.5
PAUSE = threading.Lock()  # held by `stall` for PAUSE_SECONDS every 2 seconds; every answer waits for it


def stall_now_and_then() -> None:
    while True:
        time.sleep(2 - PAUSE_SECONDS)
        with PAUSE:
            time.sleep(PAUSE_SECONDS)


class Handler(BaseHTTPRequestHandler):
    mode = "500"
    protocol_version = "HTTP/1.1"  # keep-alive, as a real model server
    disable_nagle_algorithm = True  # else each answer waits for the client's delayed ACK (40 ms)
    wbufsize = 1 << 16  # a response goes out in one write
    timeout = 2  # a body that never arrives (the oversized-body case declares more than it sends) ends the
    # connection after 2 s, not after the client's 30 s

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self._answer(200 if self.path in ("/healthz", "/readyz") else 500, {"ok": True})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20))
        if self.mode in ("slow", "stall"):
            if self.mode == "slow":
                time.sleep(SLOW_SECONDS)
            with PAUSE:
                self._answer(200, {"predictions": [[0.5, 0.5]]})
            return
        try:
            json.loads(body)
            self._answer(200, {"predictions": [[0.5, 0.5]]})
        except ValueError:
            self._answer(500, {"message": "traceback"})

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    Handler.mode = sys.argv[1]
    if Handler.mode == "stall":
        threading.Thread(target=stall_now_and_then, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.serve_forever()
