"""Why a signed request was refused (SPEC §2). Each is a 401 with its own ``code``;
``SIGNED_REQUEST_ERRORS`` adds the 429 and 503 any signed request can also answer."""

from __future__ import annotations

from typing import ClassVar

from tradecast.errors import Unauthorized
from tradecast.ratelimit import RateLimited
from tradecast.sharedstate import RedisUnavailable


class SignedRequestRejected(Unauthorized):
    challenge: ClassVar[str] = 'HMAC-SHA256 realm="tradecast"'


class MissingAuthHeader(SignedRequestRejected):
    code = "missing_auth_header"
    title = "Signature headers missing or malformed"


class UnknownKey(SignedRequestRejected):
    code = "unknown_key"
    title = "Unknown key id"


class KeyInactive(SignedRequestRejected):
    code = "key_inactive"
    title = "Key is no longer active"


class StaleTimestamp(SignedRequestRejected):
    code = "stale_timestamp"
    title = "Timestamp too far from server time"


class BadSignature(SignedRequestRejected):
    code = "bad_signature"
    title = "Signature does not match"


class NonceReused(SignedRequestRejected):
    code = "nonce_reused"
    title = "Nonce already used"


SIGNED_REQUEST_ERRORS = (
    MissingAuthHeader,
    UnknownKey,
    KeyInactive,
    StaleTimestamp,
    BadSignature,
    NonceReused,
    RateLimited,
    RedisUnavailable,
)
