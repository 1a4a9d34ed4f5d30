from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tradecast.kit import clock
from tradecast.kit.decimals import DecimalText, PositiveDecimal
from tradecast.signals.models import (
    Decision,
    OrderType,
    Side,
    SignalStatus,
    truthful_status,
)

INSTRUMENT_PATTERN = r"^[A-Z0-9._-]{1,32}$"
# Any text but control characters: producers use their own order ids here.
EXTERNAL_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"


class SignalCreate(BaseModel):
    """A signal to publish. Cross-field rules are field validators reading the fields
    declared before them, so that each broken rule is reported against one field."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(
        min_length=1, max_length=32, pattern=INSTRUMENT_PATTERN, examples=["EURUSD"]
    )
    side: Side
    order_type: OrderType
    entry_price: PositiveDecimal | None = Field(
        default=None,
        validate_default=True,
        description="Required for limit and stop orders; optional reference for market ones.",
    )
    stop_loss: PositiveDecimal | None = None
    take_profit: PositiveDecimal | None = None
    volume: PositiveDecimal | None = None
    expires_at: AwareDatetime | None = Field(
        default=None, description="In the future; default: now + SIGNAL_TTL_S (1 hour)."
    )
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=EXTERNAL_ID_PATTERN,
        description="The producer's own id: publishing it again returns the original signal.",
    )

    @field_validator("entry_price")
    @classmethod
    def _entry_price_unless_market(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        if value is None and info.data.get("order_type") in (OrderType.LIMIT, OrderType.STOP):
            raise ValueError("required for limit and stop orders")
        return value

    @field_validator("stop_loss")
    @classmethod
    def _stop_loss_on_the_losing_side(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        entry, side = info.data.get("entry_price"), info.data.get("side")
        if value is None or entry is None or side is None:
            return value
        if side is Side.BUY and not value < entry:
            raise ValueError("must be below entry_price for a buy")
        if side is Side.SELL and not value > entry:
            raise ValueError("must be above entry_price for a sell")
        return value

    @field_validator("take_profit")
    @classmethod
    def _take_profit_on_the_winning_side(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        side = info.data.get("side")
        # Against the entry price when there is one, else (a market order) the stop loss.
        entry, stop = info.data.get("entry_price"), info.data.get("stop_loss")
        reference, name = (entry, "entry_price") if entry is not None else (stop, "stop_loss")
        if value is None or reference is None or side is None:
            return value
        if side is Side.BUY and not value > reference:
            raise ValueError(f"must be above {name} for a buy")
        if side is Side.SELL and not value < reference:
            raise ValueError(f"must be below {name} for a sell")
        return value

    @field_validator("expires_at")
    @classmethod
    def _expires_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value <= clock.utcnow():
            raise ValueError("must be in the future")
        return value.astimezone(UTC)


class SignalFields(Protocol):
    """What ``SignalOut`` reads: a ``Signal``, or a row of the poll's Core statement."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def instrument(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def order_type(self) -> OrderType: ...
    @property
    def entry_price(self) -> Decimal | None: ...
    @property
    def stop_loss(self) -> Decimal | None: ...
    @property
    def take_profit(self) -> Decimal | None: ...
    @property
    def volume(self) -> Decimal | None: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def status(self) -> SignalStatus: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


class SignalOut(BaseModel):
    id: uuid.UUID
    instrument: str
    side: Side
    order_type: OrderType
    entry_price: DecimalText | None
    stop_loss: DecimalText | None
    take_profit: DecimalText | None
    volume: DecimalText | None
    expires_at: datetime
    status: SignalStatus = Field(description="`expired` as soon as `expires_at` has passed.")
    external_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, signal: SignalFields, now: datetime) -> SignalOut:
        return cls(**cls.fields_of(signal, now))

    @staticmethod
    def fields_of(signal: SignalFields, now: datetime) -> dict[str, Any]:
        """The answer's field values for ``signal`` at ``now``: the status is
        ``expired`` as soon as ``expires_at`` has passed."""
        return {
            "id": signal.id,
            "instrument": signal.instrument,
            "side": signal.side,
            "order_type": signal.order_type,
            "entry_price": signal.entry_price,
            "stop_loss": signal.stop_loss,
            "take_profit": signal.take_profit,
            "volume": signal.volume,
            "expires_at": signal.expires_at,
            "status": truthful_status(signal.status, signal.expires_at, now),
            "external_id": signal.external_id,
            "created_at": signal.created_at,
        }


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    signal_id: uuid.UUID
    decision: Decision
    decided_at: datetime
