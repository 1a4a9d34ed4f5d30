"""Referrals: who brought whom, the self-referral flags, and clearing a flag.

A referral is attached once, for good (unique on the referred user), either at
sign-up with ``referral_token`` or through the Telegram deep link. It is flagged
when the two accounts look like one person's (SPEC §8): same sign-up IP, or the
same non-public mail domain and created within ``SELF_REFERRAL_WINDOW_S``. A
flagged referral's fills still record commissions, as *withheld*; they count for
nothing until an admin clears the referral, which releases them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from ipaddress import ip_address

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.errors import ReferralNotFlagged, ReferralNotFound
from tradecast.affiliates.mail_domains import email_domain, is_public_mail_domain
from tradecast.affiliates.models import Affiliate, Referral, ReferralSource, ReferralStatus
from tradecast.affiliates.repository import (
    AffiliateRepository,
    CommissionRepository,
    ReferralRepository,
)
from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.kit.decimals import decimal_text
from tradecast.kit.pagination import PageParams
from tradecast.users.models import User
from tradecast.users.repository import UserRepository

SAME_SIGNUP_IP = "same_signup_ip"
SAME_EMAIL_DOMAIN = "same_email_domain"


@dataclass(frozen=True)
class ReferralView:
    """A referral as admins review it."""

    referral: Referral
    affiliate_user_id: uuid.UUID
    withheld_amount: Decimal


async def attach_at_signup(
    session: AsyncSession, settings: Settings, user: User, token: str | None
) -> Referral | None:
    """Make ``user``, just registered, referred by the token's affiliate.

    An unknown token is not an error (SPEC §3): the user simply has no referrer.
    """
    if not token:
        return None
    return await _attach(session, settings, user, token, ReferralSource.SIGNUP)


async def attach_referral_from_telegram(
    session: AsyncSession, settings: Settings, user: User, token: str, started_at: datetime
) -> bool:
    """The Telegram path (SPEC §8): a chat opened the bot with ``/start ref_TOKEN`` at
    ``started_at`` and now links ``user``. ``token`` is the part after ``ref_``.

    The user becomes referred only if they have no referrer yet and their account
    was created after that ``/start``: an existing customer cannot be claimed by
    whoever sends them a link later. True if the referral was attached.
    """
    if user.created_at <= started_at:
        return False
    if await ReferralRepository(session).of_user(user.id) is not None:
        return False
    return await _attach(session, settings, user, token, ReferralSource.TELEGRAM) is not None


async def _attach(
    session: AsyncSession, settings: Settings, user: User, token: str, source: ReferralSource
) -> Referral | None:
    affiliate = await AffiliateRepository(session).by_token(token)
    if affiliate is None or affiliate.user_id == user.id:
        return None
    referrer = await UserRepository(session).get(affiliate.user_id)
    if referrer is None:  # pragma: no cover - affiliates' users are never deleted
        return None
    reasons = self_referral_signs(settings, referrer, user)
    referral = Referral(
        id=uuid.uuid4(),
        affiliate_id=affiliate.id,
        referred_user_id=user.id,
        source=source,
        status=ReferralStatus.FLAGGED if reasons else ReferralStatus.ACTIVE,
        flag_reasons=reasons,
        created_at=clock.utcnow(),
    )
    try:
        # Sign-up and Telegram racing for one user: the unique referred_user_id keeps the first.
        async with session.begin_nested():
            ReferralRepository(session).add(referral)
            await session.flush()
    except IntegrityError:
        return None
    if reasons:
        _audit_flag(session, user, affiliate, referral)
    return referral


def self_referral_signs(settings: Settings, referrer: User, referred: User) -> list[str]:
    """Why the two accounts look like one person's; empty when they do not."""
    reasons = []
    if _same_address(referrer.signup_ip, referred.signup_ip):
        reasons.append(SAME_SIGNUP_IP)
    domain = email_domain(referred.email)
    apart = abs(referred.created_at - referrer.created_at)
    if (
        domain == email_domain(referrer.email)
        and not is_public_mail_domain(domain)
        and apart < timedelta(seconds=settings.self_referral_window_s)
    ):
        reasons.append(SAME_EMAIL_DOMAIN)
    return reasons


def _same_address(first: str | None, second: str | None) -> bool:
    if not first or not second:
        return False
    try:
        # One address may be written several ways (IPv6 zeros, IPv4-mapped forms aside).
        return ip_address(first) == ip_address(second)
    except ValueError:
        return first == second


def _audit_flag(
    session: AsyncSession, user: User, affiliate: Affiliate, referral: Referral
) -> None:
    audit.record(
        session,
        "referral.flagged",
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="referral",
        target_id=referral.id,
        metadata={
            "affiliate_id": str(affiliate.id),
            "referred_user_id": str(user.id),
            "reasons": list(referral.flag_reasons),
            "source": referral.source.value,
        },
    )


async def referrals_for_review(
    session: AsyncSession, status: ReferralStatus | None, page: PageParams
) -> tuple[list[ReferralView], int]:
    referrals, total = await ReferralRepository(session).page(status, page)
    return await _views(session, referrals), total


async def _views(session: AsyncSession, referrals: Sequence[Referral]) -> list[ReferralView]:
    users = await AffiliateRepository(session).user_ids([r.affiliate_id for r in referrals])
    withheld = await ReferralRepository(session).withheld_totals([r.id for r in referrals])
    return [
        ReferralView(r, users[r.affiliate_id], withheld.get(r.id, Decimal(0))) for r in referrals
    ]


async def clear(session: AsyncSession, admin: User, referral_id: uuid.UUID) -> ReferralView:
    """Clear a flagged referral: from now on its fills earn, and the commissions
    withheld while it was flagged are released into the affiliate's balance."""
    referrals = ReferralRepository(session)
    found = await referrals.get(referral_id)
    if found is None:
        raise ReferralNotFound(f"No referral {referral_id}")
    # The affiliate's lock: a fill of this referral being recorded right now either
    # committed before (and is released here) or sees the referral cleared.
    affiliate = await AffiliateRepository(session).lock(found.affiliate_id)
    referral = await referrals.get(referral_id)
    if referral is None or referral.status is not ReferralStatus.FLAGGED:
        raise ReferralNotFlagged(f"Referral {referral_id} is not flagged")
    count, amount = await CommissionRepository(session).release_withheld(referral.id)
    # The released commissions now count toward the 30-day volume: the affiliate's
    # next fill sums the window afresh instead of moving the running figure.
    affiliate.volume_after = None
    referral.status = ReferralStatus.CLEARED
    referral.cleared_at = clock.utcnow()
    referral.cleared_by = admin.id
    await session.flush()
    audit.record(
        session,
        "referral.cleared",
        actor_type=ActorType.USER,
        actor_id=admin.id,
        target_type="referral",
        target_id=referral.id,
        metadata={"released_commissions": count, "released_amount": decimal_text(amount)},
    )
    return ReferralView(referral, affiliate.user_id, Decimal(0))
