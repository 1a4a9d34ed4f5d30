"""The device loop: long-poll, ACK, execute, report — and never lose a report.

Two tasks share the journal:

- the **poller** long-polls (``wait=25``). Each signal it has not seen is
  journaled with its ACK, executed, and its fills (or error) journaled; it
  never executes a signal the journal already knows (delivery is at least
  once, so the same signal comes back until its ACK lands).
- the **sender** sends journaled reports oldest first until the server
  answers 2xx, backing off with jitter on network errors, 5xx and 429.

On start, the journal's unsent reports are sent before anything else, and a
signal whose execution a crash interrupted is reported as an error rather
than executed again: a terminal must never place one signal's order twice,
and only a human can tell whether the interrupted order reached the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradecast.client.api import CredentialsRejected, DeviceApi, Rejected, RetryLater, backoff_delay
from tradecast.client.executor import ExecutionRefused, Executor, Fill, Signal
from tradecast.client.journal import Journal, JournaledReport

logger = logging.getLogger("tradecast.client")

# Test hook, and only that: with TRADECAST_CLIENT_CRASH_AFTER=<point> the process dies
# (os._exit, no clean-up, like a power cut) right after that point, so tests can show
# that a crash there loses nothing. Points: "fill_journaled".
CRASH_AFTER_ENV = "TRADECAST_CLIENT_CRASH_AFTER"

# Reported for a signal whose execution a crash interrupted; outside the broker ranges.
INTERRUPTED = -1
STUCK_POLL_PAUSE_S = 1.0
_REPORT_NAMESPACE = uuid.UUID("6f1e3c0a-5b7d-4e2a-9c84-0d3f2b1a7e65")


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_AFTER_ENV) == name:
        logger.warning("crashing on purpose", extra={"crash_point": name})
        os._exit(1)


def report_id(device_id: str, signal_id: str, step: str) -> str:
    """Stable across restarts and retries: derived from (device, signal, step), never from
    a counter or a clock. ``step`` is ``ack``, ``fill1``, ``fill2``, ... or ``error``."""
    digest = uuid.uuid5(_REPORT_NAMESPACE, f"{device_id}/{signal_id}/{step}").hex
    return f"{step}-{digest}"


def _body(fields: dict[str, Any]) -> bytes:
    # Serialised once and journaled: every attempt sends these very bytes.
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def _text(value: Decimal) -> str:
    return format(value, "f")  # never exponent notation, never a float


@dataclass
class RunnerOptions:
    wait_s: int = 25
    limit: int = 50


class Runner:
    def __init__(
        self,
        api: DeviceApi,
        journal: Journal,
        executor: Executor,
        options: RunnerOptions | None = None,
    ) -> None:
        self.api = api
        self.journal = journal
        self.executor = executor
        self.options = options or RunnerOptions()
        self.device_id = api.key_id
        self._kick = asyncio.Event()
        self._idle = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled, or ``CredentialsRejected`` when the server refuses the key."""
        self.journal.prune()
        self._report_interrupted()
        await self._send_pending(until_empty=True)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._send_pending(until_empty=False), name="sender")
                tasks.create_task(self._poll_loop(), name="poller")
        except* CredentialsRejected as group:
            raise group.exceptions[0] from None

    # -- reports --------------------------------------------------------------

    def _ack(self, signal: Signal) -> JournaledReport:
        rid = report_id(self.device_id, signal.id, "ack")
        body = _body({"report_id": rid, "signal_id": signal.id})
        return JournaledReport(rid, signal.id, "ack", body)

    def _fill(self, signal: Signal, index: int, fill: Fill) -> JournaledReport:
        rid = report_id(self.device_id, signal.id, f"fill{index}")
        fields: dict[str, Any] = {
            "report_id": rid,
            "signal_id": signal.id,
            "fill_price": _text(fill.price),
            "fill_size": _text(fill.size),
        }
        if fill.broker_ticket:
            fields["broker_ticket"] = fill.broker_ticket
        return JournaledReport(rid, signal.id, "fill", _body(fields))

    def _error(self, signal_id: str, status_code: int, message: str) -> JournaledReport:
        rid = report_id(self.device_id, signal_id, "error")
        body = _body(
            {
                "report_id": rid,
                "signal_id": signal_id,
                "status_code": status_code,
                "error_message": message[:1000],
            }
        )
        return JournaledReport(rid, signal_id, "error", body)

    def _report_interrupted(self) -> None:
        for signal_id in self.journal.interrupted():
            logger.warning(
                "execution was interrupted by a restart; reporting an error",
                extra={"signal_id": signal_id},
            )
            message = "execution interrupted by a terminal restart; check the broker account"
            self.journal.finish(signal_id, [self._error(signal_id, INTERRUPTED, message)])

    async def _send_pending(self, *, until_empty: bool) -> None:
        attempt = 0
        while True:
            self._kick.clear()
            pending = self.journal.unsent(limit=1)
            if not pending:
                self._idle.set()
                if until_empty:
                    return
                await self._kick.wait()
                continue
            self._idle.clear()
            report = pending[0]
            try:
                response = await self.api.report(report.kind, report.body)
            except RetryLater as exc:
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(attempt)
                logger.warning(
                    "report not acknowledged; retrying",
                    extra={"report_id": report.report_id, "error": str(exc), "retry_in_s": delay},
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            except Rejected as exc:
                # 409 (this report_id was used for another body) or 404/422: a bug on this
                # side. The same bytes would get the same answer, so the report is dropped.
                logger.error(
                    "report refused; dropped",
                    extra={"report_id": report.report_id, "error": str(exc)},
                )
                self.journal.mark_sent(report.report_id, f"dropped {exc.status} {exc.code}")
                continue
            attempt = 0
            self.journal.mark_sent(report.report_id, str(response.status_code))
            logger.info(
                "report acknowledged",
                extra={
                    "report_id": report.report_id,
                    "signal_id": report.signal_id,
                    "kind": report.kind,
                    "status": response.status_code,
                },
            )

    # -- signals --------------------------------------------------------------

    async def _poll_loop(self) -> None:
        attempt = 0
        while True:
            try:
                answer = await self.api.poll(wait_s=self.options.wait_s, limit=self.options.limit)
            except (RetryLater, Rejected) as exc:
                hint = exc.retry_after if isinstance(exc, RetryLater) else None
                delay = hint if hint is not None else backoff_delay(attempt)
                logger.warning("poll failed; retrying", extra={"error": str(exc)})
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            signals = [Signal.from_json(item) for item in answer.signals]
            fresh = [signal for signal in signals if not self.journal.knows(signal.id)]
            for signal in fresh:
                await self._act_on(signal)
            if signals and not fresh:
                # Known signals come back until their ACKs land: wait for the sender rather
                # than spin on polls that answer at once. If it had nothing left to send (an
                # ACK was dropped as refused, so the server keeps delivering the signal),
                # pause as well: at most one poll a second, far below the rate limit.
                was_idle = self._idle.is_set()
                await self._sender_idle(answer.poll_interval_s)
                if was_idle:
                    await asyncio.sleep(STUCK_POLL_PAUSE_S)
            elif not signals and self.options.wait_s == 0:
                await asyncio.sleep(answer.poll_interval_s)

    async def _sender_idle(self, at_most_s: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=at_most_s)
        except TimeoutError:
            pass

    async def _act_on(self, signal: Signal) -> None:
        # Journaled before anything is done: from here on this signal is never executed again.
        self.journal.begin(signal.id, self._ack(signal))
        self._kick.set()
        logger.info("signal received", extra={"signal_id": signal.id})
        try:
            fills = await self.executor.execute(signal)
        except ExecutionRefused as refused:
            self.journal.finish(
                signal.id, [self._error(signal.id, refused.status_code, refused.message)]
            )
            logger.warning("signal not executed", extra={"signal_id": signal.id})
        else:
            reports = [self._fill(signal, index, fill) for index, fill in enumerate(fills, 1)]
            self.journal.finish(signal.id, reports)
            if reports:
                crash_point("fill_journaled")
        self._kick.set()
