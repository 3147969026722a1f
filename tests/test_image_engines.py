"""Which engine builds the images (scripts/images.py): Docker or Podman where one answers, else buildah; and
what each is asked. No Docker or Podman engine runs on this machine, so a stand-in CLI on the PATH answers
`info` and records what it is asked; buildah itself is exercised by test_images.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import images
import pytest


def stand_in(folder: Path, name: str, info_status: int) -> Path:
    """An executable `name` that exits `info_status` on `info`, 0 otherwise, and logs its arguments."""
    log = folder / f"{name}.log"
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = info ] && exit {info_status}\necho sha256:abc\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.fixture
def path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("MLOPS_IMAGE_ENGINE", raising=False)
    return tmp_path


def test_docker_is_chosen_when_its_engine_answers_and_builds_the_dockerfile_as_it_is(path_with):
    log = stand_in(path_with, "docker", 0)
    chosen = images.engine()
    assert isinstance(chosen, images.Cli) and chosen.name == "docker"
    assert chosen.build_command() == "docker buildx build --load"
    assert chosen.base_image("3.11", path_with) is None  # the Dockerfile's own, from its registry
    assert chosen.digest("ghcr.io/my-org/x:1") == "sha256:abc"
    assert "image inspect --format {{.Id}} ghcr.io/my-org/x:1" in log.read_text()


def test_a_docker_without_a_daemon_gives_way_to_podman(path_with):
    stand_in(path_with, "docker", 1)
    stand_in(path_with, "podman", 0)
    chosen = images.engine()
    assert isinstance(chosen, images.Cli) and chosen.name == "podman"
    assert chosen.build_command() == "podman build --format docker"


def test_the_choice_can_be_forced_and_a_bad_one_is_named(path_with, monkeypatch):
    stand_in(path_with, "docker", 0)
    stand_in(path_with, "podman", 125)  # installed, its service not running
    monkeypatch.setenv("MLOPS_IMAGE_ENGINE", "podman")
    assert images.engine() is None  # forced: the working docker is not taken instead
    assert "MLOPS_IMAGE_ENGINE=podman but `podman info` fails" in str(images.available())
    monkeypatch.setenv("MLOPS_IMAGE_ENGINE", "kaniko")
    assert images.available() == "MLOPS_IMAGE_ENGINE='kaniko' is not one of docker, podman, buildah"


def test_buildah_keeps_its_storage_in_the_users_cache_so_the_base_is_made_once_per_machine(path_with, monkeypatch):
    monkeypatch.setenv("MLOPS_IMAGE_ENGINE", "buildah")
    monkeypatch.setenv("MLOPS_IMAGE_CACHE", str(path_with / "cache"))
    if images.available() is not None:
        pytest.skip(images.available())
    chosen = images.engine()
    assert isinstance(chosen, images.Buildah) and chosen.root == path_with / "cache" / "buildah"
    assert chosen.root.is_dir()


def test_debootstraps_mirror_comes_from_the_machines_apt_sources_or_debian_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.sources").write_text("Types: deb\nURIs: http://mirror.example/nodesource\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert images.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert images.debian_mirror(tmp_path) == "http://old.example/debian"  # the one-line list is read first
    monkeypatch.setenv("DEBIAN_MIRROR", "http://given.example/debian")
    assert images.debian_mirror(tmp_path) == "http://given.example/debian"
    monkeypatch.delenv("DEBIAN_MIRROR")
    with pytest.raises(RuntimeError, match="set DEBIAN_MIRROR"):
        images.debian_mirror(tmp_path / "nowhere")
