"""Affiliate accounts: registration, the referral link, and the numbers an affiliate sees."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.errors import AffiliateNotFound, AlreadyAffiliate
from tradecast.affiliates.models import Affiliate, AffiliateStatus, PayoutStatus
from tradecast.affiliates.repository import (
    AffiliateRepository,
    CommissionRepository,
    PayoutRepository,
)
from tradecast.affiliates.tiers import VOLUME_WINDOW, Tier, tier_for
from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.kit.money import ZERO
from tradecast.users.models import User


@dataclass(frozen=True)
class Balance:
    """The affiliate's money, each figure a sum of records (never a stored running total)."""

    earned: Decimal
    paid: Decimal
    pending: Decimal

    @property
    def available(self) -> Decimal:
        return self.earned - self.paid - self.pending


@dataclass(frozen=True)
class Stats:
    referral_count: int
    tier: Tier
    volume_30d: Decimal
    balance: Balance


@dataclass(frozen=True)
class Link:
    referral_token: str
    url: str
    telegram_url: str


def new_referral_token() -> str:
    # 96 random bits as 16 URL-safe characters: fits Telegram's 64-character start
    # parameter with its "ref_" prefix. The unique constraint settles the (negligible) clash.
    return secrets.token_urlsafe(12)


async def register(session: AsyncSession, user: User) -> Affiliate:
    repo = AffiliateRepository(session)
    if await repo.by_user(user.id) is not None:
        raise AlreadyAffiliate("This account is already an affiliate")
    affiliate = Affiliate(
        id=uuid.uuid4(),
        user_id=user.id,
        referral_token=new_referral_token(),
        status=AffiliateStatus.ACTIVE,
        created_at=clock.utcnow(),
    )
    try:
        # Two registrations racing: the unique user_id lets one in.
        async with session.begin_nested():
            repo.add(affiliate)
            await session.flush()
    except IntegrityError as exc:
        raise AlreadyAffiliate("This account is already an affiliate") from exc
    audit.record(
        session,
        "affiliate.registered",
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="affiliate",
        target_id=affiliate.id,
    )
    return affiliate


async def affiliate_of(session: AsyncSession, user: User) -> Affiliate:
    affiliate = await AffiliateRepository(session).by_user(user.id)
    if affiliate is None:
        raise AffiliateNotFound("This account is not an affiliate; register first")
    return affiliate


def starting_tier(settings: Settings) -> Tier:
    return tier_for(settings.affiliate_tiers, ZERO)


def link(settings: Settings, affiliate: Affiliate) -> Link:
    token = affiliate.referral_token
    return Link(
        referral_token=token,
        url=f"{settings.public_base_url.rstrip('/')}/?ref={token}",
        telegram_url=f"https://t.me/{settings.telegram_bot_username}?start=ref_{token}",
    )


async def balance_of(session: AsyncSession, affiliate_id: uuid.UUID) -> Balance:
    earned = await CommissionRepository(session).earned_total(affiliate_id)
    payouts = await PayoutRepository(session).totals_by_status(affiliate_id)
    return Balance(
        earned=earned,
        paid=payouts.get(PayoutStatus.PAID, ZERO),
        pending=payouts.get(PayoutStatus.PENDING, ZERO),
    )


async def stats(session: AsyncSession, settings: Settings, affiliate: Affiliate) -> Stats:
    since = clock.utcnow() - VOLUME_WINDOW
    volume = await CommissionRepository(session).referred_volume(affiliate.id, since)
    return Stats(
        referral_count=await AffiliateRepository(session).referral_count(affiliate.id),
        tier=tier_for(settings.affiliate_tiers, volume),
        volume_30d=volume,
        balance=await balance_of(session, affiliate.id),
    )
