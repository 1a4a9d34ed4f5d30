"""Without a secret nobody gets in; with a secret but no bot token the bot is off."""

from __future__ import annotations

import pytest

from tests.helpers import Api, assert_problem
from tests.telegram.conftest import WEBHOOK_SECRET, message_update


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"telegram_webhook_secret": WEBHOOK_SECRET}


async def test_without_a_bot_token_the_webhook_is_503(api: Api) -> None:
    response = await api.client.post(
        "/telegram/webhook",
        json=message_update(42, "/help"),
        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
    )
    assert_problem(response, 503, "telegram_bot_disabled")


async def test_a_wrong_secret_is_still_401_first(api: Api) -> None:
    response = await api.client.post(
        "/telegram/webhook",
        json=message_update(42, "/help"),
        headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
    )
    assert_problem(response, 401, "bad_webhook_secret")
