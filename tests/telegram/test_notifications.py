"""Notifications through the outbox to the linked chat, against a fake Bot API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from tests.affiliates.conftest import Program
from tests.conftest import make_settings
from tests.desk import Desk, Terminal
from tests.helpers import Api, LoggedIn
from tests.telegram.conftest import Chat, dispatch, telegram_linked
from tests.telegram.fake_bot_api import SERVER_ERROR, FakeBotApi, flood
from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.main import create_app
from tradecast.outbox.models import OutboxEvent


@pytest.fixture
async def program(app: FastAPI, api: Api, desk: Desk, settings: Settings) -> Program:
    return Program(app, api, desk, settings)


async def reconcile(desk: Desk) -> dict[str, Any]:
    admin = await desk.admin()
    response = await desk.api.client.post("/api/v1/reconciliation/run", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def failed_execution(desk: Desk, owner: LoggedIn, instrument: str = "XAUUSD") -> Terminal:
    """``owner``'s terminal reports an error for a fresh signal."""
    terminal = await desk.terminal(owner, name="MT5 Frankfurt")
    signal = await desk.publish(instrument=instrument, side="sell")
    assert signal["id"] in await terminal.pending_ids()
    response = await terminal.error(signal["id"], code=10019, message="Not enough money")
    assert response.status_code == 201, response.text
    return terminal


async def linked_user(api: Api, chat: Chat) -> LoggedIn:
    user = await api.user()
    assert (await chat.link(api, user)).startswith("Linked")
    return user


async def events(settings: Settings) -> list[OutboxEvent]:
    db = Database(settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            return list((await session.scalars(select(OutboxEvent))).all())
    finally:
        await db.dispose()


async def test_an_execution_error_is_pushed_to_the_owners_chat(
    app: FastAPI, api: Api, desk: Desk, chat: Chat, bot_api: FakeBotApi
) -> None:
    user = await linked_user(api, chat)
    await failed_execution(desk, user)
    assert (await reconcile(desk))["created"]["execution_error"] == 1
    assert await dispatch(app) == 1
    (text,) = bot_api.delivered(chat.id)
    assert text.startswith(
        "Reconciliation issue on device MT5 Frankfurt: execution error for XAUUSD sell."
    )
    assert "The terminal reported 10019: Not enough money" in text
    (call,) = bot_api.calls_of("sendMessage")
    assert call.token == "123456:TEST-bot-token-for-the-fake-api"
    assert await dispatch(app) == 0
    assert len(bot_api.delivered(chat.id)) == 1


async def test_a_bot_api_failure_is_retried_and_the_message_sent_once(
    app: FastAPI, api: Api, desk: Desk, chat: Chat, bot_api: FakeBotApi, settings: Settings
) -> None:
    user = await linked_user(api, chat)
    await failed_execution(desk, user, instrument="EURUSD")
    await reconcile(desk)
    bot_api.fail_next("sendMessage", SERVER_ERROR)
    assert await dispatch(app) == 0
    assert len(bot_api.attempts(chat.id)) == 1
    assert bot_api.delivered(chat.id) == []
    (event,) = await events(settings)
    assert (event.attempts, event.delivered_at) == (1, None)
    assert "Internal Server Error" in (event.last_error or "")
    # Not before the backoff has passed.
    assert await dispatch(app) == 0
    assert len(bot_api.attempts(chat.id)) == 1
    clock.advance(timedelta(seconds=3))
    assert await dispatch(app) == 1
    clock.advance(timedelta(hours=1))
    assert await dispatch(app) == 0
    (text,) = bot_api.delivered(chat.id)
    assert "EURUSD" in text
    assert len(bot_api.attempts(chat.id)) == 2


async def test_flood_control_is_honoured(
    app: FastAPI, api: Api, desk: Desk, chat: Chat, bot_api: FakeBotApi
) -> None:
    user = await linked_user(api, chat)
    await failed_execution(desk, user)
    await reconcile(desk)
    bot_api.fail_next("sendMessage", flood(retry_after=40))
    assert await dispatch(app) == 0
    # The outbox's own backoff after a first failure is 2 s; Telegram asked for 40.
    clock.advance(timedelta(seconds=30))
    assert await dispatch(app) == 0
    assert len(bot_api.attempts(chat.id)) == 1
    clock.advance(timedelta(seconds=11))
    assert await dispatch(app) == 1
    assert len(bot_api.delivered(chat.id)) == 1


async def test_a_chat_that_blocked_the_bot_is_unlinked_and_not_messaged_again(
    app: FastAPI, api: Api, desk: Desk, chat: Chat, bot_api: FakeBotApi, settings: Settings
) -> None:
    user = await linked_user(api, chat)
    terminal = await failed_execution(desk, user)
    await reconcile(desk)
    bot_api.block(chat.id)
    assert await dispatch(app) == 0
    assert len(bot_api.attempts(chat.id)) == 1
    (event,) = await events(settings)
    assert event.dead_at is not None
    assert await telegram_linked(api, user) is False

    # A later issue of the same user finds no chat: nothing is attempted.
    signal = await desk.publish(instrument="GBPUSD")
    await terminal.poll()
    await terminal.error(signal["id"])
    await reconcile(desk)
    assert await dispatch(app) == 1
    assert len(bot_api.attempts(chat.id)) == 1
    admin = await desk.admin()
    audit = await api.client.get(
        "/api/v1/admin/audit", params={"action": "telegram.unlinked"}, headers=admin.headers
    )
    (unlinked,) = audit.json()["items"]
    assert unlinked["metadata"]["reason"] == "bot_blocked"
    # Unblocking and linking again resumes notifications.
    assert (await chat.link(api, user)).startswith("Linked")


async def test_two_events_for_a_blocked_chat_cost_one_attempt(
    app: FastAPI, api: Api, desk: Desk, chat: Chat, bot_api: FakeBotApi
) -> None:
    user = await linked_user(api, chat)
    terminal = await failed_execution(desk, user)
    signal = await desk.publish(instrument="GBPUSD")
    await terminal.poll()
    await terminal.error(signal["id"])
    assert (await reconcile(desk))["created"]["execution_error"] == 2
    bot_api.block(chat.id)
    assert await dispatch(app) == 1  # the second finds the chat unlinked: nothing to do
    assert len(bot_api.attempts(chat.id)) == 1


async def test_an_issue_of_a_user_without_a_chat_is_skipped_as_delivered(
    app: FastAPI, api: Api, desk: Desk, bot_api: FakeBotApi, settings: Settings
) -> None:
    user = await api.user()
    await failed_execution(desk, user)
    await reconcile(desk)
    assert await dispatch(app) == 1
    (event,) = await events(settings)
    assert event.delivered_at is not None
    assert bot_api.calls_of("sendMessage") == []


async def test_payout_outcomes_are_pushed(
    app: FastAPI, api: Api, chat: Chat, program: Program, bot_api: FakeBotApi
) -> None:
    affiliate, _, _ = await program.funded("20000")
    await chat.link(api, affiliate)
    first = await program.payout(affiliate, "50")
    await program.settle(first.json()["id"], "complete", reference="SEPA-0042")
    second = await program.payout(affiliate, "60")
    await program.settle(second.json()["id"], "fail", reason="account closed")
    assert await dispatch(app) == 4  # two requests (nothing to say) and two outcomes
    assert bot_api.delivered(chat.id) == [
        "Your payout of 50.00 USD was paid (reference SEPA-0042).",
        "Your payout of 60.00 USD failed: account closed. "
        "The amount is back in your available balance.",
    ]


async def test_the_background_job_delivers_by_itself(
    app: FastAPI,
    api: Api,
    desk: Desk,
    chat: Chat,
    bot_api: FakeBotApi,
    tmp_path: Path,
    settings: Settings,
) -> None:
    user = await linked_user(api, chat)
    await failed_execution(desk, user, instrument="USDJPY")
    bot_api.fail_next("sendMessage", SERVER_ERROR)
    live = make_settings(
        settings.resolved_database_url,
        tmp_path,
        background_jobs_enabled=True,
        reconcile_interval_s=0.2,
        telegram_bot_token=settings.telegram_bot_token,
        telegram_webhook_secret=settings.telegram_webhook_secret,
        telegram_api_base=bot_api.url,
    )
    running = create_app(live)
    async with LifespanManager(running):
        # The job's outbox tick is 2 s and the retry backoff 2 s: well within 15 s.
        for _ in range(150):
            if bot_api.delivered(chat.id):
                break
            await asyncio.sleep(0.1)
    (text,) = bot_api.delivered(chat.id)
    assert "USDJPY" in text
    assert len(bot_api.attempts(chat.id)) == 2
