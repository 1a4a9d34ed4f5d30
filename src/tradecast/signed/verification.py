"""Verification of signed requests (SPEC §2), shared by devices and producers.

Order matters and follows the SPEC: headers present and well-formed, key
known, key active, timestamp fresh, signature valid, nonce unused. The nonce
is claimed only after the signature verified, so a forger cannot burn a
device's nonces; the key lookup and the claim run in their own short
transactions, before the request's unit of work begins.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from tradecast.config import Settings
from tradecast.kit import clock, signing
from tradecast.signed.errors import (
    BadSignature,
    KeyInactive,
    MissingAuthHeader,
    StaleTimestamp,
    UnknownKey,
)

if TYPE_CHECKING:
    from tradecast.signed.gate import AdmissionGate
    from tradecast.signed.keycache import KeyCache

SERVER_TIME_HEADER = "X-Server-Time"


@dataclass(frozen=True)
class SigningKey:
    key_id: uuid.UUID
    secret: str = field(repr=False)
    is_active: bool
    # The device's owner; None for producers.
    owner_id: uuid.UUID | None = None


# Finds a key by id (its own database access, outside the request's unit of work).
KeyLookup = Callable[[uuid.UUID], Awaitable[SigningKey | None]]


@dataclass(frozen=True)
class SignedHeaders:
    key_id: uuid.UUID | None
    timestamp: int
    timestamp_raw: str
    nonce: str
    signature: str


def parse_headers(request: Request) -> SignedHeaders:
    values = {name: request.headers.get(name) for name in signing.SIGNED_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise MissingAuthHeader(f"Missing header(s): {', '.join(missing)}")
    raw_timestamp = values[signing.HEADER_TIMESTAMP] or ""
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise MissingAuthHeader("X-Timestamp must be unix time in whole seconds")
    nonce = values[signing.HEADER_NONCE] or ""
    if not signing.NONCE_PATTERN.match(nonce):
        raise MissingAuthHeader("X-Nonce must be 16–64 characters of [A-Za-z0-9_-]")
    try:
        key_id: uuid.UUID | None = uuid.UUID(values[signing.HEADER_KEY_ID] or "")
    except ValueError:
        key_id = None
    signature = values[signing.HEADER_SIGNATURE] or ""
    return SignedHeaders(key_id, int(raw_timestamp), raw_timestamp, nonce, signature)


def request_path(request: Request) -> str:
    """The path exactly as sent (percent-encoding intact), without the query."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes | bytearray) and raw:
        return bytes(raw).split(b"?", 1)[0].decode("latin-1")
    return request.url.path


async def verify_signed_request(
    request: Request,
    gate: AdmissionGate,
    settings: Settings,
    lookup: KeyLookup,
    cache: KeyCache | None = None,
) -> SigningKey:
    headers = parse_headers(request)
    if headers.key_id is None:
        raise UnknownKey()
    key = cache.get(headers.key_id) if cache is not None else None
    if key is None:
        epoch = cache.epoch if cache is not None else 0
        key = await lookup(headers.key_id)
        if key is not None and cache is not None:
            cache.put(key, epoch=epoch)
    if key is None:
        raise UnknownKey()
    if not key.is_active:
        raise KeyInactive()
    now = clock.utcnow()
    if abs(now.timestamp() - headers.timestamp) > settings.hmac_skew_s:
        server_time = str(int(now.timestamp()))
        # A client whose clock is off cannot sign any request that would tell it the
        # time, so the refusal itself carries the server's clock in a readable header.
        raise StaleTimestamp(
            f"Server time is {server_time}; allowed skew {settings.hmac_skew_s} s",
            headers={SERVER_TIME_HEADER: server_time},
        )
    raw_query = request.scope.get("query_string", b"").decode("utf-8", "replace")
    canonical = signing.canonical_string(
        request.method,
        request_path(request),
        signing.canonical_query_from_string(raw_query),
        headers.timestamp_raw,
        headers.nonce,
        await request.body(),
    )
    if not signing.signatures_match(signing.signature(key.secret, canonical), headers.signature):
        raise BadSignature()
    await gate.admit(key.key_id, headers.nonce, now)
    return key
