"""k8s/, what a platform engineer applies once: every folder renders, every object matches its schema, pods
meet Pod Security "restricted", checkov and hadolint pass, and the ApplicationSet, fed a deployment repo
written by mlci deploy-pr, makes Applications the AppProject allows and whose paths render."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
import yaml
from test_deploy_manifests import kustomize, restricted_violations, schema_failures, tool

from bakery import TEMPLATE, bake, run
from mlci.gitops.proposal import DeployProposal

K8S = TEMPLATE / "k8s"
FOLDERS = ["argocd", "argo-rollouts", "gateway", "runners", "mlflow", "admission"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {folder: kustomize(K8S / folder) for folder in FOLDERS}


def one(objects: list[dict], kind: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def test_every_folder_renders_and_every_object_matches_its_schema(rendered):
    kinds = {folder: sorted(o["kind"] for o in objects) for folder, objects in rendered.items()}
    assert kinds == {
        "argocd": ["AppProject", "ApplicationSet"],
        "argo-rollouts": ["ClusterRole", "ClusterRoleBinding", "ConfigMap"],
        "gateway": ["Gateway", "Namespace"],
        "runners": ["ConfigMap"],
        "mlflow": ["Deployment", "Namespace", "NetworkPolicy", "Service", "ServiceAccount"],
        "admission": ["ImageValidatingPolicy"],
    }
    assert schema_failures([o for objects in rendered.values() for o in objects]) == []


def test_the_admission_policy_is_the_one_mlci_makes_from_trust_yaml(rendered, tmp_path):
    """One trust root: the committed policy is what `mlci admission-policy` writes from the example trust.yaml, and
    a trust.yaml with keys and keyless identities makes a policy of valid schema with one attestor each."""
    import subprocess
    import sys

    from mlci.trust import keys

    def generate(trust, out):
        command = [sys.executable, "-m", "mlci", "admission-policy", "--trust", str(trust),
                   "--images", "ghcr.io/my-org/*", "--out", str(out)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=trust.parent)
        assert done.returncode == 0, done.stderr
        return out.read_text()

    assert (
        generate(K8S / "admission" / "trust.example.yaml", tmp_path / "again.yaml")
        == (K8S / "admission" / "policy.yaml").read_text()
    )
    public = keys.generate(tmp_path / "release.key").read_text()
    trust = tmp_path / "trust.yaml"
    trust.write_text(yaml.safe_dump({"keys": [{"name": "release-key", "public_key": public}],
                                     "keyless": [{"issuer": "https://token.actions.githubusercontent.com",
                                                  "identity": "^https://github\\.com/my-org/.+$"}]}))  # fmt: skip
    policy = yaml.safe_load(generate(trust, tmp_path / "policy.yaml"))
    assert schema_failures([policy]) == []
    attestors = policy["spec"]["attestors"]
    assert [a["name"] for a in attestors] == ["release_key", "keyless_0"]
    assert attestors[0]["cosign"]["key"]["data"] == public
    assert policy["spec"]["attestations"] == [
        {"name": "certificate", "intoto": {"type": "https://mlci.dev/certificate/v1"}}
    ]
    checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "[attestors.release_key, attestors.keyless_0]" in checks and "g.status == 'pass'" in checks
    applicationset = one(rendered["argocd"], "ApplicationSet")["spec"]["template"]["spec"]["syncPolicy"]
    labels = applicationset["managedNamespaceMetadata"]["labels"]
    assert labels == policy["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"]


def test_the_mlflow_server_and_the_runners_meet_pod_security_restricted(rendered):
    mlflow = one(rendered["mlflow"], "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(mlflow) == []
    assert (
        one(rendered["mlflow"], "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    )
    args = " ".join(mlflow["containers"][0]["args"])
    assert not [e for e in mlflow["containers"][0]["env"] if "valueFrom" in e]  # secrets are files
    assert "--app-name=basic-auth" in args and "--backend-store-uri=" in args
    runner = yaml.safe_load((K8S / "runners" / "values-gpu.yaml").read_text())
    assert restricted_violations(runner["template"]["spec"]) == []


def test_the_gpu_runners_request_a_gpu_and_answer_the_generated_labels(rendered):
    values = yaml.safe_load((K8S / "runners" / "values-gpu.yaml").read_text())
    defaults = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    assert values["runnerScaleSetLabels"] == defaults["gpu_runner_labels"].split(",")
    assert values["containerMode"]["type"] == "kubernetes"
    runner_env = {e["name"]: e["value"] for e in values["template"]["spec"]["containers"][0]["env"]}
    template_file = runner_env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"].rsplit("/", 1)[1]
    config = one(rendered["runners"], "ConfigMap")
    assert values["template"]["spec"]["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]
    job = yaml.safe_load(config["data"][template_file])
    [container] = job["spec"]["containers"]
    assert container["name"] == "$job" and container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert schema_failures([job]) == []
    assert restricted_violations(job["spec"]) == []


def test_checkov_and_hadolint_pass(rendered, tmp_path):
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump_all([o for objects in rendered.values() for o in objects]))
    done = run([tool("checkov"), "-f", "k8s.yaml", "--framework", "kubernetes", "-o", "json"], tmp_path,
               env={"BC_SKIP_MAPPING": "TRUE"}, timeout=600)  # fmt: skip
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "").strip()) > 20, skipped["check_id"]
    hadolint = run([tool("hadolint"), "Dockerfile"], K8S / "mlflow")
    assert hadolint.returncode == 0, hadolint.stdout


def go_template(text: str, path: str) -> str:
    """The ApplicationSet git directory generator's parameters (goTemplate) for one directory."""
    parts = path.split("/")
    values = {".path.path": path, ".path.basename": parts[-1]}

    def field(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        indexed = re.fullmatch(r"index \.path\.segments (\d+)", expression)
        if indexed:
            return parts[int(indexed.group(1))]
        return values[expression]

    return re.sub(r"\{\{(.*?)\}\}", field, text)


def test_the_applicationset_syncs_what_deploy_pr_writes_where_the_project_allows(rendered, tmp_path):
    project = bake(tmp_path / "bake")
    repo = tmp_path / "deployments"
    base = {
        str(p.relative_to(project / "deploy")): p.read_bytes() for p in (project / "deploy").rglob("*") if p.is_file()
    }
    for name in ("tumor-classifier", "churn-model"):
        for env in ("staging", "production"):
            certificate = {"model": {"name": name, "version": "1"}, "git": {"commit": "0" * 40}}
            proposal = DeployProposal(name, env, "ghcr.io/my-org/tumor-classifier", "sha256:" + "c" * 64, certificate,
                                      b"{}", "", base)  # fmt: skip
            for relative, data in proposal.files().items():
                (repo / relative).parent.mkdir(parents=True, exist_ok=True)
                (repo / relative).write_bytes(data)
    appset = one(rendered["argocd"], "ApplicationSet")["spec"]
    allowed = one(rendered["argocd"], "AppProject")["spec"]
    [generator] = appset["generators"]
    pattern = generator["git"]["directories"][0]["path"]
    directories = sorted(
        str(p.relative_to(repo))
        for p in repo.glob("apps/*/overlays/*")
        if fnmatch.fnmatch(str(p.relative_to(repo)), pattern)
    )
    assert len(directories) == 4
    template = yaml.safe_dump(appset["template"])
    names = set()
    applications = [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **yaml.safe_load(go_template(template, d))}
        for d in directories
    ]
    assert schema_failures(applications) == []
    for application in applications:
        names.add(application["metadata"]["name"])
        spec = application["spec"]
        assert spec["project"] == one(rendered["argocd"], "AppProject")["metadata"]["name"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert spec["source"]["repoURL"] in allowed["sourceRepos"]
        namespace = spec["destination"]["namespace"]
        assert any(fnmatch.fnmatch(namespace, d["namespace"]) for d in allowed["destinations"]), namespace
        objects = kustomize(repo / spec["source"]["path"])
        assert {o["metadata"]["namespace"] for o in objects} == {namespace}
        kinds = {(o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else "", o["kind"]) for o in objects}
        whitelisted = {(k["group"], k["kind"]) for k in allowed["namespaceResourceWhitelist"]}
        assert kinds <= whitelisted, kinds - whitelisted
    assert names == {"tumor-classifier-staging", "tumor-classifier-production", "churn-model-staging",
                     "churn-model-production"}  # fmt: skip
