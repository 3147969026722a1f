"""Build and run the generated project's images with the engine the machine has: Docker (buildx), Podman, or
buildah. `engine()` picks one (MLOPS_IMAGE_ENGINE=docker|podman|buildah chooses), `available()` says why none
can build here.

Docker and Podman build the Dockerfile as it is, its base pulled from the registry. buildah works where neither
runs nor a registry is reachable, as on this template's CI machine: RUN steps are chrooted and the base image is
made with debootstrap. Its storage is overlay where the kernel lets root mount one (layers share files), else
vfs (every layer and container a whole copy: tens of GB for these images), under a cache folder of the user
(MLOPS_IMAGE_CACHE, else ~/.cache/mlops-template), so that the debootstrap base is made once per machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bakery import Timed, run

# The host's CA bundle, mounted for the build only: some networks re-sign TLS, and nothing of it is baked in.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian releases whose python3.X is the python_version asked for, and the packages that make it a venv-able
# Python (debootstrap does not pull every dependency of an --include).
DEBIAN_FOR_PYTHON = {
    "3.11": ("bookworm", "python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl"),
    "3.13": ("trixie", "python3.13,python3.13-venv,python3-pip-whl,python3-setuptools-whl"),
}


def debian_mirror(apt: Path = Path("/etc/apt")) -> str:
    """Where debootstrap fetches Debian from: $DEBIAN_MIRROR, else the first Debian archive that this machine's apt
    sources name (one-line `deb` entries and deb822 `URIs:`), so that no mirror is written into the template."""
    given = os.environ.get("DEBIAN_MIRROR", "").strip()
    if given:
        return given
    sources = [
        apt / "sources.list",
        *sorted(apt.glob("sources.list.d/*.list")),
        *sorted(apt.glob("sources.list.d/*.sources")),
    ]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for found in re.finditer(r"^\s*(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)", text, flags=re.MULTILINE):
            if found.group(1).rstrip("/").endswith("/debian"):
                return found.group(1)
    raise RuntimeError(
        f"debootstrap needs a Debian mirror: none of the apt sources in {apt} names one (an archive ending in "
        "/debian); set DEBIAN_MIRROR to one"
    )


ENGINES = ("docker", "podman", "buildah")


@dataclass(frozen=True)
class Container:
    """A working container: `run` and `start` a command in it, on the host's network."""

    name: str
    prefix: tuple[str, ...]  # the command line before the command to run in it

    def run(self, *command: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *command], capture_output=True, text=True, timeout=timeout)

    def start(self, *command: str) -> subprocess.Popen[bytes]:
        """The command running in the background, its output discarded."""
        return subprocess.Popen([*self.prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Engine(Protocol):
    """What the demo and the tests do with images, whichever engine does it."""

    name: str

    def build_command(self) -> str:
        """IMAGE_BUILD for the project's Makefile: a docker-build-compatible command."""
        ...

    def base_image(self, python_version: str, work: Path) -> str | None:
        """BASE_IMAGE for the project's Makefile, or None for the Dockerfile's own (pulled from its registry)."""
        ...

    def describe(self) -> str: ...

    def __call__(self, *args: str, timeout: float = 1800) -> Timed: ...

    def exists(self, image: str) -> bool: ...

    def size_mb(self, image: str) -> float: ...

    def config(self, image: str) -> dict[str, object]:
        """The image's config: User, Labels, Healthcheck (Docker's names)."""
        ...

    def digest(self, image: str) -> str:
        """The image's digest (sha256:...), as a deploy PR pins it."""
        ...

    def container(self, image: str, volume: Path | None = None) -> contextlib.AbstractContextManager[Container]:
        """A working container of the image (with `volume` mounted at /workspace), removed after use."""
        ...

    def remove(self, *images: str) -> None: ...

    def prune(self) -> None:
        """Remove the containers and images the tests made (a debootstrap base stays: it is made once)."""
        ...


def engine() -> Engine | None:
    """The engine to build with: MLOPS_IMAGE_ENGINE's, else the first of Docker, Podman and buildah that works."""
    chosen = os.environ.get("MLOPS_IMAGE_ENGINE")
    for name in (chosen,) if chosen else ENGINES:
        if name in ("docker", "podman") and _answers(name):
            return Cli(name)
        if name == "buildah" and not _missing_for_buildah():
            return Buildah(cache_root() / "buildah")
    return None


def available() -> str | None:
    """Why images cannot be built here, or None when they can."""
    chosen = os.environ.get("MLOPS_IMAGE_ENGINE")
    if chosen and chosen not in ENGINES:
        return f"MLOPS_IMAGE_ENGINE={chosen!r} is not one of {', '.join(ENGINES)}"
    if engine() is not None:
        return None
    if chosen in ("docker", "podman"):
        return f"MLOPS_IMAGE_ENGINE={chosen} but `{chosen} info` fails (is its daemon or service running?)"
    missing = _missing_for_buildah()
    return f"no Docker or Podman engine answers, and {' and '.join(missing)} not installed (Debian packages)"


def _answers(cli: str) -> bool:
    if shutil.which(cli) is None:
        return False
    return subprocess.run([cli, "info"], capture_output=True, timeout=60).returncode == 0


def _missing_for_buildah() -> list[str]:
    return [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]


def cache_root() -> Path:
    """Where engine state that outlives a checkout lives (buildah's storage, with the debootstrap base)."""
    root = Path(os.environ.get("MLOPS_IMAGE_CACHE") or Path.home() / ".cache" / "mlops-template")
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class Cli:
    """Docker (buildx) or Podman: the engine's own storage and the Dockerfile's base image from its registry."""

    name: str

    def build_command(self) -> str:
        return "docker buildx build --load" if self.name == "docker" else "podman build --format docker"

    def base_image(self, python_version: str, work: Path) -> str | None:
        return None

    def describe(self) -> str:
        return f"built by {self.name}"

    def __call__(self, *args: str, timeout: float = 1800) -> Timed:
        return run([self.name, *args], cwd=Path.cwd(), timeout=timeout)

    def exists(self, image: str) -> bool:
        return self("image", "inspect", image).returncode == 0

    def size_mb(self, image: str) -> float:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).check().stdout.strip()) / 1e6

    def config(self, image: str) -> dict[str, object]:
        document = json.loads(self("image", "inspect", "--format", "{{json .Config}}", image).check().stdout)
        return dict(document or {})

    def digest(self, image: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", image).check().stdout.strip()

    @contextlib.contextmanager
    def container(self, image: str, volume: Path | None = None) -> Iterator[Container]:
        mount = ["--volume", f"{volume}:/workspace"] if volume else []
        started = self("run", "--detach", "--network", "host", *mount, "--entrypoint", "sleep", image, "infinity")
        name = started.check().stdout.strip()
        try:
            yield Container(name, (self.name, "exec", name))
        finally:
            self("rm", "--force", name)

    def remove(self, *images: str) -> None:
        self("rmi", "--force", *images)

    def prune(self) -> None:
        """Nothing: this engine's images are the machine's own; the tests remove the ones they tagged."""


@dataclass(frozen=True)
class Buildah:
    """buildah with its own storage under `root`, so that tests neither see nor touch the machine's images."""

    root: Path
    name: str = "buildah"

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def base_image(self, python_version: str, work: Path) -> str | None:
        return self.debian_base(python_version, work)

    def describe(self) -> str:
        return f"built by buildah ({self.driver} storage) on a debootstrap base"

    def config(self, image: str) -> dict[str, object]:
        document = json.loads(self("inspect", "--type", "image", image).check().stdout)  # its Go templates lack json
        return dict(document["Docker"]["config"] or {})

    def digest(self, image: str) -> str:
        return self("images", "--digests", "--format", "{{.Digest}}", image).check().stdout.split()[0]

    @contextlib.contextmanager
    def container(self, image: str, volume: Path | None = None) -> Iterator[Container]:
        """A working container of the image, removed after use: with vfs storage each one is a full copy."""
        name = self("from", image).check().stdout.strip()
        mount = ("--volume", f"{volume}:/workspace") if volume else ()
        try:
            yield Container(name, (*self.base_args, "run", "--isolation", "chroot", *mount, name, "--"))
        finally:
            self("rm", name)

    def remove(self, *images: str) -> None:
        self("rmi", "--force", *images)

    def prune(self) -> None:
        self("rm", "--all")
        for line in self("images", "--format", "{{.ID}} {{.Name}}", "--noheading").check().stdout.splitlines():
            image_id, name = line.split(maxsplit=1)
            if not name.startswith("localhost/debian-python"):
                self("rmi", "--force", image_id)

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
            ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(rootfs), debian_mirror()],
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


def timed_make(project: Path, target: str, images: Engine, base_image: str | None) -> Timed:
    """`make <target>` of the project with the engine as its image builder (and its base image, if any)."""
    command = ["make", target, f"IMAGE_BUILD={images.build_command()}"]
    if base_image is not None:
        command.append(f"BASE_IMAGE={base_image}")
    return run(command, project, timeout=3600)


def _parse_size(text: str) -> float:
    number, unit = text.split()[0], text.split()[1] if len(text.split()) > 1 else "B"
    scale = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    return float(number) * scale.get(unit, 1.0)


def prune_detached() -> None:
    """The engine's prune() in a process of its own that outlives this one: deleting gigabytes of layers takes a
    while and nothing needs to wait for it (a later buildah call waits on the storage's lock)."""
    subprocess.Popen(
        [sys.executable, __file__, "prune"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["prune"]:
        raise SystemExit("usage: images.py prune")
    chosen = engine()
    if chosen is not None:
        chosen.prune()
