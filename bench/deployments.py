"""Bench: `mlci deploy-pr` into a deployment repo that already holds 1,000 apps, and rendering plus schema
validation of all of that repo's overlays.

Peers in the same run: deploy-pr against the bare git work it wraps (clone, write the same files, commit,
push), and render-and-validate against rendering alone (`kubectl kustomize` of every overlay).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from bakery import bake, run  # noqa: E402
from mlci.gitops.proposal import DeployProposal  # noqa: E402

APPS = int(os.environ.get("BENCH_APPS", "1000"))
KUBECTL = str(ROOT / ".venv-tools" / "bin" / "kubectl")
MLCI = str(Path(sys.executable).with_name("mlci"))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def seeded_repo(scratch: Path, base: dict[str, bytes]) -> Path:
    """A bare deployment repo whose main branch holds APPS apps, each with a staging overlay."""
    bare, work = scratch / "deployments.git", scratch / "seed"
    git(scratch, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(scratch, "clone", "--quiet", str(bare), str(work))
    for index in range(APPS):
        name = f"app-{index:04d}"
        certificate = {"model": {"name": name, "version": "1"}, "git": {"commit": "0" * 40}}
        proposal = DeployProposal(name, "staging", "ghcr.io/my-org/tumor-classifier", "sha256:" + "a" * 64,
                                  certificate, b"{}", "", base)  # fmt: skip
        for relative, data in proposal.files().items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_bytes(data)
    git(work, "add", "-A")
    git(work, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "--quiet", "-m", "1,000 apps")
    git(work, "push", "--quiet", "origin", "main")
    return bare


def certified_project(scratch: Path) -> Path:
    """A baked project with a packaged model, its passing certificate and its deploy/ base."""
    sys.path.insert(0, str(ROOT / "ci" / "tests"))
    from mlci.certify.certificate import SCHEMA_VERSION
    from mlci.package import package
    from models import save_sklearn_forest

    project = bake(scratch / "bake")
    served = package(str(save_sklearn_forest(scratch / "model", trees=5)), project / "models" / "serving",
                     log=lambda _: None)  # fmt: skip
    out = project / "reports" / "certification"
    out.mkdir(parents=True)
    model = {"name": "tumor-classifier", "version": served.version, "sha256": served.sha256}
    certificate = {"schema_version": SCHEMA_VERSION, "verdict": "pass", "git": {"commit": "1" * 40}, "model": model}
    (out / "certificate.json").write_text(json.dumps(certificate))
    (out / "report.md").write_text("## Certification\n")
    return project


def time_deploy_pr(project: Path, bare: Path, digit: str) -> float:
    started = time.perf_counter()
    run([MLCI, "deploy-pr", "--env", "staging", "--image", f"ghcr.io/my-org/tumor-classifier@sha256:{digit * 64}",
         "--repo", str(bare), "--forge", "none"], project).check()  # fmt: skip
    return time.perf_counter() - started


def time_bare_git(project: Path, bare: Path, scratch: Path, digit: str) -> float:
    """The same change by hand: clone, copy the base and an overlay, commit, push a branch."""
    started = time.perf_counter()
    work = scratch / f"manual-{digit}"
    git(scratch, "clone", "--quiet", "--no-tags", str(bare), str(work))
    app = work / "apps" / "manual" / "base"
    shutil.copytree(project / "deploy", app)
    (work / "apps" / "manual" / "overlays" / "staging").mkdir(parents=True)
    (work / "apps" / "manual" / "overlays" / "staging" / "kustomization.yaml").write_text(
        f"resources: [../../base]\nimages:\n  - name: x\n    digest: sha256:{digit * 64}\n"
    )
    git(work, "checkout", "--quiet", "-b", f"manual-{digit}")
    git(work, "add", "-A")
    git(work, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "--quiet", "-m", "manual")
    git(work, "push", "--quiet", "origin", f"manual-{digit}")
    return time.perf_counter() - started


def render(overlay: Path) -> str:
    return subprocess.run([KUBECTL, "kustomize", str(overlay)], check=True, capture_output=True, text=True).stdout


def main() -> int:
    import yaml

    with tempfile.TemporaryDirectory() as name:
        scratch = Path(name)
        project = certified_project(scratch)
        base = {str(p.relative_to(project / "deploy")): p.read_bytes() for p in (project / "deploy").rglob("*")
                if p.is_file()}  # fmt: skip
        bare = seeded_repo(scratch, base)
        deploy = [time_deploy_pr(project, bare, d) for d in "bcd"]
        manual = [time_bare_git(project, bare, scratch, d) for d in "bcd"]
        checkout = scratch / "checkout"
        git(scratch, "clone", "--quiet", str(bare), str(checkout))
        overlays = sorted(checkout.glob("apps/*/overlays/*"))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            outputs = list(pool.map(render, overlays))
        render_only = time.perf_counter() - started
        objects = [d for text in outputs for d in yaml.safe_load_all(text) if d]
        (scratch / "objects.json").write_text(json.dumps(objects))
        validate = subprocess.run(
            f"node {ROOT / 'tests' / 'k8s_validate.mjs'} < {scratch / 'objects.json'}", shell=True, check=True,
            capture_output=True, text=True, env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
        )  # fmt: skip
        render_and_validate = time.perf_counter() - started
        failures = json.loads(validate.stdout)
    print(f"deployment repo      {APPS} apps, {len(overlays)} overlays, {len(objects)} objects")
    runs = ", ".join(f"{t:.2f}" for t in deploy)
    print(f"mlci deploy-pr       {statistics.median(deploy):8.2f} s  (median of 3; runs {runs})")
    print(f"bare git, same change{statistics.median(manual):8.2f} s  (clone, write, commit, push)")
    print(f"deploy-pr / git      {statistics.median(deploy) / statistics.median(manual):8.2f} x")
    print(f"render (kustomize)   {render_only:8.2f} s")
    print(f"render + validate    {render_and_validate:8.2f} s  ({len(failures)} schema failures)")
    print(f"validate overhead    {render_and_validate / render_only:8.2f} x")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
