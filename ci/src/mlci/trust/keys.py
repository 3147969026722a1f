"""ed25519 signing keys for offline attestations: made by `mlci keygen`, read from a file or MLCI_SIGNING_KEY."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..files import write_atomic

SIGNING_KEY_ENV = "MLCI_SIGNING_KEY"


def generate(private_path: Path) -> Path:
    """Write a new ed25519 private key (PEM, readable by its owner only) and its public key beside it
    (`<name>.pub`); the public key's path. Refuses to overwrite a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise MlciError(f"{path} exists: mlci keygen never overwrites a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(handle, "wb") as out:
        out.write(private)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(public_path, public)
    return public_path


def load_signer(path: Path | None) -> Any:
    """The signer of the private key at `path`, or of the PEM (or path) in MLCI_SIGNING_KEY."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

    if path is not None:
        try:
            pem = path.read_bytes()
        except OSError as error:
            raise MlciError(f"--key {path}: {error.strerror}") from None
        where = f"--key {path}"
    else:
        value = os.environ.get(SIGNING_KEY_ENV, "").strip()
        if not value:
            raise MlciError(f"no signing key: pass --key FILE or set {SIGNING_KEY_ENV} (a PEM, or its path)")
        pem = value.encode() if value.startswith("-----BEGIN") else Path(value).expanduser().read_bytes()
        where = SIGNING_KEY_ENV
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise MlciError(f"{where} is not an unencrypted PEM private key: {error}") from None
    return CryptoSigner(key)


def public_key(pem: str, where: str) -> Any:
    """The securesystemslib key of a PEM public key (its keyid is derived from the key itself)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    try:
        return SSlibKey.from_crypto(load_pem_public_key(pem.encode()))
    except (ValueError, TypeError) as error:
        raise MlciError(f"{where} is not a PEM public key: {error}") from None
