from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tradecast.affiliates.models import (
    AffiliateStatus,
    PayoutStatus,
    ReferralSource,
    ReferralStatus,
)
from tradecast.kit.decimals import DecimalText, MoneyAmount


class AffiliateOut(BaseModel):
    id: uuid.UUID
    referral_token: str
    commission_tier: int = Field(description="1 for the lowest tier; see GET /stats.")
    status: AffiliateStatus
    created_at: datetime


class LinkOut(BaseModel):
    referral_token: str
    url: str = Field(description="Sign-up link on PUBLIC_BASE_URL, carrying ?ref=TOKEN.")
    telegram_url: str = Field(description="Opens the bot with /start ref_TOKEN.")


class StatsOut(BaseModel):
    referral_count: int = Field(description="Users referred, flagged ones included.")
    commission_tier: int
    commission_rate: DecimalText = Field(description="The tier's rate, e.g. 0.005 for 0.5 %.")
    volume_30d: DecimalText = Field(
        description="Notional of referred users' fills over the last 30 days."
    )
    earned_total: DecimalText
    available_balance: DecimalText = Field(description="earned − paid − pending")
    pending_total: DecimalText
    paid_total: DecimalText
    currency: str


class CommissionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    trade_id: uuid.UUID
    referred_user_id: uuid.UUID
    notional: DecimalText = Field(description="The fill's price × size × contract size.")
    tier: int
    rate: DecimalText
    amount: DecimalText = Field(description="notional × rate, rounded half-even to cents.")
    created_at: datetime


BankAccount = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=4,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./:-]*$",
    ),
    Field(description="IBAN or account number: letters, digits, spaces and . / : -"),
]


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyAmount
    bank_account: BankAccount


class PayoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    amount: DecimalText
    currency: str
    status: PayoutStatus
    bank_account: str
    reference: str | None = Field(description="The transfer's reference, once paid.")
    failure_reason: str | None = Field(description="Why the transfer failed, if it did.")
    created_at: datetime
    completed_at: datetime | None = Field(description="When it was paid or failed.")


class AdminPayoutOut(PayoutOut):
    affiliate_id: uuid.UUID
    user_id: uuid.UUID = Field(description="The affiliate's user account.")
    processed_by: uuid.UUID | None


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
    ]


class FailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReferralOut(BaseModel):
    id: uuid.UUID
    affiliate_id: uuid.UUID
    affiliate_user_id: uuid.UUID
    referred_user_id: uuid.UUID
    source: ReferralSource
    status: ReferralStatus
    flag_reasons: list[str] = Field(description="same_signup_ip, same_email_domain")
    withheld_amount: DecimalText = Field(
        description="Commissions earned while flagged; clearing releases them."
    )
    created_at: datetime
    cleared_at: datetime | None
    cleared_by: uuid.UUID | None
