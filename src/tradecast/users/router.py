from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.ratelimit import LOGIN, AppRateLimiter, RateLimited, client_ip_key, personal
from tradecast.users import service
from tradecast.users.dependencies import CurrentUser
from tradecast.users.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidToken,
    RefreshTokenReused,
)
from tradecast.users.models import User
from tradecast.users.schemas import (
    LoginIn,
    MeOut,
    MeUpdate,
    RefreshIn,
    RegisterIn,
    TokenPair,
    UserOut,
)

router = APIRouter(prefix="/api/v1", tags=["users"])


def _me(user: User) -> MeOut:
    return MeOut(
        id=user.id,
        email=user.email,
        role=user.role,
        created_at=user.created_at,
        delivery_mode=user.delivery_mode,
        telegram_linked=user.telegram_chat_id is not None,
    )


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=responses_for(EmailAlreadyRegistered, UnprocessableEntity),
)
async def register(body: RegisterIn, session: DbSession, settings: AppSettings) -> User:
    """Create an account. The email is case-insensitively unique. A valid
    ``referral_token`` makes the new user referred by that affiliate; an unknown
    one is ignored."""
    return await service.register(
        session, settings, body.email, body.password, referral_token=body.referral_token
    )


@router.post(
    "/auth/login",
    response_model=TokenPair,
    responses=responses_for(InvalidCredentials, UnprocessableEntity, RateLimited),
)
async def login(
    body: LoginIn,
    session: DbSession,
    settings: AppSettings,
    limiter: AppRateLimiter,
    client_ip: Annotated[str, Depends(client_ip_key)],
) -> TokenPair:
    """Exchange email and password for an access token (15 min) and a refresh token (7 days).

    At most 10 attempts per minute for one email from one address (429 with ``Retry-After``)."""
    await limiter.hit(LOGIN, client_ip, personal(body.email))
    issued = await service.login(session, settings, body.email, body.password)
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.post(
    "/auth/refresh",
    response_model=TokenPair,
    responses=responses_for(InvalidToken, RefreshTokenReused, UnprocessableEntity),
)
async def refresh(body: RefreshIn, session: DbSession, settings: AppSettings) -> TokenPair:
    """Trade a refresh token for a new pair. Each refresh token works once; replaying a
    used one revokes every token descended from the same login."""
    issued = await service.refresh(session, settings, body.refresh_token)
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


@router.get("/me", response_model=MeOut, responses=responses_for(Unauthorized))
async def me(user: CurrentUser) -> MeOut:
    """The signed-in user."""
    return _me(user)


@router.patch(
    "/me", response_model=MeOut, responses=responses_for(Unauthorized, UnprocessableEntity)
)
async def update_me(body: MeUpdate, user: CurrentUser, session: DbSession) -> MeOut:
    """Change the delivery mode: ``auto`` delivers every signal, ``approval`` only approved ones."""
    return _me(await service.set_delivery_mode(session, user, body.delivery_mode))
