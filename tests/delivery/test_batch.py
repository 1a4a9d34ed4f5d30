"""Woken long polls answered together: every waiter gets its own answer, once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.desk import Desk, Terminal
from tests.helpers import assert_problem, engine_statements
from tradecast.db import Database, DriverStatement
from tradecast.delivery.batch import BATCH_AT_ONCE, DeliveryBatcher, LookBatcher, batch_values
from tradecast.delivery.models import Delivery
from tradecast.delivery.repository import LAST_POLL_STEP
from tradecast.delivery.wakeups import WakeupHub
from tradecast.kit import clock


@contextmanager
def counting_statements(app: FastAPI) -> Iterator[list[str]]:
    """Every statement the app sends while the block runs: through its engine, and
    on asyncpg's own pool (``DriverStatement``)."""
    fetch = DriverStatement.fetch
    with engine_statements(app) as seen:

        async def recorded_fetch(
            statement: DriverStatement, connection: Any, values: Any
        ) -> list[Any]:
            seen.append(statement.sql)
            return await fetch(statement, connection, values)

        DriverStatement.fetch = recorded_fetch  # type: ignore[method-assign,assignment]
        try:
            yield seen
        finally:
            DriverStatement.fetch = fetch  # type: ignore[method-assign]


async def _delivered_to(app: FastAPI, signal_id: str) -> list[str]:
    """The devices with a delivery row for the signal, read on a connection of the test's own."""
    db = Database(str(app.state.db.url))
    try:
        async with db.sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(Delivery).where(Delivery.signal_id == uuid.UUID(signal_id))
                )
            ).all()
    finally:
        await db.dispose()
    return sorted(str(row.device_id) for row in rows)


async def _held(app: FastAPI, terminals: list[Terminal], wait: int = 10) -> list[asyncio.Task[Any]]:
    """Start a long poll for each terminal; return once every one of them waits
    (verified, first look taken), however long a busy machine takes for that."""
    tasks = [asyncio.create_task(t.poll(wait=wait)) for t in terminals]
    hub: WakeupHub = app.state.wakeups
    for _ in range(500):  # up to 10 s
        if hub.held >= len(terminals):
            break
        await asyncio.sleep(0.02)
    assert hub.held == len(terminals)
    assert not any(task.done() for task in tasks)
    return tasks


async def test_one_signal_reaches_every_waiting_device_in_one_statement(
    desk: Desk, app: FastAPI
) -> None:
    terminals = [await desk.terminal() for _ in range(12)]
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    held_back = await desk.terminal(careful)
    await desk.admin()
    tasks = await _held(app, [*terminals, held_back], wait=3)
    with counting_statements(app) as statements:
        signal = await desk.publish()
        answers = await asyncio.wait_for(asyncio.gather(*tasks[:-1]), 5)
    for answer in answers:
        assert answer.status_code == 200
        assert [s["id"] for s in answer.json()["signals"]] == [signal["id"]]
    looks = [s for s in statements if "INSERT INTO deliveries" in s]
    if app.state.db.is_sqlite:
        assert len(looks) <= 13  # one per device, though in one transaction
    else:
        # The woken polls join one batch (two if the loop split them).
        assert 1 <= len(looks) <= 2

    # The approval-mode device stays held and does not spin while it waits.
    with counting_statements(app) as statements:
        response = await asyncio.wait_for(tasks[-1], 5)
    assert response.json()["signals"] == []
    assert len(statements) < 10

    assert await _delivered_to(app, signal["id"]) == sorted(t.id for t in terminals)


async def test_two_polls_of_one_device_are_both_answered(desk: Desk, app: FastAPI) -> None:
    terminal = await desk.terminal()
    await desk.admin()
    first, second = await _held(app, [terminal, terminal])
    signal = await desk.publish()
    for answer in await asyncio.wait_for(asyncio.gather(first, second), 5):
        assert answer.status_code == 200
        assert [s["id"] for s in answer.json()["signals"]] == [signal["id"]]


async def test_each_question_in_a_batch_gets_its_own_limit(desk: Desk, app: FastAPI) -> None:
    terminal, other = await desk.terminal(), await desk.terminal()
    published = []
    for i in range(3):
        published.append((await desk.publish(instrument=f"SYM{i}"))["id"])
        clock.advance(timedelta(seconds=1))
    batcher: DeliveryBatcher = app.state.delivery_batcher
    device, owner = uuid.UUID(terminal.id), uuid.UUID(terminal.owner.id)
    answers = await asyncio.gather(
        batcher.deliver(device, owner, 1),
        batcher.deliver(device, owner, 5),
        batcher.deliver(uuid.UUID(other.id), uuid.UUID(other.owner.id), 2),
        batcher.deliver(uuid.uuid4(), owner, 5),  # no such device
    )
    ids = [None if a is None else [str(s.id) for s in a] for a in answers]
    assert ids == [published[:1], published, published[:2], None]
    # Both polls of the one device were one question: each signal delivered once.
    assert await terminal.pending_ids() == published


async def test_a_device_deleted_while_it_waits_is_refused(desk: Desk, app: FastAPI) -> None:
    terminal = await desk.terminal()
    await desk.admin()
    (waiting,) = await _held(app, [terminal])
    deleted = await desk.api.client.delete(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert deleted.status_code == 204
    started = time.monotonic()
    await desk.publish()
    assert_problem(await asyncio.wait_for(waiting, 5), 401, "key_inactive")
    assert time.monotonic() - started < 2


async def _last_poll(desk: Desk, terminal: Terminal) -> datetime | None:
    device = await desk.api.client.get(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert device.status_code == 200
    stamp = device.json()["last_poll"]
    return None if stamp is None else datetime.fromisoformat(stamp)


def _question(terminal: Terminal) -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.UUID(terminal.id), uuid.UUID(terminal.owner.id)


@pytest.mark.postgres_only
async def test_polls_arriving_together_are_answered_together(desk: Desk, app: FastAPI) -> None:
    terminals = [await desk.terminal() for _ in range(6)]
    await terminals[0].poll()  # its last_poll is recent from here on
    recent = await _last_poll(desk, terminals[0])
    clock.advance(timedelta(seconds=3))
    signal = await desk.publish()
    gone = await desk.terminal()
    deleted = await desk.api.client.delete(f"/api/v1/devices/{gone.id}", headers=gone.owner.headers)
    assert deleted.status_code == 204
    looks: LookBatcher = app.state.look_batcher
    with counting_statements(app) as statements:
        answers = await asyncio.gather(
            *(looks.deliver(*_question(t), 50) for t in [*terminals, gone])
        )
    for answer in answers[:-1]:
        assert answer is not None
        assert [str(s.id) for s in answer] == [signal["id"]]
    assert answers[-1] is None  # deleted: its poll answers 401 key_inactive
    # One statement for the seven looks, one to move five last_polls on.
    assert len([s for s in statements if "INSERT INTO deliveries" in s]) == 1
    assert len([s for s in statements if "UPDATE devices SET last_poll" in s]) == 1
    # Each poll is recorded, within LAST_POLL_STEP: the fresh devices now, the one
    # that polled three seconds ago left as it was.
    assert await _last_poll(desk, terminals[0]) == recent
    for terminal in terminals[1:]:
        last_poll = await _last_poll(desk, terminal)
        assert last_poll is not None
        assert abs((last_poll - clock.utcnow()).total_seconds()) < 1
    # Polls again moments later: every last_poll is recent, nothing is written.
    with counting_statements(app) as statements:
        await asyncio.gather(*(looks.deliver(*_question(t), 50) for t in terminals))
    assert [s for s in statements if "UPDATE devices" in s] == []
    # Each device was handed the signal once, and still has it pending.
    assert await _delivered_to(app, signal["id"]) == sorted(t.id for t in terminals)
    for terminal in terminals:
        assert await terminal.pending_ids() == [signal["id"]]


async def test_a_woken_look_does_not_move_last_poll_on(desk: Desk, app: FastAPI) -> None:
    terminal, other = await desk.terminal(), await desk.terminal()
    signal = await desk.publish()
    batcher: DeliveryBatcher = app.state.delivery_batcher
    answers = await asyncio.gather(
        batcher.deliver(*_question(terminal), 50), batcher.deliver(*_question(other), 50)
    )
    assert [[str(s.id) for s in answer or []] for answer in answers] == [[signal["id"]]] * 2
    assert await _last_poll(desk, terminal) is None
    assert await other.pending_ids() == [signal["id"]]  # a poll of its own
    assert await _last_poll(desk, other) is not None


async def test_a_poll_woken_alone_is_answered_in_one_statement(desk: Desk, app: FastAPI) -> None:
    terminal = await desk.terminal()
    await desk.admin()
    (waiting,) = await _held(app, [terminal])
    began = await _last_poll(desk, terminal)
    assert began is not None
    clock.advance(LAST_POLL_STEP * 2)  # a plain look now would move last_poll on
    with engine_statements(app) as through_engine, counting_statements(app) as statements:
        signal = await desk.publish()
        answer = await asyncio.wait_for(waiting, 5)
    assert answer.status_code == 200
    assert [s["id"] for s in answer.json()["signals"]] == [signal["id"]]
    looks = [s for s in statements if "INSERT INTO deliveries" in s]
    assert len(looks) == 1
    if not app.state.db.is_sqlite:
        # On asyncpg's own pool, in autocommit: no transaction on the engine's pool.
        assert [s for s in through_engine if "deliveries" in s] == []
    assert "UPDATE devices" not in "".join(statements)
    assert await _last_poll(desk, terminal) == began
    assert await _delivered_to(app, signal["id"]) == [terminal.id]


@pytest.mark.postgres_only
async def test_a_batch_skips_a_locked_device_row_instead_of_waiting(
    desk: Desk, app: FastAPI
) -> None:
    held, free = await desk.terminal(), await desk.terminal()
    signal = await desk.publish()
    looks: LookBatcher = app.state.look_batcher
    other = await asyncpg.connect(str(app.state.db.url).replace("postgresql+asyncpg", "postgresql"))
    try:
        # Another writer holds the device's row, as an ACK does until it commits.
        async with other.transaction():
            await other.execute("UPDATE devices SET last_ack = now() WHERE id = $1", held.id)
            answers = await asyncio.wait_for(
                asyncio.gather(
                    looks.deliver(*_question(held), 50),
                    looks.deliver(*_question(free), 50),
                ),
                3,
            )
            for answer in answers:
                assert answer is not None
                assert [str(s.id) for s in answer] == [signal["id"]]
        # The locked device's poll is recorded by its next one; the other's now.
        assert await _last_poll(desk, held) is None
        assert await _last_poll(desk, free) is not None
        assert await held.pending_ids() == [signal["id"]]
        assert await _last_poll(desk, held) is not None
    finally:
        await other.close()


@pytest.mark.postgres_only
async def test_a_device_connection_looks_its_array_types_up_as_it_opens(app: FastAPI) -> None:
    # Not in the middle of a woken poll's answer: the catalog look-up asyncpg makes
    # the first time a connection binds a uuid[] or integer[] took 7-41 ms.
    db = Database(str(app.state.db.url), driver_pool_size=1)
    sent: list[str] = []

    def record(query: Any) -> None:
        sent.append(query.query)

    try:
        async with db.driver_connection() as connection:
            connection.add_query_logger(record)
            asks = [(uuid.uuid4(), uuid.uuid4(), 10)]  # no such device: no row
            assert await BATCH_AT_ONCE.fetch(connection, batch_values(asks, clock.utcnow())) == []
            connection.remove_query_logger(record)
    finally:
        await db.dispose()
    assert sent == [BATCH_AT_ONCE.sql]
