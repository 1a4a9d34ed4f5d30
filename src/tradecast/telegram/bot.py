"""The aiogram bot: its Bot API client, its dispatcher, and webhook replies as JSON."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.utils.token import TokenValidationError
from pydantic import ValidationError

from tradecast.config import ConfigurationError, Settings
from tradecast.errors import UnprocessableEntity
from tradecast.outbox.service import Handler
from tradecast.telegram.errors import UpdateTimedOut
from tradecast.telegram.handlers import build_dispatcher
from tradecast.telegram.notifications import Notifier

# Bot API calls are made by the outbox dispatcher while it holds its batch's
# transaction: a hung call must give up long before the 60 s aiogram default.
REQUEST_TIMEOUT_S = 10.0
# Telegram gives up on a webhook call after about a minute and delivers the update
# again; an update still running after this long is cancelled and rolled back first.
UPDATE_DEADLINE_S = 20.0


@dataclass(frozen=True)
class TelegramBot:
    """The running bot (a ``runtime.BotRuntime``), while TELEGRAM_BOT_TOKEN is set."""

    bot: Bot
    dispatcher: Dispatcher

    @classmethod
    def start(
        cls, settings: Settings, outbox_handlers: MutableMapping[str, Handler]
    ) -> TelegramBot:
        bot = make_bot(settings)
        outbox_handlers.update(Notifier(bot).handlers())
        return cls(bot, build_dispatcher())

    async def answer(self, body: bytes, **data: Any) -> dict[str, Any]:
        """Handle one update with ``data`` (the unit of work, settings, ...) given to the
        handlers; the reply as a Bot API call for the webhook response, or ``{}``."""
        update = self._parse(body)
        try:
            # feed_update rather than aiogram's feed_webhook_update: past its deadline that
            # one leaves the handler running in the background on the request's session,
            # after the session has been committed and closed.
            async with asyncio.timeout(UPDATE_DEADLINE_S):
                result = await self.dispatcher.feed_update(self.bot, update, **data)
        except TimeoutError as exc:
            raise UpdateTimedOut() from exc
        return webhook_reply(self.bot, result) if isinstance(result, TelegramMethod) else {}

    def _parse(self, body: bytes) -> Update:
        try:
            return Update.model_validate(orjson.loads(body), context={"bot": self.bot})
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise UnprocessableEntity("The body is not a Telegram update") from exc

    async def close(self) -> None:
        await self.bot.session.close()


def make_bot(settings: Settings) -> Bot:
    """A Bot API client at ``TELEGRAM_API_BASE``; ``ConfigurationError`` without a valid token."""
    if settings.telegram_bot_token is None:
        raise ConfigurationError("TRADECAST_TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base), timeout=REQUEST_TIMEOUT_S
    )
    try:
        return Bot(token=settings.telegram_bot_token.get_secret_value(), session=session)
    except TokenValidationError:
        # Neither quoted nor chained: no trace of the token may reach a log.
        raise ConfigurationError(
            "TRADECAST_TELEGRAM_BOT_TOKEN is not a bot token (BotFather gives '<id>:<secret>')"
        ) from None


def webhook_reply(bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
    """A Bot API call as the JSON body of a webhook response (Telegram runs it for us).

    aiogram's own webhook handler writes the same fields as multipart form data,
    each prepared by the session (defaults resolved, enums and nested objects
    flattened); JSON keeps numbers and booleans native instead of as text.
    """
    files: dict[str, Any] = {}
    reply: dict[str, Any] = {"method": method.__api_method__}
    for name, value in method.model_dump(warnings=False).items():
        prepared = bot.session.prepare_value(value, bot=bot, files=files, _dumps_json=False)
        if prepared is not None:
            reply[name] = prepared
    if files:  # pragma: no cover - the bot only ever answers with text
        raise ValueError("a webhook reply cannot upload files")
    return reply
