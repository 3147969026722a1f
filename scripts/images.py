"""Build and run the generated project's images with buildah, as this machine allows: no Docker engine and
no registry, so RUN steps are chrooted and the base image is made with debootstrap. The storage is overlay where
the kernel lets root mount one (layers share files), else vfs (every layer and container a whole copy: tens of
GB for these images)."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bakery import Timed, run

# The host's CA bundle, mounted for the build only: some networks re-sign TLS, and nothing of it is baked in.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Debian releases whose python3.X is the python_version asked for, and the packages that make it a venv-able
# Python (debootstrap does not pull every dependency of an --include).
DEBIAN_FOR_PYTHON = {
    "3.11": ("bookworm", "python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl"),
    "3.13": ("trixie", "python3.13,python3.13-venv,python3-pip-whl,python3-setuptools-whl"),
}


def available() -> str | None:
    """Why images cannot be built here, or None when they can."""
    missing = [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages)"
    return None


@dataclass(frozen=True)
class Buildah:
    """buildah with its own storage under `root`, so that tests neither see nor touch the machine's images."""

    root: Path

    @property
    def driver(self) -> str:
        return storage_driver(self.root)

    @property
    def base_args(self) -> list[str]:
        storage = "storage" if self.driver == "vfs" else f"storage-{self.driver}"
        run_root = "run" if self.driver == "vfs" else f"run-{self.driver}"
        return [
            "buildah",
            "--root",
            str(self.root / storage),
            "--runroot",
            str(self.root / run_root),
            "--storage-driver",
            self.driver,
        ]

    def build_command(self) -> str:
        """IMAGE_BUILD for the project's Makefile: `buildah bud` taking docker-build options."""
        args = [*self.base_args, "bud", "--isolation", "chroot", "--format", "docker", "--layers"]
        if HOST_CA.is_file():
            args += ["--volume", f"{HOST_CA}:{HOST_CA}:ro", "--build-arg", f"PIP_CERT={HOST_CA}"]
        return shlex.join(args)

    def __call__(self, *args: str, timeout: float = 1800) -> Timed:
        return run([*self.base_args, *args], cwd=self.root, timeout=timeout)

    def exists(self, image: str) -> bool:
        return self("inspect", "--type", "image", image).returncode == 0

    def size_mb(self, image: str) -> float:
        """The image's size as its layers add up (uncompressed), as `buildah images` reports it."""
        done = self("images", "--format", "{{.Size}}", "--noheading", image).check()
        return _parse_size(done.stdout.strip().splitlines()[0])

    def debian_base(self, python_version: str, work: Path) -> str:
        """A Debian image with python{python_version} (like the python:*-slim images), made once by debootstrap."""
        image = f"localhost/debian-python:{python_version}"
        if self.exists(image):
            return image
        suite, python_packages = DEBIAN_FOR_PYTHON[python_version]
        rootfs = work / f"rootfs-{suite}"
        shutil.rmtree(rootfs, ignore_errors=True)
        packages = f"{python_packages},ca-certificates"
        run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(rootfs), DEBIAN_MIRROR],
            cwd=work,
            timeout=1800,
        ).check()
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        archive = work / f"rootfs-{suite}.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        container = self("from", "scratch").check().stdout.strip()
        try:
            self("add", container, str(archive), "/").check()
            self(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                f"python{python_version}",
                container,
            ).check()
            self("commit", "--format", "docker", container, image).check()
        finally:
            self("rm", container)
            archive.unlink(missing_ok=True)
            shutil.rmtree(rootfs, ignore_errors=True)
        return image


@functools.cache
def storage_driver(root: Path) -> str:
    """overlay when root can mount one here (BUILDAH_STORAGE_DRIVER overrides), else vfs."""
    forced = os.environ.get("BUILDAH_STORAGE_DRIVER")
    if forced:
        return forced
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "vfs"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="overlay-probe-", dir=root) as probe:
        lower, upper, work, merged = (Path(probe) / name for name in ("lower", "upper", "work", "merged"))
        for folder in (lower, upper, work, merged):
            folder.mkdir()
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True)
        if mounted.returncode != 0:
            return "vfs"
        subprocess.run(["umount", str(merged)], capture_output=True)
    return "overlay"


def timed_make(project: Path, target: str, buildah: Buildah, base_image: str) -> Timed:
    """`make <target>` of the project with buildah as its image builder."""
    command = ["make", target, f"IMAGE_BUILD={buildah.build_command()}", f"BASE_IMAGE={base_image}"]
    return run(command, project, timeout=3600)


def _parse_size(text: str) -> float:
    number, unit = text.split()[0], text.split()[1] if len(text.split()) > 1 else "B"
    scale = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    return float(number) * scale.get(unit, 1.0)
