"""Producers made the way an operator makes them: by an admin, over the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import Api, LoggedIn


@dataclass(frozen=True)
class ProducerKey:
    id: str
    name: str
    secret: str


class Producers:
    """Creates producers through the admin API and signs requests as them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._admin: LoggedIn | None = None

    async def admin(self) -> LoggedIn:
        if self._admin is None:
            self._admin = await self.api.admin()
        return self._admin

    async def create(self, name: str | None = None) -> ProducerKey:
        name = name or f"strategy-{uuid.uuid4().hex[:8]}"
        response = await self.api.client.post(
            "/api/v1/admin/producers", json={"name": name}, headers=(await self.admin()).headers
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return ProducerKey(id=body["id"], name=body["name"], secret=body["secret"])

    async def send(
        self, producer: ProducerKey, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        return await self.api.signed(
            method, path, key_id=producer.id, secret=producer.secret, **kwargs
        )


@pytest.fixture
def producers(api: Api) -> Producers:
    return Producers(api)


@pytest.fixture
async def producer(producers: Producers) -> ProducerKey:
    return await producers.create()
