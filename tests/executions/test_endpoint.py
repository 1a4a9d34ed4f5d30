"""The reports as plain ASGI routes: what FastAPI used to do for them still holds,
in the same order (body, media type, NUL, signature, validation)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.desk import Desk, Terminal
from tests.helpers import assert_problem

REPORTS = ["/api/v1/exec/ack", "/api/v1/exec/fill", "/api/v1/exec/error"]
JSON = {"Content-Type": "application/json"}


def valid_body(path: str, signal_id: str, report_id: str = "r1") -> dict[str, Any]:
    body: dict[str, Any] = {"report_id": report_id, "signal_id": signal_id}
    if path.endswith("fill"):
        body |= {"fill_price": "1.10005", "fill_size": "0.10"}
    if path.endswith("error"):
        body |= {"status_code": 10019, "error_message": "  Not enough money  "}
    return body


async def post(
    desk: Desk, terminal: Terminal | None, path: str, content: bytes, **headers: str
) -> httpx.Response:
    if terminal is None:
        return await desk.api.client.post(path, content=content, headers=headers)
    return await desk.api.signed(
        "POST", path, key_id=terminal.id, secret=terminal.secret, content=content, headers=headers
    )


@pytest.mark.parametrize("path", REPORTS)
async def test_reports_answer_post_only(desk: Desk, path: str) -> None:
    terminal = await desk.terminal()
    for method in ("GET", "PUT", "DELETE"):
        response = await desk.api.signed(method, path, key_id=terminal.id, secret=terminal.secret)
        assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("path", REPORTS)
async def test_a_report_is_201_then_its_replay_200_with_the_same_record(
    desk: Desk, path: str
) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    content = json.dumps(valid_body(path, signal["id"])).encode()
    first = await post(desk, terminal, path, content, **JSON)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    record = first.json()
    assert record["device_id"] == terminal.id
    assert record["execution_type"] == path.rsplit("/", 1)[1]
    if path.endswith("fill"):
        assert (record["fill_price"], record["fill_size"]) == ("1.10005", "0.1")
        assert record["trade_id"] is not None
    if path.endswith("error"):
        assert record["error_message"] == "Not enough money"
    again = await post(desk, terminal, path, content, **JSON)
    assert again.status_code == 200
    assert again.json() == record
    other = valid_body(path, signal["id"]) | {"signal_id": (await desk.publish())["id"]}
    reused = await post(desk, terminal, path, json.dumps(other).encode(), **JSON)
    assert_problem(reused, 409)


@pytest.mark.parametrize("path", REPORTS)
async def test_what_is_wrong_with_a_body_is_told_before_the_signature_is_checked(
    desk: Desk, path: str
) -> None:
    # Unsigned: these are answered from the body alone, as FastAPI answered them.
    broken = await post(desk, None, path, b'{"report_id": ', **JSON)
    assert_problem(broken, 422, "validation_error")
    plain = await post(desk, None, path, b'{"report_id": "r1"}', **{"Content-Type": "text/plain"})
    assert_problem(plain, 415, "unsupported_media_type")
    untyped = await post(desk, None, path, b'{"report_id": "r1"}')
    assert_problem(untyped, 415, "unsupported_media_type")
    nul = await post(desk, None, path, b'{"report_id": "r\\u0000"}', **JSON)
    problem = assert_problem(nul, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["report_id"]
    not_utf8 = await post(desk, None, path, b'{"report_id": "\xff"}', **JSON)
    assert_problem(not_utf8, 400, "malformed_body")
    # A body that parses but does not validate: the signature comes first.
    invalid = await post(desk, None, path, b'{"report_id": ""}', **JSON)
    assert_problem(invalid, 401, "missing_auth_header")


@pytest.mark.parametrize("path", REPORTS)
async def test_a_signed_body_that_does_not_validate_names_each_field(desk: Desk, path: str) -> None:
    terminal = await desk.terminal()
    body = {"report_id": "", "signal_id": "not-a-uuid", "colour": "blue"}
    response = await post(desk, terminal, path, json.dumps(body).encode(), **JSON)
    problem = assert_problem(response, 422, "validation_error")
    fields = {error["field"] for error in problem["errors"]}
    assert {"report_id", "signal_id", "colour"} <= fields
    if path.endswith("fill"):
        assert {"fill_price", "fill_size"} <= fields
    for content in (b"", b"[]", b'"r1"', b"null"):
        response = await post(desk, terminal, path, content, **JSON)
        problem = assert_problem(response, 422, "validation_error")
        assert [error["field"] for error in problem["errors"]] == ["body"], content


async def test_an_exact_number_stays_exact_and_a_float_cannot_round_it(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    content = (
        b'{"report_id": "r1", "signal_id": "' + signal["id"].encode() + b'", '
        b'"fill_price": 1.123456789012, "fill_size": 0.1}'
    )
    too_precise = await post(desk, terminal, "/api/v1/exec/fill", content, **JSON)
    problem = assert_problem(too_precise, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["fill_price"]
    exact = content.replace(b"1.123456789012", b"1.12345678")
    stored = await post(desk, terminal, "/api/v1/exec/fill", exact, **JSON)
    assert stored.status_code == 201, stored.text
    assert stored.json()["fill_price"] == "1.12345678"


async def test_reports_are_logged_and_counted_under_their_route(
    desk: Desk, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    with caplog.at_level("INFO", logger="tradecast.access"):
        response = await terminal.ack(signal["id"])
    assert response.status_code == 201
    assert response.headers["x-request-id"]
    [line] = [r for r in caplog.records if getattr(r, "route", None) == REPORTS[0]]
    assert line.__dict__["status"] == 201
    exposition = (await desk.api.client.get("/metrics")).text
    counted = f'tradecast_http_requests_total{{method="POST",route="{REPORTS[0]}",status="201"}}'
    assert f"{counted} 1.0" in exposition


async def test_the_openapi_document_declares_the_reports(desk: Desk) -> None:
    document = (await desk.api.client.get("/openapi.json")).json()
    for path, model in zip(REPORTS, ["AckIn", "FillIn", "ErrorIn"], strict=True):
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        answers = operation["responses"]
        for status in ("200", "201"):
            schema = answers[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ExecutionOut"}
        assert {"401", "404", "409", "422"} <= set(answers)
