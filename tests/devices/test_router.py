from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import Api, LoggedIn, assert_problem
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.kit.jsonlog import JsonFormatter

DEVICES = "/api/v1/devices"
WHOAMI = "/api/v1/exec/whoami"
UNKNOWN_ID = "3f1f5b2e-8c44-4d0e-9a57-0c2b8e1d6a90"


async def create_device(api: Api, user: LoggedIn, name: str = "MT5 main") -> dict[str, Any]:
    response = await api.client.post(DEVICES, json={"device_name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def whoami(api: Api, device: dict[str, Any], secret: str | None = None) -> httpx.Response:
    return await api.signed("GET", WHOAMI, key_id=device["id"], secret=secret or device["secret"])


async def poll(api: Api, device: dict[str, Any]) -> None:
    response = await api.signed(
        "GET",
        "/api/v1/exec/poll",
        key_id=device["id"],
        secret=device["secret"],
        params={"limit": "50", "wait": "0"},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line the app writes during the test, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_registering_returns_the_secret_once(api: Api) -> None:
    user = await api.user()
    response = await api.client.post(
        DEVICES, json={"device_name": "  MT5 London  "}, headers=user.headers
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    device = response.json()
    assert set(device) == {"id", "device_name", "secret", "is_active", "created_at"}
    assert device["device_name"] == "MT5 London"
    assert device["is_active"] is True
    assert len(device["secret"]) >= 43  # 256 bits, URL-safe base64

    listed = await api.client.get(DEVICES, headers=user.headers)
    one = await api.client.get(f"{DEVICES}/{device['id']}", headers=user.headers)
    assert listed.json() == [one.json()]
    assert one.json() == {
        "id": device["id"],
        "device_name": "MT5 London",
        "is_active": True,
        "is_online": False,
        "last_poll": None,
        "last_ack": None,
        "created_at": device["created_at"],
    }
    for response in (listed, one):
        assert device["secret"] not in response.text
        assert "secret" not in response.text


async def test_the_secret_signs_requests_as_that_device(api: Api) -> None:
    user = await api.user()
    device = await create_device(api, user, "cTrader bot")
    response = await whoami(api, device)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["device_id"] == device["id"]
    assert body["device_name"] == "cTrader bot"
    server_time = datetime.fromisoformat(body["server_time"])
    assert server_time.utcoffset() == timedelta(0)
    assert abs(server_time - clock.utcnow()) < timedelta(seconds=5)


async def test_secret_never_reaches_the_logs(api: Api, captured_logs: io.StringIO) -> None:
    user = await api.user()
    device = await create_device(api, user)
    rotated = await api.client.post(f"{DEVICES}/{device['id']}/rotate-secret", headers=user.headers)
    new_secret = rotated.json()["secret"]
    signed = await whoami(api, device, new_secret)
    assert signed.status_code == 200
    rejected = await whoami(api, device, device["secret"])
    assert_problem(rejected, 401, "bad_signature")
    await api.client.get(DEVICES, headers=user.headers)

    logged = captured_logs.getvalue()
    assert '"route":"/api/v1/devices/{device_id}/rotate-secret"' in logged
    assert device["id"] in logged  # the device is named in the log; its secrets are not
    assert device["secret"] not in logged
    assert new_secret not in logged
    assert signed.request.headers["X-Signature"] not in logged


async def test_device_events_are_audited_without_secrets(api: Api) -> None:
    admin = await api.admin()
    user = await api.user()
    device = await create_device(api, user, "first")
    await api.client.patch(
        f"{DEVICES}/{device['id']}", json={"device_name": "second"}, headers=user.headers
    )
    rotated = await api.client.post(f"{DEVICES}/{device['id']}/rotate-secret", headers=user.headers)
    await api.client.delete(f"{DEVICES}/{device['id']}", headers=user.headers)

    trail = await api.client.get(
        "/api/v1/admin/audit", params={"target_id": device["id"]}, headers=admin.headers
    )
    events = list(reversed(trail.json()["items"]))
    assert [event["action"] for event in events] == [
        "device.registered",
        "device.renamed",
        "device.secret_rotated",
        "device.revoked",
    ]
    assert all(event["actor_id"] == user.id for event in events)
    assert events[0]["metadata"] == {"device_name": "first"}
    assert events[1]["metadata"] == {"from": "first", "to": "second"}
    assert device["secret"] not in trail.text
    assert rotated.json()["secret"] not in trail.text


async def test_list_shows_active_devices_first_then_newest(api: Api) -> None:
    user = await api.user()
    old = await create_device(api, user, "old")
    clock.advance(timedelta(seconds=1))
    gone = await create_device(api, user, "gone")
    clock.advance(timedelta(seconds=1))
    new = await create_device(api, user, "new")
    await api.client.delete(f"{DEVICES}/{gone['id']}", headers=user.headers)

    listed = (await api.client.get(DEVICES, headers=user.headers)).json()
    assert [(d["device_name"], d["is_active"]) for d in listed] == [
        ("new", True),
        ("old", True),
        ("gone", False),
    ]
    assert old["id"] == listed[1]["id"]
    assert new["id"] == listed[0]["id"]


async def test_a_user_sees_only_their_own_devices(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    await create_device(api, alice, "same name")
    await create_device(api, bob, "same name")  # names are unique per user only
    listed = (await api.client.get(DEVICES, headers=alice.headers)).json()
    assert len(listed) == 1


async def test_rename_changes_the_name(api: Api) -> None:
    user = await api.user()
    device = await create_device(api, user, "before")
    renamed = await api.client.patch(
        f"{DEVICES}/{device['id']}", json={"device_name": "après 🚀"}, headers=user.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["device_name"] == "après 🚀"
    fetched = await api.client.get(f"{DEVICES}/{device['id']}", headers=user.headers)
    assert fetched.json()["device_name"] == "après 🚀"


async def test_name_taken_by_an_active_device_is_conflict(api: Api) -> None:
    user = await api.user()
    first = await create_device(api, user, "VPS")
    other = await create_device(api, user, "laptop")
    duplicate = await api.client.post(DEVICES, json={"device_name": "VPS"}, headers=user.headers)
    assert_problem(duplicate, 409, "device_name_taken")
    renamed = await api.client.patch(
        f"{DEVICES}/{other['id']}", json={"device_name": " VPS "}, headers=user.headers
    )
    assert_problem(renamed, 409, "device_name_taken")
    same = await api.client.patch(
        f"{DEVICES}/{first['id']}", json={"device_name": "VPS"}, headers=user.headers
    )
    assert same.status_code == 200  # renaming to its own name is no conflict


async def test_names_that_look_the_same_are_the_same_name(api: Api) -> None:
    user = await api.user()
    await create_device(api, user, "Caf\u00e9")
    decomposed = await api.client.post(
        DEVICES, json={"device_name": "Cafe\u0301"}, headers=user.headers
    )
    assert_problem(decomposed, 409, "device_name_taken")


async def test_deleted_device_frees_its_name(api: Api) -> None:
    user = await api.user()
    old = await create_device(api, user, "VPS")
    deleted = await api.client.delete(f"{DEVICES}/{old['id']}", headers=user.headers)
    assert deleted.status_code == 204
    reused = await create_device(api, user, "VPS")
    assert reused["id"] != old["id"]
    names = [
        (d["device_name"], d["is_active"])
        for d in (await api.client.get(DEVICES, headers=user.headers)).json()
    ]
    assert names == [("VPS", True), ("VPS", False)]


async def test_delete_revokes_but_keeps_the_device(api: Api) -> None:
    user = await api.user()
    device = await create_device(api, user)
    deleted = await api.client.delete(f"{DEVICES}/{device['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await whoami(api, device), 401, "key_inactive")

    fetched = (await api.client.get(f"{DEVICES}/{device['id']}", headers=user.headers)).json()
    assert fetched["is_active"] is False
    again = await api.client.delete(f"{DEVICES}/{device['id']}", headers=user.headers)
    assert again.status_code == 204


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"device_name": "new name"}),
        ("POST", "/rotate-secret", None),
    ],
)
async def test_a_deleted_device_cannot_change(
    api: Api, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    user = await api.user()
    device = await create_device(api, user)
    await api.client.delete(f"{DEVICES}/{device['id']}", headers=user.headers)
    response = await api.client.request(
        method, f"{DEVICES}/{device['id']}{suffix}", json=body, headers=user.headers
    )
    assert_problem(response, 409, "device_inactive")


async def test_rotating_the_secret_stops_the_old_one_at_once(api: Api) -> None:
    user = await api.user()
    device = await create_device(api, user)
    assert (await whoami(api, device)).status_code == 200
    rotated = await api.client.post(f"{DEVICES}/{device['id']}/rotate-secret", headers=user.headers)
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    body = rotated.json()
    assert set(body) == {"id", "secret"}
    assert body["id"] == device["id"]
    assert body["secret"] != device["secret"]
    assert_problem(await whoami(api, device), 401, "bad_signature")
    assert (await whoami(api, device, body["secret"])).status_code == 200


DEVICE_ENDPOINTS = [
    pytest.param("GET", "", None, id="get"),
    pytest.param("PATCH", "", {"device_name": "stolen"}, id="rename"),
    pytest.param("POST", "/rotate-secret", None, id="rotate-secret"),
    pytest.param("DELETE", "", None, id="delete"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), DEVICE_ENDPOINTS)
@pytest.mark.parametrize("intruder_role", ["user", "admin"])
async def test_another_users_device_is_not_found(
    api: Api, method: str, suffix: str, body: dict[str, str] | None, intruder_role: str
) -> None:
    owner = await api.user()
    intruder = await (api.admin() if intruder_role == "admin" else api.user())
    device = await create_device(api, owner, "mine")
    response = await api.client.request(
        method, f"{DEVICES}/{device['id']}{suffix}", json=body, headers=intruder.headers
    )
    assert_problem(response, 404, "device_not_found")
    assert device["id"] not in (await api.client.get(DEVICES, headers=intruder.headers)).text

    untouched = (await api.client.get(f"{DEVICES}/{device['id']}", headers=owner.headers)).json()
    assert untouched["device_name"] == "mine"
    assert untouched["is_active"] is True
    assert (await whoami(api, device)).status_code == 200


@pytest.mark.parametrize(("method", "suffix", "body"), DEVICE_ENDPOINTS)
async def test_unknown_device_is_not_found(
    api: Api, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    user = await api.user()
    response = await api.client.request(
        method, f"{DEVICES}/{uuid.uuid4()}{suffix}", json=body, headers=user.headers
    )
    assert_problem(response, 404, "device_not_found")


@pytest.mark.parametrize(("method", "suffix", "body"), DEVICE_ENDPOINTS)
async def test_device_id_that_is_not_a_uuid_is_a_validation_error(
    api: Api, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    user = await api.user()
    response = await api.client.request(
        method, f"{DEVICES}/not-a-uuid{suffix}", json=body, headers=user.headers
    )
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["device_id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", DEVICES),
        ("GET", DEVICES),
        # Fixed ids: parametrize values must be the same in every xdist worker.
        ("GET", f"{DEVICES}/{UNKNOWN_ID}"),
        ("PATCH", f"{DEVICES}/{UNKNOWN_ID}"),
        ("POST", f"{DEVICES}/{UNKNOWN_ID}/rotate-secret"),
        ("DELETE", f"{DEVICES}/{UNKNOWN_ID}"),
    ],
)
async def test_device_endpoints_need_a_signed_in_user(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, json={"device_name": "x"})
    assert_problem(response, 401)


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 65, "tab\there", "line\nbreak", "null\x00", "rtl\u202eoverride", 42],
)
async def test_invalid_names_are_rejected_per_field(api: Api, name: object) -> None:
    user = await api.user()
    response = await api.client.post(DEVICES, json={"device_name": name}, headers=user.headers)
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["device_name"]


async def test_device_limit_counts_active_devices_only(api: Api, settings: Settings) -> None:
    user = await api.user()
    devices = [await create_device(api, user, f"terminal {n}") for n in range(10)]
    assert settings.max_devices_per_user == 10
    over = await api.client.post(DEVICES, json={"device_name": "eleventh"}, headers=user.headers)
    assert_problem(over, 409, "device_limit_reached")

    await api.client.delete(f"{DEVICES}/{devices[0]['id']}", headers=user.headers)
    await create_device(api, user, "eleventh")
    other = await api.user()
    await create_device(api, other, "the limit is per user")


async def test_concurrent_registrations_never_exceed_the_limit(api: Api) -> None:
    user = await api.user()
    responses = await asyncio.gather(
        *(
            api.client.post(DEVICES, json={"device_name": f"racer {n}"}, headers=user.headers)
            for n in range(15)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 10 + [409] * 5
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "device_limit_reached")
    assert len((await api.client.get(DEVICES, headers=user.headers)).json()) == 10


async def test_concurrent_registrations_of_one_name_create_one_device(api: Api) -> None:
    user = await api.user()
    responses = await asyncio.gather(
        *(
            api.client.post(DEVICES, json={"device_name": "twin"}, headers=user.headers)
            for _ in range(5)
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409, 409]
    assert len((await api.client.get(DEVICES, headers=user.headers)).json()) == 1


async def test_concurrent_renames_to_one_name_leave_one_winner(api: Api) -> None:
    user = await api.user()
    devices = [await create_device(api, user, f"device {n}") for n in range(4)]
    responses = await asyncio.gather(
        *(
            api.client.patch(
                f"{DEVICES}/{device['id']}", json={"device_name": "wanted"}, headers=user.headers
            )
            for device in devices
        )
    )
    assert sorted(response.status_code for response in responses) == [200, 409, 409, 409]
    names = [d["device_name"] for d in (await api.client.get(DEVICES, headers=user.headers)).json()]
    assert names.count("wanted") == 1


async def test_device_is_online_until_the_window_after_its_last_poll(
    api: Api, settings: Settings
) -> None:
    user = await api.user()
    device = await create_device(api, user)
    await poll(api, device)

    async def online() -> bool:
        listed = (await api.client.get(DEVICES, headers=user.headers)).json()
        one = (await api.client.get(f"{DEVICES}/{device['id']}", headers=user.headers)).json()
        assert listed == [one]
        assert one["last_poll"] is not None
        return bool(one["is_online"])

    assert await online()
    clock.advance(timedelta(seconds=settings.device_online_s - 1))
    assert await online()
    clock.advance(timedelta(seconds=2))
    assert not await online()


async def test_deleted_device_is_never_online(api: Api) -> None:
    user = await api.user()
    device = await create_device(api, user)
    await poll(api, device)
    await api.client.delete(f"{DEVICES}/{device['id']}", headers=user.headers)
    fetched = (await api.client.get(f"{DEVICES}/{device['id']}", headers=user.headers)).json()
    assert fetched["is_online"] is False
