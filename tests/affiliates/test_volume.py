"""The 30-day volume that sets each commission's tier, kept running on the affiliate's
row, always equals the sum an independent model of the window gives, as fills come
in and leave the window, whatever the spacing of the fills and the clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.affiliates.conftest import Program
from tests.affiliates.test_balances import CENT, rate_for
from tradecast.affiliates.volume import RunningVolume, move_to
from tradecast.kit import clock

WINDOW = timedelta(days=30)

# Notionals that stay within a tier and ones that cross a floor on their own.
notionals = st.one_of(
    st.decimals(min_value=Decimal(1), max_value=Decimal(5000), places=2),
    st.decimals(min_value=Decimal(9000), max_value=Decimal(95000), places=2),
)
# Whole hours apart: a fill made exactly 30 days after another no longer sees it (the
# real time that passes between the two requests puts it just beyond the window).
gaps = st.one_of(
    st.just(timedelta(0)),
    st.integers(min_value=1, max_value=24).map(lambda h: timedelta(hours=h)),
    st.integers(min_value=1, max_value=20).map(lambda d: timedelta(days=d)),
    st.just(WINDOW),
)


@dataclass
class Window:
    """The fills that earned the affiliate something: (clock offset, notional)."""

    fills: list[tuple[timedelta, Decimal]] = field(default_factory=list)

    def volume(self, at: timedelta) -> Decimal:
        return sum((n for t, n in self.fills if at - t < WINDOW), Decimal(0))

    def fill(self, at: timedelta, notional: Decimal) -> Decimal:
        """What the fill earns, computed from the window written out again."""
        self.fills.append((at, notional))
        return (notional * rate_for(self.volume(at))).quantize(CENT, ROUND_HALF_EVEN)


@settings(
    max_examples=20,
    deadline=None,
    # One app and database for all examples; each starts a new affiliate and trader.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.tuples(gaps, notionals), min_size=1, max_size=7))
async def test_each_commission_earns_the_rate_of_the_window_it_was_made_in(
    program: Program, steps: list[tuple[timedelta, Decimal]]
) -> None:
    clock.reset()  # each example starts from the real time
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    window, now, expected = Window(), timedelta(0), []
    for gap, notional in steps:
        if gap:
            clock.advance(gap)
            now += gap
            await program.relogin(affiliate, trader)
        await program.fill(trader, str(notional))
        expected.append(window.fill(now, notional))
    assert await program.amounts(affiliate) == expected
    stats = await program.stats(affiliate)
    assert Decimal(stats["volume_30d"]) == window.volume(now)


async def test_a_fill_whose_clock_is_behind_the_last_one_still_sees_its_own_window(
    program: Program,
) -> None:
    """Workers' clocks differ a little, and fills of one affiliate come from all of
    them: a fill may start its window before the previous fill's did."""
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    await program.fill(trader, "9000")  # at 0, tier 1: 45.00
    clock.advance(WINDOW + timedelta(seconds=10))
    await program.relogin(affiliate, trader)
    # The 9,000 left the window 10 s ago: 100 alone, tier 1.
    await program.fill(trader, "100")
    # A clock 20 s behind: its window still holds the 9,000, so 10,100 in all: tier 2.
    clock.advance(timedelta(seconds=-20))
    await program.fill(trader, "1000")
    # Back in step, 10 s past the previous window: the 9,000 is out again (1,110, tier 1).
    clock.advance(timedelta(seconds=30))
    await program.fill(trader, "10")
    # Listed by the time each was recorded at: the late clock's fill comes second.
    assert await program.amounts(affiliate) == [
        Decimal("45.00"),
        Decimal("10.00"),
        Decimal("0.50"),
        Decimal("0.05"),
    ]
    stats = await program.stats(affiliate)
    assert (stats["volume_30d"], stats["commission_tier"]) == ("1110", 1)


# Notionals with all of NUMERIC(38, 16)'s digits: sums of them must not round.
wide_notionals = st.decimals(
    min_value=Decimal("0.0000000000000001"),
    max_value=Decimal("9999999999999999999.9999999999999999"),
    places=16,
)
seconds = st.integers(min_value=0, max_value=10_000)


@given(
    commissions=st.lists(st.tuples(seconds, wide_notionals), max_size=30),
    starts=st.lists(seconds, min_size=1, max_size=15),
)
def test_moving_the_running_volume_gives_the_window_s_sum_exactly(
    commissions: list[tuple[int, Decimal]], starts: list[int]
) -> None:
    """Window starts in any order, forward and back: each move's volume is the sum of
    the commissions after its start, to the last digit."""
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    at = [(epoch + timedelta(seconds=t), n) for t, n in commissions]
    running = RunningVolume(Decimal(0), None)
    for offset in starts:
        start = epoch + timedelta(seconds=offset)
        move = move_to(running, start)
        # The model's sums with digits to spare (Python's default keeps 28).
        with localcontext(Context(prec=100)):
            read = sum((n for t, n in at if move.low < t <= move.high), Decimal(0))
            expected = sum((n for t, n in at if t > start), Decimal(0))
        assert move.volume(read) == expected
        running = move.stored(read, Decimal(0))
