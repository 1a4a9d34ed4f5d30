from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, UUIDPrimaryKey


class TelegramLinkCode(UUIDPrimaryKey, Base):
    """A one-time code that ``/link CODE`` trades for binding a chat to the account."""

    __tablename__ = "telegram_link_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the code: whoever reads the table cannot link a chat with it.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The chat that used the code, so a redelivered /link update answers "linked" again.
    used_by_chat_id: Mapped[int | None] = mapped_column(BigInteger)


class TelegramDeepLink(Base):
    """The first ``/start ref_TOKEN`` a chat opened the bot with (SPEC §8, the Telegram path)."""

    __tablename__ = "telegram_deep_links"

    # One row per chat: the primary key keeps the first deep link even when two
    # /start updates of one chat race each other.
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    referral_token: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
