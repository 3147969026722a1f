"""scripts/system-packages.sh, which `make setup` runs first: what is missing gets installed where it can be,
else one line says what to run. Root and sudo are played by stand-ins on a PATH that lacks promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-packages.sh"
PRESENT = ("git", "make", "node", "npm", "python3.11", "chromium", "buildah", "debootstrap", "env")


def machine(folder: Path, uid: int, sudo_asks_password: bool) -> Path:
    """A bin folder with the real tools of PRESENT (no promtool, no docker), and stand-ins for id, sudo and
    apt-get; apt-get logs what it is asked to install."""
    folder.mkdir()
    for tool in PRESENT:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed here")
        if tool.startswith("python"):  # the interpreter itself, not a shim that needs more of the PATH
            found = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True,
                                   text=True, check=True).stdout.strip()  # fmt: skip
        (folder / tool).symlink_to(found)
    stand_ins = {
        "id": f"echo {uid}",
        "sudo": "exit 1" if sudo_asks_password else '[ "$1" = -n ] && shift; "$@"',
        "apt-get": f'echo "$@" >> {folder / "apt.log"}',
    }
    for name, body in stand_ins.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def setup(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(folder)}, capture_output=True, text=True)


def test_without_root_or_a_passwordless_sudo_one_line_gives_the_command(tmp_path):
    folder = machine(tmp_path / "bin", uid=1000, sudo_asks_password=True)
    done = setup(folder)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "make setup: missing prometheus; run: sudo apt-get update && sudo apt-get install -y prometheus"
    ]
    assert not (folder / "apt.log").exists()


@pytest.mark.parametrize(("uid", "how"), [(0, "as root"), (1000, "with a sudo that asks no password")])
def test_what_is_missing_is_installed_when_it_can_be(tmp_path, uid, how):
    folder = machine(tmp_path / "bin", uid=uid, sudo_asks_password=False)
    done = setup(folder)
    assert done.returncode == 0, done.stderr
    assert "installing prometheus" in done.stdout
    assert (folder / "apt.log").read_text().splitlines() == ["update -qq", "install -y -qq prometheus"], how
