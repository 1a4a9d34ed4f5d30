"""Reconciliation: compare what devices reported with what signals asked for.

One issue per (signal, device, kind), created by whichever run finds it
first; each new issue is announced through the outbox (to the owner's
Telegram chat, once the bot is set up).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.devices.models import Device
from tradecast.executions.quality import slippage_pct
from tradecast.kit import clock, ids
from tradecast.kit.decimals import decimal_text
from tradecast.kit.pagination import PageParams
from tradecast.outbox import service as outbox
from tradecast.reconciliation.errors import IssueAlreadyResolved, IssueNotFound
from tradecast.reconciliation.models import IssueKind, IssueStatus, ReconciliationIssue
from tradecast.reconciliation.repository import IssueFilter, ReconciliationRepository
from tradecast.signals.models import Signal
from tradecast.users.models import User

logger = logging.getLogger("tradecast.reconciliation")

ISSUE_OPENED = "reconciliation.issue_opened"
# Fills older than this are not re-examined for slippage or size: the job runs
# every few seconds, so a week covers any outage the service would survive.
FILL_LOOKBACK = timedelta(days=7)
# Issues stored per statement: a few hundred rows of seven columns stay well
# inside SQLite's limit of bound parameters.
RECORD_CHUNK = 500
# Fills a run looks at again from before the previous run (``_changed_after``).
PROGRESS_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Finding:
    signal_id: uuid.UUID
    device_id: uuid.UUID
    kind: IssueKind
    detail: dict[str, Any]


def _changed_after(
    previous_run: datetime | None, settings: Settings
) -> tuple[datetime | None, datetime | None]:
    """For slippage and for size: the time after which a (signal, device) pair must
    have a fill to be looked at again (None: every pair of the week).

    A fill's slippage never changes, and a pair's summed size is decided once its
    last fill has been quiet for ``FILL_TIMEOUT_S``: a run needs to look only at
    pairs with a fill since the previous run, not at a week of fills every 30 s
    (110,000 of them on the fill benchmark's data, read twice with their
    signals, which held a worker for seconds each run). ``PROGRESS_MARGIN``
    covers fills whose ``created_at`` was taken before that run read and
    committed after.
    """
    if previous_run is None:
        return None, None
    since = previous_run - PROGRESS_MARGIN
    return since, since - timedelta(seconds=settings.fill_timeout_s)


async def reconcile(
    session: AsyncSession, settings: Settings, *, previous_run: datetime | None = None
) -> dict[IssueKind, int]:
    """Find and record new issues; returns how many of each kind were created.

    With ``previous_run`` (the scheduled job's previous start, ``jobs.py``),
    fills are looked at only where they changed since; an admin's run, and a
    deployment's first, look at the whole week.
    """
    now = clock.utcnow()
    repo = ReconciliationRepository(session)
    slippage_after, size_after = _changed_after(previous_run, settings)
    findings = [
        *await _missing_acks(repo, settings, now),
        *await _missing_fills(repo, settings, now),
        *await _execution_errors(repo),
        *await _slippage(repo, settings, now, slippage_after),
        *await _size_mismatches(repo, settings, now, size_after),
    ]
    created = await _record_all(repo, findings, now)
    if any(created.values()):
        logger.info("reconciliation found issues", extra={"issues_created": sum(created.values())})
    return created


async def _missing_acks(
    repo: ReconciliationRepository, settings: Settings, now: datetime
) -> list[Finding]:
    cutoff = now - timedelta(seconds=settings.ack_timeout_s)
    return [
        Finding(
            d.signal_id,
            d.device_id,
            IssueKind.MISSING_ACK,
            {
                "delivered_at": d.first_delivered_at.isoformat(),
                "ack_timeout_s": settings.ack_timeout_s,
            },
        )
        for d in await repo.unacked_deliveries(cutoff)
    ]


async def _missing_fills(
    repo: ReconciliationRepository, settings: Settings, now: datetime
) -> list[Finding]:
    cutoff = now - timedelta(seconds=settings.fill_timeout_s)
    return [
        Finding(
            ack.signal_id,
            ack.device_id,
            IssueKind.MISSING_FILL,
            {"acked_at": ack.created_at.isoformat(), "fill_timeout_s": settings.fill_timeout_s},
        )
        for ack in await repo.acks_without_fill(cutoff)
    ]


async def _execution_errors(repo: ReconciliationRepository) -> list[Finding]:
    return [
        Finding(
            report.signal_id,
            report.device_id,
            IssueKind.EXECUTION_ERROR,
            {
                "report_id": report.report_id,
                "status_code": report.status_code,
                "error_message": report.error_message,
            },
        )
        for report in await repo.unreported_errors()
    ]


async def _slippage(
    repo: ReconciliationRepository, settings: Settings, now: datetime, after: datetime | None
) -> list[Finding]:
    findings: dict[tuple[uuid.UUID, uuid.UUID], Finding] = {}
    fills = await repo.fills_to_check(IssueKind.SLIPPAGE, now - FILL_LOOKBACK, after)
    for fill, signal in fills:
        if signal.entry_price is None or fill.fill_price is None:
            continue
        pct = slippage_pct(fill.fill_price, signal.entry_price)
        key = (fill.signal_id, fill.device_id)
        if pct > settings.max_slippage_pct and key not in findings:
            findings[key] = Finding(
                fill.signal_id,
                fill.device_id,
                IssueKind.SLIPPAGE,
                {
                    "report_id": fill.report_id,
                    "fill_price": decimal_text(fill.fill_price),
                    "entry_price": decimal_text(signal.entry_price),
                    "slippage_pct": decimal_text(pct),
                    "max_slippage_pct": decimal_text(settings.max_slippage_pct),
                },
            )
    return list(findings.values())


async def _size_mismatches(
    repo: ReconciliationRepository, settings: Settings, now: datetime, after: datetime | None
) -> list[Finding]:
    filled: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = defaultdict(Decimal)
    last_fill: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {}
    signals: dict[uuid.UUID, Signal] = {}
    fills = await repo.fills_to_check(IssueKind.SIZE_MISMATCH, now - FILL_LOOKBACK, after)
    for fill, signal in fills:
        if signal.volume is None or fill.fill_size is None:
            continue
        key = (fill.signal_id, fill.device_id)
        filled[key] += fill.fill_size
        last_fill[key] = max(last_fill.get(key, fill.created_at), fill.created_at)
        signals[signal.id] = signal
    quiet_since = now - timedelta(seconds=settings.fill_timeout_s)
    return [
        Finding(
            signal_id,
            device_id,
            IssueKind.SIZE_MISMATCH,
            {"volume": decimal_text(volume), "filled_size": decimal_text(size)},
        )
        for (signal_id, device_id), size in filled.items()
        if last_fill[(signal_id, device_id)] <= quiet_since
        and size != (volume := signals[signal_id].volume or Decimal(0))
    ]


async def _record_all(
    repo: ReconciliationRepository, findings: Sequence[Finding], now: datetime
) -> dict[IssueKind, int]:
    """Store the findings as issues and announce each new one; how many of each
    kind were created.

    A few statements per ``RECORD_CHUNK`` findings, not per finding: after an
    outage a run can find tens of thousands (every delivery the terminals did not
    ACK meanwhile), and one round trip per issue kept a worker busy for a minute.
    The findings go in one order, so runs that overlap wait, not deadlock.
    """
    created: dict[IssueKind, int] = dict.fromkeys(IssueKind, 0)
    ordered = sorted(findings, key=_issue_key)
    for start in range(0, len(ordered), RECORD_CHUNK):
        chunk = ordered[start : start + RECORD_CHUNK]
        rows = [_issue_row(finding, now) for finding in chunk]
        inserted = await repo.insert_issues(rows)
        new = [
            (row, finding)
            for row, finding in zip(rows, chunk, strict=True)
            if row["id"] in inserted
        ]
        devices = await repo.devices_by_id(finding.device_id for _, finding in new)
        signals = await repo.signals_by_id(finding.signal_id for _, finding in new)
        for row, finding in new:
            created[finding.kind] += 1
            device, signal = devices.get(finding.device_id), signals.get(finding.signal_id)
            if device is not None and signal is not None:
                _announce(repo.session, row["id"], finding, device, signal)
    return created


def _issue_key(finding: Finding) -> tuple[str, str, str]:
    return (str(finding.signal_id), str(finding.device_id), finding.kind.value)


def _issue_row(finding: Finding, now: datetime) -> dict[str, Any]:
    return {
        "id": ids.time_ordered(),
        "signal_id": finding.signal_id,
        "device_id": finding.device_id,
        "kind": finding.kind,
        "status": IssueStatus.OPEN,
        "detail": finding.detail,
        "created_at": now,
    }


def _announce(
    session: AsyncSession, issue_id: uuid.UUID, finding: Finding, device: Device, signal: Signal
) -> None:
    outbox.emit(
        session,
        ISSUE_OPENED,
        {
            "issue_id": str(issue_id),
            "user_id": str(device.user_id),
            "device_id": str(device.id),
            "device_name": device.device_name,
            "signal_id": str(signal.id),
            "instrument": signal.instrument,
            "side": signal.side.value,
            "kind": finding.kind.value,
            "detail": finding.detail,
        },
    )


async def run_by_admin(
    session: AsyncSession, settings: Settings, admin: User
) -> dict[IssueKind, int]:
    created = await reconcile(session, settings)
    audit.record(
        session,
        "reconciliation.run",
        actor_type=ActorType.USER,
        actor_id=admin.id,
        metadata={kind.value: count for kind, count in created.items() if count},
    )
    return created


async def issues(
    session: AsyncSession, user: User, criteria: IssueFilter, page: PageParams
) -> tuple[Sequence[ReconciliationIssue], int]:
    """Admins see every issue; a user only those of their own devices."""
    if not user.role.is_admin:
        criteria = IssueFilter(status=criteria.status, kind=criteria.kind, owner_id=user.id)
    return await ReconciliationRepository(session).page(criteria, page)


async def resolve(session: AsyncSession, admin: User, issue_id: uuid.UUID) -> ReconciliationIssue:
    issue = await ReconciliationRepository(session).get(issue_id, for_update=True)
    if issue is None:
        raise IssueNotFound()
    if issue.status is IssueStatus.RESOLVED:
        raise IssueAlreadyResolved()
    issue.status = IssueStatus.RESOLVED
    issue.resolved_at = clock.utcnow()
    issue.resolved_by = admin.id
    audit.record(
        session,
        "reconciliation.issue_resolved",
        actor_type=ActorType.USER,
        actor_id=admin.id,
        target_type="reconciliation_issue",
        target_id=issue.id,
        metadata={"kind": issue.kind.value},
    )
    await session.flush()
    return issue
