from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.desk import Desk, Terminal
from tests.helpers import LoggedIn, assert_problem
from tradecast.kit import clock


async def run(desk: Desk) -> dict[str, Any]:
    admin = await desk.admin()
    response = await desk.api.client.post("/api/v1/reconciliation/run", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def issues(desk: Desk, viewer: LoggedIn, **params: str) -> list[dict[str, Any]]:
    response = await desk.api.client.get(
        "/api/v1/reconciliation/issues", params=params, headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def later(desk: Desk, seconds: int) -> None:
    """Let time pass, keeping the admin's session alive as a person would."""
    clock.advance(timedelta(seconds=seconds))
    desk._admin = None


async def test_unacked_delivery_becomes_missing_ack_but_acked_does_not(desk: Desk) -> None:
    silent = await desk.terminal()
    polite = await desk.terminal()
    signal = await desk.publish()
    await silent.poll()
    await polite.poll()
    await polite.ack(signal["id"])

    assert (await run(desk))["total"] == 0  # not yet 60 s
    await later(desk, 61)
    result = await run(desk)
    assert result["created"]["missing_ack"] == 1
    admin = await desk.admin()
    (issue,) = await issues(desk, admin, kind="missing_ack")
    assert issue["device_id"] == silent.id
    assert issue["signal_id"] == signal["id"]
    assert issue["status"] == "open"
    assert issue["detail"]["ack_timeout_s"] == 60

    # Running again creates nothing new.
    assert (await run(desk))["total"] == 0


async def test_fill_far_from_entry_is_slippage(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish(order_type="limit", entry_price="1.25")
    await terminal.poll()
    await terminal.ack(signal["id"])
    # 1.258 is 0.64 % away from 1.25; 1.255 (0.4 %) would be within the threshold.
    await terminal.fill(signal["id"], "1.255", "0.5")
    assert (await run(desk))["created"]["slippage"] == 0
    await terminal.fill(signal["id"], "1.258", "0.5")
    result = await run(desk)
    assert result["created"]["slippage"] == 1
    admin = await desk.admin()
    (issue,) = await issues(desk, admin, kind="slippage")
    assert issue["detail"]["slippage_pct"] == "0.64"
    assert issue["detail"]["fill_price"] == "1.258"


async def test_error_report_becomes_execution_error_once(desk: Desk) -> None:
    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    await terminal.error(signal["id"], 10019, "Not enough money")
    await terminal.error(signal["id"], 10019, "Not enough money")
    assert (await run(desk))["created"]["execution_error"] == 1
    assert (await run(desk))["total"] == 0
    (issue,) = await issues(desk, terminal.owner)
    assert issue["kind"] == "execution_error"
    assert issue["detail"]["status_code"] == 10019


async def test_market_ack_without_fill_becomes_missing_fill(desk: Desk) -> None:
    idle = await desk.terminal()
    filled = await desk.terminal()
    signal = await desk.publish(order_type="market")
    for terminal in (idle, filled):
        await terminal.poll()
        await terminal.ack(signal["id"])
    await filled.fill(signal["id"], "1.1", "1")
    await later(desk, 301)
    result = await run(desk)
    assert result["created"]["missing_fill"] == 1
    admin = await desk.admin()
    (issue,) = await issues(desk, admin, kind="missing_fill")
    assert issue["device_id"] == idle.id


async def test_short_fill_becomes_size_mismatch_once_fills_stop(desk: Desk) -> None:
    terminal = await desk.terminal()
    exact = await desk.terminal()
    signal = await desk.publish(volume="1.0")
    for t in (terminal, exact):
        await t.poll()
        await t.ack(signal["id"])
    await terminal.fill(signal["id"], "1.1", "0.4")
    await exact.fill(signal["id"], "1.1", "0.6")
    await exact.fill(signal["id"], "1.1", "0.4")
    assert (await run(desk))["created"]["size_mismatch"] == 0
    await later(desk, 301)
    assert (await run(desk))["created"]["size_mismatch"] == 1
    admin = await desk.admin()
    (issue,) = await issues(desk, admin, kind="size_mismatch")
    assert issue["device_id"] == terminal.id
    assert issue["detail"] == {"volume": "1", "filled_size": "0.4"}


async def test_users_see_only_their_devices_issues_and_admins_resolve(desk: Desk) -> None:
    mine = await desk.terminal()
    theirs = await desk.terminal()
    signal = await desk.publish()
    for terminal in (mine, theirs):
        await terminal.poll()
        await terminal.error(signal["id"])
    await run(desk)
    (own,) = await issues(desk, mine.owner)
    assert own["device_id"] == mine.id
    assert [i["device_id"] for i in await issues(desk, theirs.owner)] == [theirs.id]

    resolve_path = f"/api/v1/reconciliation/issues/{own['id']}/resolve"
    assert_problem(await desk.api.client.post(resolve_path, headers=mine.owner.headers), 403)
    admin = await desk.admin()
    resolved = await desk.api.client.post(resolve_path, headers=admin.headers)
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    assert_problem(
        await desk.api.client.post(resolve_path, headers=admin.headers),
        409,
        "issue_already_resolved",
    )
    assert await issues(desk, mine.owner, status="open") == []
    assert len(await issues(desk, admin, status="open")) == 1
    assert_problem(
        await desk.api.client.post(
            "/api/v1/reconciliation/issues/00000000-0000-0000-0000-000000000000/resolve",
            headers=admin.headers,
        ),
        404,
    )
    assert_problem(
        await desk.api.client.post("/api/v1/reconciliation/run", headers=mine.owner.headers), 403
    )


async def test_concurrent_runs_create_each_issue_once(desk: Desk) -> None:
    terminals: list[Terminal] = [await desk.terminal() for _ in range(3)]
    signal = await desk.publish()
    for terminal in terminals:
        await terminal.poll()
        await terminal.error(signal["id"])
    results = await asyncio.gather(*(run(desk) for _ in range(5)))
    assert sum(result["total"] for result in results) == 3
    admin = await desk.admin()
    assert len(await issues(desk, admin)) == 3


async def test_new_issue_is_written_to_the_outbox(desk: Desk) -> None:
    from sqlalchemy import select

    from tradecast.db import Database
    from tradecast.outbox.models import OutboxEvent

    terminal = await desk.terminal(name="Gold EA")
    signal = await desk.publish(instrument="XAUUSD")
    await terminal.poll()
    await terminal.error(signal["id"], 130, "Invalid stops")
    await run(desk)
    db = Database(desk.api.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            (event,) = (await session.scalars(select(OutboxEvent))).all()
    finally:
        await db.dispose()
    assert event.topic == "reconciliation.issue_opened"
    assert event.payload["instrument"] == "XAUUSD"
    assert event.payload["device_name"] == "Gold EA"
    assert event.payload["user_id"] == terminal.owner.id
    assert event.delivered_at is None  # no handler yet: it waits


async def test_many_findings_are_recorded_in_chunks_each_once(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradecast.reconciliation import service

    # Chunks of two, so five findings of two kinds cross chunk boundaries.
    monkeypatch.setattr(service, "RECORD_CHUNK", 2)
    silent = [await desk.terminal(name=f"Silent {n}") for n in range(3)]
    failing = [await desk.terminal() for _ in range(2)]
    signal = await desk.publish()
    for terminal in [*silent, *failing]:
        await terminal.poll()
    for terminal in failing:
        await terminal.error(signal["id"])
    await later(desk, 61)

    result = await run(desk)
    assert result["created"]["missing_ack"] == 3
    assert result["created"]["execution_error"] == 2
    admin = await desk.admin()
    found = await issues(desk, admin, limit="50")
    assert sorted((issue["kind"], issue["device_id"]) for issue in found) == sorted(
        [("missing_ack", t.id) for t in silent] + [("execution_error", t.id) for t in failing]
    )
    events = await outbox_events(desk)
    assert sorted(event.payload["issue_id"] for event in events) == sorted(
        issue["id"] for issue in found
    )
    assert {event.payload["device_name"] for event in events} >= {f"Silent {n}" for n in range(3)}
    # Each terminal's owner sees only their own issue.
    for terminal in silent:
        (own,) = await issues(desk, terminal.owner)
        assert own["device_id"] == terminal.id
    assert (await run(desk))["total"] == 0
    assert len(await outbox_events(desk)) == 5


async def outbox_events(desk: Desk) -> list[Any]:
    from sqlalchemy import select

    from tradecast.db import Database
    from tradecast.outbox.models import OutboxEvent

    db = Database(desk.api.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            return list((await session.scalars(select(OutboxEvent))).all())
    finally:
        await db.dispose()


@pytest.mark.postgres_only
async def test_scheduled_reconciliation_runs_in_one_process_at_a_time(desk: Desk) -> None:
    import asyncpg

    from tradecast import jobruns, jobs
    from tradecast.db import Database

    terminal = await desk.terminal()
    signal = await desk.publish()
    await terminal.poll()
    await terminal.error(signal["id"])
    db = Database(desk.api.settings.resolved_database_url)
    other = await asyncpg.connect(
        desk.api.settings.resolved_database_url.replace("postgresql+asyncpg", "postgresql")
    )
    try:
        job = jobs.reconciliation_job(db, desk.api.settings)
        # Another process is reconciling: this one skips its tick.
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", jobruns.lock_key("reconcile"))
            assert await jobs.run_once(job) == 0
            admin = await desk.admin()
            assert await issues(desk, admin) == []
        # The other run ended (its lock with its transaction): the next tick runs.
        assert await jobs.run_once(job) == 1
        (issue,) = await issues(desk, admin)
        assert issue["kind"] == "execution_error"
    finally:
        await other.close()
        await db.dispose()


async def test_the_scheduled_job_finds_what_changed_after_its_earlier_runs(desk: Desk) -> None:
    from tradecast import jobs
    from tradecast.db import Database

    db = Database(desk.api.settings.resolved_database_url)
    # A fill timeout longer than the job's margin, so that forgetting the timeout
    # in what a run looks at again would lose the short pair below.
    settings = desk.api.settings.model_copy(update={"fill_timeout_s": 900})
    job = jobs.reconciliation_job(db, settings)
    try:
        short = await desk.terminal()
        exact = await desk.terminal()
        sized = await desk.publish(volume="1.0")
        for terminal in (short, exact):
            await terminal.poll()
            await terminal.ack(sized["id"])
        await short.fill(sized["id"], "1.1", "0.4")
        await exact.fill(sized["id"], "1.1", "1.0")
        assert await jobs.run_once(job) == 0  # the fills are not quiet yet
        await later(desk, 850)
        assert await jobs.run_once(job) == 0
        # Quiet since its last fill, the short pair is decided by a later run, though
        # its fill came before the runs that looked at it.
        await later(desk, 100)
        assert await jobs.run_once(job) == 1
        # A slippage that arrives between runs is found by the next one.
        limit = await desk.publish(order_type="limit", entry_price="1.25")
        await exact.poll()
        await exact.ack(limit["id"])
        await exact.fill(limit["id"], "1.258", "0.5")
        await later(desk, 30)
        assert await jobs.run_once(job) == 1
        # A pair that gets another fill is looked at again, all its fills summed:
        # the exact device's second fill overfills the sized signal.
        await exact.fill(sized["id"], "1.1", "0.2")
        await later(desk, 901)
        assert await jobs.run_once(job) == 1
        admin = await desk.admin()
        found = {(issue["kind"], issue["device_id"]): issue for issue in await issues(desk, admin)}
        assert set(found) == {
            ("size_mismatch", short.id),
            ("slippage", exact.id),
            ("size_mismatch", exact.id),
        }
        assert found[("size_mismatch", exact.id)]["detail"]["filled_size"] == "1.2"
        await later(desk, 30)
        assert await jobs.run_once(job) == 0
    finally:
        await db.dispose()


async def test_several_processes_make_one_run_per_interval_between_them(desk: Desk) -> None:
    from tradecast import jobs
    from tradecast.db import Database

    db = Database(desk.api.settings.resolved_database_url)
    # Two processes' jobs: each process schedules its own.
    first = jobs.reconciliation_job(db, desk.api.settings)
    second = jobs.reconciliation_job(db, desk.api.settings)
    try:
        terminals = [await desk.terminal() for _ in range(2)]
        signal = await desk.publish()
        for terminal in terminals:
            await terminal.poll()
        await terminals[0].error(signal["id"])
        assert await jobs.run_once(first) == 1
        await terminals[1].error(signal["id"])
        # The second process's tick falls in the interval the first one's run served.
        await later(desk, 10)
        assert await jobs.run_once(second) == 0
        admin = await desk.admin()
        assert len(await issues(desk, admin)) == 1
        # The next interval is served by whichever process's tick comes first.
        await later(desk, 20)
        assert await jobs.run_once(second) == 1
        assert await jobs.run_once(first) == 0
        assert len(await issues(desk, admin)) == 2
    finally:
        await db.dispose()


async def test_a_run_after_another_reads_only_pairs_with_newer_fills(desk: Desk) -> None:
    from tradecast.db import Database
    from tradecast.reconciliation.models import IssueKind
    from tradecast.reconciliation.repository import ReconciliationRepository

    old, recent = await desk.terminal(), await desk.terminal()
    signal = await desk.publish(order_type="limit", entry_price="1.1")
    # No entry price: its fills can never slip, and are never read for slippage.
    unpriced = await desk.publish()
    for terminal in (old, recent):
        await terminal.poll()
        await terminal.ack(signal["id"])
    await old.fill(signal["id"], "1.1", "0.3")
    await recent.fill(signal["id"], "1.1", "0.3")
    await old.fill(unpriced["id"], "1.1", "0.3")
    await later(desk, 600)
    boundary = clock.utcnow()
    await later(desk, 10)
    await recent.fill(signal["id"], "1.1", "0.2")
    db = Database(desk.api.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            repo = ReconciliationRepository(session)
            week_ago = clock.utcnow() - timedelta(days=7)
            everything = await repo.fills_to_check(IssueKind.SLIPPAGE, week_ago)
            narrowed = await repo.fills_to_check(IssueKind.SLIPPAGE, week_ago, boundary)
    finally:
        await db.dispose()
    assert sorted(str(fill.device_id) for fill, _ in everything) == sorted(
        [old.id, recent.id, recent.id]
    )
    # Both of the recent pair's fills (its sum needs them), none of the old pair's.
    assert [str(fill.device_id) for fill, _ in narrowed] == [recent.id, recent.id]
