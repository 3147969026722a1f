"""Finish the generated project: keep the files of the chosen framework, fix up paths, say what next.

It does the same when cruft renders the project again for `cruft update` (into a temporary folder, once at the
project's commit of the template and once at the new one): what differs between the two renders is what cruft
merges into the project.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

FRAMEWORK = {{ cookiecutter.model_framework | tojson }}
FRAMEWORKS = ("sklearn", "pytorch")
DVC_REMOTE = {{ cookiecutter.dvc_remote_url | tojson }}
PROJECT = {{ cookiecutter.project | tojson }}
# Left by pre_gen_project.py: what to copy into vendor/ for mlci, and the requirement that names it.
MLCI_PLAN = Path(".mlci-source.json")
# Not copied from an mlci source: its tests, caches and build outputs.
NOT_VENDORED = shutil.ignore_patterns(
    "tests", "__pycache__", ".*_cache", "*.egg-info", "build", "dist", ".venv*", ".git", "node_modules"
)


def choose_variants(root: Path, chosen: str) -> None:
    """`name.<framework>.ext` becomes `name.ext` for the chosen framework; the others are removed (not in vendor/:
    what is vendored is copied as it is)."""
    for path in sorted(root.rglob("*")):
        parts = path.name.split(".")
        if len(parts) < 3 or parts[-2] not in FRAMEWORKS or not path.is_file():
            continue
        if path.relative_to(root).parts[0] == "vendor":
            continue
        if parts[-2] == chosen:
            path.rename(path.with_name(".".join(parts[:-2] + parts[-1:])))
        else:
            path.unlink()
    if chosen != "pytorch":
        (root / "requirements" / "torch.txt").unlink()


def point_dvc_remote(root: Path, url: str) -> None:
    """DVC reads a relative remote path from .dvc/; the value given is relative to the project."""
    if urlparse(url).scheme or Path(url).is_absolute():
        return
    config = root / ".dvc" / "config"
    config.write_text(config.read_text().replace(f"url = {url}\n", f"url = ../{url}\n"))


def vendor_mlci(root: Path, source: str | None) -> None:
    """Copy a local mlci into vendor/, so that the project, its CI and its images build anywhere, not only on the
    machine that generated it. 'template' is the template's own ci/, which the template renders into vendor/mlci
    (a link to ci/ in the template): at the commit rendered, so `cruft update` brings its changes."""
    rendered = root / "vendor" / "mlci"
    if not rendered.is_dir():
        raise SystemExit(
            "error: vendor/mlci of the template is not a folder: its checkout lost the link vendor/mlci -> ../../ci "
            "(git config core.symlinks true, then check it out again)"
        )
    if source is None:
        shutil.rmtree(rendered)
        return
    if source == "template":
        whole = rendered.rename(root / "vendor" / ".mlci-rendered")
        shutil.copytree(whole, rendered, ignore=NOT_VENDORED)
        shutil.rmtree(whole)
        return
    shutil.rmtree(rendered)
    path = Path(source)
    if path.is_file():
        shutil.copy2(path, root / "vendor" / path.name)
    else:
        shutil.copytree(path, rendered, ignore=NOT_VENDORED)


def write_mlci_requirement(root: Path, requirement: str) -> None:
    """requirements/mlci.txt (mlci with its packaging extra) and serving.in (mlci's serving runtime only)."""
    (root / "requirements" / "mlci.txt").write_text(
        "# The mlci toolkit (package, serve, certify), installed after the locks without dependencies:\n"
        "# its dependencies are locked in main.txt. Set by the cookiecutter value mlci_source.\n"
        f"{requirement}\n"
    )
    (root / "requirements" / "serving.in").write_text(
        "# The serving image's runtime: mlci without its packaging extra, at the versions of the main lock.\n"
        "-c main.txt\n"
        f"{requirement.replace('mlci[package]', 'mlci', 1)}\n"
    )


def init_git(root: Path) -> None:
    """DVC needs the project to be the root of a git repository (not a folder of an enclosing one)."""
    if shutil.which("git") is not None and not (root / ".git").exists():
        subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=root, check=True)


def main() -> None:
    root = Path.cwd()
    choose_variants(root, FRAMEWORK)
    point_dvc_remote(root, DVC_REMOTE)
    mlci = json.loads((root / MLCI_PLAN).read_text())
    (root / MLCI_PLAN).unlink()
    vendor_mlci(root, mlci["vendor"])
    write_mlci_requirement(root, mlci["requirement"])
    init_git(root)
    print(
        f"\nCreated {root}\nNext:\n"
        f"  cd {PROJECT}\n"
        "  make setup   # .venv from the hash-pinned locks\n"
        "  make repro   # run the pipeline\n"
        "  make test    # unit tests\n"
        "  git add -A && git commit -m 'Start from the template'\n"
    )


if __name__ == "__main__":
    main()
