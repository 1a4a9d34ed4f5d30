from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized
from tradecast.kit.request_context import current
from tradecast.users import service
from tradecast.users.errors import AdminRequired
from tradecast.users.models import User

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


async def current_user(
    session: DbSession,
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send 'Authorization: Bearer <access token>'")
    user = await service.authenticate(session, settings, credentials.credentials)
    context = current()
    if context is not None:
        context.user_id = str(user.id)
    return user


async def current_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.role.is_admin:
        raise AdminRequired()
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(current_admin)]
