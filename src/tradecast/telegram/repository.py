from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.models import Payout, PayoutStatus
from tradecast.telegram.models import TelegramDeepLink, TelegramLinkCode
from tradecast.users.models import User


class TelegramRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add_code(self, code: TelegramLinkCode) -> None:
        self.session.add(code)

    async def discard_unused_codes(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(TelegramLinkCode)
            .where(TelegramLinkCode.user_id == user_id, TelegramLinkCode.used_at.is_(None))
            .execution_options(synchronize_session=False)
        )

    async def consume_code(self, code_hash: str, chat_id: int, now: datetime) -> uuid.UUID | None:
        """Use a live code and return its account; ``None`` if unknown, used or expired.

        A conditional UPDATE, so two chats racing with one code cannot both win.
        """
        return await self.session.scalar(
            update(TelegramLinkCode)
            .where(
                TelegramLinkCode.code_hash == code_hash,
                TelegramLinkCode.used_at.is_(None),
                TelegramLinkCode.expires_at > now,
            )
            .values(used_at=now, used_by_chat_id=chat_id)
            .returning(TelegramLinkCode.user_id)
            .execution_options(synchronize_session=False)
        )

    async def code_by_hash(self, code_hash: str) -> TelegramLinkCode | None:
        return await self.session.scalar(
            select(TelegramLinkCode).where(TelegramLinkCode.code_hash == code_hash)
        )

    async def account_of_chat(self, chat_id: int, *, for_update: bool = False) -> User | None:
        query = select(User).where(User.telegram_chat_id == chat_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def lock_user(self, user_id: uuid.UUID) -> User | None:
        return await self.session.scalar(
            select(User)
            .where(User.id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def unlink_if_still(self, user_id: uuid.UUID, chat_id: int, now: datetime) -> bool:
        """Unlink the account from ``chat_id`` unless it has been linked elsewhere since."""
        result = await self.session.execute(
            update(User)
            .where(User.id == user_id, User.telegram_chat_id == chat_id)
            .values(telegram_chat_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def deep_link_of(self, chat_id: int) -> TelegramDeepLink | None:
        return await self.session.get(TelegramDeepLink, chat_id)

    def add_deep_link(self, deep_link: TelegramDeepLink) -> None:
        self.session.add(deep_link)

    async def last_paid_bank_account(self, affiliate_id: uuid.UUID) -> str | None:
        """The bank account of the affiliate's most recent paid payout (on the
        (affiliate_id, created_at) index)."""
        return await self.session.scalar(
            select(Payout.bank_account)
            .where(Payout.affiliate_id == affiliate_id, Payout.status == PayoutStatus.PAID)
            .order_by(Payout.created_at.desc())
            .limit(1)
        )
