"""Ids of the rows that pile up: UUID version 7 (RFC 9562), ordered by creation.

Reports, trades, commissions, audit events, reconciliation issues, outbox
messages and signals arrive all day and are never deleted by the service. A
random (version 4) key lands each new row on a random leaf of its primary-key
index, so every insert walks the tree down to a page that may be anywhere,
and after each checkpoint the first change to each such page writes the whole
page to the write-ahead log. A version 7 id starts with the time in
milliseconds: new rows go to the rightmost leaf, which PostgreSQL keeps at
hand for that case. The other 74 bits are random, so ids stay unique across
processes without coordination and are no easier to guess than before where
it matters: nothing is authorised by knowing an id, and each of these rows
shows its creation time anyway.

Users, devices, producers, tokens and the rest keep random ids: they are few,
and a device's id is its key id.

The time part is the wall clock's, not ``kit.clock``'s (which tests move):
nothing reads a time from an id.
"""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def time_ordered() -> uuid.UUID:
    """A new id whose order follows creation, to the millisecond."""
    return uuid7()
