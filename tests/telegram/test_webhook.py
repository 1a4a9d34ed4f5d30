"""The webhook: only Telegram gets in, updates are aiogram's, replies ride the response."""

from __future__ import annotations

import pytest

from tests.helpers import Api, assert_problem
from tests.telegram.conftest import WEBHOOK_SECRET, Chat, message_update
from tests.telegram.fake_bot_api import FakeBotApi

LINK_HINT = "This chat is not linked to a tradecast account yet."


async def test_without_the_secret_header_the_webhook_is_401(chat: Chat) -> None:
    response = await chat.http.post("/telegram/webhook", json=message_update(chat.id, "/help"))
    body = assert_problem(response, 401, "bad_webhook_secret")
    assert WEBHOOK_SECRET not in response.text
    assert "www-authenticate" in response.headers
    assert body["detail"]


@pytest.mark.parametrize(
    "secret",
    [WEBHOOK_SECRET + "x", WEBHOOK_SECRET[:-1], "", "ünïcode"],
    ids=["longer", "shorter", "empty", "non-ascii"],
)
async def test_a_wrong_secret_is_401(chat: Chat, secret: str) -> None:
    response = await chat.http.post(
        "/telegram/webhook",
        json=message_update(chat.id, "/help"),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret.encode()},
    )
    assert_problem(response, 401, "bad_webhook_secret")


async def test_an_update_is_answered_with_a_send_message_call(chat: Chat) -> None:
    response = await chat.deliver(message_update(chat.id, "/help"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    reply = response.json()
    assert reply["method"] == "sendMessage"
    assert reply["chat_id"] == chat.id
    assert "/link CODE" in reply["text"]
    assert "/payout AMOUNT" in reply["text"]


async def test_replies_travel_in_the_response_not_through_the_bot_api(
    chat: Chat, bot_api: FakeBotApi
) -> None:
    await chat.send("/help")
    await chat.send("/start")
    assert bot_api.calls == []


@pytest.mark.parametrize(
    "command", ["/devices", "/signals", "/affiliate", "/referral_link", "/stats", "/payout 50"]
)
async def test_commands_that_need_an_account_explain_how_to_link(chat: Chat, command: str) -> None:
    reply = await chat.send(command)
    assert reply.startswith(LINK_HINT)
    assert "/link CODE" in reply


async def test_start_without_a_deep_link_explains_how_to_begin(chat: Chat) -> None:
    reply = await chat.send("/start")
    assert "Sign up at http://127.0.0.1:8000/" in reply
    assert "/link CODE" in reply


@pytest.mark.parametrize("text", ["hello there", "/nonsense", "/linkx ABC"])
async def test_plain_text_and_unknown_commands_get_a_help_pointer(chat: Chat, text: str) -> None:
    assert await chat.send(text) == "I don't know that one. /help lists what I can do."


async def test_a_command_addressed_to_the_bot_by_name_works(chat: Chat) -> None:
    assert "/link CODE" in await chat.send("/help@tradecast_test_bot")


async def test_group_chats_get_no_answer(chat: Chat) -> None:
    update = message_update(chat.id, "/devices")
    update["message"]["chat"] = {"id": -100123, "title": "Traders", "type": "supergroup"}
    response = await chat.deliver(update)
    assert response.status_code == 200
    assert response.json() == {}


async def test_updates_other_than_messages_are_acknowledged(chat: Chat) -> None:
    edited = message_update(chat.id, "/help")
    edited["edited_message"] = edited.pop("message")
    edited["edited_message"]["edit_date"] = edited["edited_message"]["date"]
    response = await chat.deliver(edited)
    assert (response.status_code, response.json()) == (200, {})


async def test_a_body_that_is_not_an_update_is_422(chat: Chat) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    for body in (b"not json", b'{"message": {"text": "/help"}}', b"[]"):
        response = await chat.http.post("/telegram/webhook", content=body, headers=headers)
        assert_problem(response, 422, "validation_error")


async def test_the_webhook_is_documented(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    operation = spec["paths"]["/telegram/webhook"]["post"]
    assert {"200", "401", "422", "503"} <= operation["responses"].keys()
    assert "X-Telegram-Bot-Api-Secret-Token" in operation["description"]
    assert "201" in spec["paths"]["/api/v1/me/telegram-link"]["post"]["responses"]
