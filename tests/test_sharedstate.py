"""One process with ``REDIS_URL``: nonces and rate limits in Redis; Redis down."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI

from tests.desk import Desk, Terminal
from tests.helpers import Api, assert_problem
from tests.redis_support import REDIS_URL, forget, needs_redis, unique_prefix
from tradecast.delivery.fanout import RedisRelay
from tradecast.delivery.wakeups import WakeupHub
from tradecast.kit import clock
from tradecast.signed.errors import NonceReused
from tradecast.signed.gate import PIPELINE_MAX, RedisGate


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = unique_prefix()
    yield prefix
    forget(prefix)


class TestWithRedis:
    @pytest.fixture
    def settings_overrides(self, redis_prefix: str) -> dict[str, object]:
        return {"redis_url": REDIS_URL, "redis_prefix": redis_prefix, "rate_limits_enabled": True}

    @needs_redis
    async def test_a_nonce_is_claimed_in_redis_once(self, desk: Desk, redis_prefix: str) -> None:
        terminal = await desk.terminal()
        nonce = "redis-nonce-0000000001"
        first = await desk.api.signed(
            "GET", "/api/v1/exec/whoami", key_id=terminal.id, secret=terminal.secret, nonce=nonce
        )
        assert first.status_code == 200
        again = await desk.api.signed(
            "GET", "/api/v1/exec/whoami", key_id=terminal.id, secret=terminal.secret, nonce=nonce
        )
        assert_problem(again, 401, "nonce_reused")
        client = redis.Redis.from_url(REDIS_URL)
        try:
            ttl = client.ttl(f"{redis_prefix}:nonce:{terminal.id}:{nonce}")
        finally:
            client.close()
        assert 590 <= ttl <= 600

    @needs_redis
    async def test_signed_requests_are_counted_once_per_fresh_nonce(
        self, desk: Desk, redis_prefix: str
    ) -> None:
        terminal = await desk.terminal()

        async def whoami(nonce: str | None = None) -> int:
            return (await terminal.whoami(nonce)).status_code

        replayed = "redis-replay-000000001"
        # From the first counted request: all 21 must fall within the 1 s window.
        started = time.monotonic()
        assert await whoami(replayed) == 200
        # Replays of a captured request are refused and use up none of the budget.
        assert {await whoami(replayed) for _ in range(25)} == {401}
        statuses = [await whoami() for _ in range(19)]
        refused = await terminal.whoami()
        if time.monotonic() - started < 0.8:  # all 21 counted within one second
            assert statuses == [200] * 19
            assert_problem(refused, 429, "rate_limited")
            assert refused.headers["retry-after"] == "1"
        client = redis.Redis.from_url(REDIS_URL)
        try:
            window = client.lrange(f"{redis_prefix}:signed:{terminal.id}", 0, -1)
            window_ttl = client.ttl(f"{redis_prefix}:signed:{terminal.id}")
        finally:
            client.close()
        assert len(window) == 20
        assert 0 < window_ttl <= 1
        # Another device has its own budget.
        other = await desk.terminal()
        assert (await other.whoami()).status_code == 200

    @needs_redis
    async def test_concurrent_admissions_keep_their_own_outcomes(self, desk: Desk) -> None:
        terminals = [await desk.terminal() for _ in range(3)]

        async def whoami(terminal: Terminal, nonce: str | None = None) -> int:
            return (await terminal.whoami(nonce)).status_code

        # One nonce sent ten times at once, among fresh requests of other devices.
        copies = [whoami(terminals[0], "concurrent-nonce-0001") for _ in range(10)]
        others = [whoami(t) for t in terminals[1:] for _ in range(5)]
        statuses = await asyncio.gather(*copies, *others)
        assert sorted(statuses[:10]) == [200] + [401] * 9
        assert statuses[10:] == [200] * 10
        # Redis forgets its scripts (a restart, SCRIPT FLUSH): they are loaded again.
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.script_flush()
        finally:
            client.close()
        statuses = await asyncio.gather(*(whoami(t) for t in terminals for _ in range(3)))
        assert statuses == [200] * 9

    @needs_redis
    async def test_one_turn_of_admissions_keeps_each_its_own_outcome(self, app: FastAPI) -> None:
        gate = app.state.signed_gate
        assert isinstance(gate, RedisGate)
        now = clock.utcnow()
        keys = [uuid.uuid4() for _ in range(PIPELINE_MAX + 44)]
        # More calls than one pipeline takes, with five copies of one nonce among them.
        copies = [gate.admit(keys[0], "pipeline-copy-00000001", now) for _ in range(5)]
        fresh = [gate.admit(key, f"pipeline-fresh-{i:08d}", now) for i, key in enumerate(keys)]
        outcomes = await asyncio.gather(*copies, *fresh, return_exceptions=True)
        assert sum(outcome is None for outcome in outcomes[:5]) == 1
        assert [type(o) for o in outcomes[:5] if o is not None] == [NonceReused] * 4
        assert outcomes[5:] == [None] * len(keys)

    @needs_redis
    async def test_a_cancelled_admission_leaves_the_others_theirs(self, app: FastAPI) -> None:
        gate = app.state.signed_gate
        assert isinstance(gate, RedisGate)
        now = clock.utcnow()
        admissions = [
            asyncio.create_task(gate.admit(uuid.uuid4(), f"cancelled-turn-{i:08d}", now))
            for i in range(10)
        ]
        await asyncio.sleep(0)  # all ten wait on the same pipeline
        admissions[0].cancel()  # the one whose call started it
        outcomes = await asyncio.wait_for(asyncio.gather(*admissions, return_exceptions=True), 5)
        assert isinstance(outcomes[0], asyncio.CancelledError)
        assert outcomes[1:] == [None] * 9

    @needs_redis
    async def test_rate_limits_count_in_redis(self, api: Api, redis_prefix: str) -> None:
        user = await api.user()
        for _ in range(9):
            assert (await api.login(user.email, "wrong password!")).status_code == 401
        assert_problem(await api.login(user.email, "wrong password!"), 429, "rate_limited")
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{redis_prefix}:limits*"))
        finally:
            client.close()
        assert keys
        assert not any(user.email.encode() in key for key in keys)  # emails are hashed

    @needs_redis
    async def test_the_wakeup_relay_reconnects_and_wakes_its_waiters(
        self, app: FastAPI, redis_prefix: str
    ) -> None:
        hub: WakeupHub = app.state.wakeups
        relay = hub.relay
        assert isinstance(relay, RedisRelay)
        await asyncio.wait_for(relay.subscribed.wait(), 5)
        admin = redis.Redis.from_url(REDIS_URL)
        try:
            ours = [
                c["id"]
                for c in admin.client_list()
                if c.get("name") == f"{redis_prefix}-server" and int(c["sub"]) > 0
            ]
            assert len(ours) == 1
            with hub.subscribe(uuid.uuid4()) as subscription:
                waiting = asyncio.create_task(hub.wait(subscription, 10))
                await asyncio.sleep(0.1)
                admin.client_kill_filter(_id=ours[0])
                # Whatever was published while it was away is lost: everyone looks again.
                assert await asyncio.wait_for(waiting, 8) is True
            await asyncio.wait_for(relay.subscribed.wait(), 8)
            user_id = uuid.uuid4()
            with hub.subscribe(user_id) as subscription:
                waiting = asyncio.create_task(hub.wait(subscription, 5))
                await asyncio.sleep(0.1)
                admin.publish(f"{redis_prefix}:notifications", f"another-process user:{user_id}")
                assert await asyncio.wait_for(waiting, 5) is True
        finally:
            admin.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TestRedisDown:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {
            "redis_url": f"redis://127.0.0.1:{_closed_port()}/0",
            "redis_timeout_s": 0.2,
            "rate_limits_enabled": True,
        }

    async def test_signed_requests_fail_closed_with_503(self, desk: Desk) -> None:
        terminal = await desk.terminal()
        response = await terminal.poll()
        assert_problem(response, 503, "redis_unavailable")
        assert int(response.headers["retry-after"]) >= 1

    async def test_logins_fail_open(self, api: Api) -> None:
        user = await api.user()
        for _ in range(11):
            assert (await api.login(user.email, user.password)).status_code == 200

    async def test_the_publishing_process_still_wakes_its_own_long_polls(
        self, app: FastAPI, desk: Desk
    ) -> None:
        # A poll cannot pass verification without Redis, so this waits on the process's
        # hub the way a held poll does, and the signal is published through the API.
        hub: WakeupHub = app.state.wakeups
        user = await desk.api.user()
        await desk.admin()  # signed in before the clock starts
        with hub.subscribe(uuid.UUID(user.id)) as subscription:
            waiting = asyncio.create_task(hub.wait(subscription, 5))
            started = time.monotonic()
            await desk.publish()
            assert await asyncio.wait_for(waiting, 5) is True
        assert time.monotonic() - started < 1.0
