from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, update

from tests.desk import Desk, Terminal
from tests.helpers import assert_problem
from tradecast.db import Database
from tradecast.devices.models import Device
from tradecast.kit import clock


async def delivered(desk: Desk, terminal: Terminal, **signal: Any) -> dict[str, Any]:
    """A signal published and polled by the terminal."""
    created = await desk.publish(**signal)
    assert created["id"] in await terminal.pending_ids()
    return created


async def test_reports_trades_and_signals_get_ids_in_the_order_they_were_made(
    desk: Desk,
) -> None:
    terminal = await desk.terminal()
    made: list[uuid.UUID] = []
    for price in ("1.1", "1.2"):
        signal = await delivered(desk, terminal)
        await asyncio.sleep(0.002)
        fill = await terminal.fill(signal["id"], price, "0.5")
        assert fill.status_code == 201, fill.text
        made += [uuid.UUID(signal["id"]), uuid.UUID(fill.json()["trade_id"])]
        made.append(uuid.UUID(fill.json()["id"]))
        await asyncio.sleep(0.002)
    assert {made_id.version for made_id in made} == {7}
    # A signal's id before its fill's trade and report (a millisecond apart);
    # the trade and report of one fill may share a millisecond, in either order.
    first, second = made[:3], made[3:]
    assert first[0] < min(first[1:])
    assert second[0] < min(second[1:])
    assert max(first) < min(second)


async def test_ack_is_stored_and_settles_delivery(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    response = await terminal.ack(signal["id"], report_id="ack-1")
    assert response.status_code == 201
    record = response.json()
    assert record["execution_type"] == "ack"
    assert record["report_id"] == "ack-1"
    assert record["device_id"] == terminal.id
    assert record["fill_price"] is None
    assert record["trade_id"] is None
    assert await terminal.pending_ids() == []
    device = await desk.api.client.get(
        f"/api/v1/devices/{terminal.id}", headers=terminal.owner.headers
    )
    assert device.json()["last_ack"] is not None


async def test_same_report_again_is_200_with_the_stored_record(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    first = await terminal.fill(signal["id"], "1.1000", "0.5", report_id="fill-1")
    assert first.status_code == 201
    # The same report, with the same numbers written differently.
    again = await terminal.fill(signal["id"], "1.1", "0.50", report_id="fill-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    assert trades.json()["items"][0]["size"] == "0.5"


async def test_same_report_id_with_other_content_is_409(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    assert (await terminal.fill(signal["id"], "1.1", "0.5", report_id="r-1")).status_code == 201
    assert_problem(
        await terminal.fill(signal["id"], "1.1", "0.6", report_id="r-1"), 409, "report_id_conflict"
    )
    assert_problem(await terminal.ack(signal["id"], report_id="r-1"), 409, "report_id_conflict")


async def test_report_ids_are_per_device(desk: Desk) -> None:
    owner = await desk.api.user()
    first = await desk.terminal(owner, "one")
    second = await desk.terminal(owner, "two")
    signal = await desk.publish()
    await first.poll()
    await second.poll()
    assert (await first.ack(signal["id"], report_id="same")).status_code == 201
    assert (await second.ack(signal["id"], report_id="same")).status_code == 201


async def test_report_for_a_signal_never_pending_for_the_device_is_404(desk: Desk) -> None:
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    terminal = await desk.terminal(careful)
    unapproved = await desk.publish()
    assert_problem(await terminal.ack(unapproved["id"]), 404, "signal_not_delivered")
    assert_problem(
        await terminal.ack("00000000-0000-0000-0000-000000000000"), 404, "signal_not_delivered"
    )


async def test_a_pending_signal_may_be_reported_before_it_was_polled(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    assert (await terminal.ack(signal["id"])).status_code == 201


@pytest.mark.parametrize(
    ("kind", "fields", "field"),
    [
        ("fill", {"fill_price": "0", "fill_size": "1"}, "fill_price"),
        ("fill", {"fill_price": "-1.1", "fill_size": "1"}, "fill_price"),
        ("fill", {"fill_price": "1.1", "fill_size": "1e3"}, "fill_size"),
        ("fill", {"fill_price": "1.123456789", "fill_size": "1"}, "fill_price"),
        ("fill", {"fill_price": "1.1"}, "fill_size"),
        ("error", {"status_code": 1}, "error_message"),
        ("error", {"status_code": 1, "error_message": "x" * 1001}, "error_message"),
        ("ack", {"report_id": ""}, "report_id"),
        ("ack", {"report_id": "x" * 65}, "report_id"),
        ("ack", {"signal_id": "not-a-uuid"}, "signal_id"),
        ("ack", {"surprise": 1}, "surprise"),
    ],
)
async def test_malformed_reports_are_422(
    desk: Desk, kind: str, fields: dict[str, Any], field: str
) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    body = {"signal_id": signal["id"], **fields}
    problem = assert_problem(await terminal.report(kind, **body), 422)
    assert field in {error["field"] for error in problem["errors"]}


async def test_reports_need_the_device_signature(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    response = await desk.api.client.post(
        "/api/v1/exec/ack", json={"report_id": "x", "signal_id": signal["id"]}
    )
    assert_problem(response, 401, "missing_auth_header")


async def test_three_devices_ack_fill_and_error(desk: Desk) -> None:
    """ACK, two partial fills and an error from three devices."""
    alice = await desk.api.user()
    bob = await desk.api.user()
    filler = await desk.terminal(alice, "filler")
    acker = await desk.terminal(alice, "acker")
    failing = await desk.terminal(bob, "failing")
    signal = await desk.publish(
        instrument="EURUSD", order_type="limit", entry_price="1.10000", volume="1.5"
    )
    for terminal in (filler, acker, failing):
        await terminal.poll()

    clock.advance(timedelta(milliseconds=250))
    assert (await filler.ack(signal["id"])).status_code == 201
    assert (await acker.ack(signal["id"])).status_code == 201
    first = await filler.fill(signal["id"], "1.10010", "0.7", broker_ticket="T-1")
    second = await filler.fill(signal["id"], "1.10025", "0.3", broker_ticket="T-2")
    assert first.status_code == second.status_code == 201
    assert first.json()["trade_id"] == second.json()["trade_id"]
    assert (await failing.error(signal["id"], 10019, "Not enough money")).status_code == 201

    trades = await desk.api.client.get("/api/v1/trades", headers=alice.headers)
    (trade,) = trades.json()["items"]
    # VWAP: (1.10010 × 0.7 + 1.10025 × 0.3) / 1.0 = 1.100145
    assert trade["size"] == "1"
    assert trade["price"] == "1.100145"
    assert Decimal(trade["notional"]) == Decimal("1.100145")
    assert trade["instrument"] == "EURUSD"
    assert trade["side"] == "buy"

    admin = await desk.admin()
    summary = await desk.api.client.get(
        f"/api/v1/exec/summary/{signal['id']}", headers=admin.headers
    )
    assert summary.status_code == 200
    body = summary.json()
    assert body["delivered"] == 3
    assert body["acked"] == 2
    assert body["filled"] == 1
    assert body["errored"] == 1
    assert body["pending"] == 0
    assert body["filled_size"] == "1"
    assert body["avg_fill_price"] == "1.100145"
    quality = body["quality"]
    assert quality["ack_latency"]["count"] == 2
    assert quality["ack_latency"]["p50_ms"] >= 250
    # |1.10010 − 1.1| / 1.1 = 0.0091 %, |1.10025 − 1.1| / 1.1 = 0.0227 %
    assert quality["max_slippage_pct"] == "0.0227"
    assert quality["avg_slippage_pct"] == "0.0159"
    assert quality["fill_ratio"] == "0.6667"

    status = await desk.api.client.get(f"/api/v1/exec/status/{signal['id']}", headers=alice.headers)
    kinds = [(r["device_id"], r["execution_type"]) for r in status.json()]
    assert kinds == [
        (filler.id, "ack"),
        (acker.id, "ack"),
        (filler.id, "fill"),
        (filler.id, "fill"),
    ]
    everyone = await desk.api.client.get(
        f"/api/v1/exec/status/{signal['id']}", headers=admin.headers
    )
    assert len(everyone.json()) == 5


async def test_contract_size_scales_the_notional(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal, instrument="XAUUSD")
    await terminal.fill(signal["id"], "2000.5", "0.25")
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    assert Decimal(trades.json()["items"][0]["notional"]) == Decimal("500.125")


async def test_users_never_see_each_others_executions_or_trades(desk: Desk) -> None:
    mine = await desk.terminal()
    theirs = await desk.terminal()
    signal = await desk.publish()
    await mine.poll()
    await theirs.poll()
    await mine.fill(signal["id"], "1.1", "1")
    await theirs.fill(signal["id"], "1.2", "2")

    for terminal, other in ((mine, theirs), (theirs, mine)):
        status = await desk.api.client.get(
            f"/api/v1/exec/status/{signal['id']}", headers=terminal.owner.headers
        )
        assert {r["device_id"] for r in status.json()} == {terminal.id}
        trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
        assert {t["device_id"] for t in trades.json()["items"]} == {terminal.id}
        quality = await desk.api.client.get(
            f"/api/v1/devices/{other.id}/execution-quality", headers=terminal.owner.headers
        )
        assert_problem(quality, 404, "device_not_found")
    user = mine.owner
    assert_problem(
        await desk.api.client.get(f"/api/v1/exec/summary/{signal['id']}", headers=user.headers),
        403,
    )


async def test_status_of_an_unknown_signal_is_404(desk: Desk) -> None:
    user = await desk.api.user()
    response = await desk.api.client.get(
        "/api/v1/exec/status/00000000-0000-0000-0000-000000000000", headers=user.headers
    )
    assert_problem(response, 404)


async def test_trades_filter_by_instrument_and_time(desk: Desk) -> None:
    terminal = await desk.terminal()
    euro = await delivered(desk, terminal, instrument="EURUSD")
    await terminal.fill(euro["id"], "1.1", "1")
    clock.advance(timedelta(minutes=10))
    cutoff = clock.utcnow()
    gold = await delivered(desk, terminal, instrument="XAUUSD")
    await terminal.fill(gold["id"], "2000", "1")

    async def instruments(**params: str) -> list[str]:
        response = await desk.api.client.get(
            "/api/v1/trades", params=params, headers=terminal.owner.headers
        )
        assert response.status_code == 200, response.text
        return [t["instrument"] for t in response.json()["items"]]

    assert await instruments() == ["XAUUSD", "EURUSD"]
    assert await instruments(instrument="EURUSD") == ["EURUSD"]
    assert await instruments(since=cutoff.isoformat()) == ["XAUUSD"]
    assert await instruments(until=cutoff.isoformat()) == ["EURUSD"]
    assert await instruments(limit="1", offset="1") == ["EURUSD"]


async def test_device_execution_quality(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal, order_type="limit", entry_price="100", volume="2")
    clock.advance(timedelta(seconds=2))
    await terminal.ack(signal["id"])
    await terminal.fill(signal["id"], "101", "1")
    response = await desk.api.client.get(
        f"/api/v1/devices/{terminal.id}/execution-quality", headers=terminal.owner.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["signals_delivered"] == 1
    assert body["acked"] == 1
    assert body["filled"] == 1
    assert body["errored"] == 0
    assert body["quality"]["ack_latency"]["max_ms"] >= 2000
    assert body["quality"]["avg_slippage_pct"] == "1"
    assert body["quality"]["fill_ratio"] == "0.5"


async def test_concurrent_copies_of_one_fill_are_recorded_once(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    copies = await asyncio.gather(
        *(terminal.fill(signal["id"], "1.25", "0.1", report_id="dup") for _ in range(50))
    )
    statuses = sorted(response.status_code for response in copies)
    assert statuses == [200] * 49 + [201]
    assert len({response.json()["id"] for response in copies}) == 1
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    (trade,) = trades.json()["items"]
    assert trade["size"] == "0.1"
    status = await desk.api.client.get(
        f"/api/v1/exec/status/{signal['id']}", headers=terminal.owner.headers
    )
    assert len(status.json()) == 1
    # The copies that lost the race wrote nothing, not even an audit event.
    assert [event["action"] for event in await audit_of(desk, terminal)] == ["execution.fill"]


async def test_concurrent_distinct_fills_all_count(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)
    responses = await asyncio.gather(
        *(terminal.fill(signal["id"], f"1.{i:02d}", "0.01") for i in range(1, 21))
    )
    assert all(response.status_code == 201 for response in responses)
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    (trade,) = trades.json()["items"]
    assert trade["size"] == "0.2"
    # Mean of 1.01 … 1.20 with equal sizes.
    assert trade["price"] == "1.105"


async def audit_of(desk: Desk, terminal: Terminal) -> list[dict[str, Any]]:
    admin = await desk.admin()
    response = await desk.api.client.get(
        "/api/v1/admin/audit", params={"actor_id": terminal.id}, headers=admin.headers
    )
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_fills_and_errors_are_audited_once_acks_not_at_all(desk: Desk) -> None:
    terminal = await desk.terminal()
    first = await delivered(desk, terminal)
    second = await delivered(desk, terminal)
    assert (await terminal.ack(first["id"], report_id="a-1")).status_code == 201
    assert (await terminal.fill(first["id"], "1.2500", "0.5", report_id="f-1")).status_code == 201
    assert (await terminal.fill(first["id"], "1.25", "0.50", report_id="f-1")).status_code == 200
    error = await terminal.error(second["id"], 10019, "Not enough money", report_id="e-1")
    assert error.status_code == 201

    events = await audit_of(desk, terminal)
    # Newest first; the replayed fill and the ACK left nothing.
    assert [event["action"] for event in events] == ["execution.error", "execution.fill"]
    errored, filled = events
    assert filled["actor_type"] == "device"
    assert filled["target_type"] == "signal"
    assert filled["target_id"] == first["id"]
    assert filled["metadata"] == {
        "report_id": "f-1",
        "signal_id": first["id"],
        "fill_price": "1.25",
        "fill_size": "0.5",
    }
    assert filled["request_id"]
    assert errored["target_id"] == second["id"]
    assert errored["metadata"] == {
        "report_id": "e-1",
        "signal_id": second["id"],
        "status_code": 10019,
    }


async def test_a_refused_report_leaves_nothing_behind(desk: Desk) -> None:
    careful = await desk.api.user()
    await desk.set_mode(careful, "approval")
    terminal = await desk.terminal(careful)
    unapproved = await desk.publish()
    refused = await terminal.fill(unapproved["id"], "1.1", "0.5", report_id="early")
    assert_problem(refused, 404, "signal_not_delivered")
    trades = await desk.api.client.get("/api/v1/trades", headers=careful.headers)
    assert trades.json()["items"] == []
    assert await audit_of(desk, terminal) == []
    # Once approved the same report_id is free: nothing was kept of the refusal.
    assert (await desk.decide(careful, unapproved["id"], "approve")).status_code == 201
    accepted = await terminal.fill(unapproved["id"], "1.1", "0.5", report_id="early")
    assert accepted.status_code == 201


async def _as_another_process(desk: Desk, change: str, device_id: str) -> None:
    """Change the device's row as another server process would, whose word that
    this process's cached key is stale has not arrived yet."""
    device = Device.id == uuid.UUID(device_id)
    statement = (
        update(Device).where(device).values(is_active=False)
        if change == "deactivate"
        else delete(Device).where(device)
    )
    db = Database(desk.api.settings.resolved_database_url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(statement)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("change", "code"), [("deactivate", "key_inactive"), ("delete", "unknown_key")]
)
async def test_a_report_checks_the_device_row_even_when_its_key_is_cached(
    desk: Desk, change: str, code: str
) -> None:
    terminal = await desk.terminal()
    signal = await delivered(desk, terminal)  # the poll put the key in the cache
    await _as_another_process(desk, change, terminal.id)
    refused = await terminal.fill(signal["id"], "1.1", "0.5")
    assert_problem(refused, 401, code)
    trades = await desk.api.client.get("/api/v1/trades", headers=terminal.owner.headers)
    assert trades.json()["items"] == []
