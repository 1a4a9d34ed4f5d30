"""Ids of the rows that pile up, ordered by creation (``kit.ids``)."""

from __future__ import annotations

import time
import uuid

from tradecast.kit import ids


def test_an_id_is_a_version_7_uuid_carrying_the_wall_clock_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = ids.time_ordered()
    after = time.time_ns() // 1_000_000
    assert isinstance(made, uuid.UUID)
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert before <= made.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_after_and_none_repeat() -> None:
    made = []
    for _ in range(5):
        made.append(ids.time_ordered())
        time.sleep(0.002)
    assert made == sorted(made)
    assert str(made[0]) < str(made[-1])  # as text too, as the API shows them
    many = {ids.time_ordered() for _ in range(100_000)}
    assert len(many) == 100_000
