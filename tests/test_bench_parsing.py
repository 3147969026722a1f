"""The benches read wrk's report: the latency distribution block only, never the thread-stats line above it."""

from __future__ import annotations

import sys

import pytest

from bakery import TEMPLATE

sys.path.insert(0, str(TEMPLATE / "bench"))
from serve_vs_mlflow import percentiles  # noqa: E402

WRK = """Running 10s test @ http://127.0.0.1:8080/invocations
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.34us  250.11us  12.50ms   74.50%
    Req/Sec    13.04k   401.22    13.50k    70.00%
  Latency Distribution
     50%  580.00us
     75%  690.00us
     90%  810.00us
     99%    1.52ms
  130420 requests in 10.00s, 22.14MB read
Requests/sec:  13042.00
"""


def test_the_percentiles_come_from_the_distribution_block_not_the_stdev_share():
    assert percentiles(WRK) == pytest.approx({50: 0.58, 75: 0.69, 90: 0.81, 99: 1.52})


def test_a_report_without_the_distribution_is_refused():
    with pytest.raises(ValueError, match="no latency distribution"):
        percentiles(WRK.split("  Latency Distribution")[0])
