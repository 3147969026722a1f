"""Every Python the template offers beyond 3.11 (which the pipeline tests run): a sklearn project baked for it
sets up from the locks and passes its unit tests, where the machine has that Python (pyenv's, or one on PATH).
Where it has not, the skip says so in a line of the summary. PyTorch is left out: its wheel on disk is 3.11's.
`make setup COMPILE_BYTECODE=`: what is tested is that the locks install and the tests pass on that Python;
compiling every locked package's bytecode for a .venv used once would be most of the test's time."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bakery import bake, project_env, run

pytestmark = pytest.mark.slow


def interpreter(version: str) -> dict[str, str] | None:
    """The environment in which `python<version>` runs this Python, or None when the machine has none."""
    if shutil.which("pyenv"):
        listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        matches = [name for name in listed if name == version or name.startswith(f"{version}.")]
        if matches:
            return {"PYENV_VERSION": matches[-1]}
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
        return {}
    return None


class PythonContract:
    """One class per version, so that xdist can run them on two workers."""

    version: str

    def test_a_sklearn_project_sets_up_and_passes_its_unit_tests(self, tmp_path):
        env = interpreter(self.version)
        if env is None:
            pytest.skip(f"python{self.version} is not on this machine (neither pyenv's nor on PATH): not tested")
        root = bake(tmp_path, python_version=self.version, model_framework="sklearn")
        run(["make", "setup", "COMPILE_BYTECODE="], root, env=env).check()
        seen = run([str(root / ".venv" / "bin" / "python"), "--version"], root).check().stdout
        assert seen.startswith(f"Python {self.version}."), seen
        tests = run(["make", "test"], root, env={**project_env(root), **env})
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
        assert " passed" in tests.stdout and "failed" not in tests.stdout


class TestPython312(PythonContract):
    version = "3.12"


class TestPython313(PythonContract):
    version = "3.13"
