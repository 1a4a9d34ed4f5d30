"""Invariants that concurrent requests could break together, tried with real concurrency.

Each test fires its requests at once (``asyncio.gather`` over HTTP against the
app; on PostgreSQL each request holds its own pooled connection, so the
transactions truly overlap) and then checks what a user would notice.

Races already covered next to their domain, not repeated here:

- duplicate reports: ``tests/executions/test_router.py`` (50 copies of one fill, 20 distinct fills)
- payout requests: ``tests/affiliates/test_payouts.py`` (20 over-half requests, 10 key retries)
- device registrations at the limit and one name: ``tests/devices/test_router.py``
- approvals of one signal by one user: ``tests/signals/test_router.py``
- idempotent publishes and cancels: ``tests/signals/test_router.py``
- refresh-token reuse: ``tests/users/test_auth.py``; one email: ``tests/users/test_auth.py``
- commissions of concurrent fills: ``tests/affiliates/test_commissions.py``
- reconciliation runs at once: ``tests/reconciliation/test_router.py``
"""

from __future__ import annotations

import asyncio

from tests.desk import Desk
from tests.helpers import assert_problem
from tradecast.kit import clock, signing


async def test_concurrent_polls_of_one_device_deliver_each_signal_once(desk: Desk) -> None:
    terminal = await desk.terminal()
    signals = [await desk.publish() for _ in range(3)]
    polls = await asyncio.gather(*(terminal.poll() for _ in range(20)))
    assert {p.status_code for p in polls} == {200}
    expected = [s["id"] for s in signals]
    # Every poll sees the whole pending set, oldest first: none is lost to a concurrent poll.
    for poll in polls:
        assert [s["id"] for s in poll.json()["signals"]] == expected
    admin = await desk.admin()
    for signal in signals:
        summary = await desk.api.client.get(
            f"/api/v1/exec/summary/{signal['id']}", headers=admin.headers
        )
        # One delivery row per (device, signal), however many polls raced to create it.
        assert summary.json()["delivered"] == 1, summary.json()


async def test_concurrent_polls_and_acks_never_redeliver_a_settled_signal(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    assert signal["id"] in await terminal.pending_ids()
    acked, *_ = await asyncio.gather(
        terminal.ack(signal["id"], report_id="settle"), *(terminal.poll() for _ in range(10))
    )
    assert acked.status_code == 201
    # Whatever the racing polls saw, once the ACK committed the signal is gone for good.
    assert await terminal.pending_ids() == []


async def test_one_nonce_sent_many_times_at_once_is_accepted_once(desk: Desk) -> None:
    terminal = await desk.terminal()
    nonce = signing.new_nonce()
    stamp = int(clock.utcnow().timestamp())
    responses = await asyncio.gather(
        *(
            desk.api.signed(
                "GET",
                "/api/v1/exec/poll",
                key_id=terminal.id,
                secret=terminal.secret,
                nonce=nonce,
                timestamp=stamp,
            )
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 9
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "nonce_reused")


async def test_concurrent_secret_rotations_leave_exactly_one_working_secret(desk: Desk) -> None:
    terminal = await desk.terminal()
    path = f"/api/v1/devices/{terminal.id}/rotate-secret"
    rotations = await asyncio.gather(
        *(desk.api.client.post(path, headers=terminal.owner.headers) for _ in range(6))
    )
    assert {r.status_code for r in rotations} == {200}
    secrets = [r.json()["secret"] for r in rotations] + [terminal.secret]
    working = []
    for secret in secrets:
        response = await desk.api.signed(
            "GET", "/api/v1/exec/poll", key_id=terminal.id, secret=secret
        )
        if response.status_code == 200:
            working.append(secret)
        else:
            assert_problem(response, 401, "bad_signature")
    assert len(working) == 1


async def test_many_users_approving_one_signal_at_once_each_get_their_decision(
    desk: Desk,
) -> None:
    users = [await desk.api.user() for _ in range(8)]
    signal = await desk.publish()
    responses = await asyncio.gather(
        *(desk.decide(user, signal["id"], "approve") for user in users)
    )
    # One decision per (signal, user): no false conflicts between different users.
    assert [r.status_code for r in responses] == [201] * 8
    again = await asyncio.gather(*(desk.decide(user, signal["id"], "reject") for user in users))
    for response in again:
        assert_problem(response, 409, "already_decided")


async def test_one_report_id_from_two_devices_at_once_is_recorded_for_each(desk: Desk) -> None:
    owner = await desk.api.user()
    first, second = await desk.terminal(owner, "A"), await desk.terminal(owner, "B")
    signal = await desk.publish()
    for terminal in (first, second):
        assert signal["id"] in await terminal.pending_ids()
    responses = await asyncio.gather(
        *(
            terminal.fill(signal["id"], "1.1", "0.1", report_id="shared")
            for terminal in (first, second, first, second)
        )
    )
    # report_id is each device's own idempotency key.
    assert sorted(r.status_code for r in responses) == [200, 200, 201, 201]
    trades = await desk.api.client.get("/api/v1/trades", headers=owner.headers)
    assert sorted(t["device_id"] for t in trades.json()["items"]) == sorted([first.id, second.id])
    assert {t["size"] for t in trades.json()["items"]} == {"0.1"}


async def test_concurrent_affiliate_registrations_make_one_account(desk: Desk) -> None:
    user = await desk.api.user()
    responses = await asyncio.gather(
        *(
            desk.api.client.post("/api/v1/affiliates/register", headers=user.headers)
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    link = await desk.api.client.get("/api/v1/affiliates/link", headers=user.headers)
    assert link.json()["referral_token"] == next(
        r.json()["referral_token"] for r in responses if r.status_code == 201
    )


async def test_concurrent_producers_with_one_name_make_one(desk: Desk) -> None:
    admin = await desk.admin()
    responses = await asyncio.gather(
        *(
            desk.api.client.post(
                "/api/v1/admin/producers", json={"name": "twin-strategy"}, headers=admin.headers
            )
            for _ in range(5)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409], [r.text for r in responses]
