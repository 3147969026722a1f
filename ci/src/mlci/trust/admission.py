"""The cluster's admission policy, made from the deployment repo's trust.yaml: a Kyverno ImageValidatingPolicy that
admits a model image only with an mlci certificate attestation signed by a listed signer whose gates all passed.

One trust root: the keys and keyless identities that deploy-pr, promote, rollback and status check are the
attestors the cluster checks. `mlci admission-policy` writes it; regenerate it whenever trust.yaml changes.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import MlciError
from .attestation import PREDICATE_TYPE
from .policy import TrustPolicy

POLICY_NAME = "mlci-certified-models"
NAMESPACE_LABEL = "mlci.dev/models"
REKOR = "https://rekor.sigstore.dev"
KINDS = ("containers", "initContainers", "ephemeralContainers")


def _attestor_name(name: str, taken: set[str]) -> str:
    """A CEL identifier from a trust.yaml name (attestors are referred to as attestors.<name>)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "signer"
    base = base if base[0].isalpha() else f"signer_{base}"
    chosen, n = base, 2
    while chosen in taken:
        chosen, n = f"{base}_{n}", n + 1
    taken.add(chosen)
    return chosen


def policy(trust: TrustPolicy, images: list[str]) -> dict[str, Any]:
    """The ImageValidatingPolicy: every container image matching `images` (globs) must carry an attestation of
    type PREDICATE_TYPE signed by one of trust.yaml's signers, whose certificate passed every gate."""
    if not images:
        raise MlciError("--images: name at least one image glob the policy applies to (e.g. 'ghcr.io/my-org/*')")
    taken: set[str] = set()
    attestors: list[dict[str, Any]] = []
    for key in trust.keys:
        pem = key.key.keyval.get("public", "")
        attestors.append({"name": _attestor_name(key.name, taken), "cosign": {"key": {"data": _pem(pem, key.name)}}})
    for i, identity in enumerate(trust.keyless):
        attestors.append(
            {
                "name": _attestor_name(f"keyless_{i}", taken),
                "cosign": {
                    "keyless": {
                        "identities": [{"issuer": identity.issuer, "subjectRegExp": identity.identity.pattern}]
                    },
                    "ctlog": {"url": REKOR},
                },
            }
        )
    signers = "[" + ", ".join(f"attestors.{a['name']}" for a in attestors) + "]"
    certificate = "(has(p.predicate) ? p.predicate : p)"
    validations = []
    for kind in KINDS:
        each = f"!has(images.{kind}) || images.{kind}.all(image, "
        validations += [
            {
                "expression": each + f"verifyAttestationSignatures(image, attestations.certificate, {signers}) > 0)",
                "message": f"{kind}: the image has no mlci certificate attestation signed by a signer of trust.yaml",
            },
            {
                "expression": each + "[extractPayload(image, attestations.certificate)].all(p, "
                f"{certificate}.verdict == 'pass' && {certificate}.gates.all(g, g.status == 'pass')))",
                "message": f"{kind}: the attested certificate did not pass every gate",
            },
        ]
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "annotations": {"mlci.dev/generated-from": trust.source.rsplit("/", 1)[-1]},
        },
        "spec": {
            "validationActions": ["Deny"],
            "failurePolicy": "Fail",
            "webhookConfiguration": {"timeoutSeconds": 15},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "true"}},
            },
            "matchImageReferences": [{"glob": glob} for glob in images],
            "attestors": attestors,
            "attestations": [{"name": "certificate", "intoto": {"type": PREDICATE_TYPE}}],
            "validations": validations,
        },
    }


def _pem(value: str, name: str) -> str:
    """trust.yaml's key as PEM again (securesystemslib keeps ed25519 keys as hex; the others as PEM)."""
    if value.startswith("-----BEGIN"):
        return value.strip() + "\n"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError as error:
        raise MlciError(f"trust.yaml: the key of {name!r} cannot be written as PEM: {error}") from None
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Block scalars for the multi-line strings (PEM keys), as a person would write them."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def render(trust: TrustPolicy, images: list[str]) -> str:
    head = (
        "# Written by `mlci admission-policy` from the deployment repo's trust.yaml: regenerate it when trust.yaml\n"
        "# changes. Kyverno admits a model image (in namespaces labelled mlci.dev/models=true) only with an mlci\n"
        "# certificate attestation signed by one of trust.yaml's signers, whose certificate passed every gate.\n"
    )
    return head + str(yaml.dump(policy(trust, images), Dumper=_Dumper, sort_keys=False, width=120))
