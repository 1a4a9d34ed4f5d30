"""The device's local journal: which signals it acted on, and the reports the server
has not acknowledged yet.

A report is written here, with its final ``report_id`` and body bytes,
*before* it is sent, and marked sent only once the server answered 2xx. A
crash at any point therefore loses nothing: on restart the unsent reports go
out again, byte for byte, and the server's idempotency on (device,
``report_id``) turns a report that had in fact landed into a harmless 200.
The journal also remembers every signal it began, so a signal delivered again
(delivery is at least once) is never executed twice.

SQLite with ``synchronous=FULL``: a committed write survives a crash of the
process and of the machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    signal_id   TEXT PRIMARY KEY,
    state       TEXT NOT NULL,          -- 'executing' until its reports are journaled, then 'done'
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- sending order
    report_id  TEXT NOT NULL UNIQUE,
    signal_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,                      -- ack | fill | error
    body       BLOB NOT NULL,                      -- the exact bytes sent on every attempt
    created_at REAL NOT NULL,
    sent_at    REAL,
    outcome    TEXT                                -- '201', '200', or why it was dropped
);
CREATE INDEX IF NOT EXISTS ix_reports_unsent ON reports (seq) WHERE sent_at IS NULL;
"""

# Long after any signal could be delivered again (signals expire within hours).
RETENTION_S = 30 * 24 * 3600


@dataclass(frozen=True)
class JournaledReport:
    report_id: str
    signal_id: str
    kind: str
    body: bytes


class Journal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; every change below is one explicit transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple[object, ...]]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                self._db.execute(sql, params)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def knows(self, signal_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM signals WHERE signal_id = ?", (signal_id,))
        return row.fetchone() is not None

    def begin(self, signal_id: str, ack: JournaledReport) -> None:
        """Record that this signal is being acted on, with its ACK to send, atomically."""
        now = time.time()
        self._write(
            [
                (
                    "INSERT INTO signals (signal_id, state, received_at) "
                    "VALUES (?, 'executing', ?)",
                    (signal_id, now),
                ),
                *self._inserts([ack], now),
            ]
        )

    def finish(self, signal_id: str, reports: list[JournaledReport]) -> None:
        """The execution's reports (fills or an error), and the signal done, atomically."""
        now = time.time()
        self._write(
            [
                *self._inserts(reports, now),
                ("UPDATE signals SET state = 'done' WHERE signal_id = ?", (signal_id,)),
            ]
        )

    @staticmethod
    def _inserts(
        reports: list[JournaledReport], now: float
    ) -> list[tuple[str, tuple[object, ...]]]:
        # Report ids are stable, so journaling one twice keeps the first (its bytes were
        # perhaps already sent).
        return [
            (
                "INSERT OR IGNORE INTO reports (report_id, signal_id, kind, body, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (r.report_id, r.signal_id, r.kind, r.body, now),
            )
            for r in reports
        ]

    def interrupted(self) -> list[str]:
        """Signals whose execution a crash interrupted: begun, reports never journaled."""
        rows = self._db.execute(
            "SELECT signal_id FROM signals WHERE state = 'executing' ORDER BY received_at"
        )
        return [row[0] for row in rows]

    def unsent(self, limit: int = 100) -> list[JournaledReport]:
        rows = self._db.execute(
            "SELECT report_id, signal_id, kind, body FROM reports "
            "WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [JournaledReport(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def mark_sent(self, report_id: str, outcome: str) -> None:
        self._write(
            [
                (
                    "UPDATE reports SET sent_at = ?, outcome = ? WHERE report_id = ?",
                    (time.time(), outcome, report_id),
                )
            ]
        )

    def prune(self, now: float | None = None) -> None:
        """Forget what is old enough never to matter again, so the file stays small."""
        cutoff = (now if now is not None else time.time()) - RETENTION_S
        self._write(
            [
                ("DELETE FROM reports WHERE sent_at IS NOT NULL AND sent_at < ?", (cutoff,)),
                (
                    "DELETE FROM signals WHERE state = 'done' AND received_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM reports r WHERE r.signal_id = signals.signal_id "
                    "AND r.sent_at IS NULL)",
                    (cutoff,),
                ),
            ]
        )
