from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from tests.conftest import make_settings
from tests.helpers import assert_problem
from tradecast.main import create_app


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_readiness_fails_with_a_503_problem_when_the_database_is_down(
    tmp_path: Path,
) -> None:
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:9/none", tmp_path)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert_problem(await client.get("/readyz"), 503, "database_unavailable")


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/me")
    await client.get("/healthz")
    exposition = (await client.get("/metrics")).text
    assert 'tradecast_http_requests_total{method="GET",route="/api/v1/me",status="401"} 1.0' in (
        exposition
    )
    assert 'tradecast_http_request_duration_seconds_count{method="GET",route="/healthz"}' in (
        exposition
    )
