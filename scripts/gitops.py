"""The deployment repo's side of the loop, locally: a bare repository made from k8s/deployment-repo/, and a
reviewer who merges a proposal branch with a merge commit on main (first parent: the old main), as GitHub's
merge button does; its Approved-by trailer stands in for the approval GitHub keeps on the pull request."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from bakery import TEMPLATE

SKELETON = TEMPLATE / "k8s" / "deployment-repo"


def git(cwd: Path, *args: str, **identity: str) -> str:
    names = ["-c", f"user.name={identity.get('name', 'platform')}"]
    names += ["-c", f"user.email={identity.get('email', 'platform@example.com')}"]
    done = subprocess.run(["git", *names, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def init_deployment_repo(bare: Path, trusted: dict[str, str] | None = None) -> Path:
    """A bare repository whose main branch holds the skeleton that the platform team starts from, its trust.yaml
    listing `trusted` (name: public key PEM)."""
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(bare.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    with tempfile.TemporaryDirectory(prefix="deployment-seed-") as scratch:
        seed = Path(scratch) / "seed"
        git(Path(scratch), "clone", "--quiet", str(bare), str(seed))
        shutil.copytree(SKELETON, seed, dirs_exist_ok=True)
        if trusted:
            keys = [{"name": name, "public_key": pem} for name, pem in trusted.items()]
            (seed / "trust.yaml").write_text(yaml.safe_dump({"keys": keys, "keyless": []}, sort_keys=False))
        git(seed, "add", "--all")
        git(seed, "commit", "--quiet", "-m", "Start the deployment repo from the template's skeleton")
        git(seed, "push", "--quiet", "origin", "main")
    return bare


def merge(bare: Path, branch: str, reviewer: str) -> str:
    """Merge `branch` into main with a merge commit made by `reviewer`, who approved it; the merge commit."""
    email = f"{reviewer.lower().replace(' ', '.')}@example.com"
    with tempfile.TemporaryDirectory(prefix="deployment-merge-") as scratch:
        clone = Path(scratch) / "clone"
        git(Path(scratch), "clone", "--quiet", str(bare), str(clone))
        subject = git(clone, "log", "-1", "--format=%s", f"origin/{branch}")
        message = f"Merge {branch}: {subject}\n\nApproved-by: {reviewer} <{email}>\n"
        git(clone, "merge", "--quiet", "--no-ff", "-m", message, f"origin/{branch}", name=reviewer, email=email)
        git(clone, "push", "--quiet", "origin", "main")
        return git(clone, "rev-parse", "HEAD")


def commit_on_main(bare: Path, files: dict[str, bytes | None], message: str, who: str = "someone") -> str:
    """A direct commit on main (None deletes a file): what a hand edit of the deployment repo looks like."""
    with tempfile.TemporaryDirectory(prefix="deployment-edit-") as scratch:
        clone = Path(scratch) / "clone"
        git(Path(scratch), "clone", "--quiet", str(bare), str(clone))
        for relative, data in files.items():
            target = clone / relative
            if data is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        git(clone, "add", "--all")
        git(clone, "commit", "--quiet", "-m", message, name=who, email=f"{who}@example.com")
        git(clone, "push", "--quiet", "origin", "main")
        return git(clone, "rev-parse", "HEAD")
