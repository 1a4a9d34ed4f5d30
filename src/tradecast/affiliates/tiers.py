"""Commission tiers: which rate a 30-day referred volume earns (``AFFILIATE_TIERS``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

VOLUME_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Tier:
    number: int  # 1 for the lowest
    floor: Decimal
    rate: Decimal


def tier_for(tiers: Sequence[tuple[Decimal, Decimal]], volume: Decimal) -> Tier:
    """The highest tier whose volume floor ``volume`` reaches (floors are inclusive:
    exactly 10,000 is already tier 2 with the default tiers)."""
    ordered = sorted(tiers)
    chosen = Tier(1, *ordered[0])
    for number, (floor, rate) in enumerate(ordered, start=1):
        if volume >= floor:
            chosen = Tier(number, floor, rate)
    return chosen
