"""Payouts: an affiliate asks for money, an admin pays it or reports it failed.

Every rule that two requests could break together is held by the database: the
affiliate's row lock serialises payout requests (and commissions) so the balance
each of them checks is the one the previous committed; a partial unique index
allows one pending payout per affiliate; a unique (affiliate, Idempotency-Key)
makes a retried request find its payout; a conditional UPDATE lets only one
admin settle a pending payout.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.errors import (
    IdempotencyKeyReused,
    PayoutBelowMinimum,
    PayoutExceedsBalance,
    PayoutNotFound,
    PayoutNotPending,
    PayoutPending,
)
from tradecast.affiliates.models import Affiliate, Payout, PayoutStatus
from tradecast.affiliates.repository import AffiliateRepository, PayoutRepository
from tradecast.affiliates.service.accounts import balance_of
from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.kit.decimals import decimal_text
from tradecast.kit.pagination import PageParams
from tradecast.outbox import service as outbox
from tradecast.users.models import User

STATUS_CHANGED = "payout.status_changed"


@dataclass(frozen=True)
class PayoutRequest:
    amount: Decimal
    bank_account: str
    idempotency_key: str | None = None

    @property
    def fingerprint(self) -> str:
        """The request's content in one form: "50" and "50.00" are the same amount."""
        content = {"amount": decimal_text(self.amount), "bank_account": self.bank_account}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Requested:
    payout: Payout
    created: bool


@dataclass(frozen=True)
class PayoutView:
    """A payout as admins see it: with the affiliate's user account."""

    payout: Payout
    user_id: uuid.UUID


async def request(
    session: AsyncSession, settings: Settings, affiliate: Affiliate, wanted: PayoutRequest
) -> Requested:
    """Ask for ``wanted.amount`` to be paid to ``wanted.bank_account``.

    With an Idempotency-Key, a retry of the same request answers the payout the
    first one made (whatever its status now); the key with another body is refused.
    """
    if wanted.amount < settings.affiliate_min_payout:
        minimum = f"{decimal_text(settings.affiliate_min_payout)} {settings.currency}"
        raise PayoutBelowMinimum(
            f"The minimum payout is {minimum}",
            errors=[{"field": "amount", "message": f"must be at least {minimum}"}],
        )
    await AffiliateRepository(session).lock(affiliate.id)
    payouts = PayoutRepository(session)
    if wanted.idempotency_key is not None:
        earlier = await payouts.by_idempotency_key(affiliate.id, wanted.idempotency_key)
        if earlier is not None:
            return Requested(_same_request(earlier, wanted), created=False)
    if await payouts.has_pending(affiliate.id):
        raise PayoutPending("A payout is already pending; wait until it is paid or failed")
    balance = await balance_of(session, affiliate.id)
    if wanted.amount > balance.available:
        raise PayoutExceedsBalance(
            f"The available balance is {decimal_text(balance.available)} {settings.currency}"
        )
    payout = _new_payout(settings, affiliate, wanted)
    payouts.add(payout)
    await session.flush()
    _audit_request(session, affiliate, payout)
    _emit(session, affiliate, payout)
    return Requested(payout, created=True)


def _same_request(earlier: Payout, wanted: PayoutRequest) -> Payout:
    if earlier.request_fingerprint != wanted.fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a payout request with other content"
        )
    return earlier


def _new_payout(settings: Settings, affiliate: Affiliate, wanted: PayoutRequest) -> Payout:
    return Payout(
        id=uuid.uuid4(),
        affiliate_id=affiliate.id,
        amount=wanted.amount,
        currency=settings.currency,
        status=PayoutStatus.PENDING,
        bank_account=wanted.bank_account,
        idempotency_key=wanted.idempotency_key,
        request_fingerprint=wanted.fingerprint,
        created_at=clock.utcnow(),
    )


def _audit_request(session: AsyncSession, affiliate: Affiliate, payout: Payout) -> None:
    audit.record(
        session,
        "payout.requested",
        actor_type=ActorType.USER,
        actor_id=affiliate.user_id,
        target_type="payout",
        target_id=payout.id,
        metadata={
            "amount": decimal_text(payout.amount),
            "currency": payout.currency,
            # Personal data: enough to tell two accounts apart, not to use one.
            "bank_account_last4": payout.bank_account[-4:],
        },
    )


def _emit(session: AsyncSession, affiliate: Affiliate, payout: Payout) -> None:
    """Tell the affiliate (the Telegram bot subscribes) once the change has committed."""
    outbox.emit(
        session,
        STATUS_CHANGED,
        {
            "user_id": str(affiliate.user_id),
            "affiliate_id": str(affiliate.id),
            "payout_id": str(payout.id),
            "status": payout.status.value,
            "amount": decimal_text(payout.amount),
            "currency": payout.currency,
            "reference": payout.reference,
            "reason": payout.failure_reason,
        },
    )


async def payouts_of(
    session: AsyncSession, affiliate: Affiliate, page: PageParams
) -> tuple[Sequence[Payout], int]:
    return await PayoutRepository(session).page_for_affiliate(affiliate.id, page)


async def payout_of(session: AsyncSession, affiliate: Affiliate, payout_id: uuid.UUID) -> Payout:
    """One of the affiliate's payouts; another affiliate's is not found."""
    payout = await PayoutRepository(session).get(payout_id)
    if payout is None or payout.affiliate_id != affiliate.id:
        raise PayoutNotFound(f"No payout {payout_id} in this account")
    return payout


async def payouts_for_admin(
    session: AsyncSession, status: PayoutStatus | None, page: PageParams
) -> tuple[list[PayoutView], int]:
    payouts, total = await PayoutRepository(session).page_all(status, page)
    users = await AffiliateRepository(session).user_ids([p.affiliate_id for p in payouts])
    return [PayoutView(p, users[p.affiliate_id]) for p in payouts], total


async def complete(
    session: AsyncSession, admin: User, payout_id: uuid.UUID, reference: str
) -> PayoutView:
    """The money was sent: the payout moves from pending to paid."""
    return await _settle(session, admin, payout_id, PayoutStatus.PAID, reference=reference)


async def fail(session: AsyncSession, admin: User, payout_id: uuid.UUID, reason: str) -> PayoutView:
    """The transfer failed: the amount returns to the available balance."""
    return await _settle(session, admin, payout_id, PayoutStatus.FAILED, failure_reason=reason)


async def _settle(
    session: AsyncSession,
    admin: User,
    payout_id: uuid.UUID,
    status: PayoutStatus,
    **details: str,
) -> PayoutView:
    payouts = PayoutRepository(session)
    payout = await payouts.settle(
        payout_id, status=status, completed_at=clock.utcnow(), processed_by=admin.id, **details
    )
    if payout is None:
        if await payouts.get(payout_id) is None:
            raise PayoutNotFound(f"No payout {payout_id}")
        raise PayoutNotPending(f"Payout {payout_id} is no longer pending")
    affiliate = await AffiliateRepository(session).get(payout.affiliate_id)
    audit.record(
        session,
        f"payout.{'completed' if status is PayoutStatus.PAID else 'failed'}",
        actor_type=ActorType.USER,
        actor_id=admin.id,
        target_type="payout",
        target_id=payout.id,
        metadata={
            "amount": decimal_text(payout.amount),
            "currency": payout.currency,
            "affiliate_id": str(payout.affiliate_id),
            **details,
        },
    )
    _emit(session, affiliate, payout)
    return PayoutView(payout, affiliate.user_id)
