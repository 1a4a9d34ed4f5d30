"""What the app holds of the bot, without importing aiogram until a token asks for it.

Importing aiogram builds several hundred pydantic models, which takes seconds:
every CLI command and every server without Telegram would pay for it at start.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

from tradecast.config import Settings
from tradecast.outbox.service import Handler


class BotRuntime(Protocol):
    async def answer(self, body: bytes, **data: Any) -> dict[str, Any]:
        """Handle one webhook body; the reply as a Bot API call, or ``{}``."""
        ...

    async def close(self) -> None: ...


def start_bot(
    settings: Settings, outbox_handlers: MutableMapping[str, Handler]
) -> BotRuntime | None:
    """The bot, with its notifications registered as outbox handlers, when a token is
    configured; ``None`` leaves Telegram switched off (its events wait in the outbox)."""
    if settings.telegram_bot_token is None:
        return None
    from tradecast.telegram.bot import TelegramBot

    return TelegramBot.start(settings, outbox_handlers)
