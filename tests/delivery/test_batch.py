"""Woken long polls answered together: every waiter gets its own answer, once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event, select

from tests.desk import Desk, Terminal
from tests.helpers import assert_problem
from tradecast.db import Database
from tradecast.delivery.batch import DeliveryBatcher
from tradecast.delivery.models import Delivery
from tradecast.delivery.wakeups import WakeupHub
from tradecast.kit import clock


@contextmanager
def counting_statements(app: FastAPI) -> Iterator[list[str]]:
    """Every statement the app's engine sends while the block runs."""
    seen: list[str] = []
    engine = app.state.db.engine.sync_engine

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


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
        assert len(looks) <= 2  # the woken polls join one batch (two if the loop split them)

    # The approval-mode device stays held and does not spin while it waits.
    with counting_statements(app) as statements:
        response = await asyncio.wait_for(tasks[-1], 5)
    assert response.json()["signals"] == []
    assert len(statements) < 10

    db = Database(str(app.state.db.url))
    try:
        async with db.sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(Delivery).where(Delivery.signal_id == uuid.UUID(signal["id"]))
                )
            ).all()
    finally:
        await db.dispose()
    assert sorted(str(row.device_id) for row in rows) == sorted(t.id for t in terminals)


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
