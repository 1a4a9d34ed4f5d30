"""The baseline: a bare FastAPI endpoint, served exactly like tradecast."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/exec/poll")
    async def poll() -> dict[str, object]:
        return {"signals": [], "server_time": "2026-01-01T00:00:00Z", "poll_interval_s": 5}

    @app.post("/api/v1/exec/fill", status_code=201)
    async def fill() -> dict[str, object]:
        return {"id": "00000000-0000-0000-0000-000000000000", "execution_type": "fill"}

    return app
