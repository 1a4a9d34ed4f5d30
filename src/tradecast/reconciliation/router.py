from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit.pagination import Page, Pagination
from tradecast.reconciliation import service
from tradecast.reconciliation.errors import IssueAlreadyResolved, IssueNotFound
from tradecast.reconciliation.models import IssueKind, IssueStatus
from tradecast.reconciliation.repository import IssueFilter
from tradecast.reconciliation.schemas import IssueOut, RunOut
from tradecast.users.dependencies import AdminUser, CurrentUser
from tradecast.users.errors import AdminRequired

router = APIRouter(prefix="/api/v1/reconciliation", tags=["reconciliation"])


@router.post("/run", response_model=RunOut, responses=responses_for(Unauthorized, AdminRequired))
async def run(admin: AdminUser, session: DbSession, settings: AppSettings) -> RunOut:
    """Run reconciliation now (it also runs every ``RECONCILE_INTERVAL_S``)."""
    created = await service.run_by_admin(session, settings, admin)
    return RunOut(created=created, total=sum(created.values()))


@router.get(
    "/issues",
    response_model=Page[IssueOut],
    responses=responses_for(Unauthorized, UnprocessableEntity),
)
async def list_issues(
    user: CurrentUser,
    session: DbSession,
    page: Pagination,
    status: Annotated[IssueStatus | None, Query()] = None,
    kind: Annotated[IssueKind | None, Query()] = None,
) -> Page[IssueOut]:
    """Reconciliation issues, newest first: a user's own devices', or all for admins."""
    items, total = await service.issues(session, user, IssueFilter(status=status, kind=kind), page)
    return Page(
        items=[IssueOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/issues/{issue_id}/resolve",
    response_model=IssueOut,
    responses=responses_for(
        Unauthorized, AdminRequired, IssueNotFound, IssueAlreadyResolved, UnprocessableEntity
    ),
)
async def resolve(issue_id: uuid.UUID, admin: AdminUser, session: DbSession) -> IssueOut:
    """Mark an issue resolved."""
    return IssueOut.model_validate(await service.resolve(session, admin, issue_id))
