"""``tradecast device run`` as a real process against a real server: killed between a
fill and its report, then restarted, it delivers the report exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import (
    BACKEND,
    PG_ADMIN_DSN,
    WORKER,
    _pg_url,
    _recreate_pg_database,
    make_settings,
)
from tests.desk import Desk, Terminal
from tests.helpers import PASSWORD, Api
from tests.servers import Server, server_env, start_server
from tradecast import migrate
from tradecast.cli import app as cli
from tradecast.client import Journal
from tradecast.client.runner import CRASH_AFTER_ENV
from tradecast.config import Settings

# Generous: starting a Python process on a busy two-core machine can take many seconds.
PROCESS_TIMEOUT_S = 90


@dataclass
class Live:
    server: Server
    settings: Settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("device_client")
    name = f"tradecast_client_{WORKER}"
    if BACKEND == "postgresql":
        asyncio.run(_recreate_pg_database(name))
        url = _pg_url(PG_ADMIN_DSN, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'server.db'}"
    migrate.upgrade(url)
    server = start_server(server_env(url, tmp / "data"), tmp / "server.log")
    try:
        yield Live(server, make_settings(url, tmp))
    finally:
        server.stop()
        if BACKEND == "postgresql":
            asyncio.run(_recreate_pg_database(name, create=False))


@pytest.fixture
async def desk(live: Live) -> AsyncIterator[Desk]:
    async with httpx.AsyncClient(base_url=live.server.url, timeout=30) as client:
        yield Desk(Api(client, live.settings))


def start_client(
    live: Live, terminal: Terminal, journal: Path, **env: str
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "tradecast",
        "device",
        "run",
        "--url",
        live.server.url,
        "--key-id",
        terminal.id,
        "--journal",
        str(journal),
        "--price",
        "EURUSD=1.08",
        "--slippage-bps",
        "10",
        "--latency-ms",
        "300",  # the ACK lands while the order "executes"
        "--wait",
        "2",
    ]
    # The secret goes through the environment, never the command line.
    environment = {k: v for k, v in os.environ.items() if k != CRASH_AFTER_ENV}
    environment.update({"TRADECAST_DEVICE_SECRET": terminal.secret, **env})
    log = journal.with_suffix(".log").open("ab")
    return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)


async def records(desk: Desk, terminal: Terminal, signal_id: str) -> list[dict[str, Any]]:
    response = await desk.api.client.get(
        f"/api/v1/exec/status/{signal_id}", headers=terminal.owner.headers
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_a_client_killed_between_fill_and_report_delivers_it_once_after_restart(
    desk: Desk, live: Live, tmp_path: Path
) -> None:
    terminal = await desk.terminal()
    published = await desk.publish(volume="2.5")  # a market buy of 2.5
    sid = published["id"]
    journal = tmp_path / "device.db"

    crashing = start_client(live, terminal, journal, **{CRASH_AFTER_ENV: "fill_journaled"})
    assert await asyncio.to_thread(crashing.wait, PROCESS_TIMEOUT_S) == 1
    before = await records(desk, terminal, published["id"])
    assert [r["execution_type"] for r in before] == ["ack"]  # the fill never left
    unsent = Journal(journal).unsent()
    assert [report.kind for report in unsent] == ["fill"]

    restarted = start_client(live, terminal, journal)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while "fill" not in {r["execution_type"] for r in await records(desk, terminal, sid)}:
            assert restarted.poll() is None, journal.with_suffix(".log").read_text()
            assert time.monotonic() < deadline, "the journaled fill was not delivered"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # a full long-poll cycle more: nothing else may arrive
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(restarted.wait, 15) == 0

    after = await records(desk, terminal, published["id"])
    fills = [r for r in after if r["execution_type"] == "fill"]
    assert [r["execution_type"] for r in after] == ["ack", "fill"]
    assert fills[0]["report_id"] == unsent[0].report_id
    assert Decimal(fills[0]["fill_size"]) == Decimal("2.5")
    assert Decimal(fills[0]["fill_price"]) == Decimal("1.08108")
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    [trade] = trades.json()["items"]
    assert Decimal(trade["size"]) == Decimal("2.5")
    assert Journal(journal).unsent() == []
    log = journal.with_suffix(".log").read_text()
    assert terminal.secret not in log


def test_device_run_stops_with_status_3_when_the_device_was_deleted(live: Live) -> None:
    with httpx.Client(base_url=live.server.url, timeout=30) as http:
        email = f"cli-{uuid.uuid4().hex[:8]}@example.org"
        registered = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        device = http.post("/api/v1/devices", json={"device_name": "cli"}, headers=headers).json()
        assert http.delete(f"/api/v1/devices/{device['id']}", headers=headers).status_code == 204
    arguments = ["device", "run", "--url", live.server.url, "--key-id", device["id"], "--wait", "1"]
    result = CliRunner().invoke(
        cli, arguments, env={"TRADECAST_DEVICE_SECRET": device["secret"]}, catch_exceptions=False
    )
    assert result.exit_code == 3
    assert "key_inactive" in result.output
    assert device["secret"] not in result.output


def test_device_run_refuses_a_malformed_price() -> None:
    result = CliRunner().invoke(
        cli,
        ["device", "run", "--url", "http://127.0.0.1:9", "--key-id", "k", "--price", "EURUSD"],
        env={"TRADECAST_DEVICE_SECRET": "s"},
    )
    assert result.exit_code == 2
    assert "INSTRUMENT=PRICE" in result.output
