from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from tradecast.audit import service
from tradecast.audit.repository import AuditFilter
from tradecast.audit.schemas import AuditEventOut
from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit.pagination import Page, Pagination
from tradecast.users.dependencies import AdminUser
from tradecast.users.errors import AdminRequired

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get(
    "/admin/audit",
    response_model=Page[AuditEventOut],
    responses=responses_for(Unauthorized, AdminRequired, UnprocessableEntity),
)
async def list_audit_events(
    _: AdminUser,
    session: DbSession,
    page: Pagination,
    actor_id: Annotated[uuid.UUID | None, Query(description="Who acted.")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. user.login_failed")
    ] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Inclusive lower bound, ISO 8601.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Exclusive upper bound, ISO 8601.")
    ] = None,
) -> Page[AuditEventOut]:
    """The audit trail, newest first."""
    items, total = await service.search(
        session,
        AuditFilter(
            actor_id=actor_id, action=action, target_id=target_id, since=since, until=until
        ),
        page,
    )
    return Page(
        items=[AuditEventOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
