"""Affiliates, the users they referred, the commissions fills earn them, and payouts.

Balances are not stored: they are sums of these records (see ``docs/AFFILIATES.md``),
so they cannot drift from them. The one running figure, the 30-day volume a fill's
tier is read from, is kept beside the lock that orders every change it sums.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Amount, Base, Money, Price, UUIDPrimaryKey


def _values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_class, name=name, native_enum=False, length=16, values_callable=_values)


class AffiliateStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class ReferralStatus(enum.StrEnum):
    ACTIVE = "active"
    FLAGGED = "flagged"
    CLEARED = "cleared"

    @property
    def earns(self) -> bool:
        return self is not ReferralStatus.FLAGGED


class ReferralSource(enum.StrEnum):
    SIGNUP = "signup"
    TELEGRAM = "telegram"


class CommissionStatus(enum.StrEnum):
    EARNED = "earned"
    # Earned by a flagged referral: recorded, but not the affiliate's until an admin clears it.
    WITHHELD = "withheld"


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class Affiliate(UUIDPrimaryKey, Base):
    """A user's affiliate account. Its row is the lock that serialises every change to
    the affiliate's money: commissions, payout requests, clearing a referral."""

    __tablename__ = "affiliates"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    referral_token: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[AffiliateStatus] = mapped_column(_enum(AffiliateStatus, "affiliate_status"))
    created_at: Mapped[datetime]
    # The 30-day referred volume, kept running (see ``affiliates.volume``): Σ notional
    # of the earned commissions created after ``volume_after`` (NULL: not known yet).
    volume: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0), server_default="0")
    volume_after: Mapped[datetime | None]


class Referral(UUIDPrimaryKey, Base):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_affiliate_id_created_at", "affiliate_id", "created_at"),
        Index("ix_referrals_status_created_at", "status", "created_at"),
    )

    affiliate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("affiliates.id"))
    # Unique: a user is referred once, for good, whichever path gets there first.
    referred_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    source: Mapped[ReferralSource] = mapped_column(_enum(ReferralSource, "referral_source"))
    status: Mapped[ReferralStatus] = mapped_column(_enum(ReferralStatus, "referral_status"))
    flag_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Commission(UUIDPrimaryKey, Base):
    """What one fill of a referred user earned the affiliate."""

    __tablename__ = "commissions"
    __table_args__ = (
        Index("ix_commissions_affiliate_id_created_at", "affiliate_id", "created_at"),
        Index("ix_commissions_referral_id", "referral_id"),
    )

    affiliate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("affiliates.id"))
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"))
    referred_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    trade_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trades.id"))
    # Unique: one fill can never be paid twice, however its report is retried.
    execution_report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("execution_reports.id"), unique=True
    )
    # The fill's own notional (price × size × contract size), exact.
    notional: Mapped[Decimal] = mapped_column(Amount())
    tier: Mapped[int] = mapped_column(Integer)
    rate: Mapped[Decimal] = mapped_column(Price())
    amount: Mapped[Decimal] = mapped_column(Money())
    status: Mapped[CommissionStatus] = mapped_column(_enum(CommissionStatus, "commission_status"))
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class EarnedCommission:
    """A fill's new commission as a plain value, written by statements in the
    fill's transaction, never through a session (``executions.models.TradeRow``)."""

    id: uuid.UUID
    affiliate_id: uuid.UUID
    referral_id: uuid.UUID
    referred_user_id: uuid.UUID
    trade_id: uuid.UUID
    execution_report_id: uuid.UUID
    notional: Decimal
    tier: int
    rate: Decimal
    amount: Decimal
    status: CommissionStatus
    created_at: datetime


class Payout(UUIDPrimaryKey, Base):
    __tablename__ = "payouts"
    __table_args__ = (
        # A retried request with the same Idempotency-Key finds the payout it made.
        UniqueConstraint("affiliate_id", "idempotency_key"),
        # One pending payout per affiliate, whatever happens to the row lock that
        # checks it first.
        Index(
            "uq_payouts_affiliate_id_pending",
            "affiliate_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_payouts_affiliate_id_created_at", "affiliate_id", "created_at"),
        Index("ix_payouts_status_created_at", "status", "created_at"),
    )

    affiliate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("affiliates.id"))
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PayoutStatus] = mapped_column(_enum(PayoutStatus, "payout_status"))
    # Personal data: returned to its owner and to admins, never logged or audited in full.
    bank_account: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # SHA-256 of the request body, to tell a retry from a different request reusing the key.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    processed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
