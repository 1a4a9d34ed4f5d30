from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LinkCodeOut(BaseModel):
    code: str = Field(
        description="Send '/link CODE' to the bot; case, spaces and dashes do not matter.",
        examples=["7K3Q-X9M2-ZP4D"],
    )
    expires_at: datetime = Field(description="Ten minutes after creation; the code works once.")
