"""The `mlci` command line: parses options, calls one module per command, prints the outcome."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__
from .errors import MlciError
from .files import write_atomic

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Package, serve and certify models of projects made from the MLOps template.",
)


class Runtime(StrEnum):
    """What serves the model: auto is ONNX when the export matches the model, else the MLflow pyfunc."""

    auto = "auto"
    onnx = "onnx"
    pyfunc = "pyfunc"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class Forge(StrEnum):
    """github: push and open or update the pull request through GitHub's API; none: only push."""

    github = "github"
    none = "none"


class Environment(StrEnum):
    staging = "staging"
    production = "production"


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


RUNTIME_HELP = "auto: ONNX when the export matches the model, else the MLflow pyfunc"
FORGE_HELP = "github: push and open or update the PR; none: only push"
REPO_HELP = "Deployment repo: owner/name on GitHub, or a git URL or path"


@app.command()
def package(
    model: Annotated[str, typer.Argument(help="MLflow model directory or models:/name@alias URI")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the packaged model to")],
    name: Annotated[str | None, typer.Option(help="Model name (default: registry name or metadata)")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the registry's)")] = None,
    runtime: Annotated[Runtime, typer.Option(help=RUNTIME_HELP)] = Runtime.auto,
    tolerance: Annotated[float, typer.Option(help="Largest |difference| allowed between ONNX and the model")] = 1e-5,
) -> None:
    """Export a model for serving (ONNX when possible) and check it predicts what the model predicts."""
    from .packaging.package import package as run_package

    served = run_package(model, out, name=name, version=version, runtime=runtime.value, tolerance=tolerance, log=_say)
    _say(f"package: {served.name} version {served.version} -> {out} ({served.runtime}, sha256 {served.sha256})")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="Packaged model, MLflow model directory or models:/ URI")],
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes", min=1, max=256)] = 1,
    threads: Annotated[int, typer.Option(help="Threads each worker's model runs on", min=1, max=256)] = 1,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted", min=1)] = 16 * 1024 * 1024,
    max_rows: Annotated[int, typer.Option(help="Most rows in one request", min=1)] = 10_000,
    drift_window: Annotated[int, typer.Option(help="Rows in each worker's drift window", min=1)] = 1000,
    graceful_timeout: Annotated[int, typer.Option(help="Seconds to drain requests on SIGTERM", min=0)] = 30,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds a request may take to arrive (headers and body); then 408", min=0.1)
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections per worker; beyond, 503 with Retry-After", min=1)
    ] = 1000,
    feedback_capacity: Annotated[
        int, typer.Option(help="Recent predictions each worker keeps for POST /feedback (0: no /feedback)", min=0)
    ] = 100_000,
    feedback_window: Annotated[
        float, typer.Option(help="Seconds after a prediction that its feedback is still matched", min=1)
    ] = 3600.0,
    prediction_log: Annotated[
        str | None, typer.Option(help="Append sampled predictions (JSON lines) to this file, or - for stdout")
    ] = None,
    prediction_log_sample: Annotated[
        float, typer.Option(help="The share of predicted rows the prediction log keeps", min=0.0, max=1.0)
    ] = 1.0,
    runtime: Annotated[Runtime, typer.Option(help=RUNTIME_HELP)] = Runtime.auto,
    name: Annotated[str | None, typer.Option(help="Model name when packaging here")] = None,
    version: Annotated[str | None, typer.Option(help="Model version when packaging here")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="How much the server logs")] = LogLevel.info,
    attestation: Annotated[
        Path | None, typer.Option(help="Refuse to start unless this signed attestation certifies the artifact")
    ] = None,
    trust: Annotated[Path | None, typer.Option(help="With --attestation: the trust.yaml of its signers")] = None,
) -> None:
    """Serve a model over HTTP: /invocations, the v2 inference protocol, health, readiness and /metrics."""
    from .model import manifest
    from .serving.app import Limits
    from .serving.server import ServeOptions
    from .serving.server import serve as run_server

    chosen = runtime.value
    logging.basicConfig(level=log_level.value.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        limits=Limits(max_body_bytes, max_rows),
        drift_window=drift_window,
        graceful_timeout=graceful_timeout,
        log_level=log_level.value,
        read_timeout=read_timeout,
        max_connections=max_connections,
        feedback_capacity=feedback_capacity,
        feedback_window_s=feedback_window,
        prediction_log=prediction_log,
        prediction_log_sample=prediction_log_sample,
    )
    path = Path(model)
    if (attestation is None) != (trust is None):
        raise MlciError("--attestation and --trust go together: the attestation, and the trust.yaml of its signers")
    if path.is_dir() and manifest.is_packaged(path):
        if name or version or chosen != "auto":
            raise MlciError(f"{model} is already packaged: --name, --version and --runtime apply only when packaging")
        served = manifest.load(path)
        if attestation is not None and trust is not None:
            _say(f"serve: {served.sha256[:12]} is {_attested_artifact(attestation, trust, served.sha256)}")
        raise typer.Exit(run_server(served, options))
    if attestation is not None:
        raise MlciError(f"--attestation needs a packaged model (serving.json): {model} is packaged here, unattested")
    from .packaging.package import package as run_package

    with tempfile.TemporaryDirectory(prefix="mlci-serve-") as scratch:
        served = run_package(model, Path(scratch) / "package", name=name, version=version, runtime=chosen, log=_say)
        code = run_server(served, options)
    raise typer.Exit(code)


def _attested_artifact(path: Path, trust: Path, sha256: str, doing: str = "serve") -> str:
    from .trust import attestation, policy

    try:
        envelope = attestation.decode(path.read_bytes(), str(path))
    except OSError as error:
        raise MlciError(f"--attestation {path}: {error.strerror}") from None
    try:
        return str(attestation.verify_artifact(envelope, policy.load(trust), sha256))
    except attestation.AttestationError as refusal:
        raise MlciError(f"refusing to {doing} {sha256[:12]}: {refusal}") from None


@app.command()
def feedback(
    predictions: Annotated[Path, typer.Option(help="A prediction log that `mlci serve --prediction-log` wrote")],
    labels: Annotated[Path, typer.Option(help="Ground truth: JSON lines or a CSV of id and label (or value)")],
    output_format: Annotated[
        str, typer.Option("--format", help="text (a line per version) or json", case_sensitive=False)
    ] = "text",
) -> None:
    """Live quality offline, for labels that arrive after the server's window: the figures POST /feedback
    counts, per model version, from a prediction log joined to labels by prediction id."""
    from .serving.feedback import offline

    if output_format not in ("text", "json"):
        raise MlciError(f"--format is text or json, not {output_format!r}")
    figures = offline(predictions, labels)
    if output_format == "json":
        print(json.dumps(figures, indent=2, sort_keys=True))
        return
    for version, counts in figures.items():
        if "correct" in counts:
            labelled = counts["correct"] + counts["wrong"]
            accuracy = f"accuracy {counts['correct'] / labelled:.4f}" if labelled else "no labelled rows"
            print(f"version {version}: {int(labelled)} rows labelled, {accuracy}")
        elif "matched" in counts:
            rows = counts["matched"]
            shown = (
                f"mae {counts['absolute_error'] / rows:.4f}, rmse {(counts['squared_error'] / rows) ** 0.5:.4f}"
                if rows
                else "no labelled rows"
            )
            print(f"version {version}: {int(rows)} rows labelled, {shown}")
        else:
            print(f"unmatched: {int(counts['unmatched'])} labels name no logged prediction")


@app.command()
def score(
    model: Annotated[Path, typer.Argument(help="The packaged model (serving.json), e.g. models/serving")],
    input_path: Annotated[
        str, typer.Option("--input", help="A .parquet or .csv file, or a folder or prefix of them (local or s3://)")
    ],
    output: Annotated[
        str, typer.Option(help="Parquet file; a folder of part-<i>.parquet for a folder input or --partitions")
    ],
    key: Annotated[list[str] | None, typer.Option("--key", help="An input column kept beside the predictions")] = None,
    rejects: Annotated[str | None, typer.Option(help="Where refused rows go (default: beside the output)")] = None,
    max_reject_share: Annotated[
        float, typer.Option(help="Exit 1 when more than this share of the rows is refused", min=0.0, max=1.0)
    ] = 0.0,
    partitions: Annotated[int, typer.Option(help="Scorers sharing the input's files (a Job's completions)", min=1)] = 1,
    partition_index: Annotated[
        int,
        typer.Option(envvar="JOB_COMPLETION_INDEX", help="This scorer's index: files i, i+N, ... of the listing"),
    ] = 0,
    run_id: Annotated[
        str | None, typer.Option(help="The run's id, which every prediction id starts with (default: time-based)")
    ] = None,
    threads: Annotated[int, typer.Option(help="Threads the model runs on (0: one per core)", min=0, max=256)] = 0,
    batch_rows: Annotated[int, typer.Option(help="Rows read and scored at a time (Parquet)", min=1)] = 65_536,
    attestation: Annotated[
        Path | None, typer.Option(help="Refuse to score unless this signed attestation certifies the artifact")
    ] = None,
    trust: Annotated[Path | None, typer.Option(help="With --attestation: the trust.yaml of its signers")] = None,
) -> None:
    """Score a table with a packaged model, in bounded memory: the predictions with the key columns, the model
    version and a prediction id; rows the signature refuses go to a rejects file with the reason."""
    import time

    from .model import manifest
    from .serving.batch import Progress, ScoreOptions
    from .serving.batch import score as run_score

    if (attestation is None) != (trust is None):
        raise MlciError("--attestation and --trust go together: the attestation, and the trust.yaml of its signers")
    served = manifest.load(model)
    if attestation is not None and trust is not None:
        _say(f"score: {served.sha256[:12]} is {_attested_artifact(attestation, trust, served.sha256, 'score')}")
    threads = threads or os.cpu_count() or 1  # a batch has the machine (or the pod's CPUs) to itself
    options = ScoreOptions(tuple(key or ()), partition_index, partitions, max_reject_share, rejects, run_id, threads,
                           batch_rows)  # fmt: skip
    shown = [0.0]

    def progress(at: Progress) -> None:  # a line redrawn on a terminal, at most five times a second
        if time.monotonic() - shown[0] >= 0.2:
            shown[0] = time.monotonic()
            rate = at.rows / at.seconds if at.seconds else 0.0
            typer.echo(f"\rscore: file {at.file}/{at.files}, {at.rows:,} rows, {rate:,.0f} rows/s", err=True, nl=False)

    done = run_score(served, input_path, output, options, progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        typer.echo("", err=True)
    if done.ignored:
        _say(f"score: ignored the columns the model does not take (--key keeps one): {', '.join(done.ignored)}")
    share = done.rejected / done.rows if done.rows else 0.0
    typer.echo(
        f"score: {done.scored:,} rows scored, {done.rejected:,} rejected ({share:.2%}) from {len(done.files)} file(s) "
        f"in {done.seconds:.1f} s -> {done.output}; rejects -> {done.rejects}"
    )
    if not done.passed:
        typer.echo(f"mlci: refused: {share:.2%} of the rows rejected, over --max-reject-share {max_reject_share:.2%}",
                   err=True)  # fmt: skip
        raise typer.Exit(1)


@app.command()
def certify(
    config_file: Annotated[Path, typer.Option("--config", help="The gates and thresholds")] = Path(
        "certification.yaml"
    ),
    out: Annotated[Path, typer.Option("--out", help="Where certificate.json, report.md and plots go")] = Path(
        "reports/certification"
    ),
    verify: Annotated[Path | None, typer.Option(help="Check ARTIFACT against this certificate instead")] = None,
    artifact: Annotated[Path | None, typer.Argument(help="With --verify: the packaged model to check")] = None,
) -> None:
    """Run every certification gate; exit 0 when all pass, 1 when any fails, 2 when one could not run."""
    from .certify import certificate
    from .certify.run import certify as run_certify

    if verify is not None:
        if artifact is None:
            raise MlciError("--verify needs the packaged model to check: mlci certify --verify CERT ARTIFACT")
        try:
            typer.echo(certificate.verify(verify, artifact))
        except MlciError as refusal:
            typer.echo(f"mlci: refused: {refusal}", err=True)
            raise typer.Exit(1) from None
        return
    outcome = run_certify(config_file, out, Path.cwd(), log=_say)
    verdict = outcome.certificate["verdict"]
    failing = [g["gate"] for g in outcome.certificate["gates"] if g["status"] != "pass"]
    _say(f"certify: wrote {outcome.certificate_path}, {outcome.report_path} and {outcome.model_card_path}")
    typer.echo(f"certify: {verdict}" + (f" ({', '.join(failing)})" if failing else " (every gate passed)"))
    raise typer.Exit({"pass": 0, "fail": 1}.get(verdict, 2))


@app.command("pr-comment")
def pr_comment(
    pr: Annotated[int, typer.Option("--pr", help="Pull request number")],
    report: Annotated[Path, typer.Option(help="Markdown file to post")] = Path("reports/certification/report.md"),
    repo: Annotated[str | None, typer.Option(help="owner/name (default: $GITHUB_REPOSITORY)")] = None,
    topic: Annotated[str, typer.Option(help="Which of mlci's comments this is; one comment per topic")] = (
        "certification"
    ),
) -> None:
    """Post a report on a pull request as one comment that later runs edit (token: $GITHUB_TOKEN)."""
    from .gitops.pr_comment import post_report

    posted = post_report(report, pr, repo, topic)
    typer.echo(f"pr-comment: {posted.action} comment {posted.comment_id} {posted.url}".rstrip())


@app.command("deploy-pr")
def deploy_pr(
    env: Annotated[Environment, typer.Option(help="The environment proposed to")],
    image: Annotated[str, typer.Option(help="The serving image, pinned by digest: name@sha256:...")],
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    certificate: Annotated[Path, typer.Option(help="certificate.json of the model in the image")] = Path(
        "reports/certification/certificate.json"
    ),
    forge: Annotated[Forge, typer.Option(help=FORGE_HELP)] = Forge.github,
    model: Annotated[Path, typer.Option(help="The packaged model the certificate certifies")] = Path("models/serving"),
    deploy_dir: Annotated[Path, typer.Option("--deploy-dir", help="The project's kustomize base")] = Path("deploy"),
    report: Annotated[Path | None, typer.Option(help="The PR body (default: report.md beside the certificate)")] = None,
    attestation: Annotated[
        Path | None,
        typer.Option(help="The image's signed attestation (default: attestation.json beside the certificate)"),
    ] = None,
) -> None:
    """Propose a certified, attested model to the deployment repo as one PR per project and env; the attestation is
    verified against the repo's trust.yaml first (token: $GITHUB_TOKEN)."""
    from .gitops.deploy_pr import deploy_pr as run_deploy_pr
    from .gitops.proposal import proposal

    proposed = proposal(env.value, image, certificate, model, deploy_dir, report, attestation)
    _report_outcome("deploy-pr", run_deploy_pr(proposed, repo, forge.value, log=_say))


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="The private key's file; the public key goes to FILE.pub")] = Path(
        "signing.key"
    ),
) -> None:
    """Make an ed25519 signing key for offline attestations (list FILE.pub in the deployment repo's trust.yaml)."""
    from .trust.keys import generate

    public = generate(out)
    typer.echo(f"keygen: wrote {out} (private, mode 600) and {public} (public: list it in trust.yaml)")


@app.command()
def attest(
    image: Annotated[str, typer.Option(help="The serving image, pinned by digest: name@sha256:...")],
    artifact_sha256: Annotated[
        str, typer.Option("--artifact-sha256", help="The image's dev.mlci.artifact-sha256 label: what it serves")
    ],
    certificate: Annotated[Path, typer.Option(help="The model's certificate.json")] = Path(
        "reports/certification/certificate.json"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Where the attestation goes (default: beside the certificate)")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="ed25519 private key (PEM); default: $MLCI_SIGNING_KEY")] = None,
) -> None:
    """Sign an in-toto attestation binding the serving image's digest to its (passing) certificate."""
    import json

    from .gitops.proposal import IMAGE_BY_DIGEST
    from .trust import attestation
    from .trust.keys import load_signer

    pinned = IMAGE_BY_DIGEST.fullmatch(image)
    if pinned is None:
        raise MlciError(f"--image {image!r} is not pinned by digest (name@sha256:<64 hex digits>)")
    try:
        certified = json.loads(certificate.read_bytes())
    except (OSError, ValueError) as error:
        raise MlciError(f"--certificate {certificate}: not a readable certificate: {error}") from None
    envelope = attestation.attest(pinned["name"], pinned["digest"], certified, artifact_sha256, load_signer(key))
    target = out or certificate.with_name("attestation.json")
    write_atomic(target, attestation.encode(envelope))
    typer.echo(f"attest: wrote {target} for {image} (keyid {envelope['signatures'][0]['keyid'][:16]})")


@app.command("verify-attestation")
def verify_attestation(
    image: Annotated[str, typer.Option(help="The serving image, pinned by digest: name@sha256:...")],
    trust: Annotated[Path, typer.Option(help="The deployment repo's trust.yaml")],
    certificate: Annotated[Path, typer.Option(help="certificate.json")] = Path(
        "reports/certification/certificate.json"
    ),
    attestation_file: Annotated[Path | None, typer.Option("--attestation", help="Default: beside the certificate")] = (
        None
    ),
) -> None:
    """Check that a trusted signer attested this image and this certificate; exit 1 with the reason when not."""
    from .trust import attestation, policy

    digest = image.rpartition("@")[2]
    path = attestation_file or certificate.with_name("attestation.json")
    if not path.is_file():
        raise MlciError(f"{path} is missing: the image is unsigned (mlci attest writes it)")
    try:
        verified = attestation.verify(
            attestation.decode(path.read_bytes(), str(path)), policy.load(trust), digest, certificate.read_bytes()
        )
    except attestation.AttestationError as refusal:
        typer.echo(f"mlci: refused: {refusal}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"verify-attestation: {image}: {verified}")


@app.command("admission-policy")
def admission_policy(
    trust: Annotated[Path, typer.Option(help="The deployment repo's trust.yaml")] = Path("trust.yaml"),
    images: Annotated[list[str], typer.Option("--images", help="Image globs the policy checks (repeatable)")] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Write the policy here (default: stdout)")] = None,
) -> None:
    """The cluster's admission policy from trust.yaml: Kyverno admits a model image only with a trusted, passing
    attestation."""
    from .trust import admission, policy

    text = admission.render(policy.load(trust), images)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        typer.echo(f"admission-policy: wrote {out}")


@app.command()
def promote(
    tag: Annotated[str, typer.Option(help="The release tag vX.Y.Z whose commit is promoted")],
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    env: Annotated[Environment, typer.Option(help="The environment promoted to")] = Environment.production,
    forge: Annotated[Forge, typer.Option(help=FORGE_HELP)] = Forge.github,
    app_name: Annotated[str | None, typer.Option("--app", help="The app (default: pyproject.toml's name)")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow registry whose aliases move (default: $MLFLOW_TRACKING_URI)")
    ] = None,
    registry: Annotated[bool, typer.Option(help="--no-registry: move no MLflow alias")] = True,
) -> None:
    """Promote the model certified at a release tag's commit as a production PR; the MLflow aliases follow once it is
    merged (mlci sync-aliases), and are reconciled with what production runs now first."""
    from .gitops.promotion import promote as run_promote

    uri = None
    if registry:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise MlciError("no MLflow registry: set MLFLOW_TRACKING_URI or --tracking-uri, or pass --no-registry")
    done = run_promote(tag, env.value, repo, forge.value, _app(app_name), Path.cwd(), uri, log=_say)
    _report_outcome("promote", done.outcome)
    moved = ", ".join(f"{alias} -> version {version}" for alias, version in done.aliases.items())
    typer.echo(
        f"promote: {done.proposal.title}"
        + (f"; MLflow aliases, as production runs now: {moved}" if moved else "")
        + (
            f"; champion moves to version {done.proposal.version} when the PR is merged (mlci sync-aliases)"
            if uri
            else ""
        )
    )


@app.command("release-notes")
def release_notes(
    tag: Annotated[str, typer.Option(help="The release tag vX.Y.Z")],
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    forge: Annotated[
        Forge,
        typer.Option(help="github: name the merged PRs and approvals, create or update the release; none: notes only"),
    ] = Forge.github,
    app_name: Annotated[str | None, typer.Option("--app", help="The app (default: pyproject.toml's name)")] = None,
    model_card: Annotated[
        Path | None,
        typer.Option(
            help="A model card (Markdown), included as it is (default: the one beside the certificate staging ran)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the notes are written")] = Path("reports/release-notes.md"),
    project_repo: Annotated[
        str | None, typer.Option(help="The project's repo on GitHub, owner/name (default: $GITHUB_REPOSITORY)")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="The workflow run whose environment approvals count (default: $GITHUB_RUN_ID)")
    ] = None,
) -> None:
    """Release notes for a tag against what production runs: parameter, data and metric changes, the PRs merged in
    between, the certificate, the model card and who approved; with --forge github, the tag's GitHub release too.
    The deployment repo is read with $DEPLOYMENT_REPO_TOKEN when set, else $GITHUB_TOKEN."""
    from .gitops.release_notes import release_notes as run_release_notes

    done = run_release_notes(
        tag, repo, forge.value, _app(app_name), Path.cwd(), lambda notes: write_atomic(out, notes),
        project_repo=project_repo, run_id=run_id or os.environ.get("GITHUB_RUN_ID") or None, model_card=model_card,
    )  # fmt: skip
    _say(f"release-notes: wrote {out}")
    if done.action == "written":
        typer.echo(f"release-notes: no forge: the notes of {done.release.app} {tag} are in {out}")
    else:
        typer.echo(f"release-notes: {done.action} the release {done.release.app} {tag} {done.url or ''}".rstrip())


@app.command("sync-aliases")
def sync_aliases(
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    forge: Annotated[Forge, typer.Option(help="github: read a private repo with $GITHUB_TOKEN")] = Forge.none,
    app_name: Annotated[str | None, typer.Option("--app", help="One app (default: every app of the repo)")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow registry whose aliases move (default: $MLFLOW_TRACKING_URI)")
    ] = None,
) -> None:
    """Point the MLflow aliases at what the deployment repo's default branch runs: champion at production's version,
    challenger at staging's other one. The deployment repo runs it on every push to its default branch."""
    import tempfile

    from .gitops.github import forge_client
    from .gitops.promotion import sync_aliases as run_sync
    from .gitops.repo_reader import DeploymentHistory

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise MlciError("no MLflow registry: set MLFLOW_TRACKING_URI or --tracking-uri")
    with tempfile.TemporaryDirectory(prefix="mlci-aliases-") as scratch:
        history = DeploymentHistory.clone(repo, Path(scratch), forge_client(forge.value, repo)[1])
        apps = [app_name] if app_name else sorted({app for app, _ in history.overlays()})
        for name in apps:
            named = run_sync(history, uri, name)
            said = ", ".join(f"{alias} -> version {version}" for alias, version in named.items())
            typer.echo(f"sync-aliases: {name}: " + (said or "production runs no certified version: left as they were"))


@app.command()
def rollback(
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    env: Annotated[Environment, typer.Option(help="The environment to roll back")] = Environment.production,
    to: Annotated[str, typer.Option(help="The version to return to (empty: the previous one)")] = "",
    forge: Annotated[Forge, typer.Option(help=FORGE_HELP)] = Forge.github,
    app_name: Annotated[str | None, typer.Option("--app", help="The app (default: pyproject.toml's name)")] = None,
) -> None:
    """One PR that returns an environment to a version it ran before, once that version's certificate verifies."""
    from .gitops.promotion import rollback as run_rollback

    outcome, proposed, current, target = run_rollback(
        env.value, to.strip() or None, repo, forge.value, _app(app_name), log=_say
    )
    _report_outcome("rollback", outcome)
    typer.echo(f"rollback: {proposed.title} (from version {current.version})")


@app.command()
def status(
    repo: Annotated[str, typer.Option(help=REPO_HELP)],
    forge: Annotated[
        Forge, typer.Option(help="github: also list open PRs through its API; none: git only")
    ] = Forge.none,
    output_format: Annotated[Format, typer.Option("--format", help="How the status is written")] = Format.table,
    out: Annotated[Path | None, typer.Option(help="Write the status here instead of printing it")] = None,
    prometheus: Annotated[
        str,
        typer.Option(
            help="Prometheus URL: each environment's requests per second, p99 latency and rows predicted over a "
            "day, and live quality from feedback (the shadow's too)"
        ),
    ] = "",
) -> None:
    """Every app and environment in the deployment repo: what runs, certified how, trained and approved when."""
    from .gitops.status import status as run_status

    done = run_status(repo, forge.value, output_format.value, prometheus.strip() or None)
    if out is None:
        typer.echo(done.text, nl=False)
    else:
        write_atomic(out, done.text)
        _say(f"status: wrote {out}")


@app.command("retrain-pr")
def retrain_pr(
    repo: Annotated[str, typer.Option(help="The project's repo: owner/name on GitHub, or a git URL or path")],
    forge: Annotated[Forge, typer.Option(help="github: push and open the PR; none: only push")] = Forge.github,
    reason: Annotated[str, typer.Option(help="Why it retrained (the PR's title)")] = "scheduled retraining",
    report: Annotated[Path, typer.Option(help="The PR body")] = Path("reports/certification/report.md"),
    base: Annotated[
        str | None, typer.Option(help="The PR's base branch (default: $GITHUB_REF_NAME, else main)")
    ] = None,
) -> None:
    """Propose a retraining run's dvc.lock to the project as a PR (body: the certification report)."""
    from .gitops.retrain import retrain_pr as run_retrain_pr

    base = base or os.environ.get("GITHUB_REF_NAME") or "main"
    done = run_retrain_pr(Path.cwd(), repo, forge.value, reason.strip() or "retraining", report, base, log=_say)
    typer.echo(done.message)


@app.command("retrain-trigger")
def retrain_trigger(
    prometheus: Annotated[str, typer.Option(help="Prometheus's URL")],
    namespace: Annotated[str, typer.Option(help="The namespace whose alerts count")],
    repo: Annotated[str, typer.Option(help="The project's repo on GitHub: owner/name")],
    alert: Annotated[list[str] | None, typer.Option(help="An alert that calls for retraining (repeatable)")] = None,
    event: Annotated[str, typer.Option(help="The repository_dispatch event type")] = "model-drift",
    every: Annotated[float, typer.Option(help="Seconds between runs: an alert is new for one run")] = 900,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be dispatched")] = False,
    at: Annotated[
        str | None, typer.Option(help="The run's time, ISO 8601 (default: now; a missed run's slot to replay it)")
    ] = None,
) -> None:
    """Send repository_dispatch once per activation of a retraining alert in a namespace (input drift, and live
    quality from feedback, by default; token: $GITHUB_TOKEN)."""
    from datetime import datetime

    from .gitops.retrain import retrain_trigger as run_trigger

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise MlciError(f"--at {at!r} is not an ISO 8601 time") from None
    for name in alert or ["ModelInputDrift", "ModelLiveQualityLow"]:
        fresh = run_trigger(prometheus, namespace, repo, name, event, every, dry_run, at=when, log=_say)
        typer.echo(f"retrain-trigger: {len(fresh)} new {name} alert(s) in {namespace}")


def _app(name: str | None) -> str:
    """--app, or the project's name from pyproject.toml in the working directory."""
    from .gitops.proposal import PROJECT

    if name:
        if not PROJECT.fullmatch(name):
            raise MlciError(f"--app {name!r} is not an app name (lower-case letters, digits and dashes)")
        return name
    import tomllib

    pyproject = Path("pyproject.toml")
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["name"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        raise MlciError("--app is required outside a project (no [project] name in ./pyproject.toml)") from None


def _report_outcome(command: str, outcome: Any) -> None:
    if outcome.pull_request is None:
        typer.echo(f"{command}: pushed {outcome.branch} (no forge: open the pull request yourself)")
    else:
        pull = outcome.pull_request
        typer.echo(
            f"{command}: {outcome.action} pull request #{pull.get('number')} {pull.get('html_url', '')}".rstrip()
        )


@app.command("version")
def show_version() -> None:
    """Print mlci's version."""
    typer.echo(__version__)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def main() -> None:
    """Run a command; every error a user can fix, a bad option included, is one line `mlci: error: ...`, status 2."""
    try:
        code = app(sys.argv[1:] or ["--help"], prog_name="mlci", standalone_mode=False)
    except typer.Abort:
        typer.echo("mlci: aborted", err=True)
        sys.exit(1)
    except typer.TyperException as error:  # typer's checks of the options: a missing one, a value not a choice
        message = error.format_message().replace("Value error, ", "")  # typer passes on pydantic's prefix
        typer.echo(f"mlci: error: {message}", err=True)
        sys.exit(error.exit_code)
    except MlciError as error:
        typer.echo(f"mlci: error: {error}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
