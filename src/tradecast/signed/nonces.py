"""Nonce stores: a nonce is claimed once per key within ``NONCE_TTL_S``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import String, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, Database
from tradecast.sharedstate import RedisUnavailable


class UsedNonce(Base):
    __tablename__ = "used_nonces"

    key_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class NonceStore(Protocol):
    async def claim(self, key_id: uuid.UUID, nonce: str, now: datetime, ttl_s: int) -> bool:
        """True if this (key, nonce) was not used within the TTL; records it either way."""
        ...

    async def prune(self, now: datetime) -> int:
        """Forget nonces whose TTL has passed; returns how many."""
        ...


class DatabaseNonceStore:
    """Nonces in a table whose primary key is (key_id, nonce).

    The claim is one atomic statement in its own short transaction: the insert
    wins, or the conflict update revives a row whose TTL has passed; a live row
    makes it return nothing. Two requests racing with one nonce therefore
    cannot both succeed, and a claim survives the request's own rollback.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, key_id: uuid.UUID, nonce: str, now: datetime, ttl_s: int) -> bool:
        dialect = postgresql if not self.db.is_sqlite else sqlite
        expires = now + timedelta(seconds=ttl_s)
        insert = dialect.insert(UsedNonce).values(key_id=key_id, nonce=nonce, expires_at=expires)
        statement = insert.on_conflict_do_update(
            index_elements=[UsedNonce.key_id, UsedNonce.nonce],
            set_={"expires_at": insert.excluded.expires_at},
            where=UsedNonce.expires_at <= now,
        ).returning(UsedNonce.key_id)
        async with self.db.sessionmaker() as session, session.begin():
            claimed = (await session.execute(statement)).first()
        return claimed is not None

    async def prune(self, now: datetime) -> int:
        async with self.db.sessionmaker() as session, session.begin():
            result = await session.execute(delete(UsedNonce).where(UsedNonce.expires_at <= now))
        return int(getattr(result, "rowcount", 0) or 0)


class RedisNonceStore:
    """Nonces as Redis keys, for several server processes sharing one Redis.

    ``SET key 1 NX EX ttl`` is atomic: of two requests racing with one nonce
    (even on two processes) exactly one sets the key. The TTL is Redis's own,
    so ``prune`` has nothing to do. When Redis does not answer the claim
    raises ``RedisUnavailable`` (503): the store fails closed, because a
    nonce that could not be checked might be a replay.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def claim(self, key_id: uuid.UUID, nonce: str, now: datetime, ttl_s: int) -> bool:
        try:
            created = await self.client.set(
                f"{self.prefix}:nonce:{key_id}:{nonce}", b"1", nx=True, ex=ttl_s
            )
        except RedisError as exc:
            raise RedisUnavailable() from exc
        return bool(created)

    async def prune(self, now: datetime) -> int:
        return 0
