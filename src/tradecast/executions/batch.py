"""Fill reports recorded together (PostgreSQL).

A fill is a transaction of eight round trips: the report's checks, the trade's
lock, the report with its settlement, figures and audit event, the affiliate's
lock, the referral and volume, the commission, and BEGIN and COMMIT around them.
Under load the worker and PostgreSQL spent most of their time on those round
trips, not on the rows. So the fills that reach a worker while an earlier batch
runs are recorded together, in one transaction of the ``FillBatcher``'s own:
eight round trips for the batch, whatever its size.

Decisions:

- **The same rules as one fill at a time** (``service.record``): the batch's
  statements are the single fill's, taking many rows; the trade figures, the
  commission tiers and the affiliate's running volume are worked out by the same
  functions, fill after fill in the order they arrived. Every fill of a batch is
  recorded at one instant.
- **Only the plain case is batched**: a new fill, of an active device, for a
  signal it was given. A replay, a reused ``report_id``, a device that is gone
  or inactive, a signal never delivered to it (pending now, or not at all) and
  a second copy of a report within the batch are handed back, and the request
  records its fill alone, with the answers and errors that path gives.
- **All or nothing, then one at a time**: if a copy of one of the batch's
  reports was stored meanwhile (by another batch, another process), the batch
  is rolled back and tried once more: that copy has committed, so the second
  look hands its fill back. If anything else fails (a deadlock, a lost
  connection), or the second try does, the batch is rolled back and every
  fill in it is recorded alone. Nothing is recorded twice: each report stays
  unique on (device, ``report_id``), and a lone fill whose batch did commit
  after all finds its report stored and answers as a replay.
- **A new trade is written once**: each trade is worked out first as if it
  were new, from all the batch's fills on it, and inserted so; only a trade
  that already existed is locked, given the fills on its stored figures and
  updated. A row inserted and then updated in one transaction costs
  PostgreSQL a second row version and its foreign-key checks run again;
  most trades take one fill. If the batch rolls back, so does the insert.
- **Lock order**: all the batch's trades in (device, signal) order, then the
  reports, deliveries and trade figures, then the affiliates in id order. A
  single fill takes the same kinds of lock in the same order (trade, report,
  delivery, affiliate), and two batches take each kind in one global order.
- **Gathering** (``kit.batching.TurnBatcher``): the first fill to arrive
  schedules the batch for the next turn of the event loop; the fills that
  arrive meanwhile join it. At most ``concurrency`` batches run at once; fills
  that arrive while they all run wait for the next, which takes every one
  waiting (at most ``batch_size``). One batch at a time per process by
  default: with two, a process's batches waited on each other's affiliate
  locks and held fewer fills each; two workers recorded 1,221–1,268 fills/s
  with two and 1,453–1,646/s with one, alternating runs of
  ``python -m bench.ingest --workers 2`` (``docs/PERFORMANCE.md``).
- **The request's context stays the request's**: its audit event is made in the
  request (client address, request id), and the audit and commission log lines
  are written by the request once the batch has committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tradecast.affiliates.models import EarnedCommission
from tradecast.affiliates.service import commissions
from tradecast.audit import service as audit
from tradecast.audit.models import PendingEvent
from tradecast.config import Settings
from tradecast.db import Database, DriverStatements
from tradecast.executions import service
from tradecast.executions.models import ExecutionType, ReportRow, TradeRow
from tradecast.executions.repository import FillBatchRepository, ReportContext, TradeKey
from tradecast.executions.schemas import FillIn
from tradecast.kit import clock
from tradecast.kit.batching import TurnBatcher
from tradecast.observability import Metrics
from tradecast.signed.verification import SigningKey

logger = logging.getLogger("tradecast.executions")

BATCH_SIZE = 64
CONCURRENCY = 1


@dataclass
class _Fill:
    key: SigningKey
    body: FillIn
    event: PendingEvent
    outcome: asyncio.Future[_Batched | None] = field(repr=False)


@dataclass(frozen=True)
class _Batched:
    recorded: service.Recorded
    commission: EarnedCommission | None


class BatchConflict(Exception):
    """A report of the batch was stored meanwhile by another transaction."""


async def record_fills(
    statements: DriverStatements, settings: Settings, fills: Sequence[_Fill], now: datetime
) -> dict[int, _Batched]:
    """Record the plain fills among ``fills`` (see the module's notes), by their
    position; the others are left for the caller to record alone."""
    repo = FillBatchRepository(statements)
    contexts = await repo.contexts(
        [(fill.key.key_id, fill.body.report_id, fill.body.signal_id) for fill in fills]
    )
    plain: list[tuple[int, _Fill, service.Reporter, service.ReportedSignal]] = []
    seen: set[tuple[object, str]] = set()
    for position, fill in enumerate(fills):
        context = contexts.get(position)
        copy_key = (fill.key.key_id, fill.body.report_id)
        if context is None or not _plain(context) or copy_key in seen:
            continue
        seen.add(copy_key)
        device = service.Reporter(fill.key.key_id, context.owner_id)
        signal = service.ReportedSignal(
            fill.body.signal_id, str(context.signal_instrument), str(context.signal_side)
        )
        plain.append((position, fill, device, signal))
    if not plain:
        return {}
    # Each trade as it will be if it is new: its first row holds the batch's fills.
    templates: dict[TradeKey, TradeRow] = {}
    for _, fill, device, signal in plain:
        key = (device.id, signal.id)
        template = templates.get(key)
        if template is None:
            template = templates[key] = service.empty_trade(device, signal, now)
        service.apply_fill(settings, template, signal, fill.body, now)
    trades = await repo.lock_trades(templates.values())
    # A trade that comes back with its template's (fresh) id was inserted so; one
    # that existed takes the batch's fills on its locked row, and is written after.
    existing = {key: trade for key, trade in trades.items() if trade.id != templates[key].id}
    reports: list[ReportRow] = []
    earnings: list[commissions.FillEarning] = []
    for _, fill, device, signal in plain:
        digest = service.fingerprint(ExecutionType.FILL, fill.body)
        report = service.new_report(device, fill.body, ExecutionType.FILL, digest, now)
        key = (device.id, signal.id)
        trade = trades[key]
        report.trade_id = trade.id
        if key in existing:
            service.apply_fill(settings, trade, signal, fill.body, now)
        reports.append(report)
        notional = service.fill_notional(settings, signal, fill.body)
        earnings.append(commissions.FillEarning(device.user_id, trade.id, report.id, notional))
    events = [fill.event for _, fill, _, _ in plain]
    if await repo.write(reports, existing.values(), events, now) != len(reports):
        raise BatchConflict()
    earned = await commissions.record_for_fills(statements, settings, earnings, now)
    return {
        position: _Batched(service.Recorded(report, created=True), commission)
        for (position, _, _, _), report, commission in zip(plain, reports, earned, strict=True)
    }


def _plain(context: ReportContext) -> bool:
    return (
        context.device_active
        and context.stored is None
        and context.delivered
        and context.signal_instrument is not None
    )


class FillBatcher(TurnBatcher[_Fill]):
    """Gathers a worker's fill reports into batches (``record_fills``)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        *,
        batch_size: int = BATCH_SIZE,
        concurrency: int = CONCURRENCY,
    ) -> None:
        super().__init__(batch_size=batch_size, concurrency=concurrency)
        self.db = db
        self.settings = settings
        self.metrics = metrics

    async def record(self, key: SigningKey, body: FillIn) -> service.Recorded | None:
        """The fill recorded in a batch, or None if it is to be recorded alone."""
        loop = asyncio.get_running_loop()
        fill = _Fill(key, body, service.audit_event(key.key_id, body), loop.create_future())
        self.submit(fill)
        batched = await fill.outcome
        if batched is None:
            return None
        audit.logged(fill.event)
        if batched.commission is not None:
            commissions.logged(batched.commission)
        return batched.recorded

    def abandon(self, items: list[_Fill]) -> None:
        # The app stopping with fills waiting: each is recorded alone.
        for fill in items:
            if not fill.outcome.done():
                fill.outcome.set_result(None)

    async def run(self, batch: list[_Fill]) -> None:
        live = [fill for fill in batch if not fill.outcome.done()]  # the client left
        recorded: dict[int, _Batched] = {}
        try:
            if live:
                recorded = await self._attempts(live)
        finally:
            # Cancelled (shutting down) or failed: each fill left is recorded alone.
            for position, fill in enumerate(live):
                if not fill.outcome.done():
                    fill.outcome.set_result(recorded.get(position))

    async def _attempts(self, fills: Sequence[_Fill]) -> dict[int, _Batched]:
        """The batch's transaction; once more if a copy of one of its reports was
        stored meanwhile (that copy has committed, so the second look hands its
        fill back); nothing batched if that fails too, or anything else does."""
        rolled_back = self.metrics.fill_batches.labels("rolled_back")
        for attempt in (1, 2):
            try:
                recorded = await self._transaction(fills)
            except BatchConflict:
                rolled_back.inc()
                if attempt == 1:
                    continue
                logger.warning("fill batch rolled back twice; its fills are recorded one at a time")
            except Exception:
                rolled_back.inc()
                logger.warning(
                    "fill batch rolled back; its fills are recorded one at a time", exc_info=True
                )
            else:
                self.metrics.fill_batches.labels("committed").inc()
                self.metrics.batched_fills.inc(len(recorded))
                return recorded
            return {}
        return {}  # pragma: no cover - the second attempt always returns

    async def _transaction(self, fills: Sequence[_Fill]) -> dict[int, _Batched]:
        async with self.db.driver_connection() as connection, connection.transaction():
            return await record_fills(
                DriverStatements(connection), self.settings, fills, clock.utcnow()
            )
