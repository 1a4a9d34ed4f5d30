from __future__ import annotations

from decimal import Decimal

import pytest

from tradecast.affiliates.tiers import tier_for
from tradecast.config import Settings

TIERS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    affiliate_tiers="1000000:0.02,0:0.005,100000:0.015,10000:0.01",  # type: ignore[arg-type]
).affiliate_tiers


@pytest.mark.parametrize(
    ("volume", "number", "rate"),
    [
        ("0", 1, "0.005"),
        ("9999.99", 1, "0.005"),
        ("10000", 2, "0.01"),
        ("99999.9999999999999999", 2, "0.01"),
        ("100000", 3, "0.015"),
        ("1000000", 4, "0.02"),
        ("50000000", 4, "0.02"),
    ],
)
def test_the_floor_of_a_tier_belongs_to_it(volume: str, number: int, rate: str) -> None:
    tier = tier_for(TIERS, Decimal(volume))
    assert (tier.number, tier.rate) == (number, Decimal(rate))
