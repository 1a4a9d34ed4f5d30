from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tradecast.db import Database
from tradecast.kit.request_context import current
from tradecast.producers import service
from tradecast.signed.dependencies import secretbox, verify_request
from tradecast.signed.verification import SigningKey


@dataclass(frozen=True)
class AuthenticatedProducer:
    """The producer whose signature this request carries."""

    id: uuid.UUID


async def signed_producer(request: Request) -> AuthenticatedProducer:
    """Verify the request's producer signature (SPEC §2); raises the 401 problems."""
    box = secretbox(request)
    db: Database = request.app.state.db

    async def lookup(key_id: uuid.UUID) -> SigningKey | None:
        async with db.sessionmaker() as session:
            return await service.signing_key(session, box, key_id)

    key = await verify_request(request, lookup)
    context = current()
    if context is not None:
        context.producer_id = str(key.key_id)
    return AuthenticatedProducer(id=key.key_id)


SignedProducer = Annotated[AuthenticatedProducer, Depends(signed_producer)]
# The app's sealer of HMAC secrets.
