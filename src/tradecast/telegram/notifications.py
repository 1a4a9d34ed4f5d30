"""Pushed messages: outbox events delivered to the owner's linked chat through the Bot API.

Delivery guarantees (docs/TELEGRAM.md has them for users):

- The outbox retries failures with exponential backoff; Telegram's 429 is
  retried no earlier than its ``retry_after``.
- 403 means the user blocked the bot: the chat is unlinked in the same
  transaction that drops the event, so no later event tries it again.
- An account without a linked chat has nothing to deliver: the event counts as
  delivered, and linking later does not replay old events.
- Handlers run inside the dispatcher's transaction (the event's own session):
  the chat lookup and an unlink commit together with the event's new state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from tradecast.affiliates.service.payouts import STATUS_CHANGED as PAYOUT_STATUS_CHANGED
from tradecast.outbox.models import OutboxEvent
from tradecast.outbox.service import DropEvent, Handler, RetryLater
from tradecast.reconciliation.service import ISSUE_OPENED
from tradecast.telegram import replies, service
from tradecast.users.models import User

logger = logging.getLogger("tradecast.telegram")


class BotApiFailed(Exception):
    """A Bot API call failed in a way worth retrying (5xx, network, timeout)."""


class Notifier:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def handlers(self) -> dict[str, Handler]:
        return {
            ISSUE_OPENED: self.issue_opened,
            PAYOUT_STATUS_CHANGED: self.payout_status_changed,
        }

    async def issue_opened(self, event: OutboxEvent) -> None:
        await self._send(event, replies.issue_opened(event.payload))

    async def payout_status_changed(self, event: OutboxEvent) -> None:
        text = replies.payout_settled(event.payload)
        if text is not None:  # a new pending payout: the user just asked for it
            await self._send(event, text)

    async def _send(self, event: OutboxEvent, text: str) -> None:
        session = _session_of(event)
        user_id = uuid.UUID(str(event.payload["user_id"]))
        # populate_existing: an earlier event of this batch may have unlinked the chat.
        user = await session.get(User, user_id, populate_existing=True)
        if user is None or user.telegram_chat_id is None:
            logger.info("telegram notification skipped: no linked chat", extra=_about(event))
            return
        chat_id = user.telegram_chat_id
        try:
            await self.bot.send_message(chat_id=chat_id, text=text)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after, "Telegram flood control (429)") from None
        except TelegramForbiddenError:
            await service.unlink_blocked_chat(session, user_id, chat_id)
            raise DropEvent("the user blocked the bot; the chat was unlinked") from None
        except (TelegramBadRequest, TelegramNotFound, TelegramMigrateToChat) as exc:
            # The same message to the same chat would be refused again: no retry.
            raise DropEvent(self._scrubbed(exc)) from None
        except TelegramAPIError as exc:
            raise BotApiFailed(self._scrubbed(exc)) from None
        logger.info("telegram notification sent", extra=_about(event))

    def _scrubbed(self, exc: Exception) -> str:
        """The error's text for logs and the outbox row, without the bot token."""
        return str(exc).replace(self.bot.token, "<token>")


def _session_of(event: OutboxEvent) -> AsyncSession:
    session = async_object_session(event)
    if session is None:  # pragma: no cover - dispatch_due hands over attached events
        raise RuntimeError("an outbox event must be handled in its dispatcher's session")
    return session


def _about(event: OutboxEvent) -> Mapping[str, str]:
    return {"topic": event.topic, "event_id": str(event.id)}
