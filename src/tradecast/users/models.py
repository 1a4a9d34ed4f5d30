from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, UUIDPrimaryKey


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def is_admin(self) -> bool:
        return self in {Role.ADMIN, Role.OWNER}


class DeliveryMode(enum.StrEnum):
    AUTO = "auto"
    APPROVAL = "approval"


class User(UUIDPrimaryKey, Base):
    __tablename__ = "users"

    # Stored lower-cased: the unique constraint is then case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="user_role",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    delivery_mode: Mapped[DeliveryMode] = mapped_column(
        Enum(
            DeliveryMode,
            name="delivery_mode",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=DeliveryMode.AUTO,
    )
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    signup_ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RefreshToken(UUIDPrimaryKey, Base):
    """One refresh token; a login starts a family, each rotation adds a member."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # SHA-256 of the token: a database leak must not hand out live sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
