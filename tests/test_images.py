"""The generated Dockerfile built for real with buildah (overlay storage where root may mount one, else vfs;
chrooted RUN steps) on a Debian base made by debootstrap: the environment image runs the project's tests and
its pipeline, a code change rebuilds only the code layer, and the serving image answers /readyz with nothing
of the training stack."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from images import Buildah, available, timed_make

from bakery import TEMPLATE, bake, commit_all, run

pytestmark = pytest.mark.slow

BASE_PYTHON = "3.11"
DEPENDENCY_STEP = re.compile(r"STEP \d+/\d+: RUN .*uv pip sync[^\n]*\n(-->[^\n]*)")


class Built:
    """A baked project, the buildah that builds it, and what each build said."""

    def __init__(self, project: Path, buildah: Buildah, base: str) -> None:
        self.project, self.buildah, self.base = project, buildah, base
        self.builds: dict[str, float] = {}

    def make(self, target: str) -> str:
        done = timed_make(self.project, target, self.buildah, self.base).check()
        self.builds[target] = done.seconds
        return done.stdout + done.stderr

    def commit(self, message: str) -> None:
        """Commit as the tests do, then give the checkout back to the image's user (10001), who runs the
        pipeline on it as CI's runner user does on its own: a git object folder made by root here would
        stop DVC there."""
        commit_all(self.project, message)
        run(["chown", "-R", "10001:10001", str(self.project)], self.project).check()

    def image_ref(self, name: str) -> str:
        commit = run(["git", "rev-parse", "--short=12", "HEAD"], self.project).check().stdout.strip()
        return f"ghcr.io/my-org/{name}:{commit}"

    @contextlib.contextmanager
    def container(self, image: str) -> Iterator[str]:
        """A working container of the image, removed after use: with vfs storage each one is a full copy."""
        name = self.buildah("from", image).check().stdout.strip()
        try:
            yield name
        finally:
            self.buildah("rm", name)

    def remove_images(self, *refs: str) -> None:
        """Drop images no later test needs, and the layers only they held (vfs keeps whole copies)."""
        self.buildah("rmi", "--force", *refs)

    @contextlib.contextmanager
    def serving(self, container: str) -> Iterator[int]:
        """`mlci serve /model` inside the container on a free port, ready (/readyz 200); yields the port."""
        port = _free_port()
        command = ["mlci", "serve", "/model", "--host", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(
            [*self.buildah.base_args, "run", "--isolation", "chroot", container, "--", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert _get(f"http://127.0.0.1:{port}/readyz", within=180) == 200
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)

    def run_in(self, container: str, *command: str, volume: Path | None = None) -> subprocess.CompletedProcess[str]:
        mount = ["--volume", f"{volume}:/workspace"] if volume else []
        return subprocess.run(
            [*self.buildah.base_args, "run", "--isolation", "chroot", *mount, container, "--", *command],
            capture_output=True,
            text=True,
            timeout=1800,
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    reason = available()
    if reason is not None:
        pytest.fail(f"cannot build images: {reason}; .ci/run installs them (make test-fast skips this module)")
    buildah = Buildah(TEMPLATE / "build" / "buildah")
    buildah.root.mkdir(parents=True, exist_ok=True)
    base = buildah.debian_base(BASE_PYTHON, tmp_path_factory.mktemp("debootstrap"))
    # Layers of earlier runs would make the first build a cached one: keep only the base.
    _keep_only_the_base(buildah)
    project = bake(tmp_path_factory.mktemp("images"))
    built = Built(project, buildah, base)
    built.commit("Start from the template")
    run(["git", "config", "--global", "--add", "safe.directory", str(project)], project)
    yield built
    # The rest of the session gets its disk back: these images are gigabytes in vfs storage.
    _keep_only_the_base(buildah)


def _keep_only_the_base(buildah: Buildah) -> None:
    buildah("rm", "--all")
    for line in buildah("images", "--format", "{{.ID}} {{.Name}}", "--noheading").check().stdout.splitlines():
        image_id, name = line.split(maxsplit=1)
        if not name.startswith("localhost/debian-python"):
            buildah("rmi", "--force", image_id)


def test_the_environment_image_runs_the_projects_tests_and_pipeline(built, record_property):
    output = built.make("image")
    installed = DEPENDENCY_STEP.search(output)
    assert installed and "Using cache" not in installed.group(1), "the first build must install the locks"
    with built.container(built.image_ref("tumor-classifier-env")) as container:
        tests = built.run_in(container, "make", "test")
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
        assert re.search(r"\d+ passed", tests.stdout)
        assert built.run_in(container, "id", "-u").stdout.strip() == "10001"
        # The pipeline on the checked-out project mounted into the image, as CI's container job runs it.
        repro = built.run_in(container, "make", "repro", volume=built.project)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert "Running stage 'package'" in repro.stdout
    assert (built.project / "models" / "serving" / "serving.json").is_file()
    record_property("env image build (s)", round(built.builds["image"], 1))


def test_a_code_change_reuses_the_dependency_layer(built, record_property):
    train = next(built.project.glob("src/*/train.py"))
    train.write_text(train.read_text() + "\n# a code change, no dependency change\n")
    before = built.image_ref("tumor-classifier-env")
    built.commit("Change code only")
    output = built.make("image")
    built.remove_images(before)
    reused = DEPENDENCY_STEP.search(output)
    assert reused and "Using cache" in reused.group(1), output[-3000:]
    record_property("env image rebuild after a code change (s)", round(built.builds["image"], 1))


ARTIFACT_LABEL = '{{index .Docker.Config.Labels "dev.mlci.artifact-sha256"}}'


def test_the_serving_image_serves_and_holds_no_training_stack(built, record_property):
    built.make("serving-image")
    image = built.image_ref("tumor-classifier")
    config = (
        built.buildah(
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.Docker.Config.User}}|{{.Docker.Config.Healthcheck.Test}}|" + ARTIFACT_LABEL,
            image,
        )
        .check()
        .stdout
    )
    user, healthcheck, artifact = config.strip().split("|")
    assert user == "10001:10001" and "/readyz" in healthcheck
    # What mlci attest checks against the certificate: the sha256 of the model artifact this image serves.
    assert artifact == json.loads((built.project / "models" / "serving" / "serving.json").read_text())["sha256"]
    with built.container(image) as container:
        absent = built.run_in(container, "python" + BASE_PYTHON, "-c", "import mlflow")
        assert absent.returncode != 0 and "No module named 'mlflow'" in absent.stderr
        with built.serving(container) as port:
            assert b"predictions" in _score_one_row(built.project, port)
    sizes = {
        name: built.buildah.size_mb(built.image_ref(name)) for name in ("tumor-classifier-env", "tumor-classifier")
    }
    assert sizes["tumor-classifier"] < sizes["tumor-classifier-env"] / 2, sizes
    for name, size in sizes.items():
        record_property(f"{name} image (MB)", round(size))
    record_property("serving image build (s)", round(built.builds["serving-image"], 1))


def _score_one_row(project: Path, port: int) -> bytes:
    """POST one row of the model's columns to /invocations; the 200 response's body."""
    manifest = json.loads((project / "models" / "serving" / "serving.json").read_text())
    columns = [feature["name"] for feature in manifest["inputs"]["features"]]
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [[1.0] * len(columns)]}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return bytes(response.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, within: float) -> int:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_model_served_as_a_pyfunc_gets_its_framework_in_the_serving_image(built, record_property):
    params = built.project / "params.yaml"
    params.write_text(params.read_text().replace("runtime: auto", "runtime: pyfunc"))
    with built.container(built.image_ref("tumor-classifier-env")) as container:
        repro = built.run_in(container, "make", "repro", volume=built.project)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert json.loads((built.project / "models" / "serving" / "serving.json").read_text())["runtime"] == "pyfunc"
    # The ONNX serving image is done with; the pyfunc one is built under the same tag.
    built.remove_images(built.image_ref("tumor-classifier"))
    built.make("serving-image")
    with built.container(built.image_ref("tumor-classifier")) as serving:
        present = built.run_in(serving, "python" + BASE_PYTHON, "-c", "import mlflow, sklearn")
        assert present.returncode == 0, present.stderr[-2000:]
        with built.serving(serving) as port:
            assert b"predictions" in _score_one_row(built.project, port)
    record_property(
        "serving image, pyfunc runtime (MB)", round(built.buildah.size_mb(built.image_ref("tumor-classifier")))
    )
