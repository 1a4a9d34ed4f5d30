"""The Telegram path (SPEC §8), as the bot's /link handler calls it once a chat that
opened the bot with ``/start ref_TOKEN`` links an account."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from tests.affiliates.conftest import Program
from tests.helpers import LoggedIn
from tradecast.affiliates.service import attach_referral_from_telegram
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.users.models import User


async def _link(program: Program, user: LoggedIn, token: str, started_at: datetime) -> bool:
    db = Database(program.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            account = await session.get(User, uuid.UUID(user.id))
            assert account is not None
            attached = await attach_referral_from_telegram(
                session, program.settings, account, token, started_at
            )
            await session.commit()
    finally:
        await db.dispose()
    return attached


async def test_an_account_created_after_the_start_becomes_referred(program: Program) -> None:
    affiliate, token = await program.affiliate()
    started_at = clock.utcnow()
    clock.advance(timedelta(minutes=3))
    trader = await program.referred(None)
    assert await _link(program, trader, token, started_at) is True
    await program.fill(trader, "2000")
    stats = await program.stats(affiliate)
    assert (stats["referral_count"], stats["earned_total"]) == (1, "10")
    admin = await program.desk.admin()
    referrals = await program.http.get("/api/v1/admin/referrals", headers=admin.headers)
    (referral,) = referrals.json()["items"]
    assert (referral["source"], referral["status"]) == ("telegram", "active")


async def test_an_account_older_than_the_start_is_not_claimed(program: Program) -> None:
    affiliate, token = await program.affiliate()
    customer = await program.referred(None)
    clock.advance(timedelta(minutes=3))
    assert await _link(program, customer, token, clock.utcnow()) is False
    assert (await program.stats(affiliate))["referral_count"] == 0


async def test_an_already_referred_account_keeps_its_referrer(program: Program) -> None:
    first, first_token = await program.affiliate()
    second, second_token = await program.affiliate()
    started_at = clock.utcnow()
    clock.advance(timedelta(seconds=1))
    trader = await program.referred(first_token)
    assert await _link(program, trader, second_token, started_at) is False
    assert await _link(program, trader, first_token, started_at) is False
    assert (await program.stats(first))["referral_count"] == 1
    assert (await program.stats(second))["referral_count"] == 0


async def test_unknown_and_own_tokens_attach_nothing(program: Program) -> None:
    started_at = clock.utcnow()
    clock.advance(timedelta(seconds=1))
    affiliate, token = await program.affiliate()
    assert await _link(program, affiliate, token, started_at) is False
    trader = await program.referred(None)
    assert await _link(program, trader, "no-such-token", started_at) is False
    assert (await program.stats(affiliate))["referral_count"] == 0


async def test_the_telegram_path_flags_like_the_sign_up(program: Program) -> None:
    started_at = clock.utcnow()
    clock.advance(timedelta(seconds=1))
    affiliate, token = await program.affiliate()
    # The same address as the affiliate's sign-up.
    twin = await program.api.user(f"t-{uuid.uuid4().hex[:8]}@gmail.com")
    assert await _link(program, twin, token, started_at) is True
    await program.fill(twin, "2000")
    assert (await program.stats(affiliate))["earned_total"] == "0"
    admin = await program.desk.admin()
    events = await program.http.get(
        "/api/v1/admin/audit", params={"action": "referral.flagged"}, headers=admin.headers
    )
    (event,) = events.json()["items"]
    assert event["metadata"]["source"] == "telegram"
