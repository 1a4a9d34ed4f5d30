"""Rotating SECRET_KEY: devices keep working through the whole procedure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.desk import Desk
from tests.helpers import Api
from tradecast.cli import app as cli
from tradecast.config import Settings, get_settings
from tradecast.main import create_app

OLD = "old-secret-key-" + "o" * 40
NEW = "new-secret-key-" + "n" * 40


async def whoami_status(settings: Settings, key_id: str, secret: str) -> int:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await Api(client, settings).signed(
                "GET", "/api/v1/exec/whoami", key_id=key_id, secret=secret
            )
            return response.status_code


async def test_rotating_the_server_key_keeps_devices_working(
    app: object,
    desk: Desk,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = settings.resolved_database_url
    terminal = await desk.terminal()  # sealed under the test's key
    first_key = settings.signing_key()

    rotated = make_settings(url, tmp_path, secret_key=NEW, previous_secret_keys=first_key)
    assert await whoami_status(rotated, terminal.id, terminal.secret) == 200

    # Without the previous key the old seals cannot be opened: the server refuses.
    bare = make_settings(url, tmp_path, secret_key=NEW)
    assert await whoami_status(bare, terminal.id, terminal.secret) == 500

    monkeypatch.setenv("TRADECAST_DATABASE_URL", url)
    monkeypatch.setenv("TRADECAST_SECRET_KEY", NEW)
    monkeypatch.setenv("TRADECAST_PREVIOUS_SECRET_KEYS", first_key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        # The command runs its own event loop, as it does from a shell.
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["reseal-secrets"])
        assert result.exit_code == 0, result.output
        assert "1 secret(s) re-sealed" in result.output
        again = await asyncio.to_thread(CliRunner().invoke, cli, ["reseal-secrets"])
        assert "0 secret(s) re-sealed" in again.output
    finally:
        get_settings.cache_clear()

    # After re-sealing, the new key alone is enough; the device's own secret never changed.
    assert await whoami_status(bare, terminal.id, terminal.secret) == 200
