from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from tests.affiliates.conftest import Program
from tradecast.kit import clock


async def test_fills_earn_the_tier_rate_and_the_crossing_fill_already_the_higher_one(
    program: Program,
) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)

    # 1,001 × 0.5 % = 5.005: half-even keeps 5.00 (half-up would say 5.01).
    await program.fill(trader, "1001")
    # Volume 10,000, exactly tier 2's floor: this fill itself earns 1 %, 89.99.
    await program.fill(trader, "8999")
    # 1,000.5 × 1 % = 10.005 → 10.00; 1,001.5 × 1 % = 10.015 → 10.02 (to the even cent).
    await program.fill(trader, "1000.5")
    await program.fill(trader, "1001.5")
    # Volume 100,002: tier 3 (1.5 %) for the whole fill that crossed 100,000.
    await program.fill(trader, "88000")

    assert await program.amounts(affiliate) == [
        Decimal("5.00"),
        Decimal("89.99"),
        Decimal("10.00"),
        Decimal("10.02"),
        Decimal("1320.00"),
    ]
    history = await program.history(affiliate)
    assert [(c["tier"], c["rate"]) for c in reversed(history)] == [
        (1, "0.005"),
        (2, "0.01"),
        (2, "0.01"),
        (2, "0.01"),
        (3, "0.015"),
    ]
    assert [c["notional"] for c in reversed(history)] == [
        "1001",
        "8999",
        "1000.5",
        "1001.5",
        "88000",
    ]
    assert {c["referred_user_id"] for c in history} == {trader.id}
    stats = await program.stats(affiliate)
    assert stats["earned_total"] == stats["available_balance"] == "1435.01"
    assert stats["volume_30d"] == "100002"
    assert (stats["commission_tier"], stats["commission_rate"]) == (3, "0.015")
    assert stats["referral_count"] == 1
    assert stats["currency"] == "USD"


async def test_commission_links_the_fill_s_trade(program: Program) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    filled = await program.fill(trader, "2000.5", "0.25")
    (commission,) = await program.history(affiliate)
    assert commission["trade_id"] == filled["trade_id"]
    # 500.125 × 0.5 % = 2.500625 → 2.50
    assert (commission["notional"], commission["amount"]) == ("500.125", "2.5")


async def test_a_non_referred_users_fills_earn_nobody_anything(program: Program) -> None:
    affiliate, token = await program.affiliate()
    await program.referred(token)
    loner = await program.referred(None)
    stranger = await program.referred("no-such-token")
    await program.fill(loner, "50000")
    await program.fill(stranger, "50000")
    stats = await program.stats(affiliate)
    assert stats["earned_total"] == "0"
    assert stats["volume_30d"] == "0"
    assert stats["referral_count"] == 1
    assert await program.history(affiliate) == []


async def test_fills_older_than_30_days_leave_the_volume(program: Program) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    await program.fill(trader, "9000")
    clock.advance(timedelta(days=30, seconds=1))
    await program.relogin(affiliate, trader)
    # 9,000 + 2,000 would be tier 2; the first fill has left the window.
    await program.fill(trader, "2000")
    assert await program.amounts(affiliate) == [Decimal("45.00"), Decimal("10.00")]
    stats = await program.stats(affiliate)
    assert (stats["volume_30d"], stats["commission_tier"]) == ("2000", 1)
    assert stats["earned_total"] == "55"


async def test_fills_of_all_referred_users_add_to_one_volume(program: Program) -> None:
    affiliate, token = await program.affiliate()
    first = await program.referred(token)
    second = await program.referred(token)
    await program.fill(first, "6000")
    await program.fill(second, "6000")
    assert await program.amounts(affiliate) == [Decimal("30.00"), Decimal("60.00")]


async def test_concurrent_fills_never_use_a_stale_volume(program: Program) -> None:
    affiliate, token = await program.affiliate()
    traders = [await program.referred(token) for _ in range(9)]
    await program.fill(traders[0], "9000")
    terminals = [await program.desk.terminal(trader) for trader in traders[1:]]
    signal = await program.desk.publish(instrument="XYZ")
    # Eight fills of 250 on eight trades at once. Recorded one after the other, each
    # sees the ones before: three stay below 10,000 (1.25 each), the fourth reaches it
    # and it and the rest earn tier 2 (2.50 each). A stale volume would pay less.
    responses = await asyncio.gather(
        *(terminal.fill(signal["id"], "250", "1") for terminal in terminals)
    )
    assert all(r.status_code == 201 for r in responses)
    # Each fill took its time before waiting for the lock, so sort rather than trust the order.
    amounts = sorted(await program.amounts(affiliate))
    assert amounts == [Decimal("1.25")] * 3 + [Decimal("2.50")] * 5 + [Decimal("45.00")]


async def test_a_replayed_fill_earns_once(program: Program) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    terminal = await program.desk.terminal(trader)
    signal = await program.desk.publish(instrument="XYZ")
    copies = await asyncio.gather(
        *(terminal.fill(signal["id"], "3000", "1", report_id="once") for _ in range(10))
    )
    assert sorted(r.status_code for r in copies) == [200] * 9 + [201]
    assert await program.amounts(affiliate) == [Decimal("15.00")]
