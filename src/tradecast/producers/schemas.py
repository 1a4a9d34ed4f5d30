from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# Letters, digits and a few separators: the name shows up in logs, the audit trail and the CLI.
PRODUCER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$"


class ProducerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=PRODUCER_NAME_PATTERN,
        description="Unique; 1–64 of letters, digits, space, '.', '_', '-'.",
        examples=["eurusd-momentum"],
    )


class ProducerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Also the X-Key-Id of the producer's signed requests.")
    name: str
    is_active: bool
    created_at: datetime
    deactivated_at: datetime | None


class ProducerCreated(ProducerOut):
    secret: str = Field(description="The HMAC secret. Shown in this response only.")


class ProducerSecret(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new HMAC secret. Shown in this response only.")
