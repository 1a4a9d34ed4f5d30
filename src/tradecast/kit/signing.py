"""The one definition of a signed request (SPEC §2): canonical string and signature.

The server verifies with it, the reference device client and the tests sign
with it, and ``docs/signing-vectors.json`` is checked against it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HEADER_KEY_ID = "X-Key-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

# RFC 3986 unreserved characters stay as they are; everything else is %XX (upper-case hex).
_UNRESERVED = "-._~"


def _encode(value: str) -> str:
    return quote(value, safe=_UNRESERVED)


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Percent-encode each name and value per RFC 3986, sort by name then value, join."""
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


@functools.lru_cache(maxsize=1024)
def canonical_query_from_string(raw_query: str) -> str:
    """The canonical form of a query string as it arrived on the wire. A terminal
    sends the same few query strings all day: each is worked out once."""
    return canonical_query(parse_qsl(raw_query, keep_blank_values=True))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_string(
    method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    return "\n".join((method.upper(), path, query, timestamp, nonce, body_digest(body)))


def signature(secret: str, canonical: str) -> str:
    return hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def signatures_match(expected: str, offered: str) -> bool:
    """Constant-time: the time taken says nothing about how many characters matched."""
    return hmac.compare_digest(expected.encode("ascii"), offered.encode("ascii", "replace"))


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_request(
    *,
    key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers that sign one request."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    canonical = canonical_string(method, path, canonical_query(pairs), stamp, nonce, body)
    return {
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: stamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret, canonical),
    }
