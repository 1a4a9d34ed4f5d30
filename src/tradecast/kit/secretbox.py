"""Encryption at rest for the HMAC secrets of devices and producers.

HMAC verification needs the secret itself, so a one-way hash cannot work;
the secret is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from
``SECRET_KEY``. Each sealed value names the key that sealed it by a short
fingerprint, so ``SECRET_KEY`` can be rotated: the old key stays readable
through ``PREVIOUS_SECRET_KEYS`` until every value has been re-sealed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"tradecast secretbox v1"
_NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A sealed value could not be opened (unknown key version or tampered data)."""


def _derive(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode("utf-8")
    )


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"fingerprint" + key).hexdigest()[:8]


def generate_secret() -> str:
    """A new HMAC secret: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


class SecretBox:
    def __init__(self, current_key: str, previous_keys: tuple[str, ...] = ()) -> None:
        current = _derive(current_key)
        self._version = _fingerprint(current)
        self._seal_with = AESGCM(current)
        self._keys = {self._version: self._seal_with}
        for old in previous_keys:
            derived = _derive(old)
            self._keys.setdefault(_fingerprint(derived), AESGCM(derived))

    @property
    def version(self) -> str:
        return self._version

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt; ``context`` (e.g. the key id) is bound in, so a sealed value
        copied onto another row does not open there."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._seal_with.encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        return f"{self._version}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, context: str) -> str:
        version, _, payload = token.partition(":")
        cipher = self._keys.get(version)
        if cipher is None:
            raise SecretBoxError(f"sealed with an unknown key version {version!r}")
        try:
            raw = base64.urlsafe_b64decode(payload.encode())
            plain = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SecretBoxError("sealed value does not open") from exc
        return plain.decode("utf-8")

    def needs_reseal(self, token: str) -> bool:
        return not token.startswith(self._version + ":")
