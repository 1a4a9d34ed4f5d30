"""A linked Telegram world for tests: a fake Bot API on loopback at TELEGRAM_API_BASE,
and chats that send real update JSON through the webhook."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import Api, LoggedIn
from tests.telegram.fake_bot_api import FakeBotApi
from tradecast.kit import clock
from tradecast.outbox import service as outbox

BOT_TOKEN = "123456:TEST-bot-token-for-the-fake-api"
WEBHOOK_SECRET = "webhook-secret_0123456789"
BOT_USERNAME = "tradecast_test_bot"

_update_ids = itertools.count(10_000)
_message_ids = itertools.count(1)
_chat_ids = itertools.count(700_000_001)


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    server = FakeBotApi().start()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(bot_api: FakeBotApi) -> dict[str, object]:
    return {
        "telegram_bot_token": BOT_TOKEN,
        "telegram_webhook_secret": WEBHOOK_SECRET,
        "telegram_api_base": bot_api.url,
        "telegram_bot_username": BOT_USERNAME,
    }


def message_update(chat_id: int, text: str, **message: Any) -> dict[str, Any]:
    """An update as Telegram sends it for a text message in a private chat."""
    sender = {"id": chat_id, "is_bot": False, "first_name": "Trader", "language_code": "en"}
    body: dict[str, Any] = {
        "message_id": next(_message_ids),
        "from": sender,
        "chat": {"id": chat_id, "first_name": "Trader", "type": "private"},
        "date": int(clock.utcnow().timestamp()),
        "text": text,
        **message,
    }
    if text.startswith("/"):
        body["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"update_id": next(_update_ids), "message": body}


class Chat:
    """A private chat with the bot, as one Telegram user."""

    def __init__(self, http: httpx.AsyncClient, chat_id: int | None = None) -> None:
        self.http = http
        self.id = chat_id or next(_chat_ids)

    async def deliver(self, update: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            "/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
        )

    async def send(self, text: str) -> str:
        """Send ``text``; the bot's reply text (from the webhook response)."""
        response = await self.deliver(message_update(self.id, text))
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        assert reply["method"] == "sendMessage", reply
        assert reply["chat_id"] == self.id
        text_out: str = reply["text"]
        return text_out

    async def link(self, api: Api, user: LoggedIn) -> str:
        code = await link_code(api, user)
        return await self.send(f"/link {code}")


async def link_code(api: Api, user: LoggedIn) -> str:
    response = await api.client.post("/api/v1/me/telegram-link", headers=user.headers)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


async def telegram_linked(api: Api, user: LoggedIn) -> bool:
    response = await api.client.get("/api/v1/me", headers=user.headers)
    assert response.status_code == 200, response.text
    linked: bool = response.json()["telegram_linked"]
    return linked


async def dispatch(app: FastAPI) -> int:
    """One run of the outbox job, as the app's background job runs it."""
    return await outbox.dispatch_due(app.state.db, app.state.outbox_handlers)


@pytest.fixture
def chat(client: httpx.AsyncClient) -> Chat:
    return Chat(client)


@pytest.fixture
def new_chat(client: httpx.AsyncClient) -> Any:
    return lambda: Chat(client)
