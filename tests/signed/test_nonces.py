from __future__ import annotations

import uuid
from datetime import timedelta

from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.signed.nonces import DatabaseNonceStore


async def test_nonces_are_claimed_once_and_pruned_after_their_ttl(
    app: object, settings: Settings
) -> None:
    db = Database(settings.resolved_database_url)
    store = DatabaseNonceStore(db)
    key = uuid.uuid4()
    try:
        now = clock.utcnow()
        assert await store.claim(key, "n" * 16, now, 600)
        assert not await store.claim(key, "n" * 16, now + timedelta(seconds=599), 600)
        # Another key may use the same nonce.
        assert await store.claim(uuid.uuid4(), "n" * 16, now, 600)
        assert await store.prune(now + timedelta(seconds=599)) == 0
        assert await store.prune(now + timedelta(seconds=601)) == 2
        # Once pruned (or expired) the nonce is usable again: the timestamp
        # window (300 s) is shorter than the TTL, so this opens no replay.
        assert await store.claim(key, "n" * 16, now + timedelta(seconds=601), 600)
    finally:
        await db.dispose()


async def test_an_expired_nonce_row_can_be_reclaimed_before_pruning(
    app: object, settings: Settings
) -> None:
    db = Database(settings.resolved_database_url)
    store = DatabaseNonceStore(db)
    key = uuid.uuid4()
    try:
        now = clock.utcnow()
        assert await store.claim(key, "x" * 20, now, 600)
        assert await store.claim(key, "x" * 20, now + timedelta(seconds=601), 600)
    finally:
        await db.dispose()
