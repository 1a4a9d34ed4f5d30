from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from tests.helpers import Api, LoggedIn, assert_problem, engine_statements
from tests.producers.conftest import ProducerKey, Producers
from tradecast.kit import clock

SIGNALS = "/api/v1/signals"
SIGNAL_FIELDS = {
    "id",
    "instrument",
    "side",
    "order_type",
    "entry_price",
    "stop_loss",
    "take_profit",
    "volume",
    "expires_at",
    "status",
    "external_id",
    "created_at",
}


def limit_buy(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instrument": "EURUSD",
        "side": "buy",
        "order_type": "limit",
        "entry_price": "1.10005",
        "stop_loss": "1.09500",
        "take_profit": "1.11000",
        "volume": "0.10",
    }
    body.update(overrides)
    return body


async def publish(producers: Producers, producer: ProducerKey, **overrides: Any) -> Any:
    response = await producers.send(producer, "POST", SIGNALS, json=limit_buy(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


# --- publishing ---------------------------------------------------------------------------


async def test_producer_publishes_a_signal(producers: Producers, producer: ProducerKey) -> None:
    response = await producers.send(producer, "POST", SIGNALS, json=limit_buy())
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == SIGNAL_FIELDS
    assert body["instrument"] == "EURUSD"
    assert body["side"] == "buy"
    assert body["order_type"] == "limit"
    # Decimals come back as strings, the same value, canonical text.
    assert body["entry_price"] == "1.10005"
    assert body["stop_loss"] == "1.095"
    assert body["take_profit"] == "1.11"
    assert body["volume"] == "0.1"
    assert body["status"] == "open"
    assert body["external_id"] is None


async def test_default_expiry_is_one_hour_after_creation(
    producers: Producers, producer: ProducerKey
) -> None:
    body = await publish(producers, producer)
    created = _parse(body["created_at"])
    assert _parse(body["expires_at"]) - created == timedelta(hours=1)


async def test_published_signal_reads_back_identically(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    published = await publish(producers, producer)
    user = await api.user()
    response = await api.client.get(f"{SIGNALS}/{published['id']}", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == published


async def test_admin_publishes_with_a_bearer_token(api: Api) -> None:
    admin = await api.admin()
    response = await api.client.post(SIGNALS, json=limit_buy(), headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["entry_price"] == "1.10005"


async def test_plain_user_may_not_publish(api: Api) -> None:
    user = await api.user()
    response = await api.client.post(SIGNALS, json=limit_buy(), headers=user.headers)
    assert_problem(response, 403, "admin_required")


async def test_anonymous_publish_is_unauthorized(api: Api) -> None:
    assert_problem(await api.client.post(SIGNALS, json=limit_buy()), 401, "unauthorized")


async def test_anonymous_publish_with_an_invalid_body_is_still_unauthorized(api: Api) -> None:
    # Authentication is checked before the body: strangers learn nothing about validation.
    response = await api.client.post(SIGNALS, json=limit_buy(side="sideways"))
    assert_problem(response, 401, "unauthorized")


async def test_publish_with_a_device_like_unknown_key_is_refused(api: Api) -> None:
    response = await api.signed(
        "POST", SIGNALS, key_id=str(uuid.uuid4()), secret="whatever", json=limit_buy()
    )
    assert_problem(response, 401, "unknown_key")


async def test_publish_is_audited_with_the_producer_as_actor(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    published = await publish(producers, producer, external_id="order-1")
    admin = await producers.admin()
    events = await api.client.get(
        "/api/v1/admin/audit",
        params={"action": "signal.created", "target_id": published["id"]},
        headers=admin.headers,
    )
    [event] = events.json()["items"]
    assert event["actor_type"] == "producer"
    assert event["actor_id"] == producer.id
    assert event["metadata"]["external_id"] == "order-1"


# --- idempotency --------------------------------------------------------------------------


async def test_same_external_id_returns_the_original_signal(
    producers: Producers, producer: ProducerKey
) -> None:
    first = await producers.send(producer, "POST", SIGNALS, json=limit_buy(external_id="x-1"))
    again = await producers.send(
        producer, "POST", SIGNALS, json=limit_buy(external_id="x-1", volume="0.5")
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()


async def test_external_ids_are_scoped_per_producer(
    producers: Producers, producer: ProducerKey
) -> None:
    other = await producers.create()
    mine = await publish(producers, producer, external_id="shared")
    theirs = await publish(producers, other, external_id="shared")
    assert mine["id"] != theirs["id"]


async def test_concurrent_identical_publishes_create_one_signal(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    body = limit_buy(external_id="race-1")
    responses = await asyncio.gather(
        *(producers.send(producer, "POST", SIGNALS, json=body) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    user = await api.user()
    listed = await api.client.get(SIGNALS, headers=user.headers)
    assert listed.json()["total"] == 1


async def test_admin_external_id_is_idempotent_per_admin(api: Api) -> None:
    admin, other_admin = await api.admin(), await api.admin()
    body = limit_buy(external_id="manual-1")
    first = await api.client.post(SIGNALS, json=body, headers=admin.headers)
    again = await api.client.post(SIGNALS, json=body, headers=admin.headers)
    other = await api.client.post(SIGNALS, json=body, headers=other_admin.headers)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["id"] != first.json()["id"]


async def test_only_a_publish_with_an_external_id_takes_a_savepoint(api: Api, app: FastAPI) -> None:
    # Without an external_id no other publish can race for the row: the publish goes
    # straight to its insert, two round trips fewer before the devices are woken.
    admin = await api.admin()
    with engine_statements(app) as sent:
        plain = await api.client.post(SIGNALS, json=limit_buy(), headers=admin.headers)
        plain_statements, sent[:] = list(sent), []
        keyed = await api.client.post(
            SIGNALS, json=limit_buy(external_id="keyed-1"), headers=admin.headers
        )
    assert (plain.status_code, keyed.status_code) == (201, 201)
    assert [s for s in plain_statements if "SAVEPOINT" in s] == []
    assert any(s.startswith("INSERT INTO signals") for s in plain_statements)
    assert any(s.startswith("SAVEPOINT") for s in sent)


async def test_concurrent_admin_publishes_of_one_external_id_create_one_signal(
    api: Api,
) -> None:
    admin = await api.admin()
    body = limit_buy(external_id="manual-race")
    responses = await asyncio.gather(
        *(api.client.post(SIGNALS, json=body, headers=admin.headers) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200] * 4 + [201]
    assert len({r.json()["id"] for r in responses}) == 1


# --- listing and reading ------------------------------------------------------------------


async def test_list_is_newest_first_and_paginated(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    ids = []
    for _ in range(5):
        ids.append((await publish(producers, producer))["id"])
        clock.advance(timedelta(seconds=1))
    user = await api.user()
    first = await api.client.get(SIGNALS, params={"limit": 2}, headers=user.headers)
    second = await api.client.get(SIGNALS, params={"limit": 2, "offset": 2}, headers=user.headers)
    assert first.status_code == 200
    assert {k: v for k, v in first.json().items() if k != "items"} == {
        "total": 5,
        "limit": 2,
        "offset": 0,
    }
    newest_first = list(reversed(ids))
    assert [s["id"] for s in first.json()["items"]] == newest_first[:2]
    assert [s["id"] for s in second.json()["items"]] == newest_first[2:4]


async def test_list_filters_by_status(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    kept = await publish(producers, producer)
    cancelled = await publish(producers, producer)
    await producers.send(producer, "POST", f"{SIGNALS}/{cancelled['id']}/cancel")
    user = await api.user()

    async def ids(status: str) -> list[str]:
        response = await api.client.get(SIGNALS, params={"status": status}, headers=user.headers)
        assert response.status_code == 200
        return [s["id"] for s in response.json()["items"]]

    assert await ids("open") == [kept["id"]]
    assert await ids("cancelled") == [cancelled["id"]]
    assert await ids("expired") == []


async def test_list_rejects_unknown_status_and_bad_paging(api: Api) -> None:
    user = await api.user()
    for params in ({"status": "pending"}, {"limit": 0}, {"limit": 201}, {"offset": -1}):
        response = await api.client.get(SIGNALS, params=params, headers=user.headers)
        assert_problem(response, 422, "validation_error")


async def test_reading_signals_needs_a_login(api: Api) -> None:
    assert_problem(await api.client.get(SIGNALS), 401)
    assert_problem(await api.client.get(f"{SIGNALS}/{uuid.uuid4()}"), 401)


async def test_unknown_signal_is_not_found(api: Api) -> None:
    user = await api.user()
    response = await api.client.get(f"{SIGNALS}/{uuid.uuid4()}", headers=user.headers)
    assert_problem(response, 404, "signal_not_found")


async def test_signal_past_its_expiry_reads_as_expired(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    clock.advance(timedelta(hours=1, seconds=1))
    user = await api.user()  # after the jump: access tokens live 15 minutes

    one = await api.client.get(f"{SIGNALS}/{signal['id']}", headers=user.headers)
    assert one.json()["status"] == "expired"
    expired = await api.client.get(SIGNALS, params={"status": "expired"}, headers=user.headers)
    assert [s["id"] for s in expired.json()["items"]] == [signal["id"]]
    still_open = await api.client.get(SIGNALS, params={"status": "open"}, headers=user.headers)
    assert still_open.json()["total"] == 0


async def test_signal_is_open_until_its_expiry(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    clock.advance(timedelta(minutes=59))
    user = await api.user()
    one = await api.client.get(f"{SIGNALS}/{signal['id']}", headers=user.headers)
    assert one.json()["status"] == "open"


# --- cancelling ---------------------------------------------------------------------------


async def test_producer_cancels_its_own_signal(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    response = await producers.send(producer, "POST", f"{SIGNALS}/{signal['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json() == {**signal, "status": "cancelled"}
    admin = await producers.admin()
    events = await api.client.get(
        "/api/v1/admin/audit",
        params={"action": "signal.cancelled", "target_id": signal["id"]},
        headers=admin.headers,
    )
    assert [e["actor_id"] for e in events.json()["items"]] == [producer.id]


async def test_cancelling_twice_is_a_conflict(producers: Producers, producer: ProducerKey) -> None:
    signal = await publish(producers, producer)
    path = f"{SIGNALS}/{signal['id']}/cancel"
    assert (await producers.send(producer, "POST", path)).status_code == 200
    assert_problem(await producers.send(producer, "POST", path), 409, "signal_not_open")


async def test_an_expired_signal_cannot_be_cancelled(
    producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    clock.advance(timedelta(hours=2))
    response = await producers.send(producer, "POST", f"{SIGNALS}/{signal['id']}/cancel")
    problem = assert_problem(response, 409, "signal_not_open")
    assert "expired" in problem["detail"]


async def test_another_producers_signal_is_not_found(
    producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    other = await producers.create()
    response = await producers.send(other, "POST", f"{SIGNALS}/{signal['id']}/cancel")
    assert_problem(response, 404, "signal_not_found")


async def test_admin_cancels_any_signal(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    admin = await api.admin()
    response = await api.client.post(f"{SIGNALS}/{signal['id']}/cancel", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


async def test_producer_cannot_cancel_an_admin_signal(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    admin = await api.admin()
    created = await api.client.post(SIGNALS, json=limit_buy(), headers=admin.headers)
    path = f"{SIGNALS}/{created.json()['id']}/cancel"
    assert_problem(await producers.send(producer, "POST", path), 404, "signal_not_found")


async def test_plain_user_cannot_cancel(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    response = await api.client.post(f"{SIGNALS}/{signal['id']}/cancel", headers=user.headers)
    assert_problem(response, 403, "admin_required")


async def test_deactivated_producer_can_no_longer_cancel(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    admin = await producers.admin()
    deactivated = await api.client.post(
        f"/api/v1/admin/producers/{producer.id}/deactivate", headers=admin.headers
    )
    assert deactivated.status_code == 200
    response = await producers.send(producer, "POST", f"{SIGNALS}/{signal['id']}/cancel")
    assert_problem(response, 401, "key_inactive")


async def test_cancelling_an_unknown_signal_is_not_found(
    producers: Producers, producer: ProducerKey
) -> None:
    response = await producers.send(producer, "POST", f"{SIGNALS}/{uuid.uuid4()}/cancel")
    assert_problem(response, 404, "signal_not_found")


async def test_concurrent_cancels_succeed_once(producers: Producers, producer: ProducerKey) -> None:
    signal = await publish(producers, producer)
    path = f"{SIGNALS}/{signal['id']}/cancel"
    responses = await asyncio.gather(*(producers.send(producer, "POST", path) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]


# --- approvals ----------------------------------------------------------------------------


async def test_user_approves_a_signal(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    response = await api.client.post(f"{SIGNALS}/{signal['id']}/approve", headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"signal_id", "decision", "decided_at"}
    assert body["signal_id"] == signal["id"]
    assert body["decision"] == "approved"


async def test_user_rejects_a_signal(api: Api, producers: Producers, producer: ProducerKey) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    response = await api.client.post(f"{SIGNALS}/{signal['id']}/reject", headers=user.headers)
    assert response.status_code == 201
    assert response.json()["decision"] == "rejected"


async def test_second_decision_of_either_kind_is_a_conflict(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    base = f"{SIGNALS}/{signal['id']}"
    assert (await api.client.post(f"{base}/approve", headers=user.headers)).status_code == 201
    for action in ("approve", "reject"):
        response = await api.client.post(f"{base}/{action}", headers=user.headers)
        assert_problem(response, 409, "already_decided")


async def test_each_user_decides_for_themselves(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    alice, bob = await api.user(), await api.user()
    base = f"{SIGNALS}/{signal['id']}"
    assert (await api.client.post(f"{base}/approve", headers=alice.headers)).status_code == 201
    assert (await api.client.post(f"{base}/reject", headers=bob.headers)).status_code == 201


async def test_concurrent_decisions_yield_exactly_one(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    base = f"{SIGNALS}/{signal['id']}"
    responses = await asyncio.gather(
        *(
            api.client.post(f"{base}/{action}", headers=user.headers)
            for action in ("approve", "reject") * 4
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "already_decided")


async def test_decision_on_unknown_signal_is_not_found(api: Api) -> None:
    user = await api.user()
    response = await api.client.post(f"{SIGNALS}/{uuid.uuid4()}/approve", headers=user.headers)
    assert_problem(response, 404, "signal_not_found")


async def test_decision_on_a_cancelled_or_expired_signal_is_a_conflict(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    cancelled = await publish(producers, producer)
    await producers.send(producer, "POST", f"{SIGNALS}/{cancelled['id']}/cancel")
    expiring = await publish(producers, producer, expires_at=_in(minutes=5))
    user = await api.user()
    clock.advance(timedelta(minutes=6))
    for signal in (cancelled, expiring):
        response = await api.client.post(f"{SIGNALS}/{signal['id']}/approve", headers=user.headers)
        assert_problem(response, 409, "signal_not_open")


async def test_decisions_need_a_login(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer)
    assert_problem(await api.client.post(f"{SIGNALS}/{signal['id']}/approve"), 401)


async def test_decisions_are_audited(api: Api, producers: Producers, producer: ProducerKey) -> None:
    signal = await publish(producers, producer)
    user = await api.user()
    await api.client.post(f"{SIGNALS}/{signal['id']}/reject", headers=user.headers)
    admin = await producers.admin()
    events = await api.client.get(
        "/api/v1/admin/audit",
        params={"action": "signal.rejected", "target_id": signal["id"]},
        headers=admin.headers,
    )
    [event] = events.json()["items"]
    assert (event["actor_type"], event["actor_id"]) == ("user", user.id)


# --- waking long polls --------------------------------------------------------------------


async def long_poll(api: Api, user: LoggedIn) -> asyncio.Task[httpx.Response]:
    """A device of ``user`` waiting up to 10 s in the poll, started and given time to wait."""
    created = await api.client.post(
        "/api/v1/devices", json={"device_name": "MT5"}, headers=user.headers
    )
    device = created.json()
    task = asyncio.create_task(
        api.signed(
            "GET",
            "/api/v1/exec/poll",
            key_id=device["id"],
            secret=device["secret"],
            params={"limit": "50", "wait": "10"},
        )
    )
    await asyncio.sleep(0.3)
    assert not task.done()
    return task


async def test_a_new_signal_wakes_a_waiting_device(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    poll = await long_poll(api, await api.user())
    signal = await publish(producers, producer)
    response = await asyncio.wait_for(poll, timeout=5)
    assert [s["id"] for s in response.json()["signals"]] == [signal["id"]]


async def test_an_approval_wakes_the_approvers_waiting_device(
    api: Api, producers: Producers, producer: ProducerKey
) -> None:
    user = await api.user()
    mode = await api.client.patch(
        "/api/v1/me", json={"delivery_mode": "approval"}, headers=user.headers
    )
    assert mode.status_code == 200
    signal = await publish(producers, producer)
    poll = await long_poll(api, user)
    approved = await api.client.post(f"{SIGNALS}/{signal['id']}/approve", headers=user.headers)
    assert approved.status_code == 201
    response = await asyncio.wait_for(poll, timeout=5)
    assert [s["id"] for s in response.json()["signals"]] == [signal["id"]]


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _in(**delta: float) -> str:
    return (clock.utcnow() + timedelta(**delta)).isoformat()
