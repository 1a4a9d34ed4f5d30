"""The commands of a linked chat: devices, signals and the affiliate program."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi import FastAPI

from tests.affiliates.conftest import Program
from tests.desk import Desk
from tests.helpers import Api, LoggedIn
from tests.telegram.conftest import BOT_USERNAME, Chat, message_update
from tradecast.config import Settings
from tradecast.kit import clock


@pytest.fixture
async def program(app: FastAPI, api: Api, desk: Desk, settings: Settings) -> Program:
    return Program(app, api, desk, settings)


async def linked(api: Api, chat: Chat) -> LoggedIn:
    user = await api.user()
    assert (await chat.link(api, user)).startswith("Linked")
    return user


async def test_devices_shows_each_device_by_name_online_and_last_seen(
    api: Api, desk: Desk, chat: Chat
) -> None:
    user = await linked(api, chat)
    assert (await chat.send("/devices")).startswith("No devices yet")
    polled = await desk.terminal(user, name="MT5 Frankfurt")
    await desk.terminal(user, name="cTrader backup")
    await polled.poll()
    reply = await chat.send("/devices")
    lines = reply.splitlines()
    assert lines[0] == "Your devices:"
    frankfurt = next(line for line in lines if "MT5 Frankfurt" in line)
    assert re.fullmatch(
        r"- MT5 Frankfurt: online, last seen \d{4}-\d\d-\d\d \d\d:\d\d UTC", frankfurt
    )
    assert "- cTrader backup: offline, last seen never" in lines


async def test_a_device_that_stopped_polling_is_offline(api: Api, desk: Desk, chat: Chat) -> None:
    user = await linked(api, chat)
    terminal = await desk.terminal(user, name="MT5")
    await terminal.poll()
    clock.advance(timedelta(seconds=301))
    assert "- MT5: offline, last seen" in await chat.send("/devices")


async def test_deleted_devices_are_not_listed(api: Api, desk: Desk, chat: Chat) -> None:
    user = await linked(api, chat)
    gone = await desk.terminal(user, name="Old box")
    response = await api.client.delete(f"/api/v1/devices/{gone.id}", headers=user.headers)
    assert response.status_code == 204
    assert (await chat.send("/devices")).startswith("No devices yet")


async def test_signals_lists_the_latest_open_ones(api: Api, desk: Desk, chat: Chat) -> None:
    await linked(api, chat)
    assert await chat.send("/signals") == "No open signals right now."
    await desk.publish(
        instrument="XAUUSD",
        side="sell",
        order_type="limit",
        entry_price="2400.5",
        stop_loss="2410",
        take_profit="2380",
    )
    for _ in range(5):
        await desk.publish(instrument="EURUSD")
    cancelled = await desk.publish(instrument="GBPUSD")
    admin = await desk.admin()
    await api.client.post(f"/api/v1/signals/{cancelled['id']}/cancel", headers=admin.headers)
    reply = await chat.send("/signals")
    lines = reply.splitlines()
    assert lines[0] == "Latest open signals (5 of 6):"
    assert all(line.startswith("- EURUSD buy market, until ") for line in lines[1:])
    assert "GBPUSD" not in reply


async def test_a_signal_line_carries_its_prices(api: Api, desk: Desk, chat: Chat) -> None:
    await linked(api, chat)
    await desk.publish(
        instrument="XAUUSD",
        side="sell",
        order_type="limit",
        entry_price="2400.50",
        stop_loss="2410",
        take_profit="2380",
        volume="0.10",
    )
    (line,) = (await chat.send("/signals")).splitlines()[1:]
    assert line.startswith("- XAUUSD sell limit, entry 2400.5, SL 2410, TP 2380, volume 0.1, until")


async def test_affiliate_registers_then_shows_the_status(
    api: Api, chat: Chat, program: Program
) -> None:
    user = await linked(api, chat)
    assert await chat.send("/referral_link") == (
        "This account is not an affiliate yet; send /affiliate to join."
    )
    joined = await chat.send("/affiliate")
    assert joined.startswith("You are now an affiliate. Your referral token: ")
    token = joined.split("token: ")[1].split()[0]
    status = await chat.send("/affiliate")
    assert status.startswith("Affiliate account: active, since ")
    assert f"Referral token: {token}" in status
    assert "Referrals: 0, tier 1 (0.5 %)" in status
    # The API sees the same affiliate account.
    link = await api.client.get("/api/v1/affiliates/link", headers=user.headers)
    assert link.json()["referral_token"] == token


async def test_referral_link_shows_the_token_and_both_links(
    api: Api, chat: Chat, settings: Settings
) -> None:
    user = await linked(api, chat)
    registered = await api.client.post("/api/v1/affiliates/register", headers=user.headers)
    token = registered.json()["referral_token"]
    reply = await chat.send("/referral_link")
    assert reply.splitlines() == [
        f"Your referral token: {token}",
        f"Sign-up link: {settings.public_base_url}/?ref={token}",
        f"Telegram link: https://t.me/{BOT_USERNAME}?start=ref_{token}",
    ]


async def test_stats_match_the_api(api: Api, chat: Chat, program: Program) -> None:
    affiliate, _, _ = await program.funded("2000")
    await chat.link(api, affiliate)
    api_stats = await program.stats(affiliate)
    assert api_stats["earned_total"] == "10"
    assert await chat.send("/stats") == "\n".join(
        [
            "Referrals: 1",
            "Tier: 1 (0.5 %)",
            "30-day referred volume: 2000",
            "Earned: 10.00 USD",
            "Available: 10.00 USD",
            "Pending payouts: 0.00 USD",
            "Paid out: 0.00 USD",
        ]
    )


async def _paid_once(program: Program, affiliate: LoggedIn, amount: str) -> dict[str, object]:
    response = await program.payout(affiliate, amount, bank_account="DE89 3704 0044 0532 0130 00")
    assert response.status_code == 201, response.text
    settled = await program.settle(response.json()["id"], "complete", reference="SEPA-1")
    assert settled.status_code == 200, settled.text
    body: dict[str, object] = settled.json()
    return body


async def test_the_first_payout_goes_through_the_api(
    api: Api, chat: Chat, program: Program
) -> None:
    affiliate, _, _ = await program.funded("20000")
    await chat.link(api, affiliate)
    reply = await chat.send("/payout 60")
    assert reply.startswith("Your first payout goes through the API")
    assert (await program.stats(affiliate))["pending_total"] == "0"


async def test_payout_pays_to_the_last_paid_account_with_the_api_rules(
    api: Api, chat: Chat, program: Program
) -> None:
    affiliate, _, earned = await program.funded("20000")
    assert earned == 200
    await chat.link(api, affiliate)
    await _paid_once(program, affiliate, "50")

    assert await chat.send("/payout 49.99") == "The minimum payout is 50 USD"
    assert await chat.send("/payout 150.01") == "The available balance is 150 USD"
    assert await chat.send("/payout 12.345") == "Send /payout AMOUNT, for example /payout 50.00"
    assert await chat.send("/payout") == "Send /payout AMOUNT, for example /payout 50.00"
    requested = await chat.send("/payout 60")
    assert requested == (
        "Payout of 60.00 USD requested to the account ending 3000; it is pending. "
        "You will get a message here when it is paid."
    )
    assert (await chat.send("/payout 60")).startswith("A payout is already pending")
    payouts = (await api.client.get("/api/v1/affiliates/payouts", headers=affiliate.headers)).json()
    newest = payouts["items"][0]
    assert (newest["amount"], newest["status"]) == ("60", "pending")
    assert newest["bank_account"] == "DE89 3704 0044 0532 0130 00"
    stats = await program.stats(affiliate)
    assert (stats["pending_total"], stats["available_balance"]) == ("60", "90")


async def test_a_redelivered_payout_message_requests_once(
    api: Api, chat: Chat, program: Program
) -> None:
    affiliate, _, _ = await program.funded("20000")
    await chat.link(api, affiliate)
    await _paid_once(program, affiliate, "50")
    update = message_update(chat.id, "/payout 70")
    first = await chat.deliver(update)
    again = await chat.deliver(update)
    assert first.json()["text"] == again.json()["text"]
    assert "requested" in again.json()["text"]
    payouts = (await api.client.get("/api/v1/affiliates/payouts", headers=affiliate.headers)).json()
    assert payouts["total"] == 2


async def test_payout_from_a_non_affiliate(api: Api, chat: Chat) -> None:
    await linked(api, chat)
    assert await chat.send("/payout 50") == (
        "This account is not an affiliate yet; send /affiliate to join."
    )
