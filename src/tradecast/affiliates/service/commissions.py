"""Commissions: what each fill of a referred user earns the affiliate, decided in the
fill's own transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates import volume
from tradecast.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionStatus,
)
from tradecast.affiliates.repository import CommissionRepository, FillCommissionRepository
from tradecast.affiliates.tiers import VOLUME_WINDOW, tier_for
from tradecast.config import Settings
from tradecast.db import Statements
from tradecast.kit import money
from tradecast.kit.pagination import PageParams

logger = logging.getLogger("tradecast.affiliates")


async def record_for_fill(
    statements: Statements,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    trade_id: uuid.UUID,
    execution_report_id: uuid.UUID,
    notional: Decimal,
    now: datetime,
) -> Commission | None:
    """The commission on one fill of ``user_id`` (notional: the fill's price × size ×
    contract size), or ``None`` when nobody referred the user.

    The affiliate's row is locked before the 30-day volume is read: two fills of
    one affiliate's referred users then take turns, and the second sees the first's
    notional. The fill's own notional counts, so the fill that crosses a tier floor
    already earns the higher rate. The volume is the affiliate's running figure
    moved to this fill's window (``affiliates.volume``): only the commissions that
    left the window since the previous fill are read.
    """
    repo = FillCommissionRepository(statements)
    affiliate = await repo.lock_referrer_of(user_id)
    if affiliate is None or affiliate.status is not AffiliateStatus.ACTIVE:
        return None
    move = volume.move_to(affiliate.running, now - VOLUME_WINDOW)
    # Read under the lock, in a statement of its own: an admin clearing the
    # referral meanwhile has committed, and a new statement sees it.
    found = await repo.referral_and_volume(user_id, affiliate.affiliate_id, move.low, move.high)
    if found is None:  # pragma: no cover - referrals are never deleted
        return None
    referral, read = found
    tier = tier_for(settings.affiliate_tiers, money.add(move.volume(read), notional))
    commission = Commission(
        id=uuid.uuid4(),
        affiliate_id=affiliate.affiliate_id,
        referral_id=referral.referral_id,
        referred_user_id=user_id,
        trade_id=trade_id,
        execution_report_id=execution_report_id,
        notional=notional,
        tier=tier.number,
        rate=tier.rate,
        amount=money.to_cents(money.multiply(notional, tier.rate)),
        status=CommissionStatus.EARNED if referral.status.earns else CommissionStatus.WITHHELD,
        created_at=now,
    )
    earned = notional if commission.status is CommissionStatus.EARNED else money.ZERO
    await repo.insert(commission, move.stored(read, earned))
    _log(commission)
    return commission


def _log(commission: Commission) -> None:
    logger.info(
        "commission recorded",
        extra={
            "affiliate_id": str(commission.affiliate_id),
            "commission_id": str(commission.id),
            "amount": str(commission.amount),
            "tier": commission.tier,
            "commission_status": commission.status.value,
        },
    )


async def history(
    session: AsyncSession, affiliate: Affiliate, page: PageParams
) -> tuple[Sequence[Commission], int]:
    """Earned commissions, newest first (withheld ones appear once their referral is cleared)."""
    return await CommissionRepository(session).page_earned(affiliate.id, page)
