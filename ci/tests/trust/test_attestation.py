"""Attestations for real: ed25519 keys, in-toto Statements in DSSE envelopes, and trust.yaml deciding who counts."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
import yaml

from mlci.errors import MlciError
from mlci.trust import attestation, keys, policy

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
IMAGE = "ghcr.io/my-org/tumor-classifier"
CERTIFICATE = {
    "verdict": "pass",
    "model": {"name": "tumor-classifier", "version": "3", "sha256": "12" * 32, "runtime": "onnx"},
    "gates": [{"gate": "quality", "status": "pass", "measured": {"accuracy": 0.97}}],
    "git": {"commit": "0" * 40},
}


def trust_file(tmp_path: Path, *public_keys: Path, name: str = "release-key") -> Path:
    entries = [{"name": f"{name}-{i}" if i else name, "public_key": p.read_text()} for i, p in enumerate(public_keys)]
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump({"keys": entries}))
    return path


@pytest.fixture
def signed(tmp_path):
    public = keys.generate(tmp_path / "signing.key")
    certificate = json.dumps(CERTIFICATE).encode()
    envelope = attestation.attest(IMAGE, DIGEST, json.loads(certificate), CERTIFICATE["model"]["sha256"],
                                  keys.load_signer(tmp_path / "signing.key"))  # fmt: skip
    return envelope, certificate, policy.load(trust_file(tmp_path, public))


def test_a_trusted_signature_on_this_image_and_certificate_verifies(signed):
    envelope, certificate, trust = signed
    verified = attestation.verify(envelope, trust, DIGEST, certificate)
    assert str(verified) == "verified (signed by release-key)"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": IMAGE, "digest": {"sha256": DIGEST.removeprefix("sha256:")}}]
    assert statement["predicateType"] == attestation.PREDICATE_TYPE and statement["predicate"]["verdict"] == "pass"


def test_the_key_is_private_to_its_owner_and_never_overwritten(tmp_path):
    keys.generate(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(MlciError, match="never overwrites a key"):
        keys.generate(tmp_path / "k")


def test_a_key_not_in_trust_yaml_is_an_untrusted_signer(signed, tmp_path):
    envelope, certificate, _ = signed
    stranger = keys.generate(tmp_path / "other" / "stranger.key")
    with pytest.raises(
        attestation.AttestationError, match="which .*trust.yaml does not list: the signer is not trusted"
    ):
        attestation.verify(envelope, policy.load(trust_file(tmp_path / "other", stranger)), DIGEST, certificate)


def test_an_attestation_of_another_image_names_both_digests(signed):
    envelope, certificate, trust = signed
    with pytest.raises(
        attestation.AttestationError,
        match=f"image digest {OTHER} does not match the attestation, which is for {DIGEST}",
    ):
        attestation.verify(envelope, trust, OTHER, certificate)


def test_a_certificate_rewritten_after_signing_does_not_match_the_predicate(signed):
    envelope, certificate, trust = signed
    forged = json.loads(certificate)
    forged["gates"][0]["measured"]["accuracy"] = 0.99
    with pytest.raises(attestation.AttestationError, match="certificate does not match the attestation's predicate"):
        attestation.verify(envelope, trust, DIGEST, json.dumps(forged).encode())


def test_a_payload_edited_after_signing_fails_the_signature(signed):
    envelope, certificate, trust = signed
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = OTHER.removeprefix("sha256:")
    forged = {**envelope, "payload": base64.b64encode(json.dumps(statement).encode()).decode()}
    with pytest.raises(attestation.AttestationError, match="signature does not verify"):
        attestation.verify(forged, trust, OTHER, certificate)


def test_an_unsigned_envelope_is_refused(signed):
    envelope, certificate, trust = signed
    with pytest.raises(attestation.AttestationError, match="unsigned"):
        attestation.verify({**envelope, "signatures": []}, trust, DIGEST, certificate)


def test_attest_refuses_a_failed_certificate_and_an_image_of_another_artifact(tmp_path):
    keys.generate(tmp_path / "signing.key")
    signer = keys.load_signer(tmp_path / "signing.key")
    failed = copy.deepcopy(CERTIFICATE)
    failed["verdict"] = "fail"
    with pytest.raises(attestation.AttestationError, match="verdict is 'fail': only a pass is attested"):
        attestation.attest(IMAGE, DIGEST, failed, CERTIFICATE["model"]["sha256"], signer)
    with pytest.raises(attestation.AttestationError, match="this image does not serve the certified model"):
        attestation.attest(IMAGE, DIGEST, CERTIFICATE, "ff" * 32, signer)


def test_a_signed_certificate_whose_verdict_is_fail_is_refused_at_verification(tmp_path):
    """Signed by a trusted key outside mlci attest (which refuses it): verify still refuses it."""
    from securesystemslib.dsse import Envelope

    public = keys.generate(tmp_path / "signing.key")
    failed = {**CERTIFICATE, "verdict": "fail"}
    payload = json.dumps(attestation.statement(IMAGE, DIGEST, failed)).encode()
    envelope = Envelope(payload, attestation.PAYLOAD_TYPE, {})
    envelope.sign(keys.load_signer(tmp_path / "signing.key"))
    with pytest.raises(attestation.AttestationError, match="attested certificate's verdict is 'fail'"):
        attestation.verify(
            envelope.to_dict(), policy.load(trust_file(tmp_path, public)), DIGEST, json.dumps(failed).encode()
        )


def test_the_signing_key_comes_from_the_environment_as_a_pem_or_a_path(tmp_path, monkeypatch):
    keys.generate(tmp_path / "signing.key")
    monkeypatch.setenv("MLCI_SIGNING_KEY", str(tmp_path / "signing.key"))
    by_path = keys.load_signer(None)
    monkeypatch.setenv("MLCI_SIGNING_KEY", (tmp_path / "signing.key").read_text())
    assert keys.load_signer(None).public_key.keyid == by_path.public_key.keyid
    monkeypatch.delenv("MLCI_SIGNING_KEY")
    with pytest.raises(MlciError, match="no signing key: pass --key FILE or set MLCI_SIGNING_KEY"):
        keys.load_signer(None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ("keys: []\n", "trusts no one"),
        ("keys: [{name: a}]\n", r"keys\[0\] needs a `name` and a `public_key`"),
        ("keys: [{name: a, public_key: nope}]\n", r"keys\[0\].public_key is not a PEM public key"),
        ("keyless: [{issuer: x, identity: '('}]\n", r"keyless\[0\].identity is not a regular expression"),
    ],
)
def test_a_malformed_trust_yaml_names_the_entry(tmp_path, text, message):
    (tmp_path / "trust.yaml").write_text(text)
    with pytest.raises(MlciError, match=message):
        policy.load(tmp_path / "trust.yaml")


def test_serve_refuses_an_artifact_the_attestation_does_not_certify(signed, tmp_path):
    envelope, _, trust = signed
    assert str(attestation.verify_artifact(envelope, trust, CERTIFICATE["model"]["sha256"])).startswith("verified")
    with pytest.raises(attestation.AttestationError, match="this is not the attested model"):
        attestation.verify_artifact(envelope, trust, "99" * 32)


def test_mlci_serve_starts_only_on_the_attested_artifact(forest_package, tmp_path):
    import subprocess
    import sys

    from mlci.certify.process import ServerProcess, free_port, get

    public = keys.generate(tmp_path / "signing.key")
    trust = trust_file(tmp_path, public)
    signer = keys.load_signer(tmp_path / "signing.key")
    good = {**CERTIFICATE, "model": {**CERTIFICATE["model"], "sha256": forest_package.sha256}}
    for name, certificate in (("good.json", good), ("other.json", CERTIFICATE)):
        envelope = attestation.attest(IMAGE, DIGEST, certificate, certificate["model"]["sha256"], signer)
        (tmp_path / name).write_bytes(attestation.encode(envelope))
    mlci = [sys.executable, "-m", "mlci", "serve", str(forest_package.directory), "--trust", str(trust)]
    refused = subprocess.run([*mlci, "--attestation", str(tmp_path / "other.json")], capture_output=True, text=True)
    assert refused.returncode == 2 and "this is not the attested model" in refused.stderr, refused.stderr
    port = free_port()
    command = [*mlci, "--attestation", str(tmp_path / "good.json"), "--port", str(port)]
    with ServerProcess(command, f"http://127.0.0.1:{port}/readyz", tmp_path / "serve.log"):
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert "verified (signed by release-key)" in (tmp_path / "serve.log").read_text()


def test_mlci_attest_writes_the_attestation_or_nothing(tmp_path):
    import subprocess
    import sys

    keys.generate(tmp_path / "signing.key")
    (tmp_path / "certificate.json").write_text(json.dumps(CERTIFICATE))
    command = [sys.executable, "-m", "mlci", "attest", "--image", f"{IMAGE}@{DIGEST}", "--key", "signing.key",
               "--certificate", "certificate.json"]  # fmt: skip
    refused = subprocess.run([*command, "--artifact-sha256", "ff" * 32], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 2 and "does not serve the certified model" in refused.stderr
    assert not (tmp_path / "attestation.json").exists()
    done = subprocess.run([*command, "--artifact-sha256", CERTIFICATE["model"]["sha256"]], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    trust = policy.load(trust_file(tmp_path, tmp_path / "signing.key.pub"))
    envelope = json.loads((tmp_path / "attestation.json").read_text())
    verified = attestation.verify(envelope, trust, DIGEST, (tmp_path / "certificate.json").read_bytes())
    assert verified.signer == "release-key"
