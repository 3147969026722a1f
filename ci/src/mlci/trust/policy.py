"""trust.yaml, at the root of the deployment repo: whose attestations count. The project cannot widen it.

keys:                      # offline signers: ed25519 (or ECDSA, RSA) public keys, PEM
  - name: release-key
    public_key: |
      -----BEGIN PUBLIC KEY-----
      ...
keyless:                   # Sigstore keyless signers: the OIDC issuer and a pattern of workflow identities
  - issuer: https://token.actions.githubusercontent.com
    identity: ^https://github\\.com/my-org/[^/]+/\\.github/workflows/ci\\.yml@refs/heads/main$
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import MlciError
from .keys import public_key

TRUST_FILE = "trust.yaml"


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key: Any  # securesystemslib SSlibKey

    @property
    def keyid(self) -> str:
        return str(self.key.keyid)


@dataclass(frozen=True)
class KeylessIdentity:
    issuer: str
    identity: re.Pattern[str]


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...]
    keyless: tuple[KeylessIdentity, ...]
    source: str

    def key(self, keyid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.keyid == keyid), None)


def load(path: Path) -> TrustPolicy:
    """The trust policy in `path`; a missing, malformed or empty one raises, naming the file and the entry."""
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MlciError(f"{where} is missing: the deployment repo says whose attestations it trusts there") from None
    except yaml.YAMLError as error:
        raise MlciError(f"{where} is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or set(raw) - {"keys", "keyless"}:
        raise MlciError(f"{where} must be a mapping with `keys` and/or `keyless` lists")
    keys = []
    for i, entry in enumerate(raw.get("keys") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "public_key" not in entry:
            raise MlciError(f"{where}: keys[{i}] needs a `name` and a `public_key` (PEM)")
        keys.append(TrustedKey(entry["name"], public_key(str(entry["public_key"]), f"{where}: keys[{i}].public_key")))
    keyless = []
    for i, entry in enumerate(raw.get("keyless") or []):
        if not isinstance(entry, dict) or not {"issuer", "identity"} <= set(entry):
            raise MlciError(f"{where}: keyless[{i}] needs an `issuer` and an `identity` pattern")
        try:
            pattern = re.compile(str(entry["identity"]))
        except re.error as error:
            raise MlciError(f"{where}: keyless[{i}].identity is not a regular expression: {error}") from None
        keyless.append(KeylessIdentity(str(entry["issuer"]), pattern))
    if not keys and not keyless:
        raise MlciError(f"{where} trusts no one: list a key or a keyless identity")
    return TrustPolicy(tuple(keys), tuple(keyless), where)
