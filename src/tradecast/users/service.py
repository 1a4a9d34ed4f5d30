"""Accounts and sessions: registration, login, refresh rotation, profile."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.service import referrals
from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.kit.request_context import current
from tradecast.users import tokens
from tradecast.users.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidToken,
    RefreshTokenReused,
)
from tradecast.users.models import DeliveryMode, RefreshToken, Role, User
from tradecast.users.passwords import hash_password, verify_password
from tradecast.users.repository import RefreshTokenRepository, UserRepository


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


async def register(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    *,
    role: Role = Role.USER,
    referral_token: str | None = None,
) -> User:
    """Create an account; a known ``referral_token`` makes the user referred for good
    (an unknown one is ignored: it must not block a sign-up)."""
    users = UserRepository(session)
    normalized = email.strip().lower()
    # Hash before touching the database: on SQLite the first statement takes the write lock.
    password_hash = await hash_password(settings, password)
    if await users.by_email(normalized) is not None:
        raise EmailAlreadyRegistered(f"An account for {normalized} already exists")
    now = clock.utcnow()
    context = current()
    user = User(
        id=uuid.uuid4(),
        email=normalized,
        password_hash=password_hash,
        role=role,
        delivery_mode=DeliveryMode.AUTO,
        signup_ip=context.client_ip if context else None,
        created_at=now,
        updated_at=now,
    )
    try:
        # The unique constraint on email settles two registrations racing each other;
        # the row is added inside the savepoint so that only it is undone.
        async with session.begin_nested():
            users.add(user)
            await session.flush()
    except IntegrityError as exc:
        raise EmailAlreadyRegistered(f"An account for {normalized} already exists") from exc
    audit.record(
        session,
        "user.registered",
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        metadata={"role": role.value},
    )
    await referrals.attach_at_signup(session, settings, user, referral_token)
    return user


async def login(
    session: AsyncSession, settings: Settings, email: str, password: str
) -> IssuedTokens:
    user = await UserRepository(session).by_email(email.strip())
    verdict = await verify_password(settings, user.password_hash if user else None, password)
    if not verdict.valid or user is None:
        audit.record(
            session,
            "user.login_failed",
            actor_type=ActorType.ANONYMOUS,
            actor_id=user.id if user else None,
            target_type="user",
            target_id=user.id if user else None,
            # The attempted address, not the password: enough to spot a brute force.
            metadata={"email": email.strip().lower()[:320]},
        )
        raise InvalidCredentials()
    if verdict.needs_rehash:
        # The cost settings were raised since this hash was made: upgrade it now.
        user.password_hash = await hash_password(settings, password)
    return _issue(session, settings, user, family_id=uuid.uuid4())


async def refresh(session: AsyncSession, settings: Settings, refresh_token: str) -> IssuedTokens:
    repo = RefreshTokenRepository(session)
    digest = tokens.refresh_token_digest(refresh_token)
    now = clock.utcnow()
    consumed = await repo.consume(digest, now)
    if consumed is None:
        known = await repo.by_digest(digest)
        if known is not None and known.used_at is not None:
            await repo.revoke_family(known.family_id, now)
            audit.record(
                session,
                "user.refresh_token_reused",
                actor_type=ActorType.ANONYMOUS,
                actor_id=known.user_id,
                target_type="user",
                target_id=known.user_id,
            )
            raise RefreshTokenReused("This refresh token was already used; sign in again")
        raise InvalidToken()
    user = await UserRepository(session).get(consumed.user_id)
    if user is None:
        raise InvalidToken()
    return _issue(session, settings, user, family_id=consumed.family_id)


def _issue(
    session: AsyncSession, settings: Settings, user: User, *, family_id: uuid.UUID
) -> IssuedTokens:
    now = clock.utcnow()
    refresh_token = tokens.new_refresh_token()
    RefreshTokenRepository(session).add(
        RefreshToken(
            id=uuid.uuid4(),
            user_id=user.id,
            family_id=family_id,
            token_hash=tokens.refresh_token_digest(refresh_token),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    access = tokens.issue_access_token(
        settings.signing_key(), user.id, user.role, now, settings.access_token_ttl_s
    )
    return IssuedTokens(access, refresh_token, settings.access_token_ttl_s)


async def set_delivery_mode(session: AsyncSession, user: User, mode: DeliveryMode) -> User:
    if user.delivery_mode != mode:
        previous = user.delivery_mode
        user.delivery_mode = mode
        user.updated_at = clock.utcnow()
        audit.record(
            session,
            "user.delivery_mode_changed",
            actor_type=ActorType.USER,
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            metadata={"from": previous.value, "to": mode.value},
        )
        await session.flush()
    return user


async def authenticate(session: AsyncSession, settings: Settings, access_token: str) -> User:
    claims = tokens.decode_access_token(settings.signing_key(), access_token, clock.utcnow())
    user = await UserRepository(session).get(claims.user_id)
    if user is None:
        raise InvalidToken()
    return user
