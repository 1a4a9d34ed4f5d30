"""The bot's commands, as an aiogram router.

Each update arrives with the webhook request's unit of work (``session``) and
the app's ``settings`` and ``limiter`` in the handler data; a handler returns
its reply as an unawaited Bot API call, which the webhook answers Telegram with.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, cast

from aiogram import BaseMiddleware, Dispatcher, F, Router
from aiogram.dispatcher.flags import get_flag
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import Message, TelegramObject
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.errors import AffiliateNotFound
from tradecast.affiliates.models import Affiliate
from tradecast.affiliates.service import accounts
from tradecast.config import Settings
from tradecast.devices import service as devices
from tradecast.errors import AppError
from tradecast.kit import clock
from tradecast.kit.decimals import parse_money
from tradecast.kit.pagination import PageParams
from tradecast.kit.request_context import current
from tradecast.ratelimit import RateLimiter
from tradecast.signals import service as signals
from tradecast.signals.models import SignalStatus
from tradecast.telegram import replies, service
from tradecast.users.models import User

logger = logging.getLogger("tradecast.telegram")

# Handler flag: the command acts on the linked account (the middleware answers
# unlinked chats with how to link, and hands the others ``account``).
NEEDS_ACCOUNT = "needs_account"
LATEST_SIGNALS = 5
# The database being unreachable is the one failure worth Telegram's redelivery:
# these propagate and the webhook answers 503 (see errors.py).
_RETRYABLE = (OperationalError, InterfaceError, PoolTimeout, ConnectionError)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ChatAccount(BaseMiddleware):
    """Finds the chat's account, enforces ``needs_account``, and turns a refused
    command into a reply with the reason, its changes rolled back."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        message = cast(Message, event)
        session: AsyncSession = data["session"]
        account = await service.account_of_chat(session, message.chat.id)
        context = current()
        if account is not None and context is not None:
            context.user_id = str(account.id)
        if account is None and get_flag(data, NEEDS_ACCOUNT):
            return message.answer(replies.NOT_LINKED)
        data["account"] = account
        try:
            return await handler(event, data)
        except AppError as refused:
            await session.rollback()
            return message.answer(refused.detail)
        except _RETRYABLE:
            raise
        except Exception:
            # Answered rather than raised: Telegram would redeliver this update (and
            # hold back the chat's later ones) for as long as it keeps failing.
            logger.exception("telegram command failed", extra={"update_kind": "message"})
            await session.rollback()
            return message.answer(replies.SORRY)


async def start(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    settings: Settings,
    account: User | None,
) -> SendMessage:
    deep_link = await service.remember_deep_link(session, message.chat.id, command.args)
    signup_url = settings.public_base_url.rstrip("/") + "/"
    if deep_link is not None:
        # Signing up on the web through this link refers the account right away.
        signup_url += f"?ref={deep_link.referral_token}"
    return message.answer(replies.welcome(account, signup_url))


async def link(
    message: Message, command: CommandObject, session: AsyncSession, settings: Settings
) -> SendMessage:
    if not command.args:
        return message.answer(replies.LINK_USAGE)
    done = await service.link_chat(session, settings, message.chat.id, command.args)
    return message.answer(
        replies.linked(
            done.user, replaced=done.replaced_user_id is not None, repeated=done.repeated
        )
    )


async def show_devices(
    message: Message, session: AsyncSession, settings: Settings, account: User
) -> SendMessage:
    now = clock.utcnow()
    active = [d for d in await devices.list_devices(session, account) if d.is_active]
    online = {d.id: devices.is_online(d, now, settings.device_online_s) for d in active}
    return message.answer(replies.devices(active, online))


async def show_signals(message: Message, session: AsyncSession) -> SendMessage:
    found, total = await signals.list_signals(
        session, SignalStatus.OPEN, PageParams(LATEST_SIGNALS, 0), now=clock.utcnow()
    )
    return message.answer(replies.signals(found, total))


async def affiliate(
    message: Message, session: AsyncSession, settings: Settings, account: User
) -> SendMessage:
    try:
        found = await accounts.affiliate_of(session, account)
    except AffiliateNotFound:
        return message.answer(replies.affiliate_joined(await accounts.register(session, account)))
    stats = await accounts.stats(session, settings, found)
    return message.answer(replies.affiliate_status(found, stats))


async def _affiliate_or_none(session: AsyncSession, account: User) -> Affiliate | None:
    try:
        return await accounts.affiliate_of(session, account)
    except AffiliateNotFound:
        return None


async def referral_link(
    message: Message, session: AsyncSession, settings: Settings, account: User
) -> SendMessage:
    found = await _affiliate_or_none(session, account)
    if found is None:
        return message.answer(replies.NOT_AFFILIATE)
    return message.answer(replies.referral_link(accounts.link(settings, found)))


async def stats(
    message: Message, session: AsyncSession, settings: Settings, account: User
) -> SendMessage:
    found = await _affiliate_or_none(session, account)
    if found is None:
        return message.answer(replies.NOT_AFFILIATE)
    figures = await accounts.stats(session, settings, found)
    return message.answer(replies.stats(figures, settings.currency))


async def payout(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    settings: Settings,
    limiter: RateLimiter,
    account: User,
) -> SendMessage:
    amount = _amount(command.args)
    if amount is None:
        return message.answer(replies.PAYOUT_USAGE)
    found = await _affiliate_or_none(session, account)
    if found is None:
        return message.answer(replies.NOT_AFFILIATE)
    # The message is the request: Telegram redelivering it finds the payout it made.
    key = f"telegram:{message.chat.id}:{message.message_id}"
    requested = await service.request_payout(session, settings, limiter, found, amount, key)
    return message.answer(replies.payout_requested(requested.payout))


def _amount(args: str | None) -> Decimal | None:
    try:
        return parse_money((args or "").strip())
    except ValueError:
        return None


async def show_help(message: Message) -> SendMessage:
    return message.answer(replies.HELP)


async def unknown(message: Message) -> SendMessage:
    return message.answer(replies.UNKNOWN)


def _command(name: str) -> Command:
    # Only private chats reach the router, so a mention can only name this bot:
    # ignoring it spares the getMe call the check would make inside the webhook.
    return Command(name, ignore_mention=True)


def build_router() -> Router:
    router = Router(name="tradecast")
    # Groups would show an account's devices and balance to every member.
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.middleware(ChatAccount())
    account = {NEEDS_ACCOUNT: True}
    router.message.register(start, CommandStart(ignore_mention=True))
    router.message.register(link, _command("link"))
    router.message.register(show_help, _command("help"))
    router.message.register(show_devices, _command("devices"), flags=account)
    router.message.register(show_signals, _command("signals"), flags=account)
    router.message.register(affiliate, _command("affiliate"), flags=account)
    router.message.register(referral_link, _command("referral_link"), flags=account)
    router.message.register(stats, _command("stats"), flags=account)
    router.message.register(payout, _command("payout"), flags=account)
    router.message.register(unknown)
    return router


def build_dispatcher() -> Dispatcher:
    """A fresh dispatcher per app: an aiogram router belongs to one parent only."""
    dispatcher = Dispatcher()
    dispatcher.include_router(build_router())
    return dispatcher
