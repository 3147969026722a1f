"""Bench: bake time, cold `dvc repro`, no-op `dvc repro` (target: under 1 s).

The peer of the no-op run is the same pipeline run cold in the same session: the ratio says how
much a push that changes nothing saves.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bakery import bake, commit_all, project_env, run  # noqa: E402

NOOP_TARGET_S = 1.0


def main() -> None:
    framework = sys.argv[1] if len(sys.argv) > 1 else "sklearn"
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        project = bake(Path(scratch), model_framework=framework)
        bake_s = time.perf_counter() - started
        run(["make", "setup"], project).check()
        commit_all(project, "Start from the template")
        env = project_env(project)
        cold = run(["dvc", "repro"], project, env=env).check().seconds
        noops = [run(["dvc", "repro"], project, env=env).check().seconds for _ in range(5)]
    noop = statistics.median(noops)
    print(f"framework            {framework}")
    print(f"bake                 {bake_s:8.2f} s")
    print(f"cold dvc repro       {cold:8.2f} s")
    verdict = "met" if noop < NOOP_TARGET_S else "MISSED"
    print(f"no-op dvc repro      {noop:8.2f} s  (median of 5; target < {NOOP_TARGET_S:.0f} s: {verdict})")
    print(f"cold / no-op         {cold / noop:8.1f} x")


if __name__ == "__main__":
    main()
