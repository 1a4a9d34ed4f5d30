from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tradecast.reconciliation.models import IssueKind, IssueStatus


class IssueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    signal_id: uuid.UUID
    device_id: uuid.UUID
    kind: IssueKind
    status: IssueStatus
    detail: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None


class RunOut(BaseModel):
    created: dict[IssueKind, int] = Field(description="New issues by kind.")
    total: int
