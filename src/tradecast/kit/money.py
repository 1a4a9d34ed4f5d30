"""Decimal arithmetic for prices, sizes and money: exact where it can be, rounded once
where it must be, always half-even, never through a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

# Enough digits that sums and products of NUMERIC(38, 16) values never round.
EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.00000001")
AMOUNT_STEP = Decimal("0.0000000000000001")


def multiply(*factors: Decimal) -> Decimal:
    result = Decimal(1)
    for factor in factors:
        result = EXACT.multiply(result, factor)
    return result


def add(left: Decimal, right: Decimal) -> Decimal:
    return EXACT.add(left, right)


def divide(numerator: Decimal, denominator: Decimal, step: Decimal) -> Decimal:
    """``numerator / denominator`` rounded half-even to ``step`` (e.g. 8 decimal places)."""
    return EXACT.divide(numerator, denominator).quantize(step, rounding=ROUND_HALF_EVEN)


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
