"""``tradecast demo``: the whole flow, live, on a throw-away SQLite database.

A server starts in this process; an admin, a producer, an affiliate and a
trader referred by the affiliate are created through the API; the trader's
three terminals run the reference device client — one fast, one slow, one
whose broker refuses every order. The producer publishes signals, and the
screen shows each signal travel: delivery, ACK, fills, the reconciliation
issue the refusals raise, and the affiliate's commission on the fills.
Everything goes through the public HTTP API, as it would in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from tradecast import migrate
from tradecast.client.api import DeviceApi
from tradecast.client.executor import ExecutionRefused, Fill, PaperExecutor, Signal
from tradecast.client.journal import Journal
from tradecast.client.runner import Runner, RunnerOptions
from tradecast.config import Settings
from tradecast.kit import signing
from tradecast.main import create_app
from tradecast.users.models import Role

PASSWORD = "demo password 1"  # noqa: S105 - throw-away accounts on a temporary database
SIGNALS = (
    {"instrument": "EURUSD", "side": "buy", "order_type": "limit", "entry_price": "1.08450",
     "stop_loss": "1.08100", "take_profit": "1.09200", "volume": "1.5"},
    {"instrument": "XAUUSD", "side": "sell", "order_type": "limit", "entry_price": "2385.40",
     "stop_loss": "2398.00", "take_profit": "2360.00", "volume": "0.8"},
    {"instrument": "GBPUSD", "side": "buy", "order_type": "limit", "entry_price": "1.27310",
     "volume": "2"},
)  # fmt: skip


class RefusingBroker:
    """A terminal whose broker account has no margin: every order is refused."""

    async def execute(self, signal: Signal) -> list[Fill]:
        await asyncio.sleep(0.2)
        raise ExecutionRefused(10019, "Not enough money")


@dataclass
class Scene:
    """What the demo knows, refreshed from the API while it runs."""

    signals: list[dict[str, Any]] = field(default_factory=list)
    executions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def demo_settings(data_dir: Path, *, reconcile_interval_s: float) -> Settings:
    return Settings(
        env="development",
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'demo.db'}",
        secret_key=secrets.token_urlsafe(48),
        reconcile_interval_s=reconcile_interval_s,
        # The client's and server's own log lines would tear the live view apart.
        log_level="ERROR",
        # The cast registers from different addresses, as different people would.
        trusted_proxies="127.0.0.1/32",
        contract_sizes={
            "EURUSD": Decimal(100000),
            "GBPUSD": Decimal(100000),
            "XAUUSD": Decimal(100),
        },
    )


class Demo:
    def __init__(self, settings: Settings, base_url: str, console: Console) -> None:
        self.settings = settings
        self.base_url = base_url
        self.console = console
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15)
        self.scene = Scene()
        self.headers: dict[str, dict[str, str]] = {}
        self.producer: tuple[str, str] = ("", "")

    async def login(self, who: str, email: str) -> None:
        response = await self.http.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        response.raise_for_status()
        self.headers[who] = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def register(self, who: str, email: str, address: str, **extra: str) -> None:
        response = await self.http.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, **extra},
            headers={"X-Forwarded-For": address},
        )
        response.raise_for_status()
        await self.login(who, email)

    async def cast(self) -> None:
        """The admin, the producer, the affiliate and the referred trader."""
        from tradecast.cli import _create_user

        await _create_user(self.settings, "admin@demo.example", PASSWORD, Role.ADMIN)
        await self.login("admin", "admin@demo.example")
        created = await self.http.post(
            "/api/v1/admin/producers", json={"name": "Trend Rider"}, headers=self.headers["admin"]
        )
        created.raise_for_status()
        self.producer = (created.json()["id"], created.json()["secret"])
        await self.register("affiliate", "partner@signals.example", "198.51.100.7")
        affiliate = await self.http.post(
            "/api/v1/affiliates/register", headers=self.headers["affiliate"]
        )
        affiliate.raise_for_status()
        token = affiliate.json()["referral_token"]
        await self.register(
            "trader", "trader@traders.example", "203.0.113.25", referral_token=token
        )

    async def terminals(self, journals: Path) -> list[Runner]:
        setups = (
            ("London VPS", PaperExecutor(slippage_bps=Decimal("1.5"), latency_s=0.3)),
            ("Home laptop", PaperExecutor(slippage_bps=Decimal("4"), latency_s=2.5)),
            ("Prop account", RefusingBroker()),
        )
        runners = []
        for name, executor in setups:
            response = await self.http.post(
                "/api/v1/devices", json={"device_name": name}, headers=self.headers["trader"]
            )
            response.raise_for_status()
            device = response.json()
            self.scene.devices[device["id"]] = name
            api = DeviceApi(self.base_url, device["id"], device["secret"])
            journal = Journal(journals / f"{device['id']}.sqlite3")
            runners.append(Runner(api, journal, executor, RunnerOptions(wait_s=10)))
        return runners

    async def publish(self, signal: dict[str, Any]) -> None:
        body = json.dumps(signal).encode()
        key_id, secret = self.producer
        headers = signing.sign_request(
            key_id=key_id, secret=secret, method="POST", path="/api/v1/signals", body=body
        )
        response = await self.http.post(
            "/api/v1/signals",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        response.raise_for_status()
        self.scene.signals.append(response.json())

    async def refresh(self) -> None:
        admin, affiliate = self.headers["admin"], self.headers["affiliate"]
        for signal in self.scene.signals:
            status = await self.http.get(f"/api/v1/exec/status/{signal['id']}", headers=admin)
            self.scene.executions[signal["id"]] = status.json()
        issues = await self.http.get("/api/v1/reconciliation/issues", headers=admin)
        self.scene.issues = issues.json()["items"]
        stats = await self.http.get("/api/v1/affiliates/stats", headers=affiliate)
        self.scene.stats = stats.json()

    def view(self) -> Group:
        return Group(self._signal_table(), self._issue_table(), self._affiliate_line())

    def _signal_table(self) -> Table:
        table = Table(title="signals → terminals", expand=True)
        for column in ("signal", "terminal", "ack", "fills", "error"):
            table.add_column(column)
        for signal in self.scene.signals:
            label = f"{signal['side']} {signal['instrument']} @ {signal['entry_price']}"
            records = self.scene.executions.get(signal["id"], [])
            for device_id, name in self.scene.devices.items():
                mine = [r for r in records if r["device_id"] == device_id]
                acked = any(r["execution_type"] == "ack" for r in mine)
                fills = [
                    f"{r['fill_size']} @ {r['fill_price']}"
                    for r in mine
                    if r["execution_type"] == "fill"
                ]
                errors = [
                    f"{r['status_code']} {r['error_message']}"
                    for r in mine
                    if r["execution_type"] == "error"
                ]
                table.add_row(
                    label, name, "✓" if acked else "…", ", ".join(fills), ", ".join(errors)
                )
                label = ""
        return table

    def _issue_table(self) -> Table:
        table = Table(title="reconciliation issues", expand=True)
        for column in ("kind", "terminal", "signal", "detail"):
            table.add_column(column)
        instruments = {s["id"]: s["instrument"] for s in self.scene.signals}
        for issue in self.scene.issues:
            table.add_row(
                issue["kind"],
                self.scene.devices.get(issue["device_id"], issue["device_id"][:8]),
                instruments.get(issue["signal_id"], issue["signal_id"][:8]),
                json.dumps(issue["detail"])[:60],
            )
        return table

    def _affiliate_line(self) -> Table:
        table = Table(title="affiliate: partner@signals.example", expand=True)
        for column in ("referrals", "tier", "rate", "30-day volume", "earned", "available"):
            table.add_column(column)
        s = self.scene.stats
        if s:
            table.add_row(
                str(s["referral_count"]), str(s["commission_tier"]), str(s["commission_rate"]),
                str(s["volume_30d"]), f"{s['earned_total']} {s['currency']}",
                f"{s['available_balance']} {s['currency']}",
            )  # fmt: skip
        return table

    def finished(self) -> bool:
        answered = [
            {r["device_id"] for r in self.scene.executions.get(s["id"], [])
             if r["execution_type"] in ("fill", "error")}
            for s in self.scene.signals
        ]  # fmt: skip
        fills_done = all(len(devices) == len(self.scene.devices) for devices in answered)
        issue_seen = any(i["kind"] == "execution_error" for i in self.scene.issues)
        return len(self.scene.signals) == len(SIGNALS) and fills_done and issue_seen


@contextlib.asynccontextmanager
async def _serving(settings: Settings, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="critical",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def run_demo(console: Console, *, pace_s: float = 3.0, timeout_s: float = 90.0) -> bool:
    """Run the demo; True when every step was seen."""
    with tempfile.TemporaryDirectory(prefix="tradecast-demo-") as scratch:
        root = Path(scratch)
        settings = demo_settings(root, reconcile_interval_s=1.0)
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        port = _free_port()
        async with _serving(settings, port):
            demo = Demo(settings, f"http://127.0.0.1:{port}", console)
            tasks: list[asyncio.Task[None]] = []
            runners: list[Runner] = []
            try:
                await demo.cast()
                runners = await demo.terminals(root)
                tasks = [asyncio.create_task(runner.run()) for runner in runners]
                return await _show(demo, console, pace_s, timeout_s)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for runner in runners:
                    await runner.api.aclose()
                    runner.journal.close()
                await demo.http.aclose()


async def _show(demo: Demo, console: Console, pace_s: float, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    next_signal = loop.time()
    with Live(demo.view(), console=console, refresh_per_second=4) as live:
        while loop.time() < deadline:
            if len(demo.scene.signals) < len(SIGNALS) and loop.time() >= next_signal:
                await demo.publish(SIGNALS[len(demo.scene.signals)])
                next_signal = loop.time() + pace_s
            await demo.refresh()
            live.update(demo.view())
            if demo.finished() and Decimal(demo.scene.stats.get("earned_total", "0")) > 0:
                return True
            await asyncio.sleep(0.5)
    return False


def main(console: Console | None = None, *, pace_s: float = 3.0) -> bool:
    console = console or Console()
    with contextlib.suppress(KeyboardInterrupt):
        done = asyncio.run(run_demo(console, pace_s=pace_s))
        console.print(
            "[green]demo complete: signal → poll → ACK → fill → reconciliation → commission[/green]"
            if done
            else "[red]demo timed out before every step was seen[/red]"
        )
        return done
    return False
