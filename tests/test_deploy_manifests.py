"""The generated project's deploy/ base and the overlay mlci deploy-pr writes: rendered by kustomize, every
object validated against its schema (custom resources included), pods that meet Pod Security "restricted",
checkov's Kubernetes checks, and the alert rules and canary queries checked and tested by promtool."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bakery import TEMPLATE, bake, run
from mlci.gitops.proposal import DeployProposal, Shadow

TOOLS = Path(os.environ.get("MLOPS_TEMPLATE_TOOLS", TEMPLATE / ".venv-tools" / "bin"))
NODE_MODULES = TEMPLATE / "node_modules"
DIGEST = "sha256:" + "ab" * 32
PREVIOUS = "sha256:" + "cd" * 32  # the version production ran before: the shadow
PROJECT = "tumor-classifier"
# Pod Security "restricted": the volume types it allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The base, the staging overlay and a production overlay with its shadow, rendered as a cluster gets them."""
    project = bake(tmp_path_factory.mktemp("bake"))
    repo = tmp_path_factory.mktemp("deployments")
    base = {
        str(p.relative_to(project / "deploy")): p.read_bytes() for p in (project / "deploy").rglob("*") if p.is_file()
    }
    certificate = {"model": {"name": PROJECT, "version": "3"}, "git": {"commit": "0" * 40}}
    image = f"ghcr.io/my-org/{PROJECT}"
    staging = DeployProposal(PROJECT, "staging", image, DIGEST, certificate, b"{}", "", base)
    production = DeployProposal(PROJECT, "production", image, DIGEST, certificate, b"{}", "", base,
                                shadow=Shadow(image, PREVIOUS, "2"))  # fmt: skip
    for proposal in (staging, production):
        for relative, data in proposal.files().items():
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            (repo / relative).write_bytes(data)
    return {
        "base": kustomize(project / "deploy"),
        "staging": kustomize(repo / "apps" / PROJECT / "overlays" / "staging"),
        "production": kustomize(repo / "apps" / PROJECT / "overlays" / "production"),
    }


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make setup` installs it into .venv-tools")
    return str(path)


def kustomize(folder: Path) -> list[dict]:
    done = run([tool("kubectl"), "kustomize", str(folder)], folder)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objects: list[dict], kind: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def named(objects: list[dict], kind: str, name: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def schema_failures(objects: list[dict]) -> list[dict]:
    if not (NODE_MODULES / "kubernetes-models").is_dir():
        pytest.fail("node_modules is missing the kubernetes-models packages: `make setup` runs npm ci")
    done = subprocess.run(
        ["node", str(Path(__file__).with_name("k8s_validate.mjs"))],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_base_and_the_overlay_render(rendered):
    kinds = sorted(o["kind"] for o in rendered["base"])
    assert kinds == sorted(["AnalysisTemplate", "CronJob", "CronJob", "Deployment", "HorizontalPodAutoscaler",
                            "HTTPRoute", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget",
                            "PrometheusRule", "Rollout", "Service", "Service", "Service", "ServiceAccount",
                            "ServiceMonitor", "ServiceMonitor"])  # fmt: skip
    staging = rendered["staging"]
    assert {o["metadata"]["namespace"] for o in staging} == {f"{PROJECT}-staging"}
    rollout = by_kind(staging, "Rollout")
    pod = rollout["spec"]["template"]
    assert [c["image"] for c in pod["spec"]["containers"]] == [f"ghcr.io/my-org/{PROJECT}@{DIGEST}"]
    trigger = named(staging, "CronJob", f"{PROJECT}-retrain-trigger")["spec"]["jobTemplate"]["spec"]["template"]
    trigger = trigger["spec"]["containers"][0]
    assert trigger["image"] == f"ghcr.io/my-org/{PROJECT}@{DIGEST}"  # the model's own image: mlci is in it
    assert trigger["command"][:2] == ["mlci", "retrain-trigger"]
    assert rollout["metadata"]["annotations"]["mlci.dev/model-version"] == "3"
    assert rollout["metadata"]["annotations"]["mlci.dev/commit"] == "0" * 40


def test_the_canary_steps_and_services_are_wired(rendered):
    rollout = by_kind(rendered["staging"], "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    assert weights == [10, 50, 100]
    analysed = [i for i, s in enumerate(canary["steps"]) if "analysis" in s]
    assert len(analysed) == 2 and all(canary["steps"][i + 1].get("setWeight") in (50, 100) for i in analysed)
    services = {o["metadata"]["name"] for o in rendered["staging"] if o["kind"] == "Service"}
    assert {canary["canaryService"], canary["stableService"], f"{PROJECT}-shadow"} == services
    # The weights go through the Gateway API plugin that k8s/argo-rollouts/ registers, onto the HTTPRoute's two
    # backends (stable first, all the traffic outside a canary), the route attached to k8s/gateway/'s Gateway.
    [(plugin, settings)] = canary["trafficRouting"]["plugins"].items()
    registered = yaml.safe_load((TEMPLATE / "k8s" / "argo-rollouts" / "config.yaml").read_text())["data"]
    assert [p["name"] for p in yaml.safe_load(registered["trafficRouterPlugins"])] == [plugin]
    route = by_kind(rendered["staging"], "HTTPRoute")
    assert settings == {"httpRoute": route["metadata"]["name"]}
    backends = [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
    assert backends == [(canary["stableService"], 100), (canary["canaryService"], 0)]
    gateway = yaml.safe_load((TEMPLATE / "k8s" / "gateway" / "gateway.yaml").read_text())
    assert route["spec"]["parentRefs"] == [{"name": gateway["metadata"]["name"], "namespace": "gateway"}]
    template = by_kind(rendered["staging"], "AnalysisTemplate")
    used = {t["templateName"] for i in analysed for t in canary["steps"][i]["analysis"]["templates"]}
    assert used == {template["metadata"]["name"]}
    assert {m["name"] for m in template["spec"]["metrics"]} == {
        "error-ratio",
        "p99-latency",
        "prediction-drift",
        "live-quality",
    }
    hpa = by_kind(rendered["staging"], "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Rollout", rollout["metadata"]["name"])


def test_production_keeps_the_previous_version_as_a_shadow_on_a_mirror_of_its_traffic(rendered):
    """Staging runs no shadow and mirrors nothing; production's overlay runs one replica of the version it ran
    before, by digest, mirrors every request to it, and leaves the Rollout's image and routing as they were."""
    staging, production = rendered["staging"], rendered["production"]
    shadows = {env: next(o for o in objects if o["kind"] == "Deployment") for env, objects in rendered.items()}
    assert shadows["staging"]["spec"]["replicas"] == 0
    assert "filters" not in by_kind(staging, "HTTPRoute")["spec"]["rules"][0]
    shadow = shadows["production"]
    assert shadow["spec"]["replicas"] == 1
    assert [c["image"] for c in shadow["spec"]["template"]["spec"]["containers"]] == [
        f"ghcr.io/my-org/{PROJECT}@{PREVIOUS}"
    ]
    assert shadow["metadata"]["annotations"]["mlci.dev/shadow-version"] == "2"
    rollout = by_kind(production, "Rollout")
    assert [c["image"] for c in rollout["spec"]["template"]["spec"]["containers"]] == [
        f"ghcr.io/my-org/{PROJECT}@{DIGEST}"
    ]
    rule = by_kind(production, "HTTPRoute")["spec"]["rules"][0]
    assert rule["filters"] == [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": f"{PROJECT}-shadow", "port": 80}}}
    ]
    assert [b["name"] for b in rule["backendRefs"]] == [f"{PROJECT}-stable", f"{PROJECT}-canary"]
    # the mirror's target selects the shadow's pods only; the Rollout's services never select them
    service = next(o for o in production if o["kind"] == "Service" and o["metadata"]["name"] == f"{PROJECT}-shadow")
    pods = shadow["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    assert rollout["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] != pods["app.kubernetes.io/name"]
    # Prometheus labels the shadow's series role="shadow"; the NetworkPolicy admits the Gateway to its pods too
    monitor = next(o for o in production if o["kind"] == "ServiceMonitor" and "shadow" in o["metadata"]["name"])
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {"action": "replace", "targetLabel": "role", "replacement": "shadow"} in monitor["spec"]["endpoints"][0][
        "relabelings"
    ]
    policy = next(o for o in production if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == PROJECT)
    [selected] = policy["spec"]["podSelector"]["matchExpressions"]
    assert pods["app.kubernetes.io/name"] in selected["values"]


def test_batch_scoring_is_an_indexed_job_of_the_model_image_off_until_the_project_turns_it_on(rendered):
    """mlci score in each of the Job's pods: index i (JOB_COMPLETION_INDEX) of --partitions, which is the Job's
    completions, so that the Job completes once every part is written; suspended in the base, pinned by digest in
    the overlay, and talking to DNS and HTTPS only."""
    batch = named(rendered["staging"], "CronJob", f"{PROJECT}-batch-score")
    assert batch["spec"]["suspend"] is True and batch["spec"]["concurrencyPolicy"] == "Forbid"
    job = batch["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == 4
    [container] = job["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/my-org/{PROJECT}@{DIGEST}"
    command = container["command"]
    assert command[:3] == ["mlci", "score", "/model"] and f"--partitions={job['completions']}" in command
    assert "--run-id=$(JOB_NAME)" in command and any(a.startswith("--output=s3://") for a in command)
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    assert "JOB_COMPLETION_INDEX" not in env  # Kubernetes sets it in an Indexed Job's pods
    pods = job["template"]["metadata"]["labels"]
    policy = named(rendered["staging"], "NetworkPolicy", f"{PROJECT}-batch-score")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items() and policy["spec"]["ingress"] == []
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == {53, 443}


def test_every_object_matches_its_schema(rendered):
    for objects in rendered.values():
        assert schema_failures(objects) == []


def test_the_schema_check_catches_a_broken_object(rendered):
    broken = copy.deepcopy(by_kind(rendered["staging"], "Rollout"))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    failures = schema_failures([broken, unknown])
    assert [f["object"] for f in failures] == [f"Rollout/{PROJECT}", "Gadget/g"]


def restricted_violations(pod_spec: dict) -> list[str]:
    """What in a pod spec breaks Pod Security "restricted" (Kubernetes' documented controls)."""
    found = []
    pod = pod_spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            found.append(key)
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if not context.get("runAsNonRoot", pod.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod.get("runAsUser")) == 0:
            found.append(f"{name}: runs as UID 0")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities must drop ALL and add at most NET_BIND_SERVICE")
        seccomp = context.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


def pod_specs(objects: list[dict]) -> list[dict]:
    """Every pod template's spec: of Rollouts and other workloads, and of CronJobs' jobs."""
    specs = [o["spec"]["template"]["spec"] for o in objects if "template" in o.get("spec", {})]
    return specs + [o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in objects if o["kind"] == "CronJob"]


def test_every_pod_meets_pod_security_restricted(rendered):
    specs = pod_specs(rendered["production"])  # the Rollout's, the shadow's, the retrain trigger's, batch scoring's
    assert len(specs) == 4 and all(restricted_violations(spec) == [] for spec in specs)
    container = specs[0]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert int(container["securityContext"]["runAsUser"]) >= 10000


def test_the_pod_security_check_catches_what_it_should(rendered):
    spec = copy.deepcopy(pod_specs(rendered["staging"])[0])
    spec["hostNetwork"] = True
    spec["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})
    context = spec["containers"][0]["securityContext"]
    context.update(allowPrivilegeEscalation=True, runAsUser=0, capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]})
    assert len(restricted_violations(spec)) == 5


def test_checkov_kubernetes_checks_pass_on_the_overlay(rendered, tmp_path):
    """checkov has no checks for Rollouts: their pod template is also checked as a Deployment's."""
    objects = list(rendered["staging"])
    for rollout in [o for o in objects if o["kind"] == "Rollout"]:
        spec = {k: rollout["spec"][k] for k in ("replicas", "selector", "template")}
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": rollout["metadata"], "spec": spec})
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump_all(objects))
    done = run([tool("checkov"), "-f", "rendered.yaml", "--framework", "kubernetes", "-o", "json"], tmp_path,
               env={"BC_SKIP_MAPPING": "TRUE"}, timeout=600)  # fmt: skip
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 60
    assert any("Deployment" in c["resource"] for c in report["results"]["passed_checks"])
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "").strip()) > 20


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    return found


def test_promtool_accepts_the_alert_rules(rendered, tmp_path):
    rule = by_kind(rendered["staging"], "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = run([promtool(), "check", "rules", "rules.yaml"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 rules found" in done.stdout


def test_the_canary_queries_are_valid_promql(rendered, tmp_path):
    """promtool parses each AnalysisTemplate query, with its arguments filled in, as a recording rule."""
    template = by_kind(rendered["staging"], "AnalysisTemplate")
    args = {"namespace": "tumor-classifier-staging", "canary-hash": "6d4f", "stable-hash": "59c8"}
    rules = []
    for metric in template["spec"]["metrics"]:
        query = re.sub(
            r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], metric["provider"]["prometheus"]["query"]
        )
        assert "{{" not in query
        rules.append({"record": "canary:" + metric["name"].replace("-", "_"), "expr": query})
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "canary", "rules": rules}]}))
    done = run([promtool(), "check", "rules", "queries.yaml"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# Where each alert must fire: `bad` holds every fault at once, the autoscaler at its limit; `scaling` only a slow
# p99 while the autoscaler can still add replicas; `good` nothing.
FIRES_IN = {"ModelLatencyRemediating": "scaling"}


def alert_tests(rule: dict) -> dict:
    """promtool rule tests: each alert's condition holds long enough to fire in its namespace (FIRES_IN, else
    `bad`), and the same series stay healthy elsewhere; the alert must fire there only, and not before its `for:`."""
    job = f'job="{PROJECT}-stable"'
    prediction = 'route="/invocations"'
    hpa = f'horizontalpodautoscaler="{PROJECT}"'
    series = []
    # namespace, 5xx a minute, slow, (psi, rows in the drift window), trained, replicas, feedback (correct, wrong) a
    # minute, rmse. `scaling`'s PSI is as high as `bad`'s, on a window of 20 rows: too few for drift to count.
    cases = (
        ("bad", 10, True, (0.5, 1000), -40 * 86400, 10, (2, 2), 80.0),
        ("scaling", 0, True, (0.5, 20), 0, 4, (4, 0), 10.0),
        ("good", 0, False, (0.1, 1000), 0, 2, (4, 0), 10.0),
    )
    for namespace, errors, slow, (psi, window), trained, replicas, (correct, wrong), rmse in cases:
        where = f'{job},namespace="{namespace}"'
        matched = correct + wrong
        series += [
            {"series": f'mlci_requests_total{{{where},{prediction},code="200"}}', "values": "0+90x180"},
            {"series": f'mlci_requests_total{{{where},{prediction},code="500"}}', "values": f"0+{errors}x180"},
            {"series": f'mlci_feature_psi{{{where},feature="mean radius"}}', "values": f"{psi}x180"},
            {"series": f"mlci_drift_window_rows{{{where}}}", "values": f"{window}x180"},
            {"series": f"mlci_model_trained_timestamp_seconds{{{where}}}", "values": f"{trained}x180"},
            {"series": f'mlci_feedback_total{{{where},version="1",outcome="correct"}}', "values": f"0+{correct}x180"},
            {"series": f'mlci_feedback_total{{{where},version="1",outcome="wrong"}}', "values": f"0+{wrong}x180"},
            {"series": f'mlci_feedback_total{{{where},version="1",outcome="matched"}}', "values": f"0+{matched}x180"},
            {"series": f'mlci_feedback_squared_error_total{{{where},version="1"}}',
             "values": f"0+{matched * rmse**2}x180"},
            {"series": f'kube_horizontalpodautoscaler_status_current_replicas{{{hpa},namespace="{namespace}"}}',
             "values": f"{replicas}x180"},
            {"series": f'kube_horizontalpodautoscaler_spec_max_replicas{{{hpa},namespace="{namespace}"}}',
             "values": "10x180"},
        ]  # fmt: skip
        # The shadow, on the same requests and feedback: as good as production in `scaling` and `good`; in `bad`
        # right on every labelled row, with its errors a tenth of production's and other predictions.
        shadow = f'job="{PROJECT}-shadow",role="shadow",namespace="{namespace}"'
        shadow_rmse = rmse / 8 if namespace == "bad" else rmse
        series += [
            {"series": f'mlci_feedback_total{{{shadow},version="0",outcome="correct"}}', "values": f"0+{matched}x180"},
            {"series": f'mlci_feedback_total{{{shadow},version="0",outcome="wrong"}}', "values": "0+0x180"},
            {"series": f'mlci_feedback_total{{{shadow},version="0",outcome="matched"}}', "values": f"0+{matched}x180"},
            {"series": f'mlci_feedback_squared_error_total{{{shadow},version="0"}}',
             "values": f"0+{matched * shadow_rmse**2}x180"},
        ]  # fmt: skip
        if namespace != "bad":  # the shadow's accuracy is production's there
            series[-4]["values"], series[-3]["values"] = f"0+{correct}x180", f"0+{wrong}x180"
        parted = namespace == "bad"
        for labels, (ours, theirs) in ((where, (9, 1) if parted else (5, 5)), (shadow, (5, 5))):
            series += [
                {"series": f'mlci_predictions_total{{{labels},class="benign"}}', "values": f"0+{ours}x180"},
                {"series": f'mlci_predictions_total{{{labels},class="malignant"}}', "values": f"0+{theirs}x180"},
            ]
        for labels, shares in ((where, (0.0, 0.1, 0.2) if parted else (0.3, 0.6, 0.9)), (shadow, (0.3, 0.6, 0.9))):
            for le, share in zip(("100", "150", "200"), shares, strict=True):
                series.append({"series": f'mlci_prediction_value_bucket{{{labels},le="{le}"}}',
                               "values": f"0+{10 * share}x180"})  # fmt: skip
            series += [
                {"series": f'mlci_prediction_value_bucket{{{labels},le="+Inf"}}', "values": "0+10x180"},
                {"series": f"mlci_prediction_value_count{{{labels}}}", "values": "0+10x180"},
            ]
        for le in ("0.005", "0.05", "0.1", "+Inf"):
            under = 100 if (le in ("0.1", "+Inf") or not slow) else 0
            series.append({"series": f'mlci_request_duration_seconds_bucket{{{where},{prediction},le="{le}"}}',
                           "values": f"0+{under}x180"})  # fmt: skip
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    checks = []
    for name, spec in alerts.items():
        labels = {**spec.get("labels", {}), "namespace": FIRES_IN.get(name, "bad")}
        if name == "ModelInputDrift":
            labels["feature"] = "mean radius"
        expected = {"exp_labels": labels, "exp_annotations": spec.get("annotations", {})}
        checks.append({"eval_time": "170m", "alertname": name, "exp_alerts": [expected]})
        checks.append({"eval_time": "1m", "alertname": name, "exp_alerts": []})  # not before its `for:`
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}]}  # fmt: skip


@pytest.fixture(scope="module")
def regression_rule(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The PrometheusRule of a regression project: its live-quality alert reads the error sums."""
    project = bake(tmp_path_factory.mktemp("regression"), task="regression")
    return by_kind(kustomize(project / "deploy"), "PrometheusRule")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_each_alert_fires_on_bad_series_and_stays_quiet_on_good_ones(rendered, regression_rule, task, tmp_path):
    rule = by_kind(rendered["staging"], "PrometheusRule") if task == "classification" else regression_rule
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(alert_tests(rule)))
    done = run([promtool(), "test", "rules", "tests.yaml"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == {
        "ModelHighErrorRatio", "ModelLatencyRemediating", "ModelLatencySLOBroken", "ModelLiveQualityLow",
        "ModelWorseThanShadow", "ModelPredictionsPartFromShadow", "ModelInputDrift", "ModelStale"}  # fmt: skip


def test_the_autoscaler_scales_on_the_request_rate_and_p99_that_prometheus_adapter_serves(rendered, tmp_path):
    """hpa.yaml's per-pod metrics are the ones k8s/prometheus-adapter/ names, and the adapter's queries, their
    templates filled in as it fills them, are valid PromQL."""
    hpa = by_kind(rendered["staging"], "HorizontalPodAutoscaler")["spec"]
    wanted = {m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"}
    assert {m["resource"]["name"] for m in hpa["metrics"] if m["type"] == "Resource"} == {"cpu"}
    adapter = yaml.safe_load((TEMPLATE / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    served = {rule["name"]["as"]: rule for rule in adapter["rules"]["custom"]}
    assert wanted == set(served) == {"mlci_prediction_requests_per_second", "mlci_prediction_p99_seconds"}
    fill = {"<<.Series>>": "", "<<.LabelMatchers>>": 'namespace="ns",pod=~"p-.*"', "<<.GroupBy>>": "pod"}
    rules = []
    for name, rule in served.items():
        query = rule["metricsQuery"]
        series = rule["seriesQuery"].split("{")[0]
        assert re.fullmatch(rule["name"]["matches"], series), (name, series)
        for template, value in fill.items():
            query = query.replace(template, series if template == "<<.Series>>" else value)
        assert "<<" not in query
        rules.append({"record": f"adapter:{name}", "expr": query})
    (tmp_path / "adapter.yaml").write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": rules}]}))
    done = run([promtool(), "check", "rules", "adapter.yaml"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
