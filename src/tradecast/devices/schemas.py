from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

# Format characters that are legitimate inside a name: the zero-width (non-)joiner
# that emoji sequences and several scripts need. Every other format character
# (bidi overrides, invisible separators) could make two names look alike.
_ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})
# Control, format, surrogate, line and paragraph separators. Unassigned code points
# stay allowed: an emoji newer than this Python's Unicode tables is still a name.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _normalise_name(value: object) -> object:
    # NFC first: "é" typed as one code point or as e + accent is one name, not two.
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return value


def _refuse_invisible_characters(value: str) -> str:
    for character in value:
        if character in _ALLOWED_FORMAT_CHARACTERS:
            continue
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            raise ValueError(f"must not contain control characters (found U+{ord(character):04X})")
    return value


DeviceName = Annotated[
    str,
    BeforeValidator(_normalise_name),
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_refuse_invisible_characters),
    Field(
        description="1–64 characters after trimming; any script, no control characters.",
        examples=["MT5 London VPS"],
    ),
]


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_name: DeviceName


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_name: DeviceName


class DeviceCreated(BaseModel):
    """The one response that carries the device's secret; it is never shown again."""

    id: uuid.UUID
    device_name: str
    secret: str = Field(description="The HMAC key for X-Signature. Store it now.")
    is_active: bool
    created_at: datetime


class DeviceOut(BaseModel):
    id: uuid.UUID
    device_name: str
    is_active: bool
    is_online: bool = Field(description="Active and polled within DEVICE_ONLINE_S (300 s).")
    last_poll: datetime | None
    last_ack: datetime | None
    created_at: datetime


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new HMAC key; the previous one no longer verifies.")


class WhoAmI(BaseModel):
    device_id: uuid.UUID
    device_name: str
    server_time: datetime = Field(description="The server's clock, UTC.")
