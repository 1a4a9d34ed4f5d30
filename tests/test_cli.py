from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tradecast.cli import app
from tradecast.config import get_settings

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "TRADECAST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "TRADECAST_DATA_DIR": str(tmp_path / "data"),
        "TRADECAST_PASSWORD_HASH_TIME_COST": "1",
        "TRADECAST_PASSWORD_HASH_MEMORY_KIB": "8192",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_migrate_then_create_admin(cli_env: dict[str, str]) -> None:
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    created = runner.invoke(
        app, ["create-admin", "--email", "Boss@Example.org", "--password", "long enough"]
    )
    assert created.exit_code == 0, created.output
    assert "admin boss@example.org created" in created.output
    again = runner.invoke(
        app, ["create-admin", "--email", "boss@example.org", "--password", "long enough"]
    )
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_create_admin_validates_its_input(cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["create-admin", "--email", "not-an-email", "--password", "short"])
    assert result.exit_code == 2
    assert "email" in result.output
    assert "password" in result.output


def test_unsafe_production_configuration_is_refused_with_a_reason(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADECAST_ENV", "production")
    get_settings.cache_clear()
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "TRADECAST_SECRET_KEY" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_migrates_and_serves(cli_env: dict[str, str]) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tradecast", "serve", "--port", str(port), "--backlog", "1500"],
        env={**os.environ, **cli_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert ready.json() == {"status": "ready"}
        # The listening socket holds the backlog asked for (ss shows it as Send-Q).
        ss = shutil.which("ss")
        if ss is not None:
            listening = subprocess.run(
                [ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
            ).stdout.split()
            assert listening[2] == "1500", listening
        registered = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/register",
            json={"email": "served@example.org", "password": "long enough"},
        )
        assert registered.status_code == 201
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
