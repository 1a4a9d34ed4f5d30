"""The affiliate's 30-day referred volume, kept running on the affiliate's row.

``affiliates.volume`` is Σ notional of the affiliate's earned commissions created
after ``affiliates.volume_after``; a NULL ``volume_after`` means not known yet. A
fill's commission moves the window to its own start (``now`` − 30 days) by reading
only the commissions between the old start and the new one, and stores the result
with its own notional added. Each commission is so read at most twice (once when it
enters a first sum, once when it leaves the window) instead of once per later fill
of the affiliate, however busy the affiliate is.

The row is only changed under the affiliate's lock, which everyone who changes
the affiliate's earned commissions also takes (fills, clearing a referral), so the
stored figure always agrees with the commissions it sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tradecast.kit import money

# The upper bound of a first sum: every commission there is.
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class RunningVolume:
    """What the affiliate's row holds."""

    volume: Decimal
    after: datetime | None


@dataclass(frozen=True)
class Move:
    """How to bring a running volume to a new window: read Σ earned notional of the
    commissions created in (``low``, ``high``], and add it to ``base`` (``sign`` +1)
    or take it away (-1)."""

    low: datetime
    high: datetime
    sign: int
    base: Decimal
    # The row's start afterwards, and whether that is the new window's start (else
    # the row keeps its own).
    after: datetime
    advances: bool

    def volume(self, read: Decimal) -> Decimal:
        """The window's volume, given what was read (exact, as all money here)."""
        return money.add(self.base, read if self.sign > 0 else read.copy_negate())

    def stored(self, read: Decimal, earned: Decimal) -> RunningVolume:
        """What the row holds afterwards, ``earned`` (a new earned commission's
        notional, or zero) included."""
        kept = self.volume(read) if self.advances else self.base
        return RunningVolume(money.add(kept, earned), self.after)


def move_to(running: RunningVolume, start: datetime) -> Move:
    """The reads that give the volume of earned commissions created after ``start``."""
    if running.after is None:
        return Move(start, FAR_FUTURE, 1, money.ZERO, start, advances=True)
    if start > running.after:
        # The usual case: commissions between the old start and the new one left.
        return Move(running.after, start, -1, running.volume, start, advances=True)
    # A clock behind the last fill's (another process, the same instant): the window
    # starts earlier than the row's; those commissions count again for this fill,
    # and the row keeps its start.
    return Move(start, running.after, 1, running.volume, running.after, advances=False)
