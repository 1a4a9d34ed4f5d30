from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tradecast.kit.secretbox import SecretBox
from tradecast.ratelimit import SIGNED, RateLimiter
from tradecast.signed.keycache import KeyCache
from tradecast.signed.verification import KeyLookup, SigningKey, verify_signed_request


async def verify_request(
    request: Request, lookup: KeyLookup, cache: KeyCache | None = None
) -> SigningKey:
    """Verify the calling device's or producer's signature; raises the SPEC §2 401s,
    then counts the request against the key's rate limit (429). Keys found in
    ``cache`` skip the lookup."""
    state = request.app.state
    key = await verify_signed_request(
        request, state.db, state.nonces, state.settings, lookup, cache
    )
    # Counted only once the signature verified and the nonce was fresh: unsigned junk
    # and replays of a captured request cannot use up a device's budget.
    limiter: RateLimiter = state.rate_limiter
    await limiter.hit(SIGNED, str(key.key_id))
    return key


def secretbox(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secretbox
    return box


async def _secretbox_dependency(request: Request) -> SecretBox:
    # Async on purpose: FastAPI runs plain-def dependencies in a thread pool, a
    # hop that costs more than everything this function does.
    return secretbox(request)


AppSecretBox = Annotated[SecretBox, Depends(_secretbox_dependency)]
