"""SignedProducer: a producer's signed request is verified like SPEC §2 says."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tests.helpers import Api, assert_problem
from tests.producers.conftest import ProducerKey, Producers
from tradecast.kit import clock
from tradecast.kit.jsonlog import JsonFormatter

SIGNALS = "/api/v1/signals"
SIGNAL = {"instrument": "EURUSD", "side": "sell", "order_type": "market"}


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_a_wrong_secret_is_a_bad_signature(
    producers: Producers, producer: ProducerKey
) -> None:
    forged = ProducerKey(id=producer.id, name=producer.name, secret="guessed")
    response = await producers.send(forged, "POST", SIGNALS, json=SIGNAL)
    assert_problem(response, 401, "bad_signature")


async def test_a_body_changed_after_signing_is_a_bad_signature(
    api: Api, producer: ProducerKey
) -> None:
    signed = await api.signed(
        "POST", SIGNALS, key_id=producer.id, secret=producer.secret, json=SIGNAL
    )
    assert signed.status_code == 201
    headers = dict(signed.request.headers)
    tampered = json.dumps({**SIGNAL, "side": "buy"}).encode()
    headers["x-nonce"] = headers["x-nonce"][::-1]
    response = await api.client.post(SIGNALS, content=tampered, headers=headers)
    assert_problem(response, 401, "bad_signature")


async def test_a_replayed_request_is_refused(api: Api, producer: ProducerKey) -> None:
    first = await api.signed(
        "POST", SIGNALS, key_id=producer.id, secret=producer.secret, json=SIGNAL
    )
    assert first.status_code == 201
    replay = await api.client.post(
        SIGNALS, content=first.request.content, headers=dict(first.request.headers)
    )
    assert_problem(replay, 401, "nonce_reused")


async def test_a_stale_timestamp_is_refused(api: Api, producer: ProducerKey) -> None:
    stale = int(clock.utcnow().timestamp()) - 301
    response = await api.signed(
        "POST", SIGNALS, key_id=producer.id, secret=producer.secret, json=SIGNAL, timestamp=stale
    )
    assert_problem(response, 401, "stale_timestamp")


async def test_incomplete_signature_headers_are_refused(api: Api, producer: ProducerKey) -> None:
    response = await api.client.post(SIGNALS, json=SIGNAL, headers={"X-Key-Id": producer.id})
    assert_problem(response, 401, "missing_auth_header")


async def test_a_device_key_is_not_a_producer_key(api: Api) -> None:
    user = await api.user()
    device = await api.client.post(
        "/api/v1/devices", json={"device_name": "MT5"}, headers=user.headers
    )
    assert device.status_code == 201, device.text
    key = device.json()
    response = await api.signed(
        "POST", SIGNALS, key_id=key["id"], secret=key["secret"], json=SIGNAL
    )
    assert_problem(response, 401, "unknown_key")


async def test_signature_wins_over_a_bearer_token(api: Api, producer: ProducerKey) -> None:
    # With X-Key-Id present the request is a producer's: an admin token cannot rescue
    # a bad signature.
    admin = await api.admin()
    response = await api.signed(
        "POST",
        SIGNALS,
        key_id=producer.id,
        secret="wrong",
        json=SIGNAL,
        headers=admin.headers,
    )
    assert_problem(response, 401, "bad_signature")


async def test_logs_carry_the_producer_and_never_its_secret(
    producers: Producers, producer: ProducerKey, captured_logs: io.StringIO
) -> None:
    response = await producers.send(producer, "POST", SIGNALS, json=SIGNAL)
    assert response.status_code == 201
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    access = [line for line in lines if line.get("event") == "request" and line["route"] == SIGNALS]
    assert [line.get("producer_id") for line in access] == [producer.id]
    assert producer.secret not in captured_logs.getvalue()
    assert response.request.headers["x-signature"] not in captured_logs.getvalue()
