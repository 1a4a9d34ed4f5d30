"""Fills that arrive together, recorded in one transaction (PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import asyncpg
import httpx
import pytest

from tests.affiliates.conftest import INSTRUMENT, Program, program  # noqa: F401
from tests.desk import Desk, Terminal
from tests.helpers import assert_problem
from tradecast.executions.models import ExecutionType
from tradecast.executions.schemas import FillIn
from tradecast.executions.service import fingerprint

pytestmark = pytest.mark.postgres_only


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A counter's value in the app's Prometheus exposition (0 if not yet counted)."""
    exposition = (await client.get("/metrics")).text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{name}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if wanted else rf"^{name} (\S+)$"
    found = re.search(pattern, exposition, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def batches(client: httpx.AsyncClient) -> tuple[float, float, float]:
    """(committed batches, rolled-back batches, fills recorded in batches)."""
    return (
        await metric(client, "tradecast_fill_batches_total", outcome="committed"),
        await metric(client, "tradecast_fill_batches_total", outcome="rolled_back"),
        await metric(client, "tradecast_batched_fills_total"),
    )


async def polled(desk: Desk, *terminals: Terminal, **signal: str) -> str:
    created = await desk.publish(**signal)
    for terminal in terminals:
        assert created["id"] in await terminal.pending_ids()
    return str(created["id"])


async def test_fills_arriving_together_share_batches_and_earn_as_one_after_another(
    program: Program,  # noqa: F811
) -> None:
    affiliate, token = await program.affiliate()
    first = await program.referred(token)
    await program.fill(first, "9000")
    traders = [await program.referred(token) for _ in range(6)]
    loner = await program.referred(None)
    terminals = [await program.desk.terminal(trader) for trader in [*traders, loner]]
    signal = await polled(program.desk, *terminals, instrument=INSTRUMENT)
    before = await batches(program.http)

    # Eight referred fills of 400 and the loner's, at once: six first fills, and a
    # second fill of two of those trades (200 × 2). One after another, each sees the
    # ones before, whatever their order: two stay below 10,000 (2.00 each), the
    # third reaches 10,200, and it and the rest earn tier 2 (4.00 each).
    responses = await asyncio.gather(
        *(terminal.fill(signal, "400", "1") for terminal in terminals),
        *(terminal.fill(signal, "200", "2") for terminal in terminals[:2]),
    )
    assert [r.status_code for r in responses] == [201] * 9, [r.text for r in responses]

    committed, rolled_back, batched = await batches(program.http)
    assert rolled_back == before[1]
    assert batched - before[2] == 9
    assert committed - before[0] < 9, "no batch held more than one fill"
    assert sorted(await program.amounts(affiliate)) == (
        [Decimal("2.00")] * 2 + [Decimal("4.00")] * 6 + [Decimal("45.00")]
    )
    stats = await program.stats(affiliate)
    assert (stats["volume_30d"], stats["earned_total"]) == ("12200", "73")
    for trader in traders[:2]:
        trades = await program.http.get("/api/v1/trades", headers=trader.headers)
        (trade,) = trades.json()["items"]
        # (400 + 400) / 3, to the price step.
        assert (trade["size"], trade["price"], trade["notional"]) == ("3", "266.66666667", "800")
    loner_trades = await program.http.get("/api/v1/trades", headers=loner.headers)
    assert [t["size"] for t in loner_trades.json()["items"]] == ["1"]


async def test_a_trade_new_to_a_batch_holds_all_its_fills_and_an_old_one_adds_them(
    desk: Desk,
) -> None:
    owner = await desk.api.user()
    old, new = await desk.terminal(owner, "MT5-old"), await desk.terminal(owner, "MT5-new")
    signal = await polled(desk, old, new)
    first = await old.fill(signal, "1", "1")
    assert first.status_code == 201, first.text
    before = await batches(desk.api.client)

    responses = await asyncio.gather(
        old.fill(signal, "2", "1"),
        old.fill(signal, "3", "2"),
        new.fill(signal, "1.5", "1"),
        new.fill(signal, "2.5", "1"),
    )
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    _, rolled_back, batched = await batches(desk.api.client)
    assert (batched - before[2], rolled_back - before[1]) == (4, 0)
    old_trade = first.json()["trade_id"]
    assert {r.json()["trade_id"] for r in responses[:2]} == {old_trade}
    new_trades = {r.json()["trade_id"] for r in responses[2:]}
    assert len(new_trades) == 1
    assert old_trade not in new_trades

    listed = await desk.api.client.get("/api/v1/trades", headers=owner.headers)
    trades = {trade["id"]: trade for trade in listed.json()["items"]}
    assert set(trades) == {old_trade, *new_trades}
    # 1×1 + 2×1 + 3×2 = 9 over 4; 1.5 + 2.5 = 4 over 2 (contract size 1).
    figures = [(t["size"], t["price"], t["notional"]) for t in trades.values()]
    assert (trades[old_trade]["size"], trades[old_trade]["price"]) == ("4", "2.25")
    assert sorted(figures) == [("2", "2", "4"), ("4", "2.25", "9")]
    # Each device's fills, as its owner reads them back, name its trade.
    status = await desk.api.client.get(f"/api/v1/exec/status/{signal}", headers=owner.headers)
    assert status.status_code == 200, status.text
    named = {(e["device_id"], e["trade_id"]) for e in status.json()}
    assert named == {(old.id, old_trade), *((new.id, trade) for trade in new_trades)}


async def test_what_a_batch_cannot_take_is_answered_as_a_lone_fill_would_be(desk: Desk) -> None:
    owner = await desk.api.user()
    terminals = [await desk.terminal(owner, f"MT5-{n}") for n in range(4)]
    signal = await polled(desk, *terminals)
    unpolled = await desk.publish()  # pending for every terminal, delivered to none
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    outsider = await desk.terminal(careful)
    never_pending = await desk.publish()  # awaits the careful user's approval
    stored = await terminals[0].fill(signal, "1.1", "0.5", report_id="stored")
    assert stored.status_code == 201
    before = await batches(desk.api.client)

    responses = await asyncio.gather(
        terminals[1].fill(signal, "1.1", "0.5"),
        terminals[2].fill(signal, "1.1", "0.5"),
        terminals[0].fill(signal, "1.1", "0.5", report_id="stored"),  # a replay
        terminals[0].fill(signal, "1.2", "0.5", report_id="stored"),  # its id reused
        terminals[3].fill(unpolled["id"], "1.1", "0.5"),
        outsider.fill(never_pending["id"], "1.1", "0.5"),
        terminals[1].fill(signal, "1.1", "0.1", report_id="twice"),
        terminals[1].fill(signal, "1.1", "0.2", report_id="twice"),
    )
    codes = [r.status_code for r in responses]
    assert codes[:3] == [201, 201, 200]
    assert responses[2].json() == stored.json()
    assert_problem(responses[3], 409, "report_id_conflict")
    assert codes[4] == 201
    assert_problem(responses[5], 404, "signal_not_delivered")
    assert sorted(codes[6:]) == [201, 409]
    # The two plain fills and one copy of "twice" at least were batched. (The
    # copies of "twice", in two batches at once, roll the second back once.)
    _, rolled_back, batched = await batches(desk.api.client)
    assert batched - before[2] >= 3
    assert rolled_back - before[1] <= 1
    trades = await desk.api.client.get("/api/v1/trades", headers=owner.headers)
    sizes = sorted(trade["size"] for trade in trades.json()["items"])
    twice = "0.6" if codes[6] == 201 else "0.7"
    assert sizes == sorted(["0.5", twice, "0.5", "0.5"])


async def test_a_copy_stored_meanwhile_rolls_the_batch_back_and_its_fill_is_a_replay(
    desk: Desk,
) -> None:
    terminal = await desk.terminal()
    signal = await polled(desk, terminal)
    body = FillIn(report_id="raced", signal_id=signal, fill_price="1.1", fill_size="0.5")
    url = desk.api.settings.resolved_database_url.replace("postgresql+asyncpg", "postgresql")
    other = await asyncpg.connect(url)
    try:
        # Another process stores the same report and has not committed yet.
        transaction = other.transaction()
        await transaction.start()
        stored_id = await other.fetchval(
            "INSERT INTO execution_reports (id, device_id, signal_id, report_id,"
            " execution_type, fill_price, fill_size, fingerprint, created_at)"
            " VALUES (gen_random_uuid(), $1, $2, 'raced', 'fill', 1.1, 0.5, $3, now())"
            " RETURNING id",
            terminal.id,
            signal,
            fingerprint(ExecutionType.FILL, body),
        )
        before = await batches(desk.api.client)
        request = asyncio.create_task(terminal.fill(signal, "1.1", "0.5", report_id="raced"))
        # The batch's insert waits for the other transaction's row.
        for _ in range(500):
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if waiting or request.done():
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        await transaction.commit()
        response = await request
    finally:
        await other.close()

    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(stored_id)
    # Rolled back once, and the second look handed the fill back.
    committed, rolled_back, batched = await batches(desk.api.client)
    assert (committed - before[0], rolled_back - before[1], batched - before[2]) == (1, 1, 0)
    # The other process stored the report alone: this worker added no trade.
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    assert trades.json()["items"] == []
