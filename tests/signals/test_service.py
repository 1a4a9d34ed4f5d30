"""``expire_due``: the periodic job's half of expiry (reads are truthful without it)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import FastAPI

from tests.helpers import Api
from tests.producers.conftest import ProducerKey, Producers
from tests.signals.test_router import SIGNALS, publish
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.signals import service
from tradecast.signals.models import Signal, SignalStatus


async def run_expire_due(app: FastAPI) -> int:
    db: Database = app.state.db
    async with db.sessionmaker() as session, session.begin():
        return await service.expire_due(session, clock.utcnow())


async def stored_status(app: FastAPI, signal_id: str) -> SignalStatus:
    db: Database = app.state.db
    async with db.sessionmaker() as session:
        signal = await session.get(Signal, uuid.UUID(signal_id))
        assert signal is not None
        return signal.status


async def test_expire_due_stores_expired_on_open_signals_past_expiry(
    app: FastAPI, producers: Producers, producer: ProducerKey
) -> None:
    soon = await publish(producers, producer, expires_at=_in(minutes=5))
    later = await publish(producers, producer, expires_at=_in(hours=2))
    cancelled = await publish(producers, producer, expires_at=_in(minutes=5))
    await producers.send(producer, "POST", f"{SIGNALS}/{cancelled['id']}/cancel")
    clock.advance(timedelta(minutes=5))

    assert await run_expire_due(app) == 1
    assert await stored_status(app, soon["id"]) is SignalStatus.EXPIRED
    assert await stored_status(app, later["id"]) is SignalStatus.OPEN
    assert await stored_status(app, cancelled["id"]) is SignalStatus.CANCELLED
    assert await run_expire_due(app) == 0


async def test_expired_signal_reads_the_same_before_and_after_the_job(
    app: FastAPI, api: Api, producers: Producers, producer: ProducerKey
) -> None:
    signal = await publish(producers, producer, expires_at=_in(minutes=1))
    clock.advance(timedelta(minutes=2))
    user = await api.user()
    before = (await api.client.get(f"{SIGNALS}/{signal['id']}", headers=user.headers)).json()
    await run_expire_due(app)
    after = (await api.client.get(f"{SIGNALS}/{signal['id']}", headers=user.headers)).json()
    assert before == after == {**signal, "status": "expired"}


def _in(**delta: float) -> str:
    return (clock.utcnow() + timedelta(**delta)).isoformat()
