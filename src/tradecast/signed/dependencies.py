from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tradecast.kit.secretbox import SecretBox
from tradecast.signed.verification import KeyLookup, SigningKey, verify_signed_request


async def verify_request(request: Request, lookup: KeyLookup) -> SigningKey:
    """Verify the calling device's or producer's signature; raises the SPEC §2 401s."""
    state = request.app.state
    return await verify_signed_request(request, state.db, state.nonces, state.settings, lookup)


def secretbox(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secretbox
    return box


AppSecretBox = Annotated[SecretBox, Depends(secretbox)]
