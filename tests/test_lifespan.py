from __future__ import annotations

import gc

from asgi_lifespan import LifespanManager

from tradecast.config import Settings
from tradecast.main import YOUNG_GC_THRESHOLD, create_app


async def test_the_heap_built_at_startup_is_frozen_while_the_app_runs(settings: Settings) -> None:
    """The collector skips what startup built while the app serves, and gets it
    back when the app stops (nothing is kept from collection after shutdown)."""
    app = create_app(settings)
    async with LifespanManager(app):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


async def test_young_collections_are_rarer_while_the_app_runs(settings: Settings) -> None:
    before = gc.get_threshold()
    app = create_app(settings)
    async with LifespanManager(app):
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
