from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import Response

from tradecast.db import Database
from tradecast.errors import DatabaseUnavailable, responses_for

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=responses_for(DatabaseUnavailable))
async def readyz(request: Request) -> Health:
    """The database answers; load balancers route traffic here only then."""
    db: Database = request.app.state.db
    try:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable("The database did not answer") from exc
    return Health(status="ready")


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: request counts and latency by route template."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
