"""Executing a signal: the executor protocol and the default paper executor.

An executor turns a signal into fills (a partial fill is one of several) or
refuses it with a broker-style error code. A real integration places the
order with its broker here; the paper executor pretends to.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

PRICE_QUANTUM = Decimal("0.00000001")  # the server keeps prices as NUMERIC(20, 8)
BPS = Decimal(10_000)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class Signal:
    id: str
    instrument: str
    side: str
    order_type: str
    entry_price: Decimal | None
    volume: Decimal | None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signal:
        # Prices arrive as decimal strings; Decimal(str) keeps them exact.
        return cls(
            id=str(data["id"]),
            instrument=str(data["instrument"]),
            side=str(data["side"]),
            order_type=str(data["order_type"]),
            entry_price=_decimal(data.get("entry_price")),
            volume=_decimal(data.get("volume")),
            stop_loss=_decimal(data.get("stop_loss")),
            take_profit=_decimal(data.get("take_profit")),
        )


@dataclass(frozen=True)
class Fill:
    price: Decimal
    size: Decimal
    broker_ticket: str | None = None


class ExecutionRefused(Exception):
    """The order was not placed (or was refused by the broker): reported as an error."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class Executor(Protocol):
    async def execute(self, signal: Signal) -> list[Fill]:
        """Place the order for ``signal``; the fills it got, or ``ExecutionRefused``."""
        ...


# Codes in the MetaTrader 5 trade-server range, so dashboards read them the same way.
NO_PRICE = 10_021  # "no quotes to process the request"


@dataclass
class PaperExecutor:
    """Fills at the signal's entry price — or, for a market order, at a configured
    reference price for the instrument — moved against the trader by
    ``slippage_bps``, after ``latency_s``. The size is the signal's volume, or
    ``default_size`` when it has none."""

    reference_prices: Mapping[str, Decimal] = field(default_factory=dict)
    slippage_bps: Decimal = Decimal(0)
    latency_s: float = 0.0
    default_size: Decimal = Decimal(1)

    async def execute(self, signal: Signal) -> list[Fill]:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        reference = self.reference_prices.get(signal.instrument)
        base = reference if signal.order_type == "market" and reference else signal.entry_price
        if base is None:
            raise ExecutionRefused(NO_PRICE, f"no reference price for {signal.instrument}")
        slip = self.slippage_bps / BPS
        # Slippage always hurts: a buy fills higher, a sell lower.
        price = base * (1 + slip) if signal.side == "buy" else base * (1 - slip)
        price = price.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
        size = signal.volume if signal.volume is not None else self.default_size
        return [Fill(price=price, size=size, broker_ticket=f"paper-{uuid.uuid4().hex[:16]}")]
