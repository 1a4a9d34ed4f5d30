"""``tradecast create-producer``: the printed secret is the one the server verifies."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner

from tests.helpers import Api
from tradecast.cli import app
from tradecast.config import Settings, get_settings
from tradecast.main import create_app

runner = CliRunner()


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    database = tmp_path / "cli.db"
    env = {
        "TRADECAST_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TRADECAST_DATA_DIR": str(tmp_path / "data"),
        "TRADECAST_SECRET_KEY": "cli-test-secret-key-" + "s" * 32,
        "TRADECAST_BACKGROUND_JOBS_ENABLED": "false",
        "TRADECAST_RATE_LIMITS_ENABLED": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    # get_settings is cached: the command must read this test's environment.
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def printed(output: str, label: str) -> str:
    match = re.search(rf"^{label}: (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


async def publish_as(settings: Settings, key_id: str, secret: str) -> httpx.Response:
    """A server on the CLI's database receives a request signed with the printed secret."""
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await Api(http, settings).signed(
                "POST",
                "/api/v1/signals",
                key_id=key_id,
                secret=secret,
                json={"instrument": "EURUSD", "side": "buy", "order_type": "market"},
            )


def test_create_producer_prints_a_working_secret_once(cli_database: Path) -> None:
    result = runner.invoke(app, ["create-producer", "--name", "cli-strategy"])
    assert result.exit_code == 0, result.output
    producer_id, secret = printed(result.output, "id"), printed(result.output, "secret")
    assert result.output.count(secret) == 1

    response = asyncio.run(publish_as(get_settings(), producer_id, secret))
    assert response.status_code == 201, response.text
    # Stored sealed: the plaintext secret is nowhere in the database files (WAL included).
    files = list(cli_database.parent.glob(f"{cli_database.name}*"))
    assert files
    assert not any(secret.encode() in path.read_bytes() for path in files)


def test_create_producer_refuses_a_taken_name(cli_database: Path) -> None:
    assert runner.invoke(app, ["create-producer", "--name", "twice"]).exit_code == 0
    again = runner.invoke(app, ["create-producer", "--name", "twice"])
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert "secret:" not in again.output


def test_create_producer_validates_the_name(cli_database: Path) -> None:
    result = runner.invoke(app, ["create-producer", "--name", "no;semicolons"])
    assert result.exit_code == 2
    assert "name" in result.output
    assert not cli_database.exists()
