"""SignedDevice: every SPEC §2 refusal, produced by its own case, on a real device."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import Api, assert_problem
from tradecast.config import Settings
from tradecast.kit import clock, signing
from tradecast.kit.jsonlog import JsonFormatter

WHOAMI = "/api/v1/exec/whoami"
Pairs = Sequence[tuple[str, str]]


@pytest.fixture
async def device(api: Api) -> dict[str, Any]:
    user = await api.user()
    response = await api.client.post(
        "/api/v1/devices", json={"device_name": "EA"}, headers=user.headers
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    body["owner_headers"] = user.headers
    return body


def sign(
    device: dict[str, Any],
    *,
    query: Pairs = (),
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    return signing.sign_request(
        key_id=device["id"],
        secret=device["secret"],
        method="GET",
        path=WHOAMI,
        query=list(query),
        body=body,
        timestamp=int(clock.utcnow().timestamp()) if timestamp is None else timestamp,
        nonce=nonce,
    )


async def send(
    api: Api, headers: dict[str, str], *, query: Pairs = (), body: bytes = b""
) -> httpx.Response:
    # A body on a GET is unusual, but verification covers the body whatever the method.
    return await api.client.request(
        "GET", WHOAMI, params=list(query) or None, content=body, headers=headers
    )


async def test_correctly_signed_request_identifies_the_device(
    api: Api, device: dict[str, Any]
) -> None:
    response = await send(api, sign(device))
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == device["id"]


@pytest.mark.parametrize("header", signing.SIGNED_HEADERS)
async def test_missing_header_is_refused(api: Api, device: dict[str, Any], header: str) -> None:
    headers = sign(device)
    del headers[header]
    problem = assert_problem(await send(api, headers), 401, "missing_auth_header")
    assert header in problem["detail"]


@pytest.mark.parametrize(
    "nonce",
    ["n" * 15, "n" * 65, "has.a.dot.in.it.x", "has space in nonce", "plus+sign+nonce+x"],
)
async def test_malformed_nonce_is_refused(api: Api, device: dict[str, Any], nonce: str) -> None:
    headers = sign(device, nonce=nonce)
    assert_problem(await send(api, headers), 401, "missing_auth_header")


@pytest.mark.parametrize("timestamp", ["12.5", "-100", "soon", "1e9"])
async def test_malformed_timestamp_is_refused(
    api: Api, device: dict[str, Any], timestamp: str
) -> None:
    headers = {**sign(device), signing.HEADER_TIMESTAMP: timestamp}
    assert_problem(await send(api, headers), 401, "missing_auth_header")


@pytest.mark.parametrize("key_id", ["random-uuid", "not-a-uuid"])
async def test_unknown_key_is_refused(api: Api, device: dict[str, Any], key_id: str) -> None:
    stranger = {**device, "id": str(uuid.uuid4()) if key_id == "random-uuid" else key_id}
    assert_problem(await send(api, sign(stranger)), 401, "unknown_key")


async def test_deleted_device_is_inactive(api: Api, device: dict[str, Any]) -> None:
    deleted = await api.client.delete(
        f"/api/v1/devices/{device['id']}", headers=device["owner_headers"]
    )
    assert deleted.status_code == 204
    response = await send(api, sign(device))
    problem = assert_problem(response, 401, "key_inactive")
    assert response.headers["www-authenticate"].startswith("HMAC-SHA256")
    assert device["id"] not in problem["detail"]


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
async def test_timestamp_too_far_either_way_is_stale(
    api: Api, device: dict[str, Any], offset: int
) -> None:
    now = int(clock.utcnow().timestamp())
    response = await send(api, sign(device, timestamp=now + offset))
    assert_problem(response, 401, "stale_timestamp")
    assert abs(int(response.headers["x-server-time"]) - now) <= 1


@pytest.mark.parametrize("offset", [-290, 290])
async def test_timestamp_within_the_skew_is_accepted(
    api: Api, device: dict[str, Any], offset: int
) -> None:
    now = int(clock.utcnow().timestamp())
    assert (await send(api, sign(device, timestamp=now + offset))).status_code == 200


async def test_stale_timestamp_follows_the_server_clock(api: Api, device: dict[str, Any]) -> None:
    signed_now = sign(device)
    clock.advance(timedelta(seconds=301))
    assert_problem(await send(api, signed_now), 401, "stale_timestamp")


async def test_signature_with_another_secret_is_bad(api: Api, device: dict[str, Any]) -> None:
    forged = sign({**device, "secret": device["secret"][:-1] + "x"})
    assert_problem(await send(api, forged), 401, "bad_signature")


async def test_upper_case_signature_is_bad(api: Api, device: dict[str, Any]) -> None:
    headers = sign(device)
    headers[signing.HEADER_SIGNATURE] = headers[signing.HEADER_SIGNATURE].upper()
    assert_problem(await send(api, headers), 401, "bad_signature")


async def test_replayed_request_is_refused(api: Api, device: dict[str, Any]) -> None:
    headers = sign(device)
    assert (await send(api, headers)).status_code == 200
    assert_problem(await send(api, headers), 401, "nonce_reused")


async def test_nonce_reused_with_a_fresh_signature_is_refused(
    api: Api, device: dict[str, Any]
) -> None:
    nonce = signing.new_nonce()
    assert (await send(api, sign(device, nonce=nonce))).status_code == 200
    clock.advance(timedelta(seconds=5))
    assert_problem(await send(api, sign(device, nonce=nonce)), 401, "nonce_reused")


async def test_nonce_is_usable_again_after_its_ttl(
    api: Api, device: dict[str, Any], settings: Settings
) -> None:
    nonce = signing.new_nonce()
    assert (await send(api, sign(device, nonce=nonce))).status_code == 200
    clock.advance(timedelta(seconds=settings.nonce_ttl_s + 1))
    assert (await send(api, sign(device, nonce=nonce))).status_code == 200


async def test_nonces_are_per_device(api: Api, device: dict[str, Any]) -> None:
    user = await api.user()
    other = (
        await api.client.post("/api/v1/devices", json={"device_name": "EA"}, headers=user.headers)
    ).json()
    nonce = signing.new_nonce()
    assert (await send(api, sign(device, nonce=nonce))).status_code == 200
    assert (await send(api, sign(other, nonce=nonce))).status_code == 200


async def test_bad_signature_does_not_use_up_the_nonce(api: Api, device: dict[str, Any]) -> None:
    nonce = signing.new_nonce()
    forged = sign({**device, "secret": "guessed"}, nonce=nonce)
    assert_problem(await send(api, forged), 401, "bad_signature")
    assert (await send(api, sign(device, nonce=nonce))).status_code == 200


async def test_changing_a_query_value_after_signing_is_bad(
    api: Api, device: dict[str, Any]
) -> None:
    headers = sign(device, query=[("limit", "50"), ("wait", "25")])
    response = await send(api, headers, query=[("limit", "51"), ("wait", "25")])
    assert_problem(response, 401, "bad_signature")


async def test_adding_a_query_parameter_after_signing_is_bad(
    api: Api, device: dict[str, Any]
) -> None:
    headers = sign(device, query=[("limit", "50")])
    response = await send(api, headers, query=[("limit", "50"), ("wait", "0")])
    assert_problem(response, 401, "bad_signature")


async def test_changing_one_body_byte_after_signing_is_bad(
    api: Api, device: dict[str, Any]
) -> None:
    body = b'{"report_id":"r-1","signal_id":"s"}'
    headers = sign(device, body=body)
    assert (await send(api, sign(device, body=body), body=body)).status_code == 200
    assert_problem(
        await send(api, headers, body=body.replace(b"r-1", b"r-2")), 401, "bad_signature"
    )


async def test_signed_path_must_be_the_path_sent(api: Api, device: dict[str, Any]) -> None:
    headers = signing.sign_request(
        key_id=device["id"],
        secret=device["secret"],
        method="GET",
        path="/api/v1/exec/poll",
        timestamp=int(clock.utcnow().timestamp()),
    )
    assert_problem(await send(api, headers), 401, "bad_signature")


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        ([("b", "2"), ("a", "1")], [("a", "1"), ("b", "2")]),
        ([("a", "2"), ("a", "1"), ("a", "10")], [("a", "10"), ("a", "1"), ("a", "2")]),
        ([("q", "x y+z/é"), ("empty", "")], [("empty", ""), ("q", "x y+z/é")]),
    ],
)
async def test_query_parameters_verify_in_any_order(
    api: Api, device: dict[str, Any], signed: Pairs, sent: Pairs
) -> None:
    response = await send(api, sign(device, query=signed), query=sent)
    assert response.status_code == 200, response.text


async def test_logs_name_the_signed_device(api: Api, device: dict[str, Any]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        headers = sign(device)
        assert (await send(api, headers)).status_code == 200
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    (line,) = [line for line in lines if '"logger":"tradecast.access"' in line]
    assert f'"device_id":"{device["id"]}"' in line
    assert headers[signing.HEADER_SIGNATURE] not in stream.getvalue()
    assert device["secret"] not in stream.getvalue()
