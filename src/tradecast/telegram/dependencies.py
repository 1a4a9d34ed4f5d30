"""The webhook's guards: Telegram's secret token, and a configured bot."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request

from tradecast.config import AppSettings
from tradecast.telegram import runtime
from tradecast.telegram.errors import TelegramBotDisabled, WebhookSecretMismatch

logger = logging.getLogger("tradecast.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


async def verified_sender(request: Request, settings: AppSettings) -> None:
    """Only Telegram knows the secret given to setWebhook; without one configured,
    nobody can be told apart from Telegram, so nobody gets in."""
    expected = settings.telegram_webhook_secret
    sent = request.headers.get(SECRET_HEADER)
    if expected is None:
        logger.warning("telegram webhook refused: TELEGRAM_WEBHOOK_SECRET is not set")
        raise WebhookSecretMismatch()
    # Constant time, on bytes: compare_digest refuses non-ASCII str, and a header may hold any.
    if sent is None or not hmac.compare_digest(
        sent.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise WebhookSecretMismatch(f"Send the {SECRET_HEADER} given to setWebhook")
    return None


async def running_bot(request: Request) -> runtime.BotRuntime:
    bot: runtime.BotRuntime | None = getattr(request.app.state, "telegram", None)
    if bot is None:
        raise TelegramBotDisabled("Set TRADECAST_TELEGRAM_BOT_TOKEN to run the bot")
    return bot


RunningBot = Annotated[runtime.BotRuntime, Depends(running_bot)]
