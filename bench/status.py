"""Bench: `mlci status` on a deployment repo of 1,000 apps, each with a staging and a production overlay and a
history of merged proposals (4 merges per app: 4,000 commits on main). Target: under 2 s.

Peer in the same run: the same facts gathered the plain way a script would, per overlay: `git log -1` for the
last change and `git show` for the kustomization and the certificate, on a clone of the same repo.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = int(os.environ.get("BENCH_APPS", "1000"))
sys.path.insert(0, str(ROOT / "ci" / "src"))
from mlci.gitops.proposal import DeployProposal  # noqa: E402

MLCI = str(Path(sys.executable).with_name("mlci"))
ENVS = ("staging", "production")


def certificate(app: str, version: int) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "verdict": "pass",
            "created_at": "2026-11-01T10:00:00+00:00",
            "gates": [
                {"gate": "quality", "status": "pass", "measured": {"accuracy": 0.9, "roc_auc": 0.95}},
                {"gate": "champion", "status": "pass", "reason": "not worse than the champion"},
            ],
            "model": {"name": app, "version": str(version), "sha256": "a" * 64, "trained_at": "2026-11-01T09:00:00Z"},
            "data_version": {"id": "0123456789ab", "since": "2026-10-01T00:00:00+00:00"},
            "git": {"commit": "0" * 40, "dirty": False},
            "run": {"url": f"https://github.com/my-org/{app}/actions/runs/{version}"},
        },
        indent=2,
    ).encode()


def overlay(app: str, env: str, version: int, cert: bytes) -> bytes:
    """The overlay exactly as `mlci deploy-pr` writes it."""
    digest = "sha256:" + hashlib.sha256(str(version).encode()).hexdigest()
    proposal = DeployProposal(app, env, f"ghcr.io/my-org/{app}", digest, json.loads(cert), cert, "", {})
    return proposal.overlay().encode()


def seeded_repo(scratch: Path) -> Path:
    """The repo, written by one `git fast-import`: per app, versions 1 and 2 go to staging then production."""
    bare = scratch / "deployments.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    stream: list[bytes] = []
    mark = 0

    def data(payload: bytes) -> None:
        stream.append(b"data %d\n" % len(payload) + payload + b"\n")

    when = 1_780_000_000
    for version in (1, 2):
        for env in ENVS:
            for index in range(APPS):
                app = f"app-{index:04d}"
                cert = certificate(app, version)
                mark += 1
                when += 1
                message = f"Merge deploy/{app}/{env}\n\nApproved-by: Reviewer {index % 7} <r{index % 7}@example.com>\n"
                stream.append(b"commit refs/heads/main\nmark :%d\n" % mark)
                stream.append(b"committer Reviewer <r@example.com> %d +0000\n" % when)
                data(message.encode())
                folder = f"apps/{app}/overlays/{env}"
                for path, payload in (
                    (f"{folder}/kustomization.yaml", overlay(app, env, version, cert)),
                    (f"{folder}/certificate.json", cert),
                    (f"apps/{app}/base/kustomization.yaml", b"resources: [rollout.yaml]\n"),
                    (f"apps/{app}/base/rollout.yaml", b"kind: Rollout\n"),
                ):
                    stream.append(f"M 100644 inline {path}\n".encode())
                    data(payload)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=b"".join(stream), check=True)
    return bare


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def plain_status(bare: Path, scratch: Path) -> tuple[float, int]:
    """The peer: a clone, then per overlay one `git log -1` and two `git show`s. Seconds, overlays read."""
    started = time.perf_counter()
    clone = scratch / "plain"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(bare), str(clone)], check=True)
    read = 0
    for index in range(APPS):
        for env in ENVS:
            folder = f"apps/app-{index:04d}/overlays/{env}"
            git = ["git", "-C", str(clone)]
            subprocess.run([*git, "log", "-1", "--format=%H %cI %an", "main", "--", folder], capture_output=True)
            subprocess.run([*git, "show", f"main:{folder}/kustomization.yaml"], capture_output=True)
            shown = subprocess.run([*git, "show", f"main:{folder}/certificate.json"], capture_output=True)
            read += bool(json.loads(shown.stdout))
    return time.perf_counter() - started, read


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-status-") as name:
        scratch = Path(name)
        started = time.perf_counter()
        bare = seeded_repo(scratch)
        print(f"deployment repo: {APPS} apps x {len(ENVS)} envs, {APPS * 4} commits, "
              f"written in {time.perf_counter() - started:.1f} s")  # fmt: skip
        runs = []
        for _ in range(3):
            seconds, output = timed([MLCI, "status", "--repo", str(bare), "--format", "json"], scratch)
            runs.append(seconds)
        status = json.loads(output)
        assert status["summary"]["apps"] == APPS and status["summary"]["not_verified"] == 0, status["summary"]
        table, _ = timed([MLCI, "status", "--repo", str(bare)], scratch)
        peer, read = plain_status(bare, scratch)
        assert read == APPS * len(ENVS)
        median = statistics.median(runs)
        print(f"mlci status --format json: median {median:.2f} s (runs {', '.join(f'{r:.2f}' for r in runs)}); "
              f"table {table:.2f} s; target under 2 s: {'met' if median < 2 else 'MISSED'}")  # fmt: skip
        print(f"plain git per overlay (log -1 + 2 shows): {peer:.2f} s")
        print(f"ratio: mlci status is {peer / median:.1f}x faster than the plain script")


if __name__ == "__main__":
    main()
