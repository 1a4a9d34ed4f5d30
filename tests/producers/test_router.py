from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.helpers import Api, LoggedIn, assert_problem
from tests.producers.conftest import ProducerKey, Producers

PRODUCERS = "/api/v1/admin/producers"
SIGNAL = {"instrument": "EURUSD", "side": "buy", "order_type": "market"}


@pytest.fixture
async def admin(producers: Producers) -> LoggedIn:
    return await producers.admin()


async def publishes(producers: Producers, producer: ProducerKey) -> int:
    response = await producers.send(producer, "POST", "/api/v1/signals", json=SIGNAL)
    return response.status_code


async def audit_actions(api: Api, admin: LoggedIn, target_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        "/api/v1/admin/audit", params={"target_id": target_id}, headers=admin.headers
    )
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_admin_creates_a_producer_and_sees_its_secret_once(api: Api, admin: LoggedIn) -> None:
    response = await api.client.post(
        PRODUCERS, json={"name": "eurusd-momentum"}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "is_active", "created_at", "deactivated_at", "secret"}
    assert created["name"] == "eurusd-momentum"
    assert created["is_active"] is True
    assert created["deactivated_at"] is None
    assert len(created["secret"]) >= 43  # 256 bits, URL-safe base64
    assert response.headers["cache-control"] == "no-store"

    listed = await api.client.get(PRODUCERS, headers=admin.headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert "secret" not in item
    assert item == {k: v for k, v in created.items() if k != "secret"}


async def test_created_producer_can_sign_at_once(producers: Producers) -> None:
    producer = await producers.create()
    assert await publishes(producers, producer) == 201


async def test_producer_names_are_unique(api: Api, admin: LoggedIn) -> None:
    first = await api.client.post(PRODUCERS, json={"name": "alpha"}, headers=admin.headers)
    again = await api.client.post(PRODUCERS, json={"name": "alpha"}, headers=admin.headers)
    assert first.status_code == 201
    assert_problem(again, 409, "producer_name_taken")


async def test_concurrent_creations_of_one_name_make_one_producer(
    api: Api, admin: LoggedIn
) -> None:
    responses = await asyncio.gather(
        *(
            api.client.post(PRODUCERS, json={"name": "racer"}, headers=admin.headers)
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]


@pytest.mark.parametrize("name", ["", " leading-space", "x" * 65, "semi;colon", "tab\tname"])
async def test_bad_producer_names_are_rejected(api: Api, admin: LoggedIn, name: str) -> None:
    response = await api.client.post(PRODUCERS, json={"name": name}, headers=admin.headers)
    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["name"]


async def test_producer_admin_api_is_for_admins_only(api: Api) -> None:
    user = await api.user()
    some_id = uuid.uuid4()
    calls = [
        ("GET", PRODUCERS, None),
        ("POST", PRODUCERS, {"name": "sneaky"}),
        ("POST", f"{PRODUCERS}/{some_id}/deactivate", None),
        ("POST", f"{PRODUCERS}/{some_id}/rotate-secret", None),
    ]
    for method, path, body in calls:
        response = await api.client.request(method, path, json=body, headers=user.headers)
        assert_problem(response, 403, "admin_required")
        assert_problem(await api.client.request(method, path, json=body), 401)


async def test_list_is_paginated_newest_first(
    api: Api, admin: LoggedIn, producers: Producers
) -> None:
    names = [(await producers.create(f"p{i}")).name for i in range(3)]
    page = await api.client.get(PRODUCERS, params={"limit": 2, "offset": 1}, headers=admin.headers)
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)
    assert [p["name"] for p in body["items"]] == [names[1], names[0]]


async def test_deactivated_producer_is_refused_as_key_inactive(
    api: Api, admin: LoggedIn, producers: Producers, producer: ProducerKey
) -> None:
    response = await api.client.post(f"{PRODUCERS}/{producer.id}/deactivate", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["is_active"] is False
    assert body["deactivated_at"] is not None
    refused = await producers.send(producer, "POST", "/api/v1/signals", json=SIGNAL)
    assert_problem(refused, 401, "key_inactive")


async def test_deactivating_twice_changes_nothing(
    api: Api, admin: LoggedIn, producer: ProducerKey
) -> None:
    path = f"{PRODUCERS}/{producer.id}/deactivate"
    first = await api.client.post(path, headers=admin.headers)
    again = await api.client.post(path, headers=admin.headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    actions = [e["action"] for e in await audit_actions(api, admin, producer.id)]
    assert actions.count("producer.deactivated") == 1


async def test_rotation_replaces_the_secret_at_once(
    api: Api, admin: LoggedIn, producers: Producers, producer: ProducerKey
) -> None:
    response = await api.client.post(
        f"{PRODUCERS}/{producer.id}/rotate-secret", headers=admin.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "secret"}
    assert response.headers["cache-control"] == "no-store"
    assert body["id"] == producer.id
    assert body["secret"] != producer.secret

    old = await producers.send(producer, "POST", "/api/v1/signals", json=SIGNAL)
    assert_problem(old, 401, "bad_signature")
    rotated = ProducerKey(id=producer.id, name=producer.name, secret=body["secret"])
    assert await publishes(producers, rotated) == 201


async def test_a_deactivated_producer_cannot_be_rotated(
    api: Api, admin: LoggedIn, producer: ProducerKey
) -> None:
    await api.client.post(f"{PRODUCERS}/{producer.id}/deactivate", headers=admin.headers)
    response = await api.client.post(
        f"{PRODUCERS}/{producer.id}/rotate-secret", headers=admin.headers
    )
    assert_problem(response, 409, "producer_inactive")


@pytest.mark.parametrize("action", ["deactivate", "rotate-secret"])
async def test_unknown_producer_is_not_found(api: Api, admin: LoggedIn, action: str) -> None:
    response = await api.client.post(f"{PRODUCERS}/{uuid.uuid4()}/{action}", headers=admin.headers)
    assert_problem(response, 404, "producer_not_found")


async def test_every_producer_change_is_audited_without_secrets(
    api: Api, admin: LoggedIn, producer: ProducerKey
) -> None:
    rotated = await api.client.post(
        f"{PRODUCERS}/{producer.id}/rotate-secret", headers=admin.headers
    )
    await api.client.post(f"{PRODUCERS}/{producer.id}/deactivate", headers=admin.headers)
    events = await audit_actions(api, admin, producer.id)
    assert sorted(e["action"] for e in events) == [
        "producer.created",
        "producer.deactivated",
        "producer.secret_rotated",
    ]
    assert {(e["actor_type"], e["actor_id"]) for e in events} == {("user", admin.id)}
    text = str(events)
    assert producer.secret not in text
    assert rotated.json()["secret"] not in text
