"""Producer secrets at rest: sealed, bound to their producer, opened only when needed."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI

from tradecast.db import Database
from tradecast.kit.secretbox import SecretBox, SecretBoxError
from tradecast.producers import service
from tradecast.producers.models import Producer


@pytest.fixture
def db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture
def box(app: FastAPI) -> SecretBox:
    secretbox: SecretBox = app.state.secretbox
    return secretbox


async def test_secret_is_stored_sealed_and_bound_to_its_producer(
    db: Database, box: SecretBox
) -> None:
    async with db.sessionmaker() as session, session.begin():
        issued = await service.create_producer(session, box, "sealed")
    producer = issued.producer
    assert issued.secret not in producer.secret_sealed
    assert box.open(producer.secret_sealed, context=str(producer.id)) == issued.secret
    with pytest.raises(SecretBoxError):
        box.open(producer.secret_sealed, context=str(uuid.uuid4()))


async def test_signing_key_opens_the_secret_of_an_active_producer(
    db: Database, box: SecretBox
) -> None:
    async with db.sessionmaker() as session, session.begin():
        issued = await service.create_producer(session, box, "active")
    async with db.sessionmaker() as session:
        key = await service.signing_key(session, box, issued.producer.id)
        unknown = await service.signing_key(session, box, uuid.uuid4())
    assert key is not None
    assert (key.key_id, key.secret, key.is_active) == (issued.producer.id, issued.secret, True)
    assert unknown is None


async def test_an_inactive_producer_is_refused_without_opening_its_secret(
    db: Database, box: SecretBox
) -> None:
    async with db.sessionmaker() as session, session.begin():
        issued = await service.create_producer(session, box, "retired")
        await service.deactivate(session, issued.producer.id, admin_id=None)
        producer = await session.get(Producer, issued.producer.id)
        assert producer is not None
        # Even a value that no longer opens (say, SECRET_KEY rotated away) is not touched.
        producer.secret_sealed = "unknown-version:garbage"
    async with db.sessionmaker() as session:
        key = await service.signing_key(session, box, issued.producer.id)
    assert key is not None
    assert (key.is_active, key.secret) == (False, "")
