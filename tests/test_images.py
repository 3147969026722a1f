"""The generated Dockerfile built for real with the machine's engine (scripts/images.py: Docker, Podman, or here
buildah, chrooted RUN steps on a Debian base made by debootstrap): the environment image runs the project's
tests and its pipeline, a code change rebuilds only the code layer, and the serving image answers /readyz with
nothing of the training stack."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from images import Container, Engine, available, engine, prune_detached, timed_make

from bakery import bake, commit_all, run

pytestmark = pytest.mark.slow

BASE_PYTHON = "3.11"
DEPENDENCY_STEP = re.compile(r"STEP \d+/\d+: RUN .*uv pip sync[^\n]*\n(-->[^\n]*)")


class Built:
    """A baked project, the engine that builds it, and what each build said."""

    def __init__(self, project: Path, images: Engine, base: str | None) -> None:
        self.project, self.images, self.base = project, images, base
        self.builds: dict[str, float] = {}

    def make(self, target: str) -> str:
        done = timed_make(self.project, target, self.images, self.base).check()
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

    def remove_images(self, *refs: str) -> None:
        """Drop images no later test needs, and the layers only they held (vfs keeps whole copies)."""
        self.images.remove(*refs)

    @contextlib.contextmanager
    def serving(self, container: Container) -> Iterator[int]:
        """`mlci serve /model` inside the container on a free port, ready (/readyz 200); yields the port."""
        port = _free_port()
        server = container.start("mlci", "serve", "/model", "--host", "127.0.0.1", "--port", str(port))
        try:
            assert _get(f"http://127.0.0.1:{port}/readyz", within=180) == 200
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    reason = available()
    if reason is not None:
        pytest.fail(f"cannot build images: {reason}; .ci/run installs them (make test-fast skips this module)")
    images = engine()
    assert images is not None
    base = images.base_image(BASE_PYTHON, tmp_path_factory.mktemp("debootstrap"))
    # Layers of earlier runs would make the first build a cached one: keep only the base.
    images.prune()
    project = bake(tmp_path_factory.mktemp("images"))
    built = Built(project, images, base)
    built.commit("Start from the template")
    run(["git", "config", "--global", "--add", "safe.directory", str(project)], project)
    yield built
    # The rest of the session gets its disk back (these images are gigabytes in vfs storage), and none of its
    # time: the removal goes on in a process of its own.
    prune_detached()


def test_the_environment_image_runs_the_projects_tests_and_pipeline(built, record_property):
    output = built.make("image")
    installed = DEPENDENCY_STEP.search(output)
    assert installed and "Using cache" not in installed.group(1), "the first build must install the locks"
    with built.images.container(built.image_ref("tumor-classifier-env")) as container:
        tests = container.run("make", "test")
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
        assert re.search(r"\d+ passed", tests.stdout)
        assert container.run("id", "-u").stdout.strip() == "10001"
    # The pipeline on the checked-out project mounted into the image, as CI's container job runs it.
    with built.images.container(built.image_ref("tumor-classifier-env"), volume=built.project) as container:
        repro = container.run("make", "repro")
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


def test_the_serving_image_serves_and_holds_no_training_stack(built, record_property):
    built.make("serving-image")
    image = built.image_ref("tumor-classifier")
    config = built.images.config(image)
    user, healthcheck = config["User"], " ".join(config["Healthcheck"]["Test"])  # type: ignore[index]
    artifact = config["Labels"]["dev.mlci.artifact-sha256"]  # type: ignore[index]
    assert user == "10001:10001" and "/readyz" in healthcheck
    # What mlci attest checks against the certificate: the sha256 of the model artifact this image serves.
    assert artifact == json.loads((built.project / "models" / "serving" / "serving.json").read_text())["sha256"]
    with built.images.container(image) as container:
        absent = container.run("python" + BASE_PYTHON, "-c", "import mlflow")
        assert absent.returncode != 0 and "No module named 'mlflow'" in absent.stderr
        with built.serving(container) as port:
            assert b"predictions" in _score_one_row(built.project, port)
    sizes = {name: built.images.size_mb(built.image_ref(name)) for name in ("tumor-classifier-env", "tumor-classifier")}
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
    with built.images.container(built.image_ref("tumor-classifier-env"), volume=built.project) as container:
        repro = container.run("make", "repro")
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert json.loads((built.project / "models" / "serving" / "serving.json").read_text())["runtime"] == "pyfunc"
    # The ONNX serving image is done with; the pyfunc one is built under the same tag.
    built.remove_images(built.image_ref("tumor-classifier"))
    output = built.make("serving-image")
    # Its framework is the training runtime's layer, which the environment image built: reused, not installed.
    shared = DEPENDENCY_STEP.search(output)
    assert shared and "Using cache" in shared.group(1), output[-3000:]
    with built.images.container(built.image_ref("tumor-classifier")) as serving:
        present = serving.run("python" + BASE_PYTHON, "-c", "import mlflow, sklearn")
        assert present.returncode == 0, present.stderr[-2000:]
        with built.serving(serving) as port:
            assert b"predictions" in _score_one_row(built.project, port)
    record_property(
        "serving image, pyfunc runtime (MB)", round(built.images.size_mb(built.image_ref("tumor-classifier")))
    )
