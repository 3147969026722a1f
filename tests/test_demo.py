"""The main job end to end (`make demo`), into a folder of the test's own, its image steps and its canary analysis
skipped (tests/test_images.py builds the images, tests/test_canary.py runs the canary analysis on the same
AnalysisTemplate): every other step runs and the summary says where the loop ended."""

from __future__ import annotations

import os
import re
import sys

import pytest

from bakery import TEMPLATE, run

pytestmark = pytest.mark.slow


def test_the_demo_runs_the_whole_loop(tmp_path, record_property):
    done = run([sys.executable, str(TEMPLATE / "scripts" / "demo.py")], TEMPLATE, timeout=1800,
               env={"MLOPS_DEMO_DIR": str(tmp_path / "demo"), "MLOPS_DEMO_SKIP_IMAGES": "1",
                    "MLOPS_DEMO_SKIP_CANARY": "1", "PATH": os.environ["PATH"]})  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    steps = re.findall(r"^==> \[\s*(\d+)\] (.*) \.\.\.$", out, flags=re.M)
    assert len(steps) == len(re.findall(r"^    done in [0-9.]+ s$", out, flags=re.M)) == 31
    assert "SKIPPED the serving image: MLOPS_DEMO_SKIP_IMAGES is set" in out
    assert "SKIPPED the canary analysis: MLOPS_DEMO_SKIP_CANARY is set" in out
    assert "SKIPPED live quality: MLOPS_DEMO_SKIP_CANARY is set" in out  # tests/test_shadow.py runs it
    assert re.search(r"Refused: +mlci: error: v1\.1\.0 \([0-9a-f]{12}\) is not certified", out)
    assert re.search(r"tumor-classifier +production +1 +verified", out)  # rolled back to version 1
    assert re.search(r"tumor-classifier +staging +2 +verified +verified \(signed by demo-release-key\)", out)
    assert re.search(r"tumor-classifier +production +1 +verified +verified \(signed by demo-release-key\)", out)
    assert "v1 certify: pass" in out and "v2 certify: pass" in out
    assert (tmp_path / "demo" / "status.md").is_file()
    record_property("demo without images or canary (s)", float(re.search(r"Total: +(\d+) s", out).group(1)))
