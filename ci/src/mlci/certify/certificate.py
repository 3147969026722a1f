"""The certificate: gate results bound to what was certified (model, data, params, commit, image, tools)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from ..errors import MlciError
from ..git import Git
from ..model import manifest
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


def _data_version(project: Path, hashes: dict[str, str]) -> dict[str, str | None]:
    """The source data's version (a short hash of data/raw's DVC hashes) and when it entered the repo's history:
    the first commit whose dvc.lock holds that hash, or now for data not yet committed."""
    raw = {path: md5 for path, md5 in hashes.items() if path.startswith("data/raw/")} or hashes
    if not raw:
        return {"id": None, "since": None}
    identity = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:12]
    first = next(iter(raw.values()))
    dates = Git(project).value("log", "--reverse", "--format=%cI", f"-S{first}", "--", "dvc.lock").splitlines()
    since = dates[0] if dates else datetime.now(UTC).isoformat(timespec="seconds")
    return {"id": identity, "since": since}


def _run() -> dict[str, str | None]:
    """Where this certification's logs are: the CI run's page, when it ran in GitHub Actions."""
    run_id, repository = os.environ.get("GITHUB_RUN_ID"), os.environ.get("GITHUB_REPOSITORY")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    url = f"{server}/{repository}/actions/runs/{run_id}" if run_id and repository else None
    return {"url": url, "actor": os.environ.get("GITHUB_ACTOR") or None}


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
            "trained_at": served.trained_at,
        },
        "data": (data := _data_hashes(project)),
        "data_version": _data_version(project, data),
        "params": {
            "sha256": hashlib.sha256(params.read_bytes()).hexdigest() if params.is_file() else None,
            "values": yaml.safe_load(params.read_text()) if params.is_file() else None,
        },
        "git": {
            "commit": Git(project).value("rev-parse", "HEAD") or None,
            "dirty": bool(Git(project).value("status", "--porcelain", "--untracked-files=no")),
        },
        "image": {"digest": os.environ.get("MLCI_IMAGE_DIGEST") or None},
        "tools": _tool_versions(),
        "run": _run(),
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
