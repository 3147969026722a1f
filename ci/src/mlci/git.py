"""The one way mlci runs git: never a prompt, a token only as an HTTP header, failures that say what git said."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .errors import MlciError

TIMEOUT = 600


def environment(url: str = "", token: str | None = None) -> dict[str, str]:
    """git's environment: no prompts, and for an https `url` the token as an HTTP header (never in argv or a URL)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        index = int(env.get("GIT_CONFIG_COUNT") or 0)  # after any configuration the caller passes this way
        env.update(
            {
                "GIT_CONFIG_COUNT": str(index + 1),
                f"GIT_CONFIG_KEY_{index}": "http.extraHeader",
                f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic}",
            }
        )
    return env


class Git:
    """git in one folder (`cwd`), for one remote's credentials; `subject` names the repository in errors."""

    def __init__(self, cwd: Path, url: str = "", token: str | None = None, subject: str = "the repository") -> None:
        self.cwd, self.url, self.subject = cwd, url, subject
        self.env = environment(url, token)

    def run(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """git with `args`; with `check`, an exit status other than 0 raises an MlciError with git's own words."""
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.cwd, env=self.env, capture_output=True, text=True, timeout=TIMEOUT
        )
        if check and done.returncode != 0:
            command = next((a for a in args if not a.startswith("-") and "=" not in a), "")
            raise MlciError(f"git {command} failed for {self.subject}: {done.stderr.strip()[-500:]}")
        return done

    def succeeds(self, *args: str) -> bool:
        """Whether git exits 0 (a ref exists, a file is tracked, ...)."""
        return self.run(*args, check=False).returncode == 0

    def value(self, *args: str) -> str:
        """git's output, stripped; empty when git fails (outside a repository, say)."""
        done = self.run(*args, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def cat_file(self, specs: Iterable[str]) -> bytes:
        """`git cat-file --batch` over many `<rev>:<path>` specs in one process: its raw output, in order."""
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.cwd,
            env=self.env,
            input="".join(f"{spec}\n" for spec in specs).encode(),
            capture_output=True,
            timeout=TIMEOUT,
        )
        if done.returncode != 0:
            raise MlciError(f"git cat-file failed for {self.subject}: {done.stderr.decode(errors='replace')[-500:]}")
        return done.stdout
