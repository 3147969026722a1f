"""Finish the generated project: keep the files of the chosen framework, fix up paths, say what next."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

FRAMEWORK = {{ cookiecutter.model_framework | tojson }}
FRAMEWORKS = ("sklearn", "pytorch")
DVC_REMOTE = {{ cookiecutter.dvc_remote_url | tojson }}
PROJECT = {{ cookiecutter.project | tojson }}
MLCI_SOURCE = {{ cookiecutter.mlci_source | tojson }}


def choose_variants(root: Path, chosen: str) -> None:
    """`name.<framework>.ext` becomes `name.ext` for the chosen framework; the others are removed."""
    for path in sorted(root.rglob("*")):
        parts = path.name.split(".")
        if len(parts) < 3 or parts[-2] not in FRAMEWORKS or not path.is_file():
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


def vendor_mlci(root: Path, source: str) -> str | None:
    """A local mlci source (a directory or a wheel) is copied into vendor/: the project, its CI and its
    images then build anywhere, not only on the machine that generated it. The path it is installed from."""
    vendor = root / "vendor"
    vendor.mkdir(exist_ok=True)
    (vendor / "README.md").write_text(
        "# vendor/\n\nPackages installed from this folder rather than an index (mlci, when mlci_source was a local path).\n"
        "The Dockerfile copies it into the images; `make env-image-tag` hashes it.\n"
    )
    path = Path(source).expanduser()
    if "://" in source or not path.exists():
        return None
    if path.is_file():
        shutil.copy2(path, vendor / path.name)
        return f"./vendor/{path.name}"
    ignore = shutil.ignore_patterns(
        "tests", "__pycache__", ".*_cache", "*.egg-info", "build", "dist", ".venv*", ".git", "node_modules"
    )
    shutil.copytree(path, vendor / "mlci", ignore=ignore)
    return "./vendor/mlci"


def mlci_requirement(source: str, vendored: str | None) -> str:
    """The pip requirement of mlci with its packaging extra, from a URL, a name==version or a vendored path.

    A vendored path is relative to the project root, where make and the Dockerfile install from.
    """
    if vendored is not None:
        return f"mlci[package] @ {vendored}"
    if "://" in source:
        return f"mlci[package] @ {source}"
    return "mlci[package]" + source.removeprefix("mlci")


def write_mlci_requirement(root: Path, source: str) -> None:
    """requirements/mlci.txt (mlci with its packaging extra) and serving.in (mlci's serving runtime only)."""
    requirement = mlci_requirement(source, vendor_mlci(root, source))
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
    write_mlci_requirement(root, MLCI_SOURCE)
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
