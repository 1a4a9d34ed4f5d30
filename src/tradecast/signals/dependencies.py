from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized
from tradecast.kit import signing
from tradecast.producers.dependencies import signed_producer
from tradecast.signals.service import Publisher
from tradecast.users.dependencies import current_user
from tradecast.users.errors import AdminRequired

_bearer = HTTPBearer(auto_error=False, description="An administrator's access token")


async def signal_publisher(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Publisher:
    """A signed producer when the request carries ``X-Key-Id``, else an administrator."""
    if signing.HEADER_KEY_ID in request.headers:
        producer = await signed_producer(request)
        return Publisher.producer(producer.id)
    if credentials is None:
        raise Unauthorized(
            "Sign the request as a producer, or send an administrator's bearer token"
        )
    user = await current_user(session, settings, credentials)
    if not user.role.is_admin:
        raise AdminRequired("Only producers and administrators publish and cancel signals")
    return Publisher.admin(user.id)


SignalPublisher = Annotated[Publisher, Depends(signal_publisher)]
