"""Write the table of modules that a generated project's locks install into hooks/pre_gen_project.py.

The pre-generation hook refuses a `package_name` that would shadow one of them. It cannot read the template's
files (cookiecutter runs a rendered copy of it from a temporary file, and does not always say where the template
is), so the table lives in the hook itself, between two marker lines, with a digest of the locks it was made
from; tests/test_hooks.py checks that digest against the locks. Run this after changing
`{{cookiecutter.project}}/requirements/*.txt`:

    python scripts/locked_modules.py

It installs every locked distribution, without dependencies, into a temporary environment (from uv's cache when
it has them; torch from PIP_FIND_LINKS when set, as the generated Makefile does) and reads which top-level
modules each one provides. Run it on Linux, where the project's CI and images run: distributions locked for
another platform only (pywin32 for Windows) are left out, and named.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

from bakery import TEMPLATE

LOCKS = TEMPLATE / "{{cookiecutter.project}}" / "requirements"
HOOK = TEMPLATE / "hooks" / "pre_gen_project.py"
BEGIN = "# --- begin: written by scripts/locked_modules.py from the generated project's locks; do not edit ---"
END = "# --- end: written by scripts/locked_modules.py ---"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
# The only names a package_name can take; a module named otherwise cannot be shadowed by one.
PACKAGE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Pin:
    """One `name==version` line of a lock, with its environment marker."""

    name: str
    version: str
    marker: str | None = None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(locks: Path = LOCKS) -> list[Pin]:
    """Every pinned distribution of every lock, as written (a name may be pinned once per Python version)."""
    pins = set()
    for lock in sorted(locks.glob("*.txt")):
        for line in lock.read_text().splitlines():
            match = PIN.match(line)
            if match:
                name, version, marker = match.groups()
                pins.add(Pin(canonical(name), version, marker))
    return sorted(pins, key=lambda pin: (pin.name, pin.version, pin.marker or ""))


def locks_digest(pins: Iterable[Pin]) -> str:
    """What the table was made from: the sha256 of the sorted name==version pins (markers do not change modules)."""
    lines = sorted({f"{pin.name}=={pin.version}" for pin in pins})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def recorded_digest(hook: Path = HOOK) -> str | None:
    """The digest that the hook's table says it was made from."""
    match = re.search(r'^LOCKS_DIGEST = "([0-9a-f]+)"$', hook.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def choose(pins: list[Pin]) -> tuple[list[Pin], list[str]]:
    """One pin per distribution that this machine installs (a name pinned per Python version: the version for
    this one), and the names of those it does not (their markers name another platform)."""
    by_name: dict[str, list[Pin]] = defaultdict(list)
    for pin in pins:
        by_name[pin.name].append(pin)
    here, elsewhere = [], []
    for name, versions in by_name.items():
        native = [pin for pin in versions if pin.marker is None or Marker(pin.marker).evaluate()]
        if native:
            here.append(native[0])
        else:
            elsewhere.append(name)
    return here, elsewhere


def top_level_modules(dist: importlib.metadata.Distribution) -> set[str]:
    """The names a distribution makes importable: its top_level.txt, else the first part of every file it installs."""
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    names = set()
    for file in dist.files or []:
        names.add(file.parts[0] if len(file.parts) > 1 else inspect.getmodulename(file.name) or file.name)
    return names


def table(site_packages: Path) -> dict[str, str]:
    """Module -> the distributions that install it, for every module a package_name could shadow."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in importlib.metadata.distributions(path=[str(site_packages)]):
        for module in top_level_modules(dist):
            if PACKAGE_NAME.fullmatch(module) and module != "__pycache__":
                owners[module].add(canonical(dist.metadata["Name"]))
    return {module: ", ".join(sorted(dists)) for module, dists in sorted(owners.items())}


def render(modules: dict[str, str], digest: str) -> str:
    """The hook's block: the digest and the table, one module a line."""
    rows = "".join(f"    {json.dumps(module)}: {json.dumps(dists)},\n" for module, dists in modules.items())
    return f'{BEGIN}\nLOCKS_DIGEST = "{digest}"\nLOCKED_MODULES: dict[str, str] = {{\n{rows}}}\n{END}\n'


def block_span(text: str) -> slice:
    return slice(text.index(BEGIN), text.index(END) + len(END) + 1)


def recorded_block(hook: Path = HOOK) -> str:
    """The hook's block as committed."""
    text = hook.read_text()
    return text[block_span(text)]


def uv(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "uv"), *args, "--quiet"], check=True)


def install(pins: list[Pin], workdir: Path) -> Path:
    """Install the pins without their dependencies into a new environment; its site-packages."""
    find_links = ["--find-links", os.environ["PIP_FIND_LINKS"]] if os.environ.get("PIP_FIND_LINKS") else []
    env = workdir / "env"
    uv("venv", "--python", sys.executable, str(env))
    requirements = workdir / "pins.txt"
    requirements.write_text("".join(f"{pin.name}=={pin.version}\n" for pin in pins))
    uv("pip", "install", "--no-deps", "--python", str(env / "bin" / "python"), *find_links, "-r", str(requirements))
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def make_block(locks: Path = LOCKS) -> tuple[str, list[str]]:
    """The hook's block as the locks make it now, and the distributions left out (locked for another platform)."""
    pins = read_pins(locks)
    native, elsewhere = choose(pins)
    with tempfile.TemporaryDirectory(prefix="locked-modules-") as workdir:
        modules = table(install(native, Path(workdir)))
    return render(modules, locks_digest(pins)), elsewhere


def main() -> int:
    block, elsewhere = make_block()
    text = HOOK.read_text()
    span = block_span(text)
    HOOK.write_text(text[: span.start] + block + text[span.stop :])
    print(f"{HOOK.relative_to(TEMPLATE)}: {block.count(chr(10)) - 5} modules")
    if elsewhere:
        print(f"left out, locked for another platform only: {', '.join(elsewhere)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
