"""Bake projects from this template and run commands in them: shared by the demo, benches and tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
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
