"""Linking chats to accounts, the deep-link referral, and the bot's payout path.

Decisions where the SPEC is silent (docs/TELEGRAM.md has them for users):

- One chat belongs to one account and one account to one chat (the unique
  ``users.telegram_chat_id``). A code links the chat it is sent from to the
  code's account, *moving* the link when either side was linked before: the
  chat's previous account is unlinked, and the account's previous chat stops
  receiving messages. The code proves the account, the chat proves itself.
- A chat remembers the first ``/start ref_TOKEN`` it opened; every account
  linked from it later is offered to ``attach_referral_from_telegram``, which
  keeps the SPEC's conditions (no referrer yet, created after that /start).
- A new code discards the account's earlier unused ones: one live code at a time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.models import Affiliate
from tradecast.affiliates.service import attach_referral_from_telegram
from tradecast.affiliates.service import payouts as affiliate_payouts
from tradecast.affiliates.service.payouts import PayoutRequest, Requested
from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.ratelimit import PAYOUT, RateLimiter
from tradecast.telegram.errors import (
    ChatLinkRaced,
    LinkCodeExpired,
    LinkCodeUnknown,
    LinkCodeUsed,
    NoPayoutAccount,
)
from tradecast.telegram.models import TelegramDeepLink, TelegramLinkCode
from tradecast.telegram.repository import TelegramRepository
from tradecast.users.models import User

LINK_CODE_TTL = timedelta(minutes=10)
# Crockford's base32: no I, L, O or U, so a code read aloud or retyped survives.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# 12 characters, 60 bits: out of reach of guessing within ten minutes, and of an
# offline search of a leaked hash within any time that matters for a 10-minute code.
CODE_LENGTH = 12
CODE_GROUP = 4
# Telegram allows 64 characters after /start; "ref_" takes four.
_LOOK_ALIKES = str.maketrans("OIL", "011")
REFERRAL_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,60}")


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Linked:
    user: User
    # The account this chat was linked to before, now unlinked; None if none or the same.
    replaced_user_id: uuid.UUID | None
    referral_attached: bool
    # The code had already linked this chat (Telegram delivered the update again).
    repeated: bool = False


def new_link_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def normalized_code(code: str) -> str:
    """Case, spaces and dashes do not matter; Crockford's look-alikes map to their digits."""
    cleaned = re.sub(r"[\s-]", "", code).upper()
    return cleaned.translate(_LOOK_ALIKES)


def code_digest(code: str) -> str:
    return hashlib.sha256(normalized_code(code).encode("ascii", "replace")).hexdigest()


async def issue_link_code(session: AsyncSession, user: User) -> IssuedCode:
    repo = TelegramRepository(session)
    await repo.discard_unused_codes(user.id)
    code = new_link_code()
    now = clock.utcnow()
    expires_at = now + LINK_CODE_TTL
    repo.add_code(
        TelegramLinkCode(
            id=uuid.uuid4(),
            user_id=user.id,
            code_hash=code_digest(code),
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return IssuedCode(code, expires_at)


async def account_of_chat(session: AsyncSession, chat_id: int) -> User | None:
    return await TelegramRepository(session).account_of_chat(chat_id)


async def link_chat(session: AsyncSession, settings: Settings, chat_id: int, code: str) -> Linked:
    """Bind ``chat_id`` to the account that created ``code``; see the module's decisions."""
    repo = TelegramRepository(session)
    digest = code_digest(code)
    now = clock.utcnow()
    user_id = await repo.consume_code(digest, chat_id, now)
    if user_id is None:
        return await _code_refused(repo, digest, chat_id, now)
    # The account's row lock orders this link against an unlink by the notifier.
    user = await repo.lock_user(user_id)
    if user is None:  # pragma: no cover - the code is deleted with its account
        raise LinkCodeUnknown("This code is not known; create a new one")
    previous_chat_id = user.telegram_chat_id
    try:
        # The unique telegram_chat_id settles two links of one chat racing each other.
        async with session.begin_nested():
            replaced = await _release_chat(session, repo, chat_id, user, now)
            user.telegram_chat_id = chat_id
            user.updated_at = now
            await session.flush()
    except IntegrityError as exc:
        raise ChatLinkRaced("This chat was linked at the same moment; send /link again") from exc
    attached = await _attach_deep_link_referral(session, settings, repo, chat_id, user)
    audit.record(
        session,
        "telegram.linked",
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        metadata={
            "chat_id": chat_id,
            "previous_chat_id": previous_chat_id,
            "replaced_user_id": str(replaced.id) if replaced else None,
            "referral_attached": attached,
        },
    )
    return Linked(user, replaced.id if replaced else None, attached)


async def _code_refused(
    repo: TelegramRepository, digest: str, chat_id: int, now: datetime
) -> Linked:
    found = await repo.code_by_hash(digest)
    if found is None:
        raise LinkCodeUnknown("This code is not known; check it or create a new one")
    if found.used_at is not None:
        if found.used_by_chat_id == chat_id:
            user = await repo.account_of_chat(chat_id)
            if user is not None and user.id == found.user_id:
                return Linked(user, None, referral_attached=False, repeated=True)
        raise LinkCodeUsed("This code was already used; create a new one")
    raise LinkCodeExpired("This code has expired (codes live 10 minutes); create a new one")


async def _release_chat(
    session: AsyncSession, repo: TelegramRepository, chat_id: int, user: User, now: datetime
) -> User | None:
    """Unlink the chat's current account, if it is another one than ``user``.

    Flushed on its own: within one flush the unique index could see the chat on
    both rows at once, depending on the order in which the updates run.
    """
    other = await repo.account_of_chat(chat_id, for_update=True)
    if other is None or other.id == user.id:
        return None
    other.telegram_chat_id = None
    other.updated_at = now
    await session.flush()
    audit.record(
        session,
        "telegram.unlinked",
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="user",
        target_id=other.id,
        metadata={"chat_id": chat_id, "reason": "chat_linked_to_another_account"},
    )
    return other


async def _attach_deep_link_referral(
    session: AsyncSession, settings: Settings, repo: TelegramRepository, chat_id: int, user: User
) -> bool:
    deep_link = await repo.deep_link_of(chat_id)
    if deep_link is None:
        return False
    return await attach_referral_from_telegram(
        session, settings, user, deep_link.referral_token, deep_link.started_at
    )


async def remember_deep_link(
    session: AsyncSession, chat_id: int, payload: str | None
) -> TelegramDeepLink | None:
    """Record ``/start ref_TOKEN`` unless the chat opened a deep link before; returns
    the chat's deep link (the first one), if it has any."""
    repo = TelegramRepository(session)
    earlier = await repo.deep_link_of(chat_id)
    token = payload.removeprefix("ref_") if payload and payload.startswith("ref_") else None
    if earlier is not None or token is None or not REFERRAL_TOKEN.fullmatch(token):
        return earlier
    deep_link = TelegramDeepLink(chat_id=chat_id, referral_token=token, started_at=clock.utcnow())
    try:
        # Two /start updates of one chat racing: the primary key keeps the first.
        async with session.begin_nested():
            repo.add_deep_link(deep_link)
            await session.flush()
    except IntegrityError:
        return await repo.deep_link_of(chat_id)
    return deep_link


async def unlink_blocked_chat(session: AsyncSession, user_id: uuid.UUID, chat_id: int) -> bool:
    """The user blocked the bot: unlink the chat (unless the account moved on meanwhile)."""
    if not await TelegramRepository(session).unlink_if_still(user_id, chat_id, clock.utcnow()):
        return False
    audit.record(
        session,
        "telegram.unlinked",
        actor_type=ActorType.SYSTEM,
        target_type="user",
        target_id=user_id,
        metadata={"chat_id": chat_id, "reason": "bot_blocked"},
    )
    return True


async def request_payout(
    session: AsyncSession,
    settings: Settings,
    limiter: RateLimiter,
    affiliate: Affiliate,
    amount: Decimal,
    idempotency_key: str,
) -> Requested:
    """``/payout AMOUNT``: the API's payout rules, paid to the bank account of the
    affiliate's most recent paid payout (a chat is no place to type an IBAN)."""
    bank_account = await TelegramRepository(session).last_paid_bank_account(affiliate.id)
    if bank_account is None:
        raise NoPayoutAccount(
            "Your first payout goes through the API (POST /api/v1/affiliates/payout with "
            "amount and bank_account); once one is paid, /payout here pays to that account"
        )
    # The budget the API's payout endpoint counts in: one request per 10 s per affiliate.
    await limiter.hit(PAYOUT, str(affiliate.id))
    wanted = PayoutRequest(amount, bank_account, idempotency_key)
    return await affiliate_payouts.request(session, settings, affiliate, wanted)
