from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tradecast.kit.secretbox import SecretBox
from tradecast.signed.keycache import KeyCache
from tradecast.signed.verification import KeyLookup, SigningKey, verify_signed_request


async def verify_request(
    request: Request, lookup: KeyLookup, cache: KeyCache | None = None
) -> SigningKey:
    """Verify the calling device's or producer's signature; raises the SPEC §2 401s,
    and the 429 of the key's rate limit (``signed/gate.py``). Keys found in ``cache``
    skip the lookup."""
    state = request.app.state
    return await verify_signed_request(request, state.signed_gate, state.settings, lookup, cache)


def secretbox(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secretbox
    return box


async def _secretbox_dependency(request: Request) -> SecretBox:
    # Async on purpose: FastAPI runs plain-def dependencies in a thread pool, a
    # hop that costs more than everything this function does.
    return secretbox(request)


AppSecretBox = Annotated[SecretBox, Depends(_secretbox_dependency)]
