"""The reference device client against the real app: loop, journal, retries, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.desk import Desk, Terminal
from tradecast.client import (
    CredentialsRejected,
    DeviceApi,
    Journal,
    JournaledReport,
    PaperExecutor,
    Rejected,
    RetryLater,
    Runner,
    RunnerOptions,
    report_id,
)
from tradecast.client.executor import NO_PRICE, Signal
from tradecast.client.runner import INTERRUPTED


def device_api(terminal: Terminal) -> DeviceApi:
    return DeviceApi("http://testserver", terminal.id, terminal.secret, http=terminal.api.client)


def make_runner(terminal: Terminal, journal: Journal, **paper: Any) -> Runner:
    executor = PaperExecutor(**paper)
    return Runner(device_api(terminal), journal, executor, RunnerOptions(wait_s=1))


async def records(terminal: Terminal, signal_id: str) -> list[dict[str, Any]]:
    response = await terminal.api.client.get(
        f"/api/v1/exec/status/{signal_id}", headers=terminal.owner.headers
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def run_until(
    runner: Runner, done: Callable[[], Awaitable[bool]], timeout_s: float = 10
) -> None:
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                if task.done():
                    task.result()
                    raise AssertionError("the runner stopped early")
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [record["execution_type"] for record in found]


async def test_runner_acks_executes_and_reports_a_signal(desk: Desk, tmp_path: Path) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish(volume="2.5")  # a market buy
    journal = Journal(tmp_path / "journal.db")
    runner = make_runner(
        terminal, journal, reference_prices={"EURUSD": Decimal("1.08")}, slippage_bps=Decimal(10)
    )

    async def filled() -> bool:
        return kinds(await records(terminal, signal["id"])) == ["ack", "fill"]

    await run_until(runner, filled)
    ack, fill = await records(terminal, signal["id"])
    assert ack["report_id"] == report_id(terminal.id, signal["id"], "ack")
    assert fill["report_id"] == report_id(terminal.id, signal["id"], "fill1")
    assert Decimal(fill["fill_price"]) == Decimal("1.08108")  # 10 bp against a buy
    assert Decimal(fill["fill_size"]) == Decimal("2.5")
    assert journal.unsent() == []
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    assert [Decimal(t["size"]) for t in trades.json()["items"]] == [Decimal("2.5")]


async def test_a_signal_the_executor_refuses_is_reported_as_an_error(
    desk: Desk, tmp_path: Path
) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish(instrument="XAUUSD")  # market, and no reference price
    runner = make_runner(terminal, Journal(tmp_path / "journal.db"))

    async def errored() -> bool:
        return "error" in kinds(await records(terminal, signal["id"]))

    await run_until(runner, errored)
    found = await records(terminal, signal["id"])
    assert kinds(found) == ["ack", "error"]
    assert found[1]["status_code"] == NO_PRICE


async def test_reports_that_had_landed_are_resent_harmlessly_and_nothing_twice(
    desk: Desk, tmp_path: Path
) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish(order_type="limit", entry_price="1.1", volume="1")
    path = tmp_path / "journal.db"
    runner = make_runner(terminal, Journal(path))

    async def filled() -> bool:
        return "fill" in kinds(await records(terminal, signal["id"]))

    await run_until(runner, filled)
    # A crash after the server recorded the reports but before the journal marked them.
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE reports SET sent_at = NULL, outcome = NULL")
    journal = Journal(path)
    assert len(journal.unsent()) == 2

    async def drained() -> bool:
        return journal.unsent() == []

    await run_until(make_runner(terminal, journal), drained)
    assert kinds(await records(terminal, signal["id"])) == ["ack", "fill"]
    outcomes = {row[0] for row in sqlite3.connect(path).execute("SELECT outcome FROM reports")}
    assert outcomes == {"200"}


async def test_an_interrupted_execution_is_reported_not_repeated(
    desk: Desk, tmp_path: Path
) -> None:
    terminal = await desk.terminal()
    published = await desk.publish(order_type="limit", entry_price="1.1")
    signal = Signal.from_json(published)
    journal = Journal(tmp_path / "journal.db")
    runner = make_runner(terminal, journal)
    # Begun (ACK journaled) and then the process died inside the executor.
    journal.begin(signal.id, runner._ack(signal))

    async def errored() -> bool:
        return "error" in kinds(await records(terminal, signal.id))

    await run_until(make_runner(terminal, journal), errored)
    found = await records(terminal, signal.id)
    assert kinds(found) == ["ack", "error"]
    assert found[1]["status_code"] == INTERRUPTED


async def test_a_report_id_reused_for_another_body_is_dropped_not_retried(
    desk: Desk, tmp_path: Path
) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    ack_id = report_id(terminal.id, signal["id"], "ack")
    assert (await terminal.fill(signal["id"], "1.1", "1", report_id=ack_id)).status_code == 201
    journal = Journal(tmp_path / "journal.db")

    async def drained() -> bool:
        return journal.knows(signal["id"]) and journal.unsent() == []

    # The runner's ACK now collides with the fill stored under the same id: 409.
    await run_until(make_runner(terminal, journal, default_size=Decimal(1)), drained)
    outcomes = dict(
        sqlite3.connect(tmp_path / "journal.db").execute("SELECT kind, outcome FROM reports")
    )
    assert outcomes["ack"].startswith("dropped 409")


async def test_a_stale_clock_is_resynced_from_the_server(desk: Desk) -> None:
    terminal = await desk.terminal()
    api = device_api(terminal)
    api.clock_offset_s = -3600.0
    answer = await api.whoami()
    assert answer["device_id"] == terminal.id
    assert abs(api.clock_offset_s) < 5


async def test_a_deleted_device_stops_the_runner(desk: Desk, tmp_path: Path) -> None:
    terminal = await desk.terminal()
    deleted = await desk.api.client.delete(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert deleted.status_code == 204
    runner = make_runner(terminal, Journal(tmp_path / "journal.db"))
    with pytest.raises(CredentialsRejected) as refused:
        await asyncio.wait_for(runner.run(), 10)
    assert refused.value.code == "key_inactive"


async def test_refusals_are_sorted_into_retry_and_do_not_retry(desk: Desk) -> None:
    terminal = await desk.terminal()
    api = device_api(terminal)
    with pytest.raises(Rejected) as invalid:
        await api.report("fill", b'{"report_id": "x"}')
    assert invalid.value.status == 422
    unreachable = DeviceApi("http://127.0.0.1:9", terminal.id, terminal.secret, timeout_s=1)
    try:
        with pytest.raises(RetryLater):
            await unreachable.whoami()
    finally:
        await unreachable.aclose()
    assert terminal.secret not in repr(api)


def test_paper_executor_slips_against_the_trade_and_sizes_from_the_signal() -> None:
    executor = PaperExecutor(slippage_bps=Decimal(50), default_size=Decimal("0.1"))
    sell = Signal("s", "EURUSD", "sell", "limit", Decimal("2"), None)
    [fill] = asyncio.run(executor.execute(sell))
    assert fill.price == Decimal("1.99")
    assert fill.size == Decimal("0.1")


def test_journal_forgets_only_what_is_old_and_sent(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.begin("sig", JournaledReport("ack-1", "sig", "ack", b"{}"))
    journal.finish("sig", [])
    journal.prune(now=1e12)  # far future: the unsent ACK still keeps its signal
    assert journal.knows("sig")
    journal.mark_sent("ack-1", "201")
    journal.prune(now=1e12)
    assert not journal.knows("sig")
