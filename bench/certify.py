"""Bench: how long `make certify` (every gate) takes on a fresh bake; target under 60 s.

Its peer in the same run is the cold `dvc repro` that produced what it certifies: the ratio says what
certification adds to a pipeline run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bakery import bake, commit_all, project_env, run  # noqa: E402

TARGET_S = 60.0


def main() -> int:
    framework = sys.argv[1] if len(sys.argv) > 1 else "sklearn"
    with tempfile.TemporaryDirectory() as scratch:
        project = bake(Path(scratch), model_framework=framework)
        run(["make", "setup"], project).check()
        commit_all(project, "Start from the template")
        env = project_env(project)
        cold = run(["dvc", "repro"], project, env=env).check().seconds
        commit_all(project, "Reproduce the pipeline")
        certify = run(["make", "certify"], project, env=env)
        certify.check()
    verdict = [line for line in certify.stdout.splitlines() if line.startswith("certify: ")][-1]
    print(f"framework            {framework}")
    print(f"cold dvc repro       {cold:8.2f} s")
    print(f"make certify         {certify.seconds:8.2f} s  ({verdict})")
    met = certify.seconds < TARGET_S
    print(f"certify / repro      {certify.seconds / cold:8.2f} x")
    print(f"target (< {TARGET_S:.0f} s): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
