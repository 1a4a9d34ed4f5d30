"""Commissions: what each fill of a referred user earns the affiliate, decided in the
fill's own transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates import volume
from tradecast.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionStatus,
    EarnedCommission,
)
from tradecast.affiliates.repository import (
    CommissionRepository,
    FillCommissionRepository,
    ReferralState,
    Referrer,
)
from tradecast.affiliates.tiers import VOLUME_WINDOW, tier_for
from tradecast.config import Settings
from tradecast.db import Statements
from tradecast.kit import ids, money
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
) -> EarnedCommission | None:
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
    fill = FillEarning(user_id, trade_id, execution_report_id, notional)
    commission, running = _earned(settings, fill, affiliate, referral, move, read, now)
    await repo.insert(commission, running)
    logged(commission)
    return commission


@dataclass(frozen=True)
class FillEarning:
    """A fill of a user, as its commission needs it."""

    user_id: uuid.UUID
    trade_id: uuid.UUID
    execution_report_id: uuid.UUID
    notional: Decimal


class WindowNotRead(Exception):
    """A batch's fill needs a volume window that its read did not cover; the batch
    is recorded fill by fill instead (see ``record_for_fills``)."""


async def record_for_fills(
    statements: Statements, settings: Settings, fills: Sequence[FillEarning], now: datetime
) -> list[EarnedCommission | None]:
    """``record_for_fill`` for a batch of fills made at one instant, as if recorded
    one after another in the given order (PostgreSQL): each fill's commission or
    ``None``, in that order. Not logged: the caller logs each once committed.

    The affiliates are locked in the order of their ids, then the referrals and
    volume windows read in one statement. An affiliate's later fills in the batch
    see the earlier ones' notional, as in sequence: with one ``now`` their window
    is the first one's (read once) or empty. Raises ``WindowNotRead`` if not.
    """
    repo = FillCommissionRepository(statements)
    referrers = {
        user_id: referrer
        for user_id, referrer in (
            await repo.lock_referrers_of_many({fill.user_id for fill in fills})
        ).items()
        if referrer.status is AffiliateStatus.ACTIVE
    }
    if not referrers:
        return [None] * len(fills)
    start = now - VOLUME_WINDOW
    moves = {
        referrer.affiliate_id: volume.move_to(referrer.running, start)
        for referrer in referrers.values()
    }
    found = await repo.referrals_and_volumes(
        [
            (
                user_id,
                referrer.affiliate_id,
                moves[referrer.affiliate_id].low,
                moves[referrer.affiliate_id].high,
            )
            for user_id, referrer in referrers.items()
        ]
    )
    reads = {
        (
            referrer.affiliate_id,
            moves[referrer.affiliate_id].low,
            moves[referrer.affiliate_id].high,
        ): found[user_id][1]
        for user_id, referrer in referrers.items()
        if user_id in found
    }
    running = {referrer.affiliate_id: referrer.running for referrer in referrers.values()}
    recorded: list[EarnedCommission | None] = []
    for fill in fills:
        referrer = referrers.get(fill.user_id)
        referral = found.get(fill.user_id)
        if referrer is None or referral is None:
            recorded.append(None)
            continue
        affiliate_id = referrer.affiliate_id
        move = volume.move_to(running[affiliate_id], start)
        read = (
            money.ZERO if move.low >= move.high else reads.get((affiliate_id, move.low, move.high))
        )
        if read is None:  # pragma: no cover - one instant gives one window per affiliate
            raise WindowNotRead(str(affiliate_id))
        commission, running[affiliate_id] = _earned(
            settings, fill, referrer, referral[0], move, read, now
        )
        recorded.append(commission)
    earned = [commission for commission in recorded if commission is not None]
    if earned:
        moved = {commission.affiliate_id for commission in earned}
        await repo.insert_many(earned, {key: running[key] for key in moved})
    return recorded


def _earned(
    settings: Settings,
    fill: FillEarning,
    affiliate: Referrer,
    referral: ReferralState,
    move: volume.Move,
    read: Decimal,
    now: datetime,
) -> tuple[EarnedCommission, volume.RunningVolume]:
    """The commission on ``fill`` and the affiliate's running volume with it: the
    fill's own notional counts towards its tier."""
    tier = tier_for(settings.affiliate_tiers, money.add(move.volume(read), fill.notional))
    commission = EarnedCommission(
        id=ids.time_ordered(),
        affiliate_id=affiliate.affiliate_id,
        referral_id=referral.referral_id,
        referred_user_id=fill.user_id,
        trade_id=fill.trade_id,
        execution_report_id=fill.execution_report_id,
        notional=fill.notional,
        tier=tier.number,
        rate=tier.rate,
        amount=money.to_cents(money.multiply(fill.notional, tier.rate)),
        status=CommissionStatus.EARNED if referral.status.earns else CommissionStatus.WITHHELD,
        created_at=now,
    )
    earned = fill.notional if commission.status is CommissionStatus.EARNED else money.ZERO
    return commission, move.stored(read, earned)


def logged(commission: EarnedCommission) -> None:
    """The log line of a recorded commission."""
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
