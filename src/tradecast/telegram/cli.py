"""``tradecast telegram set-webhook``: point Telegram at this server's webhook."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tradecast.config import ConfigurationError, Settings, get_settings

telegram_app = typer.Typer(help="The Telegram bot.", no_args_is_help=True)
# soft_wrap: URLs and Bot API messages must come out whole, not folded at the terminal width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

WEBHOOK_PATH = "/telegram/webhook"
# What the Bot API accepts as secret_token.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The webhook answers message updates only; asking for nothing else spares both sides.
ALLOWED_UPDATES = ["message"]


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _refuse(reason: str) -> typer.Exit:
    err_console.print(f"[red]{reason}[/red]")
    return typer.Exit(2)


@telegram_app.command("set-webhook")
def set_webhook(
    url: Annotated[
        str, typer.Option(help=f"The public HTTPS URL of this server's {WEBHOOK_PATH}.")
    ],
    drop_pending_updates: Annotated[
        bool, typer.Option(help="Discard the updates Telegram holds for the bot.")
    ] = False,
) -> None:
    """Register the webhook with Telegram through the Bot API, with TELEGRAM_WEBHOOK_SECRET
    as the secret token Telegram sends back on every update."""
    settings = _settings()
    if settings.telegram_bot_token is None:
        raise _refuse("TRADECAST_TELEGRAM_BOT_TOKEN is not set: create the bot with BotFather")
    if settings.telegram_webhook_secret is None:
        raise _refuse("TRADECAST_TELEGRAM_WEBHOOK_SECRET is not set: the webhook would be open")
    secret = settings.telegram_webhook_secret.get_secret_value()
    if not SECRET_TOKEN.fullmatch(secret):
        raise _refuse(
            "TRADECAST_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"
        )
    if not url.startswith("https://"):
        raise _refuse("Telegram delivers webhooks over HTTPS only: --url must start https://")
    if not url.rstrip("/").endswith(WEBHOOK_PATH):
        err_console.print(f"[yellow]note: the server's webhook path is {WEBHOOK_PATH}[/yellow]")
    username = asyncio.run(_set_webhook(settings, url, secret, drop_pending_updates))
    console.print(
        f"webhook of @{username} set to {escape(url)} with the secret token; "
        f"updates: {', '.join(ALLOWED_UPDATES)}"
        + ("; pending updates dropped" if drop_pending_updates else "")
    )
    if username.lower() != settings.telegram_bot_username.lower():
        err_console.print(
            f"[yellow]TRADECAST_TELEGRAM_BOT_USERNAME is {settings.telegram_bot_username}, "
            f"but the token belongs to @{username}: referral links name the wrong bot[/yellow]"
        )


async def _set_webhook(
    settings: Settings, url: str, secret: str, drop_pending_updates: bool
) -> str:
    # Imported here: aiogram takes seconds to load, which no other command should pay.
    from aiogram.exceptions import TelegramAPIError

    from tradecast.telegram.bot import make_bot

    try:
        bot = make_bot(settings)
    except ConfigurationError as exc:
        raise _refuse(str(exc)) from None
    try:
        me = await bot.get_me()
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending_updates,
        )
    except TelegramAPIError as exc:
        reason = escape(str(exc).replace(bot.token, "<token>"))
        err_console.print(f"[red]the Bot API refused: {reason}[/red]")
        raise typer.Exit(1) from None
    finally:
        await bot.session.close()
    return me.username or str(me.id)
