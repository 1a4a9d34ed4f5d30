"""The device-key cache: a changed key never verifies again, in any process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select, update

from tests.desk import Desk, Terminal
from tests.helpers import Api, assert_problem
from tests.redis_support import REDIS_URL, forget, needs_redis, unique_prefix
from tradecast.config import Settings
from tradecast.db import Database
from tradecast.delivery.models import Delivery
from tradecast.devices.models import Device
from tradecast.main import create_app
from tradecast.signed.keycache import KeyCache
from tradecast.signed.verification import SigningKey


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(secret: str = "s" * 43) -> SigningKey:
    return SigningKey(key_id=uuid.uuid4(), secret=secret, is_active=True, owner_id=uuid.uuid4())


class TestTheCache:
    def test_an_entry_lives_for_its_ttl_only(self) -> None:
        clock = FakeClock()
        cache = KeyCache(30, clock=clock)
        key = _key()
        cache.put(key, epoch=cache.epoch)
        clock.now += 29.9
        assert cache.get(key.key_id) == key
        clock.now += 0.1
        assert cache.get(key.key_id) is None
        assert len(cache) == 0

    def test_a_lookup_that_raced_an_invalidation_is_not_stored(self) -> None:
        cache = KeyCache(30)
        key = _key()
        seen = cache.epoch  # the lookup starts and reads the old secret ...
        cache.forget(key.key_id)  # ... while a rotation commits
        cache.put(key, epoch=seen)
        assert cache.get(key.key_id) is None
        cache.put(key, epoch=cache.epoch)
        assert cache.get(key.key_id) == key

    def test_the_oldest_entries_go_past_the_bound(self) -> None:
        cache = KeyCache(30, max_entries=3)
        keys = [_key() for _ in range(5)]
        for key in keys:
            cache.put(key, epoch=cache.epoch)
        assert len(cache) == 3
        assert [cache.get(k.key_id) for k in keys] == [None, None, *keys[2:]]

    def test_a_ttl_of_zero_turns_it_off(self) -> None:
        cache = KeyCache(0)
        key = _key()
        cache.put(key, epoch=cache.epoch)
        assert cache.get(key.key_id) is None

    def test_relayed_invalidations_and_resync(self) -> None:
        cache = KeyCache(30)
        kept, dropped = _key(), _key()
        for key in (kept, dropped):
            cache.put(key, epoch=cache.epoch)
        for noise in ("everyone", "user:x", "key:not-a-uuid", f"key:{uuid.uuid4()}"):
            cache.receive(noise)
        assert cache.get(kept.key_id) == kept
        cache.receive(f"key:{dropped.key_id}")
        assert cache.get(dropped.key_id) is None
        assert cache.get(kept.key_id) == kept
        cache.resync()
        assert len(cache) == 0

    def test_the_secret_stays_out_of_repr(self) -> None:
        key = _key(secret="very-secret-value-000000000000000000000000000")
        assert "very-secret" not in repr(key)


async def _rotate(api: Api, terminal: Terminal) -> str:
    response = await api.client.post(
        f"/api/v1/devices/{terminal.id}/rotate-secret", headers=terminal.owner.headers
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


class TestOneProcess:
    async def test_a_poll_fills_the_cache_and_a_rotation_empties_it(
        self, desk: Desk, app: FastAPI
    ) -> None:
        cache: KeyCache = app.state.device_keys
        terminal = await desk.terminal()
        assert (await terminal.poll()).status_code == 200
        assert cache.get(uuid.UUID(terminal.id)) is not None
        old_secret = terminal.secret
        terminal.secret = await _rotate(desk.api, terminal)
        assert cache.get(uuid.UUID(terminal.id)) is None
        stale = await desk.api.signed(
            "GET", "/api/v1/exec/poll", key_id=terminal.id, secret=old_secret
        )
        assert_problem(stale, 401, "bad_signature")
        assert (await terminal.poll()).status_code == 200

    async def test_a_deleted_device_is_refused_at_once(self, desk: Desk) -> None:
        terminal = await desk.terminal()
        assert (await terminal.poll()).status_code == 200
        deleted = await desk.api.client.delete(
            f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
        )
        assert deleted.status_code == 204
        assert_problem(await terminal.poll(), 401, "key_inactive")
        assert_problem(await terminal.ack(str(uuid.uuid4())), 401, "key_inactive")

    async def test_a_device_deactivated_behind_the_caches_back_gets_nothing(
        self, desk: Desk, settings: Settings
    ) -> None:
        # As if another process deleted it and its invalidation was lost on the way:
        # the poll's own statement checks the device row.
        terminal = await desk.terminal()
        assert (await terminal.poll()).status_code == 200
        signal = await desk.publish()
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessionmaker() as session, session.begin():
                device = update(Device).where(Device.id == uuid.UUID(terminal.id))
                await session.execute(device.values(is_active=False))
            assert_problem(await terminal.poll(), 401, "key_inactive")
            async with db.sessionmaker() as session:
                given = await session.scalars(
                    select(Delivery).where(Delivery.signal_id == uuid.UUID(signal["id"]))
                )
                assert given.all() == []
        finally:
            await db.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = unique_prefix()
    yield prefix
    forget(prefix)


@needs_redis
class TestTwoProcesses:
    @pytest.fixture
    def settings_overrides(self, redis_prefix: str) -> dict[str, object]:
        return {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}

    @pytest.fixture
    async def other(self, app: FastAPI, settings: Settings) -> AsyncIterator[Api]:
        """A second server process on the same database and Redis."""
        second = create_app(settings)
        async with LifespanManager(second):
            await asyncio.wait_for(second.state.wakeups.relay.subscribed.wait(), 5)
            await asyncio.wait_for(app.state.wakeups.relay.subscribed.wait(), 5)
            transport = httpx.ASGITransport(app=second, client=("203.0.113.8", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield Api(http, settings)

    async def test_a_rotation_on_one_process_stops_the_old_secret_on_the_other(
        self, desk: Desk, other: Api, app: FastAPI
    ) -> None:
        terminal = await desk.terminal()
        assert (await terminal.poll()).status_code == 200
        assert app.state.device_keys.get(uuid.UUID(terminal.id)) is not None
        old_secret = terminal.secret
        await _rotate(other, terminal)
        deadline = time.monotonic() + 2
        while app.state.device_keys.get(uuid.UUID(terminal.id)) is not None:
            assert time.monotonic() < deadline, "the invalidation never arrived"
            await asyncio.sleep(0.01)
        stale = await desk.api.signed(
            "GET", "/api/v1/exec/poll", key_id=terminal.id, secret=old_secret
        )
        assert_problem(stale, 401, "bad_signature")
