"""Bake projects from this template and run commands in them: shared by the demo, benches and tests."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timed:
    """A finished command: its exit code, output and wall time."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> Timed:
        if self.returncode != 0:
            command = " ".join(self.args)
            raise RuntimeError(
                f"{command} exited {self.returncode}\n"
                f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
            )
        return self


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> Timed:
    """Run a command to completion, capturing its output and timing it."""
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    return Timed(args, done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def bake(output_dir: Path, **context: str) -> Path:
    """Generate a project with the template's defaults overridden by `context`; its directory.

    By default mlci is this checkout's ci/, vendored into the project (`mlci_source` 'template').
    """
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=context))


SHARED_VENVS = "MLOPS_SHARED_VENVS"


def setup(project: Path) -> Timed:
    """`make setup` in a baked project: its .venv from the hash-pinned locks.

    With MLOPS_SHARED_VENVS naming a folder (the template's tests set it), the first project of each set of locks
    runs `make setup` itself, its bytecode left uncompiled, and is noted there; a later project with the same
    locks, Python and vendored mlci gets a hard-linked copy of that first project's .venv (its scripts rewritten
    for their new path, its own package installed editable), which `make setup` then finds up to date. The copy
    is taken when the later project is set up, so it holds the bytecode of every module the first project had
    imported by then: each set compiles what the tests import, about a quarter of it, once per session, where
    compiling it whole (`make setup`'s default) was most of a set-up's CPU time.
    """
    shared = os.environ.get(SHARED_VENVS)
    if not shared:
        return run(["make", "setup"], project).check()
    cache = Path(shared) / _locks_digest(project)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with _locked(cache.with_name(cache.name + ".lock")):
        origin = cache / "origin"
        if not origin.is_file() or not (Path(origin.read_text()) / ".installed").is_file():
            done = run(["make", "setup", "COMPILE_BYTECODE="], project).check()
            cache.mkdir(exist_ok=True)
            origin.write_text(str(project / ".venv"))
            return done
        started = time.perf_counter()
        if not _reuse(Path(origin.read_text()), project):
            return run(["make", "setup", "COMPILE_BYTECODE="], project).check()
        run(["make", "setup"], project).check()  # nothing left to do: it only checks
        copied = f"{project / '.venv'} copied from {origin.read_text()}\n"
        return Timed(["make", "setup"], 0, copied, "", time.perf_counter() - started)


def _locks_digest(project: Path) -> str:
    """What a project's .venv is made of: its locks, its Python, its vendored mlci and where wheels come from."""
    digest = hashlib.sha256()
    python = next(line for line in (project / "Makefile").read_text().splitlines() if line.startswith("PYTHON ?="))
    digest.update(f"{python}\n{os.environ.get('PIP_FIND_LINKS', '')}\n".encode())
    files = sorted((project / "requirements").glob("*.txt")) + sorted(
        path for path in (project / "vendor").rglob("*") if path.is_file() and "__pycache__" not in path.parts
    )
    for path in files:
        digest.update(f"{path.relative_to(project)}\n".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reuse(origin: Path, project: Path) -> bool:
    """Another project's .venv into `project`: hard links, with every file that names the old path written anew
    (a hard link is never written through, nor is a module's bytecode, which Python replaces whole, so the other
    project's .venv stays as it was), without that project's editable install, with this one's. False, with
    nothing left behind, where the project is on another file system."""
    venv = project / ".venv"
    if run(["cp", "-al", str(origin), str(venv)], project).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        return False
    site = next((venv / "lib").glob("python*/site-packages"))
    for editable in site.glob("_editable_impl_*.pth"):
        editable.unlink()
    for info in site.glob("*.dist-info"):
        direct = info / "direct_url.json"
        if direct.is_file() and '"editable":true' in direct.read_text().replace(" ", ""):
            shutil.rmtree(info)
    for path in [*(p for p in (venv / "bin").iterdir() if p.is_file() and not p.is_symlink()), venv / "pyvenv.cfg"]:
        data = path.read_bytes()
        if str(origin).encode() in data:
            mode = path.stat().st_mode
            path.unlink()
            path.write_bytes(data.replace(str(origin).encode(), str(venv).encode()))
            path.chmod(mode)
    bin_ = venv / "bin"
    run([str(bin_ / "uv"), "pip", "install", "--quiet", "--python", str(bin_ / "python"), "--no-deps", "-e", "."],
        project).check()  # fmt: skip
    marker = venv / ".installed"
    marker.unlink()
    marker.touch()  # a file of its own, newer than the project's locks
    return True


def project_env(project: Path) -> dict[str, str]:
    """Environment in which the project's own tools (.venv/bin) come first."""
    return {"PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", "GX_ANALYTICS_ENABLED": "false"}


def commit_all(project: Path, message: str) -> None:
    """Commit everything git sees, as a user of the project would (DVC outputs stay git-ignored)."""
    if not (project / ".git").is_dir():
        raise RuntimeError(f"{project} is not the root of its own git repository; refusing to commit")
    identity = ["-c", "user.name=Template Tests", "-c", "user.email=tests@example.com"]
    run(["git", "add", "-A"], project).check()
    run(["git", *identity, "commit", "-q", "--allow-empty", "-m", message], project).check()


def template_repo(dest: Path) -> Path:
    """A git repository of this checkout's template as it is now, uncommitted changes included, in one commit:
    what cruft, and a git URL of the template, need. Its directory."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], TEMPLATE).check()
    for name in filter(None, listed.stdout.split("\0")):
        source, target = TEMPLATE / name, dest / name
        if source.is_symlink() or source.is_file():  # not a file deleted and not yet committed
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    run(["git", "init", "--quiet", "--initial-branch=main"], dest).check()
    commit_all(dest, "The template")
    return dest
