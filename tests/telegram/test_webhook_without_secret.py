"""With no TELEGRAM_WEBHOOK_SECRET configured, every webhook call is refused."""

from __future__ import annotations

import pytest

from tests.helpers import Api, assert_problem
from tests.telegram.conftest import BOT_TOKEN, message_update


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"telegram_bot_token": BOT_TOKEN}


@pytest.mark.parametrize("header", [None, "", "anything"], ids=["absent", "empty", "some"])
async def test_no_configured_secret_means_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"X-Telegram-Bot-Api-Secret-Token": header}
    response = await api.client.post(
        "/telegram/webhook", json=message_update(42, "/help"), headers=headers
    )
    assert_problem(response, 401, "bad_webhook_secret")
