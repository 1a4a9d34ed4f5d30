from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from tests.desk import Desk
from tests.helpers import assert_problem
from tradecast.db import Database
from tradecast.delivery.models import Delivery
from tradecast.kit import clock


async def test_poll_returns_pending_signals_oldest_first(desk: Desk) -> None:
    terminal = await desk.terminal()
    first = await desk.publish(instrument="EURUSD", entry_price="1.10005", order_type="limit")
    clock.advance(timedelta(seconds=1))
    second = await desk.publish(instrument="XAUUSD", side="sell")

    response = await terminal.poll()
    assert response.status_code == 200
    body = response.json()
    assert [s["id"] for s in body["signals"]] == [first["id"], second["id"]]
    assert body["signals"][0]["entry_price"] == "1.10005"
    assert body["signals"][0]["status"] == "open"
    assert body["poll_interval_s"] == 5
    assert body["server_time"]


async def test_delivery_is_at_least_once_until_settled(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    assert await terminal.pending_ids() == [signal["id"]]
    assert await terminal.pending_ids() == [signal["id"]]


async def test_limit_bounds_the_answer_and_is_validated(desk: Desk) -> None:
    terminal = await desk.terminal()
    published = []
    for _ in range(3):
        published.append((await desk.publish())["id"])
        clock.advance(timedelta(milliseconds=10))
    assert await terminal.pending_ids(limit=2) == published[:2]
    for bad in ({"limit": 0}, {"limit": 201}, {"wait": 31}, {"wait": -1}, {"limit": "x"}):
        assert_problem(await terminal.poll(**bad), 422)


async def test_first_delivery_time_is_kept_and_last_poll_recorded(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    first_poll = clock.utcnow()
    clock.advance(timedelta(seconds=30))
    await terminal.poll()

    db = Database(desk.api.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            delivery = await session.scalar(
                select(Delivery).where(Delivery.signal_id == uuid.UUID(signal["id"]))
            )
    finally:
        await db.dispose()
    assert delivery is not None
    assert abs((delivery.first_delivered_at - first_poll).total_seconds()) < 5

    device = await desk.api.client.get(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert device.json()["is_online"] is True
    last_poll = datetime.fromisoformat(device.json()["last_poll"])
    assert abs((last_poll - clock.utcnow()).total_seconds()) < 5


async def test_last_poll_is_kept_to_within_ten_seconds(desk: Desk) -> None:
    terminal = await desk.terminal()

    async def last_poll() -> datetime:
        device = await desk.api.client.get(
            f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
        )
        return datetime.fromisoformat(device.json()["last_poll"])

    await terminal.poll()
    first = await last_poll()
    clock.advance(timedelta(seconds=9))
    await terminal.poll()
    assert await last_poll() == first  # a poll this soon after writes nothing
    clock.advance(timedelta(seconds=2))
    await terminal.poll()
    assert (await last_poll() - first).total_seconds() >= 11


async def test_expired_and_cancelled_signals_are_not_delivered(desk: Desk) -> None:
    terminal = await desk.terminal()
    short = await desk.publish(expires_at=(clock.utcnow() + timedelta(seconds=60)).isoformat())
    cancelled = await desk.publish()
    kept = await desk.publish()
    admin = await desk.admin()
    response = await desk.api.client.post(
        f"/api/v1/signals/{cancelled['id']}/cancel", headers=admin.headers
    )
    assert response.status_code == 200
    assert set(await terminal.pending_ids()) == {short["id"], kept["id"]}
    clock.advance(timedelta(seconds=61))
    assert await terminal.pending_ids() == [kept["id"]]


async def test_approval_mode_delivers_only_approved_signals(desk: Desk) -> None:
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    terminal = await desk.terminal(careful)
    relaxed_terminal = await desk.terminal()

    approved = await desk.publish()
    rejected = await desk.publish()
    undecided = await desk.publish()
    assert await terminal.pending_ids() == []

    assert (await desk.decide(careful, approved["id"], "approve")).status_code == 201
    assert (await desk.decide(careful, rejected["id"], "reject")).status_code == 201
    assert await terminal.pending_ids() == [approved["id"]]
    assert_problem(await desk.decide(careful, approved["id"], "reject"), 409)

    # Another user's decisions change nothing for them.
    assert set(await relaxed_terminal.pending_ids()) == {
        approved["id"],
        rejected["id"],
        undecided["id"],
    }
    # Switching back to auto delivers everything open, except nothing was settled yet.
    await desk.set_mode(careful, "auto")
    assert len(await terminal.pending_ids()) == 3


async def test_long_poll_receives_a_new_signal_within_a_second(desk: Desk) -> None:
    terminal = await desk.terminal()
    await desk.admin()  # signed in before the clock starts
    waiting = asyncio.create_task(terminal.poll(wait=10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    published_at = time.monotonic()
    signal = await desk.publish()
    response = await asyncio.wait_for(waiting, timeout=5)
    received_after = time.monotonic() - published_at
    assert [s["id"] for s in response.json()["signals"]] == [signal["id"]]
    assert received_after < 1.0


async def test_long_poll_wakes_on_the_owners_approval(desk: Desk) -> None:
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    terminal = await desk.terminal(careful)
    signal = await desk.publish()
    waiting = asyncio.create_task(terminal.poll(wait=10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    assert (await desk.decide(careful, signal["id"], "approve")).status_code == 201
    response = await asyncio.wait_for(waiting, timeout=5)
    assert time.monotonic() - started < 1.0
    assert [s["id"] for s in response.json()["signals"]] == [signal["id"]]


async def test_long_poll_times_out_empty(desk: Desk) -> None:
    terminal = await desk.terminal()
    started = time.monotonic()
    response = await terminal.poll(wait=1)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["signals"] == []
    assert 0.9 <= elapsed < 3


async def test_a_held_long_poll_does_not_block_other_requests(desk: Desk) -> None:
    terminal = await desk.terminal()
    waiting = asyncio.create_task(terminal.poll(wait=3))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    other = await desk.api.user()
    await desk.terminal(other)
    assert time.monotonic() - started < 1.5
    assert not waiting.done()
    await waiting


async def test_rejected_signal_does_not_wake_or_reach_the_device(desk: Desk) -> None:
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    terminal = await desk.terminal(careful)
    signal = await desk.publish()
    assert (await desk.decide(careful, signal["id"], "reject")).status_code == 201
    response = await terminal.poll(wait=1)
    assert response.json()["signals"] == []


async def test_poll_requires_a_valid_device_signature(desk: Desk) -> None:
    terminal = await desk.terminal()
    assert_problem(await desk.api.client.get("/api/v1/exec/poll"), 401, "missing_auth_header")
    forged = await desk.api.signed(
        "GET", "/api/v1/exec/poll", key_id=terminal.id, secret="not-the-secret"
    )
    assert_problem(forged, 401, "bad_signature")
    deleted = await desk.api.client.delete(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert deleted.status_code == 204
    assert_problem(await terminal.poll(), 401, "key_inactive")
