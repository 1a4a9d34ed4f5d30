"""A trading desk for tests: users, their terminals and an admin publishing signals,
all acting through the API with real logins and real signatures."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import Api, LoggedIn


@dataclass
class Terminal:
    """A registered device, polling the way a terminal does."""

    api: Api
    id: str
    secret: str
    owner: LoggedIn

    async def poll(self, **params: Any) -> httpx.Response:
        return await self.api.signed(
            "GET",
            "/api/v1/exec/poll",
            key_id=self.id,
            secret=self.secret,
            params={k: str(v) for k, v in params.items()},
        )

    async def whoami(self, nonce: str | None = None) -> httpx.Response:
        return await self.api.signed(
            "GET", "/api/v1/exec/whoami", key_id=self.id, secret=self.secret, nonce=nonce
        )

    async def report(self, kind: str, **fields: Any) -> httpx.Response:
        """Send an ack, fill or error report; a fresh report_id unless one is given."""
        fields.setdefault("report_id", uuid.uuid4().hex)
        return await self.api.signed(
            "POST", f"/api/v1/exec/{kind}", key_id=self.id, secret=self.secret, json=fields
        )

    async def ack(self, signal_id: str, **fields: Any) -> httpx.Response:
        return await self.report("ack", signal_id=signal_id, **fields)

    async def fill(self, signal_id: str, price: str, size: str, **fields: Any) -> httpx.Response:
        return await self.report(
            "fill", signal_id=signal_id, fill_price=price, fill_size=size, **fields
        )

    async def error(
        self, signal_id: str, code: int = 10006, message: str = "No connection", **fields: Any
    ) -> httpx.Response:
        return await self.report(
            "error", signal_id=signal_id, status_code=code, error_message=message, **fields
        )

    async def pending_ids(self, **params: Any) -> list[str]:
        response = await self.poll(**params)
        assert response.status_code == 200, response.text
        return [signal["id"] for signal in response.json()["signals"]]


class Desk:
    """Users, devices and an admin publishing signals, all through the API."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._admin: LoggedIn | None = None

    async def admin(self) -> LoggedIn:
        if self._admin is None:
            self._admin = await self.api.admin()
        return self._admin

    async def terminal(self, owner: LoggedIn | None = None, name: str = "MT5") -> Terminal:
        owner = owner or await self.api.user()
        response = await self.api.client.post(
            "/api/v1/devices", json={"device_name": name}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Terminal(self.api, body["id"], body["secret"], owner)

    async def publish(self, **fields: Any) -> dict[str, Any]:
        signal = {"instrument": "EURUSD", "side": "buy", "order_type": "market", **fields}
        admin = await self.admin()
        response = await self.api.client.post("/api/v1/signals", json=signal, headers=admin.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def set_mode(self, user: LoggedIn, mode: str) -> None:
        response = await self.api.client.patch(
            "/api/v1/me", json={"delivery_mode": mode}, headers=user.headers
        )
        assert response.status_code == 200, response.text

    async def decide(self, user: LoggedIn, signal_id: str, decision: str) -> httpx.Response:
        return await self.api.client.post(
            f"/api/v1/signals/{signal_id}/{decision}", headers=user.headers
        )
