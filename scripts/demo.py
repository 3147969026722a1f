"""The main job: bake a project with the template's defaults and run its whole loop locally, offline.

train and certify version 1, build its serving image (Docker, Podman or buildah), propose it to a local
deployment repo and merge as a reviewer would, promote a release tag to production (an uncertified tag is
refused), train and certify version 2 against the champion, run the canary analysis on a local Prometheus
(version 2 and a faulty candidate against version 1), promote version 2 (version 1 stays as its shadow), send
the held-out labels as feedback to production and to the shadow and show both live accuracies (`mlci status
--prometheus`), roll production back in one PR, and print `mlci status`. Everything lands in build/demo/
(git-ignored); every step prints its time.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bakery import TEMPLATE, Timed, bake, commit_all, project_env, run, setup

DEMO = Path(os.environ.get("MLOPS_DEMO_DIR") or TEMPLATE / "build" / "demo")
APP = "tumor-classifier"
IMAGE_NAME = f"ghcr.io/my-org/{APP}"
# The canary's schedule (1 minute's pause, 4 measurements 30 s apart) at a quarter of its time, 20 requests a
# second to each server.
CANARY_SCALE = 0.25
CANARY_RATE = 20
TIMES: list[tuple[str, float]] = []


def step(title: str, action: Callable[[], object]) -> object:
    print(f"==> [{len(TIMES) + 1:2d}] {title} ...", flush=True)
    started = time.perf_counter()
    try:
        outcome = action()
    except RuntimeError as err:
        print(f"FAILED: {title}\n{err}", file=sys.stderr)
        raise SystemExit(1) from None
    seconds = time.perf_counter() - started
    TIMES.append((title, seconds))
    print(f"    done in {seconds:.1f} s", flush=True)
    return outcome


@dataclass(frozen=True)
class Image:
    """The serving image a deploy PR pins: built by the machine's engine, or a stand-in digest when none builds."""

    reference: str
    built: bool
    note: str
    artifact_sha256: str  # the image's dev.mlci.artifact-sha256 label: the model artifact it serves


def main() -> None:
    began = time.perf_counter()
    shutil.rmtree(DEMO, ignore_errors=True)
    project: Path = step("bake a project with the default values", lambda: bake(DEMO))
    env = project_env(project)
    mlflow_uri = f"sqlite:///{project / 'mlflow.db'}"

    def sh(*args: str) -> Timed:
        return run(list(args), project, env=env).check()

    def repro() -> Timed:
        """`dvc repro`, and which stages it ran (a stage whose inputs did not change is not run again)."""
        done = sh("dvc", "repro")
        ran = re.findall(r"^Running stage '([^']+)'", done.stdout, flags=re.M)
        print(f"    ran: {', '.join(ran) or 'nothing'}")
        return done

    def mlci(*args: str) -> Timed:
        done = sh("mlci", *args)
        for line in (done.stdout + done.stderr).strip().splitlines()[-3:]:
            print(f"    {line}")
        return done

    step("make setup (.venv from the hash-pinned locks)", lambda: setup(project))
    step("git commit of the baked files", lambda: commit_all(project, "Start from the template"))
    step("dvc repro (ingest, validate, featurize, train, evaluate, package)", repro)
    noop: Timed = step("dvc repro again (nothing to do)", repro)
    step("dvc push to the local remote", lambda: sh("dvc", "push", "--run-cache"))
    step("dvc plots show", lambda: sh("dvc", "plots", "show", "-o", "dvc_plots"))
    served: dict[str, object] = step("mlci serve: score the held-out set over HTTP", lambda: serve_once(project))
    step("git commit of dvc.lock", lambda: commit_all(project, "Reproduce the pipeline"))
    certified: Timed = step("make certify (every gate) of version 1", lambda: sh("make", "certify"))
    version_one = DEMO / "packages" / "v1"
    shutil.copytree(project / "models" / "serving", version_one)
    image_one: Image = step("serving image of version 1", lambda: serving_image(project))

    from gitops import init_deployment_repo, merge

    key = DEMO / "keys" / "release.key"
    step("mlci keygen: the release key (ed25519) that signs attestations", lambda: mlci("keygen", "--out", str(key)))
    trusted = {"demo-release-key": key.with_name("release.key.pub").read_text()}
    deployments = step(
        "a deployment repo from k8s/deployment-repo/, its trust.yaml listing the release key",
        lambda: init_deployment_repo(DEMO / "deployments.git", trusted),
    )
    repo = str(deployments)

    def deploy(image: Image) -> Timed:
        mlci("attest", "--image", image.reference, "--artifact-sha256", image.artifact_sha256, "--key", str(key))
        return mlci("deploy-pr", "--env", "staging", "--image", image.reference, "--repo", repo, "--forge", "none")

    def merged_in_production(branch: str) -> Timed:
        """Grace merges; the deployment repo's sync-aliases job then points the MLflow aliases at what runs."""
        merge(deployments, branch, "Grace Approver")
        return mlci("sync-aliases", "--repo", repo, "--tracking-uri", mlflow_uri)

    def promote(tag: str) -> Timed:
        sh("git", "tag", tag)
        return mlci("promote", "--tag", tag, "--repo", repo, "--forge", "none", "--tracking-uri", mlflow_uri)

    step("attest version 1's image (signed), then its deploy PR to staging", lambda: deploy(image_one))
    step("review: Ada merges the staging PR", lambda: merge(deployments, f"deploy/{APP}/staging", "Ada Reviewer"))
    step("tag v1.0.0 and promote it (the production PR)", lambda: promote("v1.0.0"))
    step(
        "review: Grace merges the production PR; sync-aliases moves champion to what production runs",
        lambda: merged_in_production(f"deploy/{APP}/production"),
    )

    def uncertified() -> str:
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("  max_depth: 8\n", "  max_depth: 10\n"))
        commit_all(project, "Deeper trees")
        sh("git", "tag", "v1.1.0")
        refused = run(["mlci", "promote", "--tag", "v1.1.0", "--repo", repo, "--forge", "none", "--no-registry"],
                      project, env=env)  # fmt: skip
        if refused.returncode == 0 or "is not certified" not in refused.stderr:
            raise RuntimeError(f"an uncertified tag was not refused:\n{refused.stdout}{refused.stderr}")
        message = refused.stderr.strip().splitlines()[-1]
        print(f"    refused as it should be: {message}")
        return message

    refusal = step("change max_depth, tag v1.1.0 untrained: promote refuses it", uncertified)
    step("dvc repro (version 2: train, evaluate, package)", repro)
    step("git commit of dvc.lock", lambda: commit_all(project, "Train version 2"))
    second: Timed = step("make certify of version 2 (champion gate: against version 1)", lambda: sh("make", "certify"))
    image_two: Image = step("serving image of version 2", lambda: serving_image(project))
    step("attest version 2's image (signed), then its deploy PR to staging", lambda: deploy(image_two))
    analysis: dict[str, dict[str, tuple[float, bool]]] = step(
        "canary analysis on Prometheus: version 2 and a faulty candidate against version 1",
        lambda: canary(project, version_one),
    )
    step(
        "review: Ada merges the staging PR of version 2",
        lambda: merge(deployments, f"deploy/{APP}/staging", "Ada Reviewer"),
    )
    step("tag v1.2.0 and promote version 2", lambda: promote("v1.2.0"))
    step(
        "review: Grace merges the production PR; sync-aliases moves champion to what production runs",
        lambda: merged_in_production(f"deploy/{APP}/production"),
    )
    live: str = step(
        "live quality: production (version 2) and its shadow (version 1) get the held-out set and its labels",
        lambda: live_quality(project, version_one, repo),
    )
    step(
        "rollback: one PR that returns production to version 1",
        lambda: mlci("rollback", "--env", "production", "--repo", repo, "--forge", "none"),
    )
    step(
        "review: Grace merges the rollback PR; sync-aliases moves champion back",
        lambda: merged_in_production(f"rollback/{APP}/production"),
    )
    status: Timed = step("mlci status", lambda: sh("mlci", "status", "--repo", repo))
    sh("mlci", "status", "--repo", repo, "--format", "markdown", "--out", str(DEMO / "status.md"))
    print()
    print(status.stdout)

    verdicts = [line for t in (certified, second) for line in t.stdout.splitlines() if line.startswith("certify: ")]
    metrics = json.loads((project / "metrics.json").read_text())
    info = json.loads((project / "models" / "model_info.json").read_text())
    canary_lines = (
        "\n".join(
            f"             {name}: "
            + ", ".join(
                f"{metric} {value:.4f} {'FAILED' if not passed else 'inconclusive' if math.isnan(value) else 'ok'}"
                for metric, (value, passed) in results.items()
            )
            + ("  -> promoted" if all(p for _, p in results.values()) else "  -> aborted, traffic stays on stable")
            for name, results in analysis.items()
        )
        or "             SKIPPED (see its step)"
    )
    print(
        f"""Where everything is
Project:     {project}
Metrics:     {project / "metrics.json"}  ({", ".join(f"{k}={v:.4f}" for k, v in metrics.items())})
Plots:       {project / "dvc_plots" / "index.html"}  (data in {project / "plots"})
Model:       {project / "models" / "model"}  registered as {info["registered_model"]} version {info["version"]}
MLflow:      {project / "mlflow.db"}  (aliases follow production: mlci sync-aliases)  UI: cd {project} && make mlflow-ui
Serving:     {project / "models" / "serving"}  ({served["runtime"]}), accuracy over HTTP {served["accuracy"]:.4f}
Certificate: {project / "reports" / "certification" / "certificate.json"}  (v1 {verdicts[0]}; v2 {verdicts[-1]})
Report:      {project / "reports" / "certification" / "report.md"}
Images:      v1 {image_one.reference}
             v2 {image_two.reference}
             {image_two.note}
Deployments: {deployments}  (git log --graph main, in that folder, shows every PR merged)
Canary:      {DEMO / "canary"}  (Prometheus and server logs)
{canary_lines}
Live:        {live or "SKIPPED (see its step)"}
Refused:     {refusal}
Status:      {DEMO / "status.md"}
No-op repro: {noop.seconds:.2f} s
Total:       {time.perf_counter() - began:.0f} s for {len(TIMES)} steps; the slowest: """
        + ", ".join(f"{title} {seconds:.0f} s" for title, seconds in sorted(TIMES, key=lambda t: -t[1])[:3])
    )


def serving_image(project: Path) -> Image:
    """`make serving-image` with the machine's engine (Docker, Podman or buildah), and the image's digest; when
    none can build, say so and stand in the packaged model's sha256 for the digest, so that the loop still runs."""
    from images import available, engine, timed_make

    why = "MLOPS_DEMO_SKIP_IMAGES is set" if os.environ.get("MLOPS_DEMO_SKIP_IMAGES") else available()
    manifest = json.loads((project / "models" / "serving" / "serving.json").read_text())
    images = engine() if why is None else None
    if images is None:
        note = f"SKIPPED the serving image: {why}; deploy PRs pin the packaged model's sha256 instead"
        print(f"    {note}")
        return Image(f"{IMAGE_NAME}@sha256:{manifest['sha256']}", False, note, manifest["sha256"])
    timed_make(project, "serving-image", images, images.base_image("3.11", DEMO)).check()
    commit = run(["git", "rev-parse", "--short=12", "HEAD"], project).check().stdout.strip()
    tag = f"{IMAGE_NAME}:{commit}"
    digest = images.digest(tag)
    labels = images.config(tag).get("Labels") or {}
    artifact = str(labels.get("dev.mlci.artifact-sha256", ""))  # type: ignore[union-attr]
    note = f"{images.describe()}; {images.size_mb(tag):.0f} MB"
    print(f"    {tag} = {digest}; {note}")
    return Image(f"{IMAGE_NAME}@{digest}", True, note, artifact)


def canary(project: Path, stable: Path) -> dict[str, dict[str, tuple[float, bool]]]:
    """Stable: version 1. Canaries: version 2 as packaged, and a candidate that fails 3 requests in 10.
    Prometheus scrapes them all under load; the analysis runs on the Rollout's and AnalysisTemplate's schedule,
    time-scaled by CANARY_SCALE, and the template's own queries judge each canary at every measurement."""
    from canary import Schedule, Server, fleet, save_candidate

    if os.environ.get("MLOPS_DEMO_SKIP_CANARY"):
        print("    SKIPPED the canary analysis: MLOPS_DEMO_SKIP_CANARY is set")
        return {}
    if shutil.which("prometheus") is None:
        print("    SKIPPED the canary analysis: prometheus is not installed (bash scripts/system-packages.sh)")
        return {}
    mlci = str(project / ".venv" / "bin" / "mlci")
    folder = DEMO / "canary"
    faulty = folder / "faulty-package"
    classes = json.loads((project / "models" / "model_info.json").read_text())["classes"]
    save_candidate(folder / "faulty-model", tuple(classes))
    run([sys.executable, "-m", "mlci", "package", str(folder / "faulty-model"), "--out", str(faulty),
         "--runtime", "pyfunc"], folder).check()  # fmt: skip
    servers = [
        Server("stable", stable, {}),
        Server("version-2", project / "models" / "serving", {}),
        Server("faulty", faulty, {"CANARY_FAULT": "errors"}),
    ]
    template = project / "deploy" / "analysistemplate.yaml"
    schedule = Schedule.of(project / "deploy" / "rollout.yaml", CANARY_SCALE)
    print(f"    the schedule at {CANARY_SCALE:g} of its time: the first measurement after {schedule.pause:g} s")
    with fleet(folder / "fleet", template, f"{APP}-staging", servers, mlci) as running:
        analyses = running.analyse(["version-2", "faulty"], schedule, CANARY_RATE)
    for name, analysis in analyses.items():
        shown = ", ".join(
            f"{metric}={value:.4f}{'' if passed else ' (FAILED)'}"
            for metric, (value, passed) in analysis.summary().items()
        )
        taken = max(len(values) for values in analysis.values.values())
        when = f"at measurement {analysis.first_failure()}" if analysis.failed else f"{taken} measurements"
        print(f"    {name}: {analysis.phase} ({when}): {shown}")
    if analyses["version-2"].phase != "Successful":  # Argo Rollouts would abort it
        raise RuntimeError(f"the healthy canary failed its analysis: {analyses['version-2'].measurements}")
    if analyses["faulty"].phase != "Failed":
        raise RuntimeError(f"the faulty canary passed its analysis: {analyses['faulty'].measurements}")
    return {name: analysis.summary() for name, analysis in analyses.items()}


def live_quality(project: Path, shadow: Path, repo: str) -> str:
    """Production serves version 2 and its shadow version 1 on a mirror of the same requests (the HTTPRoute's
    RequestMirror in the cluster); the held-out set's rows go to both under one X-Request-Id each, then its labels
    as `POST /feedback`; Prometheus scrapes both, and `mlci status --prometheus` shows both live accuracies."""
    import pandas as pd
    from canary import Server, mirrored, wait_scraped

    if os.environ.get("MLOPS_DEMO_SKIP_CANARY"):
        print("    SKIPPED live quality: MLOPS_DEMO_SKIP_CANARY is set (it runs Prometheus too)")
        return ""
    if shutil.which("prometheus") is None:
        print("    SKIPPED live quality: prometheus is not installed (bash scripts/system-packages.sh)")
        return ""
    test = pd.read_parquet(project / "data" / "prepared" / "test.parquet")
    namespace = f"{APP}-production"
    pairs = {namespace: (Server("version-2", project / "models" / "serving", {}), Server("version-1", shadow, {}))}
    with mirrored(DEMO / "live", APP, pairs, str(project / ".venv" / "bin" / "mlci")) as running:
        running.score(namespace, test.drop(columns=["target"]))
        counted = running.feedback(namespace, test["target"].tolist())
        print(f"    feedback counted by production: {counted['stable']}; by the shadow: {counted['shadow']}")
        labelled = f'sum(mlci_feedback_total{{namespace="{namespace}", outcome=~"correct|wrong"}})'
        wait_scraped(running.prometheus_url, labelled, 2 * len(test))
        deadline, live, rows = time.monotonic() + 60, {}, {}
        while set(live) != {"serving", "shadow"} and time.monotonic() < deadline:
            shown = run(["mlci", "status", "--repo", repo, "--prometheus", running.prometheus_url, "--format", "json"],
                        project, env=project_env(project)).check()  # fmt: skip
            rows = {r["env"]: r for r in json.loads(shown.stdout)["apps"][0]["environments"]}
            live = rows["production"]["live_quality"] or {}
            time.sleep(0 if set(live) == {"serving", "shadow"} else 2)
    if set(live) != {"serving", "shadow"}:
        raise RuntimeError(f"mlci status shows no live quality for production and its shadow: {rows.get('production')}")
    line = (
        f"production version {rows['production']['version']}: live accuracy {live['serving']['accuracy']:.4f} "
        f"over {live['serving']['labelled']} labelled rows; its shadow, version {rows['production']['shadow_version']}:"
        f" {live['shadow']['accuracy']:.4f} over {live['shadow']['labelled']}"
    )
    print(f"    {line}")
    return line


def serve_once(project: Path) -> dict[str, object]:
    """Start `mlci serve` on the packaged model, score the held-out set, read /metrics, stop it."""
    import urllib.request

    import pandas as pd

    from mlci.certify.process import ServerProcess, free_port

    test = pd.read_parquet(project / "data" / "prepared" / "test.parquet")
    target = json.loads((project / "models" / "model_info.json").read_text())
    features = test.drop(columns=["target"])
    port = free_port()
    command = [str(project / ".venv" / "bin" / "mlci"), "serve", "models/serving", "--port", str(port)]
    body = json.dumps({"dataframe_split": {"columns": list(features.columns), "data": features.to_numpy().tolist()}})
    with ServerProcess(command, f"http://127.0.0.1:{port}/readyz", DEMO / "serve.log", cwd=project) as server:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            proba = json.loads(response.read())["predictions"]
    if server.process is None or server.process.returncode != 0:
        raise RuntimeError(f"mlci serve did not stop cleanly:\n{server.log()[-2000:]}")
    classes = target["classes"]
    predicted = [classes[max(range(len(row)), key=row.__getitem__)] for row in proba]
    accuracy = sum(p == t for p, t in zip(predicted, test["target"], strict=True)) / len(test)
    runtime = json.loads((project / "models" / "serving" / "serving.json").read_text())["runtime"]
    return {"runtime": runtime, "accuracy": accuracy}


if __name__ == "__main__":
    main()
