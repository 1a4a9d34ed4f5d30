from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.helpers import Api, assert_problem
from tradecast.config import Settings
from tradecast.db import DbSession
from tradecast.users import service as users


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nothing-here"), 404, "not_found")
    assert body["type"].endswith("/not_found")


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/auth/login")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b'{"email": "a@b.org", "password": ',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"]


async def test_request_id_is_echoed_when_sane_and_replaced_otherwise(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-Id": "trace-123.abc"})
    assert echoed.headers["x-request-id"] == "trace-123.abc"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith<junk>"})
    assert replaced.headers["x-request-id"] != "bad id\twith<junk>"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_unexpected_error_is_a_500_problem_and_rolls_back(
    app: FastAPI, client: httpx.AsyncClient, api: Api, settings: Settings
) -> None:
    async def explode(session: DbSession) -> None:
        await users.register(session, settings, "ghost@example.org", "password123")
        raise RuntimeError("SELECT secret FROM internals")

    app.add_api_route("/test-only/explode", explode, methods=["POST"])
    response = await client.post("/test-only/explode")
    body = assert_problem(response, 500, "internal_error")
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"].startswith("An unexpected error occurred")
    # The unit of work rolled back: the account written before the crash does not exist.
    assert_problem(await api.login("ghost@example.org", "password123"), 401)
    assert (await api.register("ghost@example.org", "password123")).status_code == 201
