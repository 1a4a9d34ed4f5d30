"""Producers: the strategy engines allowed to publish signals, and their signing secrets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.kit import clock
from tradecast.kit.pagination import PageParams
from tradecast.kit.secretbox import SecretBox, generate_secret
from tradecast.producers.errors import ProducerInactive, ProducerNameTaken, ProducerNotFound
from tradecast.producers.models import Producer
from tradecast.producers.repository import ProducerRepository
from tradecast.signed.verification import SigningKey


@dataclass(frozen=True)
class IssuedSecret:
    """A producer with the plaintext secret it was just given, to be shown once."""

    producer: Producer
    secret: str


def _audit(
    session: AsyncSession, action: str, producer: Producer, admin_id: uuid.UUID | None
) -> None:
    # No admin means the CLI, run by whoever operates the server.
    audit.record(
        session,
        action,
        actor_type=ActorType.USER if admin_id else ActorType.SYSTEM,
        actor_id=admin_id,
        target_type="producer",
        target_id=producer.id,
        metadata={"name": producer.name},
    )


async def create_producer(
    session: AsyncSession, box: SecretBox, name: str, *, admin_id: uuid.UUID | None = None
) -> IssuedSecret:
    producers = ProducerRepository(session)
    if await producers.by_name(name) is not None:
        raise ProducerNameTaken(f"A producer named {name!r} already exists")
    producer_id = uuid.uuid4()
    secret = generate_secret()
    producer = Producer(
        id=producer_id,
        name=name,
        # Bound to the id, so a sealed secret copied onto another row does not open.
        secret_sealed=box.seal(secret, context=str(producer_id)),
        is_active=True,
        created_at=clock.utcnow(),
    )
    try:
        # The unique constraint on name settles two creations racing each other.
        async with session.begin_nested():
            producers.add(producer)
            await session.flush()
    except IntegrityError as exc:
        raise ProducerNameTaken(f"A producer named {name!r} already exists") from exc
    _audit(session, "producer.created", producer, admin_id)
    return IssuedSecret(producer, secret)


async def list_producers(session: AsyncSession, page: PageParams) -> tuple[Sequence[Producer], int]:
    return await ProducerRepository(session).page(page)


async def _locked(session: AsyncSession, producer_id: uuid.UUID) -> Producer:
    # Row lock: a rotation and a deactivation racing each other apply one after the other.
    producer = await ProducerRepository(session).get_for_update(producer_id)
    if producer is None:
        raise ProducerNotFound()
    return producer


async def deactivate(
    session: AsyncSession, producer_id: uuid.UUID, *, admin_id: uuid.UUID | None
) -> Producer:
    """Stop the producer's key at once; deactivating twice changes nothing."""
    producer = await _locked(session, producer_id)
    if producer.is_active:
        producer.is_active = False
        producer.deactivated_at = clock.utcnow()
        _audit(session, "producer.deactivated", producer, admin_id)
        await session.flush()
    return producer


async def rotate_secret(
    session: AsyncSession, box: SecretBox, producer_id: uuid.UUID, *, admin_id: uuid.UUID | None
) -> IssuedSecret:
    """A new secret; the old one stops working as soon as this commits."""
    producer = await _locked(session, producer_id)
    if not producer.is_active:
        raise ProducerInactive("A deactivated producer cannot be given a new secret")
    secret = generate_secret()
    producer.secret_sealed = box.seal(secret, context=str(producer.id))
    _audit(session, "producer.secret_rotated", producer, admin_id)
    await session.flush()
    return IssuedSecret(producer, secret)


async def signing_key(
    session: AsyncSession, box: SecretBox, key_id: uuid.UUID
) -> SigningKey | None:
    """The key that verifies a producer's signed request; ``None`` for an unknown id."""
    producer = await ProducerRepository(session).get(key_id)
    if producer is None:
        return None
    if not producer.is_active:
        # Refused before the signature is checked: no need to open the secret.
        return SigningKey(key_id=producer.id, secret="", is_active=False)
    secret = box.open(producer.secret_sealed, context=str(producer.id))
    return SigningKey(key_id=producer.id, secret=secret, is_active=True)
