"""Signals are published by real producers, created through the admin API."""

from __future__ import annotations

import pytest

from tests.helpers import Api
from tests.producers.conftest import ProducerKey, Producers


@pytest.fixture
def producers(api: Api) -> Producers:
    return Producers(api)


@pytest.fixture
async def producer(producers: Producers) -> ProducerKey:
    return await producers.create()
