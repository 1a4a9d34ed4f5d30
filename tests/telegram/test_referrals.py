"""The Telegram referral path (SPEC §8): /start ref_TOKEN, then sign-up and /link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI

from tests.affiliates.conftest import Program
from tests.desk import Desk
from tests.helpers import Api
from tests.telegram.conftest import Chat
from tradecast.config import Settings
from tradecast.kit import clock


@pytest.fixture
async def program(app: FastAPI, api: Api, desk: Desk, settings: Settings) -> Program:
    return Program(app, api, desk, settings)


async def test_start_with_a_referral_then_signing_up_and_linking_refers_the_account(
    chat: Chat, program: Program
) -> None:
    affiliate, token = await program.affiliate()
    welcome = await chat.send(f"/start ref_{token}")
    assert f"Sign up at http://127.0.0.1:8000/?ref={token}" in welcome
    clock.advance(timedelta(minutes=5))
    # Signs up without the token, from an address of their own: only the chat knows.
    trader = await program.referred(None)
    assert (await chat.link(program.api, trader)).startswith("Linked")
    assert (await program.stats(affiliate))["referral_count"] == 1
    admin = await program.desk.admin()
    referrals = await program.http.get("/api/v1/admin/referrals", headers=admin.headers)
    (referral,) = referrals.json()["items"]
    assert referral["referred_user_id"] == trader.id
    assert referral["source"] == "telegram"
    events = await program.http.get(
        "/api/v1/admin/audit", params={"action": "telegram.linked"}, headers=admin.headers
    )
    assert events.json()["items"][0]["metadata"]["referral_attached"] is True


async def test_an_account_older_than_the_start_is_not_claimed(chat: Chat, program: Program) -> None:
    affiliate, token = await program.affiliate()
    customer = await program.referred(None)
    clock.advance(timedelta(minutes=1))
    await chat.send(f"/start ref_{token}")
    assert (await chat.link(program.api, customer)).startswith("Linked")
    assert (await program.stats(affiliate))["referral_count"] == 0


async def test_the_first_deep_link_of_a_chat_wins(chat: Chat, program: Program) -> None:
    first, first_token = await program.affiliate()
    second, second_token = await program.affiliate()
    await chat.send(f"/start ref_{first_token}")
    later = await chat.send(f"/start ref_{second_token}")
    assert f"?ref={first_token}" in later
    clock.advance(timedelta(seconds=2))
    trader = await program.referred(None)
    await chat.link(program.api, trader)
    assert (await program.stats(first))["referral_count"] == 1
    assert (await program.stats(second))["referral_count"] == 0


async def test_a_referrer_from_sign_up_is_kept(chat: Chat, program: Program) -> None:
    first, first_token = await program.affiliate()
    second, second_token = await program.affiliate()
    await chat.send(f"/start ref_{second_token}")
    clock.advance(timedelta(seconds=2))
    trader = await program.referred(first_token)
    await chat.link(program.api, trader)
    assert (await program.stats(first))["referral_count"] == 1
    assert (await program.stats(second))["referral_count"] == 0


@pytest.mark.parametrize("payload", ["ref_", "ref_has space", "ref_" + "x" * 61, "promo42"])
async def test_malformed_deep_links_are_ignored(chat: Chat, program: Program, payload: str) -> None:
    reply = await chat.send(f"/start {payload}")
    assert "?ref=" not in reply
    assert reply.startswith("Welcome to tradecast")


async def test_an_unknown_token_refers_nobody_and_blocks_nothing(
    chat: Chat, program: Program
) -> None:
    await chat.send("/start ref_no-such-token")
    clock.advance(timedelta(seconds=2))
    trader = await program.referred(None)
    assert (await chat.link(program.api, trader)).startswith("Linked")
    admin = await program.desk.admin()
    referrals = await program.http.get("/api/v1/admin/referrals", headers=admin.headers)
    assert referrals.json()["total"] == 0
