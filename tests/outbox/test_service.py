from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from tests.desk import Desk
from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.outbox import service as outbox
from tradecast.outbox.models import OutboxEvent


@pytest.fixture
async def db(app: object, settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.resolved_database_url)
    yield database
    await database.dispose()


async def emit(db: Database, topic: str = "test.topic", n: int = 1) -> None:
    async with db.sessionmaker() as session, session.begin():
        for i in range(n):
            outbox.emit(session, topic, {"n": i})


async def events(db: Database) -> list[OutboxEvent]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(OutboxEvent))).all())


async def test_events_without_a_handler_wait(db: Database) -> None:
    await emit(db, "nobody.listens")
    assert await outbox.dispatch_due(db, {}) == 0
    assert await outbox.dispatch_due(db, {"other": _ok}) == 0
    (event,) = await events(db)
    assert event.delivered_at is None
    assert event.attempts == 0


async def _ok(event: OutboxEvent) -> None:
    return None


async def test_due_events_are_handed_over_once(db: Database) -> None:
    await emit(db, n=3)
    seen: list[int] = []

    async def handler(event: OutboxEvent) -> None:
        seen.append(event.payload["n"])

    assert await outbox.dispatch_due(db, {"test.topic": handler}) == 3
    assert await outbox.dispatch_due(db, {"test.topic": handler}) == 0
    assert sorted(seen) == [0, 1, 2]
    assert all(event.delivered_at is not None for event in await events(db))


async def test_failures_back_off_then_succeed(db: Database) -> None:
    await emit(db)
    calls = 0

    async def flaky(event: OutboxEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("api down")

    assert await outbox.dispatch_due(db, {"test.topic": flaky}) == 0
    (event,) = await events(db)
    assert event.attempts == 1
    assert event.last_error == "ConnectionError: api down"
    # Not due again until the backoff has passed.
    assert await outbox.dispatch_due(db, {"test.topic": flaky}) == 0
    assert calls == 1
    clock.advance(timedelta(seconds=3))
    assert await outbox.dispatch_due(db, {"test.topic": flaky}) == 1
    assert calls == 2


async def test_retry_later_and_drop_are_honoured(db: Database) -> None:
    await emit(db, "slow")
    await emit(db, "gone")

    async def slow(event: OutboxEvent) -> None:
        raise outbox.RetryLater(30, "429 Too Many Requests")

    async def gone(event: OutboxEvent) -> None:
        raise outbox.DropEvent("bot was blocked by the user")

    handlers = {"slow": slow, "gone": gone}
    assert await outbox.dispatch_due(db, handlers) == 0
    by_topic = {event.topic: event for event in await events(db)}
    assert by_topic["gone"].dead_at is not None
    assert by_topic["slow"].dead_at is None
    assert by_topic["slow"].available_at - clock.utcnow() > timedelta(seconds=25)


async def test_a_failing_event_is_given_up_after_the_last_attempt(db: Database) -> None:
    await emit(db)

    async def broken(event: OutboxEvent) -> None:
        raise RuntimeError("always")

    for _ in range(outbox.MAX_ATTEMPTS):
        await outbox.dispatch_due(db, {"test.topic": broken})
        clock.advance(timedelta(hours=2))
    (event,) = await events(db)
    assert event.attempts == outbox.MAX_ATTEMPTS
    assert event.dead_at is not None


async def test_background_jobs_reconcile_by_themselves(
    app: object, tmp_path: Path, settings: Settings
) -> None:
    """With jobs on, an error report becomes an issue without anyone calling /run."""
    import httpx
    from asgi_lifespan import LifespanManager

    from tests.helpers import Api
    from tradecast.main import create_app

    live = make_settings(
        settings.resolved_database_url,
        tmp_path,
        background_jobs_enabled=True,
        reconcile_interval_s=0.2,
    )
    app = create_app(live)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            desk = Desk(Api(client, live))
            terminal = await desk.terminal()
            signal = await desk.publish()
            await terminal.poll()
            await terminal.error(signal["id"])
            for _ in range(50):
                response = await client.get(
                    "/api/v1/reconciliation/issues", headers=terminal.owner.headers
                )
                if response.json()["total"]:
                    break
                await asyncio.sleep(0.1)
            assert response.json()["items"][0]["kind"] == "execution_error"
