"""The poll as a plain ASGI route: what FastAPI used to do for it still holds."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from tests.desk import Desk
from tests.helpers import assert_problem
from tradecast import db as db_module
from tradecast.db import Database
from tradecast.errors import DatabaseUnavailable

POLL = "/api/v1/exec/poll"


async def test_the_poll_answers_get_only(desk: Desk) -> None:
    terminal = await desk.terminal()
    for method in ("HEAD", "POST", "DELETE"):
        response = await desk.api.signed(method, POLL, key_id=terminal.id, secret=terminal.secret)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET"
        if method != "HEAD":
            assert_problem(response, 405, "method_not_allowed")


async def test_a_bad_query_names_each_field(desk: Desk) -> None:
    terminal = await desk.terminal()
    response = await terminal.poll(limit="many", wait=99)
    problem = assert_problem(response, 422, "validation_error")
    assert {error["field"] for error in problem["errors"]} == {"limit", "wait"}
    # Validation comes after the signature, as for every other signed endpoint.
    unsigned = await desk.api.client.get(POLL, params={"limit": "many"})
    assert_problem(unsigned, 401, "missing_auth_header")


async def test_a_nul_in_the_query_is_refused_before_anything_else(desk: Desk) -> None:
    response = await desk.api.client.get(POLL, params={"limit": "1\x00"})
    problem = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == ["limit"]


async def test_repeated_and_unknown_parameters_behave_as_on_every_route(desk: Desk) -> None:
    terminal = await desk.terminal()
    for _ in range(3):
        await desk.publish()
    response = await desk.api.signed(
        "GET",
        POLL,
        key_id=terminal.id,
        secret=terminal.secret,
        params=[("limit", "3"), ("limit", "1"), ("colour", "blue")],
    )
    assert response.status_code == 200
    assert len(response.json()["signals"]) == 1  # the last value of a repeated parameter


async def test_polls_are_logged_and_counted_under_their_route(
    desk: Desk, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    terminal = await desk.terminal()
    with caplog.at_level("INFO", logger="tradecast.access"):
        response = await terminal.poll()
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    [line] = [r for r in caplog.records if getattr(r, "path", None) == POLL]
    assert line.__dict__["route"] == POLL
    assert line.__dict__["status"] == 200
    exposition = (await desk.api.client.get("/metrics")).text
    assert f'tradecast_http_requests_total{{method="GET",route="{POLL}",status="200"}} 1.0' in (
        exposition
    )


async def test_the_openapi_document_declares_the_poll(desk: Desk) -> None:
    document = (await desk.api.client.get("/openapi.json")).json()
    operation = document["paths"][POLL]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 200)
    assert (parameters["wait"]["minimum"], parameters["wait"]["maximum"]) == (0, 30)
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PollOut"
    }


@pytest.mark.postgres_only
async def test_an_exhausted_device_pool_answers_503_not_a_hang(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "POOL_TIMEOUT_S", 0.2)
    db = Database(str(app.state.db.url), driver_pool_size=1)
    try:
        async with db.driver_connection() as held:
            with pytest.raises(DatabaseUnavailable):
                async with db.driver_connection():
                    pass  # pragma: no cover - never acquired
            assert await held.fetchval("SELECT 1") == 1
        # Given back, the connection serves the next caller.
        async with db.driver_connection() as again:
            assert await again.fetchval("SELECT 2") == 2
    finally:
        await db.dispose()


@pytest.mark.postgres_only
async def test_a_device_connection_keeps_no_session_state_yet_ends_transactions(
    app: FastAPI,
) -> None:
    db = Database(str(app.state.db.url), driver_pool_size=1)
    try:
        async with db.driver_connection() as connection:
            assert await connection.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            # A transaction left open (a cancelled request) is rolled back on release.
            await connection.execute("BEGIN")
            await connection.execute("CREATE TEMP TABLE left_open (id int)")
        async with db.driver_connection() as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            await asyncio.sleep(0)
    finally:
        await db.dispose()
