"""The certificate: gate results bound to what was certified (model, data, params, commit, image, tools)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from . import manifest
from .errors import MlciError
from .gates import GateResult

SCHEMA_VERSION = 1
TOOLS = ("mlci", "mlflow", "dvc", "onnxruntime", "scikit-learn", "torch", "great-expectations", "skl2onnx")


def verdict(results: list[GateResult]) -> str:
    """error if any gate could not run, else fail if any failed, else pass."""
    statuses = {r.status for r in results}
    return "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"


def _tool_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _data_hashes(project: Path) -> dict[str, str]:
    lock = project / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    hashes = {}
    for stage in stages.values():
        for out in stage.get("outs", []):
            if str(out.get("path", "")).startswith("data/"):
                hashes[out["path"]] = str(out.get("md5", ""))
    return dict(sorted(hashes.items()))


def build(
    results: list[GateResult], served: manifest.ServedModel, project: Path, disabled: list[str]
) -> dict[str, Any]:
    params = project / "params.yaml"
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict(results),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gates": [r.to_dict() for r in results],
        "disabled_gates": disabled,
        "model": {
            "name": served.name,
            "version": served.version,
            "runtime": served.runtime,
            "sha256": served.sha256,
            "source_sha256": served.source_sha256,
        },
        "data": _data_hashes(project),
        "params": {
            "sha256": hashlib.sha256(params.read_bytes()).hexdigest() if params.is_file() else None,
            "values": yaml.safe_load(params.read_text()) if params.is_file() else None,
        },
        "git": {
            "commit": _git(project, "rev-parse", "HEAD") or None,
            "dirty": bool(_git(project, "status", "--porcelain", "--untracked-files=no")),
        },
        "image": {"digest": os.environ.get("MLCI_IMAGE_DIGEST") or None},
        "tools": _tool_versions(),
    }


def verify(certificate_path: Path, artifact: Path) -> str:
    """Check that `artifact` (a packaged model) is the one certified, and that it passed; a line saying so."""
    try:
        certificate = json.loads(certificate_path.read_text())
    except (OSError, ValueError) as error:
        raise MlciError(f"{certificate_path} is unreadable: {error}") from None
    if not isinstance(certificate, dict) or certificate.get("schema_version") != SCHEMA_VERSION:
        raise MlciError(f"{certificate_path} is not a certificate of schema version {SCHEMA_VERSION}")
    served = manifest.load(artifact, verify=True)
    recorded = certificate.get("model", {}).get("sha256")
    if served.sha256 != recorded:
        raise MlciError(f"{artifact} has sha256 {served.sha256}, but {certificate_path} certifies {recorded}")
    if certificate.get("verdict") != "pass":
        raise MlciError(f"{certificate_path} records the verdict {certificate.get('verdict')!r}, not 'pass'")
    return f"verified: {served.name} version {served.version} (sha256 {served.sha256}) is certified"
