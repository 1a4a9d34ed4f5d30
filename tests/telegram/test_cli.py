"""``tradecast telegram set-webhook`` against the fake Bot API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.telegram.conftest import BOT_TOKEN, WEBHOOK_SECRET
from tests.telegram.fake_bot_api import Failure, FakeBotApi
from tradecast.cli import app
from tradecast.config import get_settings

runner = CliRunner()
URL = "https://signals.example.org/telegram/webhook"


@pytest.fixture
def cli_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bot_api: FakeBotApi
) -> Iterator[pytest.MonkeyPatch]:
    env = {
        "TRADECAST_DATA_DIR": str(tmp_path / "data"),
        "TRADECAST_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TRADECAST_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TRADECAST_TELEGRAM_API_BASE": bot_api.url,
        "TRADECAST_TELEGRAM_BOT_USERNAME": "tc_bot",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_set_webhook_registers_the_url_with_the_secret(
    cli_env: pytest.MonkeyPatch, bot_api: FakeBotApi
) -> None:
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", URL])
    assert result.exit_code == 0, result.output
    assert f"webhook of @tc_bot set to {URL} with the secret token" in result.output
    (call,) = bot_api.calls_of("setWebhook")
    assert call.token == BOT_TOKEN
    assert call.params["url"] == URL
    assert call.params["secret_token"] == WEBHOOK_SECRET
    assert call.params["allowed_updates"] == '["message"]'
    assert BOT_TOKEN not in result.output
    assert WEBHOOK_SECRET not in result.output


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("TRADECAST_TELEGRAM_BOT_TOKEN", "TRADECAST_TELEGRAM_BOT_TOKEN is not set"),
        ("TRADECAST_TELEGRAM_WEBHOOK_SECRET", "TRADECAST_TELEGRAM_WEBHOOK_SECRET is not set"),
    ],
)
def test_set_webhook_refuses_without_a_token_or_a_secret(
    cli_env: pytest.MonkeyPatch, bot_api: FakeBotApi, unset: str, message: str
) -> None:
    cli_env.delenv(unset)
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", URL])
    assert result.exit_code == 2
    assert message in result.output
    assert bot_api.calls == []


def test_set_webhook_refuses_plain_http_and_unusable_secrets(
    cli_env: pytest.MonkeyPatch, bot_api: FakeBotApi
) -> None:
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", "http://x/telegram/webhook"])
    assert (result.exit_code, "HTTPS only" in result.output) == (2, True)
    cli_env.setenv("TRADECAST_TELEGRAM_WEBHOOK_SECRET", "has spaces in it")
    get_settings.cache_clear()
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", URL])
    assert (result.exit_code, "1-256 characters" in result.output) == (2, True)
    assert bot_api.calls == []


def test_a_refusal_by_the_bot_api_is_reported_without_the_token(
    cli_env: pytest.MonkeyPatch, bot_api: FakeBotApi
) -> None:
    bot_api.fail_next(
        "setWebhook", Failure(400, "Bad Request: bad webhook: Failed to resolve host")
    )
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", URL])
    assert result.exit_code == 1
    assert "Failed to resolve host" in result.output
    assert BOT_TOKEN not in result.output


def test_a_bot_username_that_differs_from_the_token_is_pointed_out(
    cli_env: pytest.MonkeyPatch, bot_api: FakeBotApi
) -> None:
    cli_env.setenv("TRADECAST_TELEGRAM_BOT_USERNAME", "someone_else_bot")
    get_settings.cache_clear()
    result = runner.invoke(app, ["telegram", "set-webhook", "--url", URL])
    assert result.exit_code == 0
    assert "referral links name the wrong bot" in result.output
