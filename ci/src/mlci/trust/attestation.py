"""An attestation: an in-toto Statement (v1) whose subject is a serving image's digest and whose predicate is its
certificate, in a DSSE envelope signed by an offline key (securesystemslib).

`attest` refuses a certificate that did not pass, or an image whose model artifact (its label) is not the
certified one; `verify` says who signed an attestation for this image and this certificate, or exactly what is
wrong.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from ..errors import MlciError
from .policy import TrustedKey, TrustPolicy

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlci.dev/certificate/v1"
ARTIFACT_LABEL = "dev.mlci.artifact-sha256"


class AttestationError(MlciError):
    """An attestation that does not vouch for this image and certificate: unsigned, untrusted, another digest..."""


@dataclass(frozen=True)
class Verified:
    signer: str
    keyid: str

    def __str__(self) -> str:
        return f"verified (signed by {self.signer})"


def statement(image_name: str, digest: str, certificate: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement, built and validated by in_toto_attestation."""
    from google.protobuf.json_format import MessageToDict
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    algorithm, _, value = digest.partition(":")
    subject = ResourceDescriptor(name=image_name, digest={algorithm: value})
    built = Statement([subject.pb], PREDICATE_TYPE, certificate)
    built.validate()
    return dict(MessageToDict(built.pb))


def attest(
    image_name: str, digest: str, certificate: dict[str, Any], artifact_sha256: str, signer: Any
) -> dict[str, Any]:
    """The signed envelope, as JSON-ready data; refuses what must not be vouched for."""
    from securesystemslib.dsse import Envelope

    if certificate.get("verdict") != "pass":
        raise AttestationError(f"the certificate's verdict is {certificate.get('verdict')!r}: only a pass is attested")
    certified = str((certificate.get("model") or {}).get("sha256", ""))
    if artifact_sha256 != certified:
        raise AttestationError(
            f"the image's model artifact has sha256 {artifact_sha256 or '(none)'} (its {ARTIFACT_LABEL} label), "
            f"but the certificate certifies {certified}: this image does not serve the certified model"
        )
    payload = json.dumps(statement(image_name, digest, certificate), sort_keys=True).encode()
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(signer)
    return dict(envelope.to_dict())


def _opened(envelope_data: Any, policy: TrustPolicy) -> tuple[dict[str, Any], TrustedKey]:
    """The statement of a DSSE envelope that a key of `policy` signed, and that key; raises naming what is wrong."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    try:  # from_dict pops what it reads out of the given mapping: give it a copy
        envelope = Envelope.from_dict(copy.deepcopy(envelope_data))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise AttestationError(f"the attestation is not a DSSE envelope: {error!r}") from None
    if not envelope.signatures:
        raise AttestationError("the attestation is unsigned")
    known = [k for k in (policy.key(keyid) for keyid in envelope.signatures) if k is not None]
    if not known:
        signers = ", ".join(k[:16] for k in envelope.signatures)
        raise AttestationError(
            f"the attestation is signed by key {signers}, which {policy.source} does not list: "
            "the signer is not trusted"
        )
    try:
        envelope.verify([k.key for k in known], threshold=1)
    except VerificationError as error:
        raise AttestationError(
            f"the attestation's signature does not verify (altered after signing?): {error}"
        ) from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise AttestationError(f"the attestation's payload type is {envelope.payload_type!r}, not {PAYLOAD_TYPE}")
    try:
        body = json.loads(envelope.payload)
    except ValueError:
        raise AttestationError("the attestation's payload is not JSON") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE or body.get("predicateType") != PREDICATE_TYPE:
        raise AttestationError(f"the attestation is not an mlci certificate statement ({PREDICATE_TYPE})")
    predicate = body.get("predicate")
    if not isinstance(predicate, dict) or predicate.get("verdict") != "pass":
        verdict = predicate.get("verdict") if isinstance(predicate, dict) else None
        raise AttestationError(f"the attested certificate's verdict is {verdict!r}, not pass")
    return body, known[0]


def verify(envelope_data: Any, policy: TrustPolicy, digest: str, certificate_bytes: bytes) -> Verified:
    """Who signed this attestation of `digest` and of exactly this certificate, if trust.yaml trusts them."""
    body, signer = _opened(envelope_data, policy)
    algorithm, _, value = digest.partition(":")
    subjects = [s.get("digest", {}).get(algorithm) for s in body.get("subject") or [] if isinstance(s, dict)]
    if value not in subjects:
        attested = ", ".join(f"{algorithm}:{s}" for s in subjects if s) or "no digest"
        raise AttestationError(f"the image digest {digest} does not match the attestation, which is for {attested}")
    try:
        certificate = json.loads(certificate_bytes)
    except ValueError:
        raise AttestationError("the certificate is not JSON") from None
    if body.get("predicate") != certificate:
        raise AttestationError("the certificate does not match the attestation's predicate (the attested certificate)")
    return Verified(signer.name, signer.keyid)


def verify_artifact(envelope_data: Any, policy: TrustPolicy, artifact_sha256: str) -> Verified:
    """Who attested a certificate of exactly this model artifact (what `mlci serve --attestation` checks: a server
    knows the artifact it loads, not the digest of its own image)."""
    body, signer = _opened(envelope_data, policy)
    certified = str((body["predicate"].get("model") or {}).get("sha256", ""))
    if certified != artifact_sha256:
        raise AttestationError(
            f"the artifact has sha256 {artifact_sha256}, but the attested certificate certifies {certified}: "
            "this is not the attested model"
        )
    return Verified(signer.name, signer.keyid)


def encode(envelope: dict[str, Any]) -> bytes:
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()


def decode(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise AttestationError(f"{where} is not JSON: not an attestation") from None
